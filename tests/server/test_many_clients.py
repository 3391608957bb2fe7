"""Many clients that go away: 1,000 connections dropped before their request was whole or right
after it, and 1,000 streams abandoned mid-reply, leave no file descriptor, no asyncio task and no
upstream connection behind.

The relay runs in this process (the ``relay`` fixture's loop thread, with the fake upstream), so its
tasks can be counted; descriptors are the process's own (``/proc``), which every socket of the
relay, the fake upstream and these clients passes through (the database's files aside); upstream
connections are the fake upstream's replies still open and the sockets connected to its port.
Every count is taken once it stops moving (polled), then compared with the one taken before.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
import psutil

from tests.conftest import LoopThread, RunningFake, RunningRelay
from tests.helpers import address, run_async, user

CLIENTS = 1000
AT_ONCE = 100  # clients connected at the same time (descriptors of the test process stay few)
# A reply that outlasts the test unless it is abandoned: 1,000 pieces, 20 ms apart.
ENDLESS = "/scenario long cut=1000 interval_ms=20"

Relay = Callable[..., RunningRelay]


def request(relay: RunningRelay, path: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {relay.key}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


async def in_turn(jobs: list[Callable[[], Awaitable[None]]]) -> None:
    """Run the jobs, ``AT_ONCE`` at a time."""
    queue = iter(jobs)

    async def worker() -> None:
        for job in queue:
            await job()

    await asyncio.gather(*(worker() for _ in range(AT_ONCE)))


async def drop(writer: asyncio.StreamWriter, abort: bool) -> None:
    """Go away: a FIN (close), or a RST (abort)."""
    if abort:
        writer.transport.abort()
    else:
        writer.close()
    await asyncio.sleep(0)


def dropped_connections(relay: RunningRelay) -> list[Callable[[], Awaitable[None]]]:
    """Connections gone at every stage: before sending anything, mid-headers, mid-body, and right
    after a whole request (for a long reply, never read)."""
    host, port = address(relay.url)
    body = orjson.dumps({**user(ENDLESS), "stream": True})
    whole = request(relay, "/chat", body)
    stages = [b"", whole[: whole.index(b"Authorization") + 10], whole[: len(whole) - len(body) // 2], whole]

    def job(n: int) -> Callable[[], Awaitable[None]]:
        async def go() -> None:
            _, writer = await asyncio.open_connection(host, port)
            sent = stages[n % len(stages)]
            if sent:
                writer.write(sent)
                await writer.drain()
            if sent is whole:
                await asyncio.sleep(0.05)  # the relay has read it and begun
            await drop(writer, abort=n % 2 == 1)

        return go

    return [job(n) for n in range(CLIENTS)]


def abandoned_streams(relay: RunningRelay) -> list[Callable[[], Awaitable[None]]]:
    """Streams on each streaming route, left once the first of their reply has arrived."""
    host, port = address(relay.url)
    routes = itertools.cycle(["/chat", "/chatgpt", "/v1/chat/completions"])
    body = orjson.dumps({**user(ENDLESS), "stream": True})

    def job(n: int, path: str) -> Callable[[], Awaitable[None]]:
        async def go() -> None:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(request(relay, path, body))
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            assert head.startswith(b"HTTP/1.1 200"), head
            assert await asyncio.wait_for(reader.read(1), 30)  # mid-reply
            await drop(writer, abort=n % 2 == 1)

        return go

    return [job(n, path) for n, path in zip(range(CLIENTS), routes, strict=False)]


def descriptors(database: str) -> int:
    """This process's open descriptors, the database's files aside (the SQLite connections its pool
    keeps open, as many as requests needed at once)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):
            count += not os.readlink(f"/proc/self/fd/{fd}").startswith(database)
    return count


def tasks(loop_thread: LoopThread) -> int:
    """The tasks alive in the relay's (and the fake upstream's) loop, the counting one aside."""

    async def count() -> int:
        return len(asyncio.all_tasks()) - 1

    return loop_thread.run(count())


def upstream_connections(fake: RunningFake) -> tuple[int, int]:
    """Replies the fake upstream is still writing, and the sockets connected to it."""
    writing = sum(1 for r in list(fake.fake.log) if r.finished is None and r.disconnected is None)
    sockets = sum(1 for c in psutil.Process().net_connections(kind="tcp")
                  if c.status == psutil.CONN_ESTABLISHED and c.raddr and c.raddr.port == fake.port)
    return writing, sockets


def settled(measure: Callable[[], Any], within: float = 60) -> Any:
    """``measure()`` once two readings 0.2 s apart agree."""
    deadline = time.monotonic() + within
    last = measure()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = measure()
        if now == last:
            return now
        last = now
    raise AssertionError(f"still moving after {within} s: {last}")


def test_dropped_connections_and_abandoned_streams_leave_nothing_behind(
        relay: Relay, fake_upstream: RunningFake, loop_thread: LoopThread) -> None:
    running = relay()

    database = running.settings.database_url.removeprefix("sqlite:///")

    def state() -> tuple[int, int, tuple[int, int]]:
        return descriptors(database), tasks(loop_thread), upstream_connections(fake_upstream)

    # Whatever opens on first use (the usage writer's database connections, a pooled upstream
    # connection) is open before counting.
    httpx.post(f"{running.url}/chat", json=user("hello"), headers=running.auth, timeout=30).raise_for_status()
    run_async(in_turn(abandoned_streams(running)[:AT_ONCE]))
    before = settled(state)
    run_async(in_turn(dropped_connections(running)))
    run_async(in_turn(abandoned_streams(running)))
    streamed = [r for r in fake_upstream.fake.log if r.sent]
    assert len(streamed) >= CLIENTS + AT_ONCE  # every abandoned stream reached the upstream

    def back() -> bool:
        fds, count, (writing, sockets) = state()
        return fds <= before[0] and count <= before[1] and writing == 0 and sockets <= before[2][1]

    deadline = time.monotonic() + 60
    while not back() and time.monotonic() < deadline:
        time.sleep(0.1)
    after = settled(state)
    assert after[0] <= before[0], f"descriptors: {before[0]} before, {after[0]} after"
    assert after[1] <= before[1], f"tasks: {before[1]} before, {after[1]} after"
    assert after[2][0] == 0, f"{after[2][0]} upstream replies still being written"
    assert after[2][1] <= before[2][1], f"upstream sockets: {before[2][1]} before, {after[2][1]} after"
