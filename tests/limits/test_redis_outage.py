"""A Redis that dies under a running relay, end to end: a real ``gptrelay serve`` process counting a
key's rpm in a private ``redis-server``, which is killed (``kill -9``) and later started again on the
same port.

The defined answer: with ``REDIS_FAILURE_POLICY=open`` requests go on being served and one warning
line says so; with ``closed`` each is refused with 503 ``limiter_unavailable`` in OpenAI's envelope.
Neither waits on Redis. Once Redis answers again, one line says so and the limits apply again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis import Redis
from redis.exceptions import RedisError

from tests.conftest import UPSTREAM_KEY, RunningFake
from tests.helpers import free_port, serve_process

RPM = 3
REQUEST_TIMEOUT = 5.0  # no request may take this long: the relay never waits on a dead Redis


class RedisServer:
    """``redis-server`` on a port of its own, with nothing saved to disk."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("needs the redis-server binary (apt-get install redis-server)")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "redis-server exited at start"
            try:
                with Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1) as client:
                    if client.ping():
                        return
            except RedisError:
                time.sleep(0.05)
        raise AssertionError(f"redis-server did not answer on port {self.port} within 10 s")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def status(url: str, key: str) -> httpx.Response:
    started = time.monotonic()
    response = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=REQUEST_TIMEOUT)
    assert time.monotonic() - started < 3, "a request waited on Redis"
    return response


def statuses_until(url: str, key: str, wanted: int, within: float = 10) -> list[int]:
    """The statuses of requests sent one after another until one is ``wanted`` (failing after ``within`` s)."""
    seen = []
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        seen.append(status(url, key).status_code)
        if seen[-1] == wanted:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"no {wanted} within {within} s: {seen}")


@pytest.mark.parametrize("policy", ["open", "closed"])
def test_redis_killed_mid_run_then_back(policy: str, redis_server: RedisServer, fake_upstream: RunningFake,
                                        tmp_path: Path) -> None:
    env = {**os.environ, "OPENAI_API_KEY": UPSTREAM_KEY, "OPENAI_BASE_URL": fake_upstream.url,
           "AUTHORIZATION_KEY": "owner", "DATABASE_URL": f"sqlite:///{tmp_path}/relay.db",
           "REDIS_URL": redis_server.url, "REDIS_FAILURE_POLICY": policy}
    name = f"outage-{uuid.uuid4().hex[:8]}"
    made = subprocess.run([sys.executable, "-m", "gptrelay", "keys", "create", name, "--rpm", str(RPM)], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    key = made.stdout.splitlines()[-1]
    relay = serve_process(env, tmp_path)
    try:
        # Redis up: the rpm holds.
        assert [status(relay.url, key).status_code for _ in range(RPM + 1)] == [200] * RPM + [429]

        redis_server.kill()
        replies = [status(relay.url, key) for _ in range(5)]
        if policy == "open":
            assert [r.status_code for r in replies] == [200] * 5  # served, unchecked
        else:
            for reply in replies:
                assert reply.status_code == 503, reply.text
                error = reply.json()["error"]
                assert error["code"] == "limiter_unavailable" and error["message"] and "type" in error
        assert status(relay.url, "owner").status_code == 200  # the owner's key has no limits to check

        redis_server.start()  # an empty Redis on the same port: the counters start again
        if policy == "open":
            seen = statuses_until(relay.url, key, 429)
            assert seen.count(200) >= RPM  # admitted unchecked for at most a second, then counted
        else:
            seen = statuses_until(relay.url, key, 200)
            assert set(seen[:-1]) <= {503}
            # counted again: exactly RPM admitted in the fresh window, the first of them already
            assert [status(relay.url, key).status_code for _ in range(RPM)] == [200] * (RPM - 1) + [429]
        refused = status(relay.url, key)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    finally:
        stderr = relay.stop()
    assert relay.process.returncode == 0, stderr
    lines = stderr.splitlines()
    down = [line for line in lines if "rate limits: Redis at" in line and "cannot be reached" in line]
    back = [line for line in lines if "rate limits: Redis at" in line and "reachable again" in line]
    assert len(down) == 1 and len(back) == 1, stderr
    # that one line is all: not one more per request refused meanwhile (an outage under load would flood the log)
    assert [line for line in lines if "cannot be checked" in line or "limiter" in line] == []
    assert ("admitting requests unchecked" if policy == "open" else "refusing requests (503)") in down[0]
    assert "Traceback" not in stderr
    assert key[3:] not in stderr and hashlib.sha256(key.encode()).hexdigest() not in stderr
