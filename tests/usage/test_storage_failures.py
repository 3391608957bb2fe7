"""The database failing under a running ``gptrelay serve`` process, end to end.

The defined answer when the database stops taking writes mid-run (SQLite locked by another writer,
PostgreSQL turned read-only as a demoted primary is): every client still gets its whole reply, within
the writer's retry time; the records go to ``usage-spool.jsonl`` in the relay's working directory,
with a warning line that names the database and the spool; nothing is printed twice, no traceback,
no key or hash. The relay imports the spool as soon as the database takes writes again, or at its
next start: no record is lost.

When the disk itself is full (the database and the spool on one small tmpfs), the records of the
requests made meanwhile cannot be kept anywhere: each batch is one error line saying how many were
lost, the replies still complete, the relay keeps serving, and recording resumes once there is room.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

from gptrelay.usage.writer import SPOOL_NAME
from tests.conftest import UPSTREAM_KEY, RunningFake
from tests.helpers import RelayProcess, chat, serve_process, tmpfs, user
from tests.usage.test_recording import records

REPLY_WITHIN = 5.0  # seconds: the writer retries for 2 s, then spools; a reply never waits much longer


def env_for(fake: RunningFake, url: str) -> dict[str, str]:
    return {**os.environ, "OPENAI_API_KEY": UPSTREAM_KEY, "OPENAI_BASE_URL": fake.url,
            "AUTHORIZATION_KEY": "owner", "DATABASE_URL": url}


def make_key(env: dict[str, str], cwd: Path, name: str = "alice") -> str:
    made = subprocess.run([sys.executable, "-m", "gptrelay", "keys", "create", name], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    return made.stdout.splitlines()[-1]


def three_requests(relay: RelayProcess, key: str) -> list[str]:
    """/chat, /chatgpt and a /v1 stream, each read whole within ``REPLY_WITHIN`` seconds; their routes."""
    headers = {"Authorization": f"Bearer {key}"}
    started = time.monotonic()
    reply = chat(relay.url, user("hi"), headers, timeout=2 * REPLY_WITHIN)
    assert reply.status == 200 and reply.last["content"] == "[DONE]" and reply.text, reply.frames
    assert time.monotonic() - started < REPLY_WITHIN
    for path in ("/chatgpt", "/v1/chat/completions"):
        started = time.monotonic()
        body = {"model": "gpt-4o-mini", "stream": True, **user("hi")}
        streamed = httpx.post(f"{relay.url}{path}", json=body, headers=headers, timeout=2 * REPLY_WITHIN)
        assert streamed.status_code == 200 and streamed.text.endswith("data: [DONE]\n\n"), streamed.text[-200:]
        assert time.monotonic() - started < REPLY_WITHIN
    return ["/chat", "/chatgpt", "/v1/chat/completions"]


def spooled(cwd: Path) -> list[dict[str, Any]]:
    path = cwd / SPOOL_NAME
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def routes(url: str) -> list[str]:
    return [row["route"] for row in records(url)]


def wait_for(check: Callable[[], bool], within: float = 10) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"not so within {within} s"
        time.sleep(0.1)


def check_log(stderr: str, key: str) -> list[str]:
    """The relay's usage lines, checked for what must never be in a log; the warnings among them."""
    assert "Traceback" not in stderr, stderr
    assert key[3:] not in stderr and hashlib.sha256(key.encode()).hexdigest() not in stderr
    return [line for line in stderr.splitlines() if " WARNING gptrelay.usage: " in line]


def check_outage(fake: RunningFake, url: str, tmp_path: Path, break_it: Callable[[], None],
                 mend: Callable[[], None]) -> None:
    env = env_for(fake, url)
    key = make_key(env, tmp_path)
    relay = serve_process(env, tmp_path)
    try:
        assert three_requests(relay, key) == routes(url)  # recorded while the database takes writes
        break_it()
        during = three_requests(relay, key)
        assert routes(url) == during  # nothing more in the database
        assert [record["route"] for record in spooled(tmp_path)] == during  # all in the spool
    finally:
        stderr = relay.stop()
    warnings = check_log(stderr, key)
    assert warnings and all(SPOOL_NAME in line and "the database failed" in line for line in warnings), stderr
    mend()
    relay = serve_process(env, tmp_path)  # the next start imports the spool
    try:
        assert routes(url) == during * 2 and not (tmp_path / SPOOL_NAME).exists()
        three_requests(relay, key)
        assert routes(url) == during * 3
    finally:
        stderr = relay.stop()
    check_log(stderr, key)
    assert "imported 3 record(s)" in stderr, stderr


def test_sqlite_locked_by_another_writer_mid_run(fake_upstream: RunningFake, tmp_path: Path) -> None:
    database = tmp_path / "relay.db"
    holder = sqlite3.connect(database, timeout=10, isolation_level=None)

    def break_it() -> None:  # an sqlite3 shell, a backup tool: a write transaction left open
        holder.execute("BEGIN EXCLUSIVE")

    def mend() -> None:
        holder.execute("ROLLBACK")

    try:
        check_outage(fake_upstream, f"sqlite:///{database}", tmp_path, break_it, mend)
    finally:
        holder.close()


def test_postgresql_turned_read_only_mid_run(fake_upstream: RunningFake, postgres_url: str,
                                            tmp_path: Path) -> None:
    import asyncpg

    from tests.helpers import run_async

    name = postgres_url.rsplit("/", 1)[1]

    def on_server(sql: str) -> None:
        async def go() -> None:
            connection = await asyncpg.connect(postgres_url.rsplit("/", 1)[0] + "/postgres", timeout=5)
            try:
                await connection.execute(sql)
                # sessions pick the setting up when they start: end the relay's, it reconnects
                await connection.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                         "WHERE datname = $1 AND pid <> pg_backend_pid()", name)
            finally:
                await connection.close()

        run_async(go())

    check_outage(fake_upstream, postgres_url, tmp_path,
                 lambda: on_server(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'),
                 lambda: on_server(f'ALTER DATABASE "{name}" RESET default_transaction_read_only'))


def fill(folder: Path) -> Path:
    """A file that takes every byte left on ``folder``'s file system."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (64 * 1024, 1):  # then the last few bytes
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_loses_what_it_must_says_so_and_recovers(fake_upstream: RunningFake, tmp_path: Path) -> None:
    with tmpfs("2m") as folder:  # the database and the spool (the working directory) on one small disk
        url = f"sqlite:///{folder}/relay.db"
        env = env_for(fake_upstream, url)
        key = make_key(env, folder)
        relay = serve_process(env, folder, logs=tmp_path)
        try:
            before = three_requests(relay, key)
            assert routes(url) == before
            filler = fill(folder)
            during = three_requests(relay, key) + three_requests(relay, key)  # no hang, whole replies
            assert httpx.get(f"{relay.url}/healthz", timeout=5).status_code == 200
            kept = routes(url)[len(before):]  # SQLite may still find room in its journal for some
            assert spooled(folder) == []  # no room for the spool either
            filler.unlink()
            after = three_requests(relay, key)  # recording resumes
            assert routes(url) == before + kept + after
        finally:
            stderr = relay.stop()
        assert relay.process.returncode == 0, stderr
        check_log(stderr, key)
        errors = [line for line in stderr.splitlines() if " ERROR " in line]
        lost = sum(int(line.split("usage: ")[2].split(" ")[0]) for line in errors)
        assert lost == len(during) - len(kept), stderr  # every record not kept is told, once
        assert all("record(s) lost" in line and "No space left on device" in line for line in errors), stderr
