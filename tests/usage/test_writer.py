"""UsageWriter on SQLite and PostgreSQL: batches, commit before return, close, the spool, a full disk, kill -9."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest
from sqlalchemy import select

from gptrelay.db.engine import create_engine
from gptrelay.db.schema import migrate
from gptrelay.db.tables import usage
from gptrelay.usage.records import UsageRecord
from gptrelay.usage.sinks import sink_for
from gptrelay.usage.writer import SPOOL_NAME, UsageWriter
from tests.helpers import run_async
from tests.usage.conftest import make

T = TypeVar("T")
DEAD = "postgresql://postgres@127.0.0.1:1/nothing"  # refused at once


def run(action: Callable[[], Awaitable[T]]) -> T:
    return run_async(action())


async def stored(url: str) -> list[int]:
    """The prompt tokens (the records' numbers) in the database, seen through an engine of its own."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(select(usage.c.prompt_tokens).order_by(usage.c.prompt_tokens))
            return [int(row[0]) for row in rows]
    finally:
        await engine.dispose()


def test_a_record_is_committed_before_record_returns(database_url: str, tmp_path: Path) -> None:
    async def go() -> None:
        engine = create_engine(database_url)
        writer = UsageWriter(engine, tmp_path)
        await writer.start()
        for n in range(1, 4):
            await writer.record(make(n))
            assert await stored(database_url) == list(range(1, n + 1))
        assert (writer.committed, writer.batches, writer.queue_length) == (3, 3, 0)
        assert writer.last_commit_seconds > 0
        await writer.close()
        await engine.dispose()

    run(go)


def test_records_arriving_together_share_a_few_transactions(database_url: str, tmp_path: Path) -> None:
    async def go() -> None:
        engine = create_engine(database_url)
        writer = UsageWriter(engine, tmp_path)
        commits: list[int] = []  # the batches that reached the driver
        insert = writer._sink.insert

        async def counted(records: Sequence[UsageRecord], timeout: float) -> None:
            await insert(records, timeout)
            commits.append(len(records))

        writer._sink.insert = counted  # type: ignore[method-assign]
        await writer.start()
        await asyncio.gather(*(writer.record(make(n)) for n in range(1000)))
        assert await stored(database_url) == list(range(1000))
        assert writer.committed == 1000
        assert 1 <= writer.batches <= 5 and len(commits) == writer.batches, (writer.batches, len(commits))
        await writer.close()
        await engine.dispose()

    run(go)


def test_close_commits_what_is_pending_and_a_cancelled_caller_still_counts(database_url: str, tmp_path: Path,
                                                                           ) -> None:
    async def go() -> None:
        engine = create_engine(database_url)
        writer = UsageWriter(engine, tmp_path)
        await writer.start()
        tasks = [asyncio.create_task(writer.record(make(n))) for n in range(50)]
        await asyncio.sleep(0)  # each has queued its record
        tasks[0].cancel()  # the client left: its record stays
        await writer.close()
        assert await stored(database_url) == list(range(50))
        await asyncio.gather(*tasks, return_exceptions=True)
        await writer.record(make(50))  # after close: written alone, still before returning
        assert len(await stored(database_url)) == 51
        await engine.dispose()

    run(go)


def test_a_dead_database_spools_and_the_next_start_imports(database_url: str, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    async def dead() -> None:
        engine = create_engine(DEAD)
        writer = UsageWriter(engine, tmp_path, retry_for=0.3)
        await writer.start()
        started = time.monotonic()
        await asyncio.gather(*(writer.record(make(n)) for n in range(10)))
        assert time.monotonic() - started < 5
        await writer.close()
        assert (writer.spooled, writer.committed, writer.lost) == (10, 0, 0)
        await engine.dispose()

    with caplog.at_level(logging.WARNING, "gptrelay.usage"):
        run(dead)
    warnings = [r.getMessage() for r in caplog.records]
    # Told once, at start (the outage began there); the records then go to the spool at once.
    assert len(warnings) == 1 and warnings[0].startswith("usage: the database does not answer yet"), warnings
    assert "127.0.0.1:1" in warnings[0] and SPOOL_NAME in warnings[0]
    assert all("\n" not in w for w in warnings)
    spool = tmp_path / SPOOL_NAME
    assert len(spool.read_bytes().splitlines()) == 10

    async def alive() -> None:
        engine = create_engine(database_url)
        writer = UsageWriter(engine, tmp_path)
        await writer.start()
        assert not spool.exists()
        assert await stored(database_url) == list(range(10))
        await writer.record(make(10))
        await writer.close()
        await engine.dispose()

    run(alive)
    assert len(run_async(stored(database_url))) == 11


def test_the_import_keeps_times_and_fields(database_url: str, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    original = make(7, time=datetime(2026, 1, 31, 23, 59, 59, 123000, tzinfo=UTC), key=None, model=None,
                    estimated=True, outcome="client_gone", ttfb_ms=None, duration_ms=None)

    async def go() -> None:
        engine = create_engine(DEAD)
        writer = UsageWriter(engine, tmp_path, retry_for=0.1)
        await writer.record(original)  # not started: written alone
        await engine.dispose()
        engine = create_engine(database_url)
        writer = UsageWriter(engine, tmp_path)
        assert await writer.import_spool() == 1
        async with engine.connect() as connection:
            row = (await connection.execute(select(usage))).one()._mapping
        from gptrelay.usage.records import utc

        assert (utc(row["time"]), row["key_name"], row["model"], row["estimated"], row["outcome"], row["ttfb_ms"]) == (
            original.time, None, None, True, "client_gone", None)
        await engine.dispose()

    run(go)


def test_a_half_written_spool_line_is_skipped(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/relay.db"
    run_async(migrate(url))
    import orjson

    (tmp_path / SPOOL_NAME).write_bytes(orjson.dumps(make(1).as_json()) + b"\n" + b'{"time": "2026-')

    async def go() -> None:
        engine = create_engine(url)
        assert await UsageWriter(engine, tmp_path).import_spool() == 1
        await engine.dispose()

    run(go)
    assert run_async(stored(url)) == [1]


def test_a_full_disk_is_one_error_and_record_returns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    (tmp_path / SPOOL_NAME).symlink_to("/dev/full")  # every write: ENOSPC

    async def go() -> None:
        engine = create_engine(DEAD)
        writer = UsageWriter(engine, tmp_path, retry_for=0.2)
        await writer.start()
        await asyncio.wait_for(asyncio.gather(*(writer.record(make(n)) for n in range(3))), 10)
        await asyncio.wait_for(writer.close(), 10)
        assert writer.lost == 3 and writer.spooled == 0
        await engine.dispose()

    with caplog.at_level(logging.WARNING, "gptrelay.usage"):
        run(go)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and all("No space left on device" in r.getMessage() for r in errors)
    assert all("\n" not in r.getMessage() for r in caplog.records)


CHILD = """
import asyncio, sys
from datetime import UTC, datetime
from gptrelay.db.engine import create_engine
from gptrelay.usage.records import UsageRecord
from gptrelay.usage.writer import UsageWriter

async def one(writer, n):
    await writer.record(UsageRecord(time=datetime.now(UTC), key="k", route="/chat", model="m", status=200,
                                    prompt_tokens=n, completion_tokens=0, estimated=False, outcome="ok"))
    print(n, flush=True)

async def main():
    writer = UsageWriter(create_engine(sys.argv[1]), sys.argv[2])
    await writer.start()
    n = 0
    while True:  # ten requests at a time, until killed
        await asyncio.gather(*(one(writer, n + i) for i in range(10)))
        n += 10

asyncio.run(main())
"""


def test_kill_9_loses_no_record_it_reported(database_url: str, tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD, database_url, str(tmp_path)], stdout=subprocess.PIPE,
                             text=True)
    assert child.stdout is not None
    reported: list[int] = []
    for line in child.stdout:
        reported.append(int(line))
        if len(reported) >= 300:
            break
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    child.stdout.close()
    in_database = set(run_async(stored(database_url)))
    assert set(reported) <= in_database
    assert len(reported) >= 300



def test_records_arriving_during_a_commit_go_together_in_the_next(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/relay.db"
    run_async(migrate(url))

    async def go() -> None:
        engine = create_engine(url)
        writer = UsageWriter(engine, tmp_path)
        sizes: list[int] = []
        release = asyncio.Event()
        insert = writer._insert

        async def held(records: list[UsageRecord], timeout: float) -> None:
            sizes.append(len(records))
            if len(sizes) == 1:
                await release.wait()
            await insert(records, timeout)

        writer._insert = held  # type: ignore[method-assign]
        await writer.start()
        first = asyncio.create_task(writer.record(make(0)))
        while not sizes:
            await asyncio.sleep(0.01)
        rest = [asyncio.create_task(writer.record(make(n))) for n in range(1, 100)]
        await asyncio.sleep(0.05)
        assert writer.queue_length == 100 and not first.done()
        release.set()
        await asyncio.gather(first, *rest)
        assert sizes == [1, 99] and writer.batches == 2 and writer.queue_length == 0
        assert writer.last_commit_at > 0
        await writer.close()
        await engine.dispose()
        assert await stored(url) == list(range(100))

    run(go)


def test_text_longer_than_its_column_is_cut_not_refused(database_url: str, tmp_path: Path) -> None:
    async def go() -> None:
        engine = create_engine(database_url)
        writer = UsageWriter(engine, tmp_path, retry_for=0.2)
        await writer.record(make(1, route="/v1/" + "x" * 100, model="m" * 300))
        assert writer.committed == 1 and writer.spooled == 0
        async with engine.connect() as connection:
            route, model = (await connection.execute(select(usage.c.route, usage.c.model))).one()
        assert (len(route), len(model)) == (32, 200)
        await engine.dispose()

    run(go)


async def spool_gone(folder: Path, within: float = 2.0) -> bool:
    """Whether the spool in ``folder`` is gone (imported) within ``within`` seconds."""
    for _ in range(int(within / 0.02)):
        if not (folder / SPOOL_NAME).exists():
            return True
        await asyncio.sleep(0.02)
    return not (folder / SPOOL_NAME).exists()


@pytest.mark.parametrize("a_record_comes", [True, False], ids=["then-a-record", "then-no-record"])
def test_the_spool_is_imported_once_the_database_answers_again(database_url: str, tmp_path: Path,
                                                               a_record_comes: bool) -> None:
    """Imported after the first commit that shows the database answers again, or, when no record
    comes (a burst spooled while the database was slow, then nothing), by the writer's own try."""
    async def go() -> None:
        dead, alive = create_engine(DEAD), create_engine(database_url)
        # With a record to come, the writer's own tries are too far apart to be what imports the spool.
        writer = UsageWriter(dead, tmp_path, retry_for=0.2, spool_retry=10 if a_record_comes else 0.3)
        await writer.start()
        await asyncio.gather(*(writer.record(make(n)) for n in range(5)))
        assert writer.spooled == 5 and (tmp_path / SPOOL_NAME).exists()
        await asyncio.sleep(0.5)  # (a try with the database still down: the spool stays, quietly)
        assert (tmp_path / SPOOL_NAME).exists()
        writer.engine, writer._sink = alive, sink_for(alive)  # the database is back
        if a_record_comes:
            await writer.record(make(5))
        assert await spool_gone(tmp_path)
        assert await stored(database_url) == list(range(6 if a_record_comes else 5))
        await writer.close()
        await dead.dispose()
        await alive.dispose()

    run(go)


def test_a_spool_the_start_could_not_import_is_imported_once_the_database_answers(database_url: str,
                                                                                  tmp_path: Path) -> None:
    async def go() -> None:
        dead, alive = create_engine(DEAD), create_engine(database_url)
        first = UsageWriter(dead, tmp_path, retry_for=0.2)
        await first.start()
        await first.record(make(0))
        await first.close()
        second = UsageWriter(dead, tmp_path, retry_for=0.2, spool_retry=0.2)
        await second.start()  # the database still down: the spool stays
        assert (tmp_path / SPOOL_NAME).exists()
        second.engine, second._sink = alive, sink_for(alive)
        assert await spool_gone(tmp_path)
        assert await stored(database_url) == [0]
        await second.close()
        await dead.dispose()
        await alive.dispose()

    run(go)


def test_a_spool_the_database_refuses_is_not_read_at_every_batch(database_url: str, tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """A spool whose import fails with the database up (a line it refuses) is tried every spool_retry
    seconds, and why it stays is told once."""
    async def go() -> list[int]:
        engine = create_engine(database_url)
        writer = UsageWriter(engine, tmp_path, spool_retry=0.3)
        tries = []
        importing = writer._import_spool

        async def counted(warn: bool) -> int:
            tries.append(int(warn))
            return await importing(warn)

        async def refused(records: list[Any], timeout: float) -> None:
            raise RuntimeError("refused")

        writer._import_spool = counted  # type: ignore[method-assign]
        (tmp_path / SPOOL_NAME).write_bytes(orjson.dumps(make(0).as_json()) + b"\n")
        inserting = writer._insert
        writer._insert = refused  # type: ignore[method-assign]  # the import fails
        await writer.start()
        writer._insert = inserting  # type: ignore[method-assign]
        for n in range(1, 50):  # records keep coming and committing for 0.5 s
            await writer.record(make(n))
            await asyncio.sleep(0.01)
        await writer.close()
        await engine.dispose()
        return tries

    with caplog.at_level(logging.WARNING, "gptrelay.usage"):
        tries = run(go)
    assert 1 <= len(tries) <= 4, tries  # at start, then at most every 0.3 s
    assert tries[0] == 1 and sum(tries) == 1  # told once
    assert not (tmp_path / SPOOL_NAME).exists()  # the database took it once the failure was gone


def test_an_unexpected_failure_is_logged_and_no_caller_waits_forever(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    async def go() -> None:
        engine = create_engine(DEAD)
        writer = UsageWriter(engine, tmp_path, retry_for=0.1)

        async def broken(batch: list[object], error: BaseException) -> None:
            raise RuntimeError("a bug")

        writer._spool = broken  # type: ignore[assignment,method-assign]
        await writer.start()
        await asyncio.wait_for(asyncio.gather(*(writer.record(make(n)) for n in range(3))), 10)
        assert writer.lost == 3
        await writer.record(make(3))  # the writer still runs
        assert writer.lost == 4
        await writer.close()
        await engine.dispose()

    with caplog.at_level(logging.ERROR, "gptrelay.usage"):
        run(go)
    assert "record(s) lost: RuntimeError('a bug')" in caplog.text


NO_DESCRIPTORS = """
import asyncio, os, sys
from datetime import UTC, datetime
from gptrelay.db.engine import create_engine
from gptrelay.usage.records import UsageRecord
from gptrelay.usage.writer import UsageWriter

def record(n):
    return UsageRecord(time=datetime.now(UTC), key="k", route="/chat", model="m", status=200,
                       prompt_tokens=n, completion_tokens=0, estimated=False, outcome="ok")

async def main():
    writer = UsageWriter(create_engine(sys.argv[1]), sys.argv[2], retry_for=0.2)
    await writer.start()
    hog = []
    try:
        while True:  # every descriptor taken, as by thousands of open streams
            hog.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        pass
    await asyncio.gather(*(writer.record(record(n)) for n in range(20)))
    print(writer.committed, writer.spooled, writer.lost, flush=True)
    for fd in hog:
        os.close(fd)
    await writer.close()

asyncio.run(main())
"""


@pytest.mark.parametrize("alive", [True, False], ids=["database", "spool"])
def test_no_file_descriptor_left_loses_no_record(database_url: str, tmp_path: Path, alive: bool) -> None:
    url = database_url if alive else DEAD
    done = subprocess.run([sys.executable, "-c", NO_DESCRIPTORS, url, str(tmp_path)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    committed, spooled, lost = map(int, done.stdout.split())
    if alive:  # on the connection made at start
        assert (committed, spooled, lost) == (20, 0, 0)
        assert len(run_async(stored(database_url))) == 20
    else:  # in the spool, opened with the descriptor kept for it
        assert (committed, spooled, lost) == (0, 20, 0), done.stderr[-2000:]
        assert len((tmp_path / SPOOL_NAME).read_text().splitlines()) == 20
