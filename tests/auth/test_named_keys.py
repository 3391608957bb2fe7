"""Named keys at the front door: made with the CLI, looked up in memory, revoked everywhere within a second.

The in-process tests change keys through a ``KeyStore`` of their own on the
relay's database (as the CLI does); the last test runs two real relay
processes sharing one PostgreSQL and revokes a key with the real CLI.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from tests.conftest import UPSTREAM_KEY, RunningFake, RunningRelay, Store
from tests.helpers import free_port, user, wait_until_serving

Relay = Callable[..., RunningRelay]


def status(relay: RunningRelay, key: str) -> int:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{relay.url}/chat", json=user("hi"), headers=headers).status_code


def wait_for_status(relay: RunningRelay, key: str, wanted: int, within: float = 1.0) -> float:
    """Seconds until requests with ``key`` get ``wanted``; fails after ``within`` seconds."""
    started = time.monotonic()
    while status(relay, key) != wanted:
        assert time.monotonic() - started < within, f"still not {wanted} after {within} s"
        time.sleep(0.02)
    return time.monotonic() - started


def test_a_named_key_is_let_in_and_the_owner_key_still_is(relay: Relay, store: Store) -> None:
    alice = store.create("alice")
    r = relay(database_url=store.url)
    assert status(r, alice) == 200
    assert status(r, r.key) == 200
    assert status(r, alice[:-1] + ("A" if alice[-1] != "A" else "B")) == 401
    assert status(r, "gr-" + "x" * 43) == 401


def test_a_key_made_while_the_relay_runs_works_within_a_second(relay: Relay, store: Store) -> None:
    r = relay(database_url=store.url)
    bob = store.create("bob")
    wait_for_status(r, bob, 200)


def test_a_revoked_key_is_refused_within_a_second(relay: Relay, store: Store) -> None:
    carol = store.create("carol")
    r = relay(database_url=store.url)
    assert status(r, carol) == 200
    store.revoke("carol")
    wait_for_status(r, carol, 401)
    reply = httpx.post(f"{r.url}/v1/models", headers={"Authorization": f"Bearer {carol}"})
    assert reply.json()["error"]["message"] == "wrong access key"  # like any wrong key


def test_an_expired_key_is_refused(relay: Relay, store: Store) -> None:
    dave = store.create("dave", expires_at=datetime.now(UTC) + timedelta(seconds=1.5))
    r = relay(database_url=store.url)
    assert status(r, dave) == 200
    time.sleep(1.6)
    assert status(r, dave) == 401


def test_a_keyless_loopback_relay_needs_keys_once_there_are_some(relay: Relay, store: Store) -> None:
    r = relay(database_url=store.url, authorization_key=None)
    assert httpx.post(f"{r.url}/chat", json=user("hi")).status_code == 200
    erin = store.create("erin")
    wait_for_status(r, "", 401)
    assert status(r, erin) == 200


def test_a_public_bind_with_keys_in_the_database_needs_no_authorization_key(
        fake_upstream: RunningFake, store: Store, tmp_path: Path) -> None:
    frank = store.create("frank")
    port = free_port()
    env = {**os.environ, "OPENAI_API_KEY": UPSTREAM_KEY, "OPENAI_BASE_URL": fake_upstream.url,
           "DATABASE_URL": store.url}
    process = subprocess.Popen([sys.executable, "-m", "gptrelay", "serve", "--host", "0.0.0.0", "--port", str(port)],
                               env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until_serving(f"http://127.0.0.1:{port}", process)
        url = f"http://127.0.0.1:{port}"
        assert httpx.post(f"{url}/chat", json=user("hi")).status_code == 401
        assert httpx.post(f"{url}/chat", json=user("hi"), headers={"Authorization": f"Bearer {frank}"}
                          ).status_code == 200
    finally:
        process.terminate()
        process.wait(10)


def test_a_revoke_reaches_two_relays_sharing_postgresql_within_a_second(
        fake_upstream: RunningFake, postgres_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "OPENAI_API_KEY": UPSTREAM_KEY, "OPENAI_BASE_URL": fake_upstream.url,
           "DATABASE_URL": postgres_url, "AUTHORIZATION_KEY": "owner-key"}

    def cli(*args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "gptrelay", "keys", *args], env=env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout

    key = cli("create", "shared").splitlines()[-1]
    relays = []
    processes = []
    try:
        for _ in range(2):
            port = free_port()
            processes.append(subprocess.Popen([sys.executable, "-m", "gptrelay", "serve", "--port", str(port)],
                                              env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL))
            relays.append(RunningRelay(f"http://127.0.0.1:{port}", "owner-key", None))  # type: ignore[arg-type]
        for relay, process in zip(relays, processes, strict=True):
            wait_until_serving(relay.url, process)
            assert status(relay, key) == 200
        cli("revoke", "shared")  # returns once the change is committed
        revoked_at = time.monotonic()
        for relay in relays:
            wait_for_status(relay, key, 401, within=1.0 - (time.monotonic() - revoked_at))
        print(f"revoked on both relays {time.monotonic() - revoked_at:.3f} s after the CLI returned")
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)


def test_a_key_revoked_mid_stream_finishes_that_stream_and_nothing_more(relay: Relay, store: Store) -> None:
    heidi = store.create("heidi")
    r = relay(database_url=store.url)
    body = user("/scenario bench chunks=40 interval_ms=25")
    with httpx.stream("POST", f"{r.url}/chat", json=body, headers={"Authorization": f"Bearer {heidi}"}) as reply:
        lines = reply.iter_lines()
        next(lines)
        store.revoke("heidi")
        time.sleep(0.6)  # the revoke is in force now; this stream goes on
        rest = list(lines)
    assert rest[-1].startswith('{"done":true,"error":false,"content":"[DONE]"')
    assert status(r, heidi) == 401
