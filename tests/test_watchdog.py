"""Per-request limits, swept by one timer: first-byte deadline, keep-alives while waiting, idle limit after."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from gptrelay.watchdog import Sweeper, Watchdog

RESOLUTION = 0.02

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run on a loop of its own, in a thread of its own (Playwright may own this thread's loop)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, asyncio.wait_for(coroutine, 10)).result(20)


async def expires(watchdog: Watchdog, wait: float) -> bool:
    try:
        await asyncio.sleep(wait)
    except asyncio.CancelledError as error:
        return watchdog.timed_out(error)
    return False


def test_first_byte_deadline_cancels_the_waiting_task() -> None:
    async def main() -> tuple[bool, float]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        watchdog = Watchdog(Sweeper(RESOLUTION), first_byte=0.2, idle=5)
        expired = await expires(watchdog, 3)
        watchdog.close()
        return expired, loop.time() - start

    expired, took = run(main())
    assert expired and 0.15 < took < 1


def test_time_spent_writing_does_not_count() -> None:
    async def main() -> bool:
        watchdog = Watchdog(Sweeper(RESOLUTION), first_byte=5, idle=0.2)
        watchdog.idle_wait()
        for _ in range(3):
            watchdog.since = 0.0  # writing to a slow client, longer than the idle limit
            await asyncio.sleep(0.3)
            watchdog.since = asyncio.get_running_loop().time()
            await asyncio.sleep(0.05)  # a quick read
        watchdog.close()
        return watchdog.expired

    assert run(main()) is False


def test_idle_limit_shorter_than_the_first_byte_deadline_applies_at_once() -> None:
    async def main() -> tuple[bool, float]:
        loop = asyncio.get_running_loop()
        watchdog = Watchdog(Sweeper(RESOLUTION), first_byte=60, idle=0.2)
        watchdog.idle_wait()
        start = loop.time()
        expired = await expires(watchdog, 3)
        watchdog.close()
        return expired, loop.time() - start

    expired, took = run(main())
    assert expired and took < 1


def test_other_cancellations_are_not_timeouts() -> None:
    async def main() -> bool:
        watchdog = Watchdog(Sweeper(RESOLUTION), first_byte=5, idle=5)
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().call_later(0.05, task.cancel)
        try:
            await asyncio.sleep(1)
        except asyncio.CancelledError as error:
            watchdog.close()
            return watchdog.timed_out(error)
        return True

    assert run(main()) is False


def test_keep_alives_tick_until_stopped_and_never_overlap() -> None:
    async def main() -> tuple[int, int]:
        ticks = 0
        writing = 0
        most = 0

        async def on_wait() -> None:
            nonlocal ticks, writing, most
            writing += 1
            most = max(most, writing)
            await asyncio.sleep(0.08)  # a slow write, longer than the interval
            writing -= 1
            ticks += 1

        watchdog = Watchdog(Sweeper(RESOLUTION), first_byte=5, idle=5, on_wait=on_wait, interval=0.05)
        await asyncio.sleep(0.5)
        await watchdog.stop_ticking()  # waits for the write in progress
        assert writing == 0
        counted = ticks
        await asyncio.sleep(0.2)
        watchdog.close()
        assert ticks == counted  # none after stopping
        return ticks, most

    ticks, most = run(main())
    assert ticks >= 3 and most == 1


@pytest.mark.parametrize("interval", [0.05, 100])
def test_keep_alive_started_later(interval: float) -> None:
    async def main() -> int:
        ticks = 0

        async def on_wait() -> None:
            nonlocal ticks
            ticks += 1

        watchdog = Watchdog(Sweeper(RESOLUTION), first_byte=5, idle=5, interval=interval)
        watchdog.keep_alive(on_wait)
        await asyncio.sleep(0.3)
        await watchdog.stop_ticking()
        watchdog.close()
        return ticks

    ticks = run(main())
    assert (ticks >= 3) if interval < 1 else (ticks == 0)


def test_one_sweeper_watches_many_and_stops_when_none_is_open() -> None:
    async def main() -> tuple[list[bool], bool, bool]:
        sweeper = Sweeper(RESOLUTION)

        async def request(first_byte: float) -> bool:
            watchdog = Watchdog(sweeper, first_byte=first_byte, idle=60)
            try:
                return await expires(watchdog, 0.3)
            finally:
                watchdog.close()

        expired = await asyncio.gather(*(request(0.1 if n % 2 else 60) for n in range(6)))
        running = sweeper._handle is not None  # the last sweep was armed while requests were open
        await asyncio.sleep(2 * RESOLUTION)
        return expired, running, sweeper._handle is None

    expired, was_running, stopped = run(main())
    assert expired == [False, True] * 3
    assert was_running and stopped
