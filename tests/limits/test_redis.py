"""RedisLimiter against a real Redis (``TEST_REDIS_URL``, else 127.0.0.1:6379): the scripts' window,
Retry-After, tpm and expiry; exactness across two processes; calls batched; and Redis down or silent."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis.exceptions
from redis import Redis

from gptrelay.errors import LimiterUnavailable
from gptrelay.limits import MemoryLimiter, limiter_for
from gptrelay.limits.redis import SPEND_DELAY, RedisLimiter, masked
from tests.helpers import run_async
from tests.limits.test_memory import Clock

URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parents[2]


def reachable() -> bool:
    parts = urlsplit(URL)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=1).close()
    except OSError:
        return False
    return True


needs_redis = pytest.mark.skipif(not reachable(), reason=f"needs a Redis server at {URL} (set TEST_REDIS_URL)")


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    name = f"test:{uuid.uuid4().hex}:"
    yield name
    if reachable():
        with Redis.from_url(URL) as client:
            for key in client.scan_iter(f"{name}*"):
                client.delete(key)


def run(coro: Any) -> Any:
    return run_async(coro)


async def admits(limiter: RedisLimiter, key: str, rpm: int | None, tpm: int | None, n: int) -> list[int | None]:
    try:
        return [await limiter.admit(key, rpm, tpm) for _ in range(n)]
    finally:
        await limiter.close()


def redis_now_us(client: Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1_000_000 + int(micros)


@needs_redis
def test_rpm_and_retry_after(prefix: str) -> None:
    results = run(admits(RedisLimiter(URL, prefix=prefix), "k", 3, None, 5))
    assert results[:3] == [None, None, None]
    assert results[3] in (59, 60) and results[4] in (59, 60)
    with Redis.from_url(URL) as client:
        assert client.zcard(f"{prefix}{{k}}:r") == 3  # the refusals counted nothing
        assert 0 < client.pttl(f"{prefix}{{k}}:r") <= 62_000  # a window and a lease


@needs_redis
def test_the_window_slides_on_redis_clock(prefix: str) -> None:
    with Redis.from_url(URL) as client:
        now = redis_now_us(client)
        # Two requests admitted 59.5 s and 61 s ago (by Redis's clock), one 30 s ago.
        client.zadd(f"{prefix}{{k}}:r", {"a": now - 59_500_000, "b": now - 61_000_000, "c": now - 30_000_000})
        assert run(admits(RedisLimiter(URL, prefix=prefix), "k", 2, None, 1)) == [1]  # "a" leaves in 0.5 s
        assert client.zcard(f"{prefix}{{k}}:r") == 2  # "b" was out of the window, and is gone
        time.sleep(0.6)
        assert run(admits(RedisLimiter(URL, prefix=prefix), "k", 2, None, 2)) == [None, 30]  # "c" leaves in 29.4 s


@needs_redis
def test_tpm(prefix: str) -> None:
    async def go() -> list[int | None]:
        limiter = RedisLimiter(URL, prefix=prefix)
        try:
            first = await limiter.admit("k", None, 100)
            await limiter.spend("k", 60)
            await limiter.spend("k", 40)
            await limiter.spend("other", 500)
            return [first, await limiter.admit("k", None, 100), await limiter.admit("k", None, 101),
                    await limiter.admit("k", 5, 100), await limiter.admit("k", 5, 101)]
        finally:
            await limiter.close()

    assert run(go()) == [None, 60, None, 60, None]
    with Redis.from_url(URL) as client:
        assert client.zcard(f"{prefix}{{k}}:r") == 1  # only the last was admitted with an rpm to count
        assert int(client.get(f"{prefix}{{k}}:s") or 0) == 100
        assert 0 < client.pttl(f"{prefix}{{k}}:s") <= 61_000


@needs_redis
def test_tokens_leave_the_window(prefix: str) -> None:
    with Redis.from_url(URL) as client:
        now = redis_now_us(client)
        # 60 tokens ended 61 s ago (gone), 30 ended 59.2 s ago, 30 ended 10 s ago.
        client.zadd(f"{prefix}{{k}}:t", {"60:x": now - 61_000_000, "30:y": now - 59_200_000,
                                         "30:z": now - 10_000_000})
        client.set(f"{prefix}{{k}}:s", 120)
        assert run(admits(RedisLimiter(URL, prefix=prefix), "k", None, 40, 1)) == [1]
        assert int(client.get(f"{prefix}{{k}}:s") or 0) == 60
        assert run(admits(RedisLimiter(URL, prefix=prefix), "k", None, 30, 1)) == [50]
        assert run(admits(RedisLimiter(URL, prefix=prefix), "k", None, 61, 1)) == [None]


@needs_redis
def test_the_scripts_answer_as_the_memory_limiter_does(prefix: str) -> None:
    """Random histories, written into Redis as if they had happened (by Redis's clock) and replayed
    on MemoryLimiter's fake clock: the same answers. Offsets are whole quarters of a second, and
    Redis's entries 5 ms older still, so the milliseconds between writing and asking never matter."""
    rng = random.Random(20261125)

    async def ask(key: str, rpm: int | None, tpm: int | None) -> int | None:
        limiter = RedisLimiter(URL, prefix=prefix)
        try:
            return await limiter.admit(key, rpm, tpm)
        finally:
            await limiter.close()

    with Redis.from_url(URL) as client:
        for case in range(100):
            requests = [rng.randint(1, 280) / 4 for _ in range(rng.randint(0, 6))]
            spent = [(rng.randint(1, 280) / 4, rng.choice([5, 10, 20, 30])) for _ in range(rng.randint(0, 6))]
            rpm = rng.choice([None, 1, 2, 3, 5])
            tpm = rng.choice([None, 1, 30, 60, 100])

            clock = Clock(1000.0)
            memory = MemoryLimiter(clock)
            for at, what in sorted([(-o, None) for o in requests] + [(-o, n) for o, n in spent],
                                   key=lambda event: event[0]):
                clock.now = 1000.0 + at
                if what is None:
                    run(memory.admit("k", 10**6, None))
                else:
                    run(memory.spend("k", what))
            clock.now = 1000.0
            expected = run(memory.admit("k", rpm, tpm))

            tag = f"{prefix}{{{case}}}"
            now = redis_now_us(client) - 5000
            if requests:
                client.zadd(f"{tag}:r", {f"r{i}": now - int(o * 1e6) for i, o in enumerate(requests)})
            if spent:
                client.zadd(f"{tag}:t", {f"{n}:t{i}": now - int(o * 1e6) for i, (o, n) in enumerate(spent)})
                client.set(f"{tag}:s", sum(n for _, n in spent))
            answer = run(ask(str(case), rpm, tpm))
            assert answer == expected, (requests, spent, rpm, tpm)


@needs_redis
def test_limits_that_are_none_cost_nothing(prefix: str) -> None:
    assert run(admits(RedisLimiter(URL, prefix=prefix), "k", None, None, 3)) == [None] * 3
    assert run(admits(RedisLimiter(URL, prefix=prefix), "k", None, 10, 3)) == [None] * 3
    with Redis.from_url(URL) as client:
        assert list(client.scan_iter(f"{prefix}*")) == []


@needs_redis
def test_200_at_once_in_one_process(prefix: str) -> None:
    async def go() -> list[int | None]:
        limiter = RedisLimiter(URL, prefix=prefix, connections=16, timeout=5)
        try:
            return await asyncio.gather(*(limiter.admit("k", 50, None) for _ in range(200)))
        finally:
            await limiter.close()

    results = run(go())
    assert results.count(None) == 50
    assert all(r in (59, 60) for r in results if r is not None)


@needs_redis
def test_calls_made_together_travel_together(prefix: str) -> None:
    async def go() -> tuple[list[str], list[int | None]]:
        limiter = RedisLimiter(URL, prefix=prefix)
        names = {limiter._admit.sha: "a", limiter._spend.sha: "s", limiter._give_back.sha: "g"}
        sent: list[str] = []  # the scripts called, per round trip
        pipeline = limiter._pipeline

        async def counted(calls: list[Any]) -> list[object]:
            sent.append("".join(sorted(names[sha] for sha, *_ in calls)))
            return await pipeline(calls)

        limiter._pipeline = counted  # type: ignore[method-assign]
        try:
            await limiter.admit("k", 10**6, None)
            await asyncio.gather(*(limiter.spend(f"k{n % 3}", 10) for n in range(30)))
            results = await asyncio.gather(*(limiter.admit(f"a{n}", 10**6, 10**6) for n in range(100)))
        finally:
            await limiter.close()
        return sent, results

    sent, results = run(go())
    assert results == [None] * 100
    # One admission alone; then the tokens, summed per key (3 calls), alone or with the first batch of
    # admissions; the 100 admissions (of keys with no lease) in at most two round trips.
    assert sent[0] == "a" and "".join(sent[1:]).count("s") == 3, sent
    assert "".join(sent[1:]).count("a") == 100 and len([s for s in sent if "a" in s]) <= 3, sent


@needs_redis
def test_spending_never_waits_and_counts_everywhere_within_the_spend_delay(prefix: str) -> None:
    async def go() -> tuple[float, int | None, int | None, int | None]:
        here, there = RedisLimiter(URL, prefix=prefix), RedisLimiter(URL, prefix=prefix)  # two relays
        try:
            started = time.monotonic()
            await here.spend("k", 100)
            took = time.monotonic() - started
            seen_here = await here.admit("k", None, 100)  # goes with the tokens, after them
            await here.spend("j", 100)
            await asyncio.sleep(SPEND_DELAY * 4)
            seen_there = await there.admit("j", None, 100)
            await here.spend("i", 100)
        finally:
            await here.close()  # sends the tokens still waiting
        try:
            after_close = await there.admit("i", None, 100)
        finally:
            await there.close()
        return took, seen_here, seen_there, after_close

    took, seen_here, seen_there, after_close = run(go())
    assert took < 0.01
    assert seen_here in (59, 60) and seen_there in (59, 60) and after_close in (59, 60)


@needs_redis
def test_scripts_flushed_from_redis_are_loaded_again(prefix: str) -> None:
    async def go() -> list[int | None]:
        limiter = RedisLimiter(URL, prefix=prefix)
        try:
            results = [await limiter.admit("k", 3, None)]
            with Redis.from_url(URL) as client:
                client.script_flush()
            results.append(await limiter.admit("k", 3, None))  # alone
            with Redis.from_url(URL) as client:
                client.script_flush()
            results += await asyncio.gather(*(limiter.admit("k", 3, None) for _ in range(3)))  # together
        finally:
            await limiter.close()
        return results

    results = run(go())
    assert results.count(None) == 3 and all(r in (59, 60) for r in results if r is not None), results


HAMMER = textwrap.dedent("""
    import asyncio, sys
    from gptrelay.limits.redis import RedisLimiter

    async def main(url, prefix, n):
        limiter = RedisLimiter(url, prefix=prefix, timeout=5)
        await limiter.admit("warm-up", 10**6, None)  # connected before the start
        print("ready", flush=True)
        sys.stdin.readline()
        results = await asyncio.gather(*(limiter.admit("k", 50, None) for _ in range(n)))
        await limiter.close()
        print(sum(r is None for r in results), sum(r is not None for r in results), flush=True)

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
""")


def run_together(script: str, *args: str, timeout: float = 60) -> list[tuple[int, ...]]:
    """Two processes running ``script`` with ``args``: once both say "ready" they are told to go at
    the same moment; the numbers each prints at the end."""
    processes = [subprocess.Popen([sys.executable, "-c", script, *args], cwd=ROOT, text=True,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE) for _ in range(2)]
    try:
        for p in processes:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for p in processes:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        counts = [tuple(map(int, p.communicate(timeout=timeout)[0].split())) for p in processes]
    finally:
        for p in processes:
            p.kill()
    assert [p.returncode for p in processes] == [0, 0]
    return counts


@needs_redis
def test_200_at_once_from_two_processes_admit_exactly_50(prefix: str) -> None:
    counts = run_together(HAMMER, URL, prefix, "100")
    assert sum(admitted for admitted, _ in counts) == 50
    assert sum(refused for _, refused in counts) == 150


def test_limiter_for_a_redis_url() -> None:
    async def go() -> None:
        limiter = limiter_for(URL, False)
        assert isinstance(limiter, RedisLimiter) and not limiter._fail_open
        await limiter.close()

    run(go())


def test_masked() -> None:
    assert masked("redis://:hunter2@cache:6379/0") == "redis://:****@cache:6379/0"
    assert masked("rediss://alice:pw@cache/1?ssl_cert_reqs=none") == "rediss://alice:****@cache/1"
    assert masked("redis://cache:6379") == "redis://cache:6379"


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "gptrelay" and "rate limits" in r.getMessage()]


@pytest.mark.parametrize("fail_open", [True, False])
def test_redis_down(caplog: pytest.LogCaptureFixture, fail_open: bool) -> None:
    async def go() -> list[int | BaseException | None]:
        limiter = RedisLimiter("redis://:s3cret-pw@127.0.0.1:1/0", fail_open=fail_open)
        try:
            results: list[int | BaseException | None] = []
            for _ in range(20):
                try:
                    results.append(await limiter.admit("k", 1, 1))
                except LimiterUnavailable as error:
                    results.append(error)
                await limiter.spend("k", 10)  # never raises
            return results
        finally:
            await limiter.close()

    caplog.set_level(logging.WARNING, "gptrelay")
    started = time.monotonic()
    results = run(go())
    elapsed = time.monotonic() - started
    assert elapsed < 5, elapsed
    if fail_open:
        assert results == [None] * 20
    else:
        assert all(isinstance(r, LimiterUnavailable) for r in results)
        error = results[0]
        assert isinstance(error, LimiterUnavailable)
        assert (error.status, error.code) == (503, "limiter_unavailable")
        assert error.envelope()["error"]["code"] == "limiter_unavailable"
    [warning] = warnings_of(caplog)
    text = warning.getMessage()
    assert "redis://:****@127.0.0.1:1/0" in text and "s3cret" not in text
    assert ("admitting" if fail_open else "refusing") in text
    assert warning.exc_info is None and "\n" not in text


def test_the_warning_comes_again_after_30_seconds(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]

    async def go() -> None:
        limiter = RedisLimiter("redis://127.0.0.1:1/0", clock=lambda: now[0])
        try:
            for step in range(70):
                now[0] = step * 1.0
                assert await limiter.admit("k", 1, None) is None
        finally:
            await limiter.close()

    caplog.set_level(logging.WARNING, "gptrelay")
    run(go())
    assert len(warnings_of(caplog)) == 3  # at 0, 30 and 60 s


@needs_redis
def test_a_failure_then_the_recovery_are_told_once(prefix: str, caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]

    async def go() -> list[int | None]:
        limiter = RedisLimiter(URL, prefix=prefix, clock=lambda: now[0])
        send = limiter._pipeline

        async def down(*args: Any, **kwargs: Any) -> Any:
            raise redis.exceptions.ConnectionError("Connection reset by peer")

        results = []
        try:
            for step in range(6):  # down, back, down, back, ... within 30 s
                now[0] = step * 2.0
                limiter._pipeline = down if step % 2 == 0 else send  # type: ignore[method-assign]
                results.append(await limiter.admit("k", 2, None))
        finally:
            await limiter.close()
        return results

    caplog.set_level(logging.WARNING, "gptrelay")
    assert run(go()) == [None, None, None, None, None, 60]  # admitted while down, counted when not
    assert [r.getMessage().split(" (")[0] for r in warnings_of(caplog)] == [
        f"rate limits: Redis at {URL} cannot be reached", f"rate limits: Redis at {URL} is reachable again"]


class Silent:
    """A server that accepts connections and reads, and never answers."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.clients: list[socket.socket] = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            self.clients.append(client)
            threading.Thread(target=self.drain, args=(client,), daemon=True).start()

    @staticmethod
    def drain(client: socket.socket) -> None:
        try:
            while client.recv(65536):
                pass
        except OSError:
            pass

    def close(self) -> None:
        self.server.close()
        for client in self.clients:
            client.close()


@pytest.mark.parametrize("fail_open", [True, False])
def test_a_redis_that_never_answers(caplog: pytest.LogCaptureFixture, fail_open: bool) -> None:
    silent = Silent()

    async def go() -> list[float]:
        limiter = RedisLimiter(f"redis://127.0.0.1:{silent.port}/0", fail_open=fail_open, timeout=0.25)
        times = []
        try:
            for _ in range(3):
                started = time.monotonic()
                try:
                    assert await limiter.admit("k", 5, 5) is None
                except LimiterUnavailable:
                    assert not fail_open
                times.append(time.monotonic() - started)
                await limiter.spend("k", 5)
        finally:
            await limiter.close()
        return times

    caplog.set_level(logging.WARNING, "gptrelay")
    try:
        times = run(go())
    finally:
        silent.close()
    assert silent.clients, "the limiter never connected"
    assert times[0] < 2, times  # 0.25 s for the answer, with slack for a busy machine
    assert max(times[1:]) < 0.1, times  # paused after a failure: Redis is not tried again for a second
    assert len(warnings_of(caplog)) == 1
