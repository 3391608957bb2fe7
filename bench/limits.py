"""What the limiters cost: MemoryLimiter in the process, RedisLimiter on a Redis.

    .venv/bin/python bench/limits.py [--redis redis://127.0.0.1:6379/0] [--calls 20000]

On uvloop (as the relay runs), one key with rpm and tpm both checked and never
reached. For each limiter: ``admit`` one call at a time (p50/p99/mean µs per
call), ``admit`` 64 calls at once (wall µs per call, and the CPU µs the process
spent per call), and ``spend`` 64 at once (the same). The Redis keys live under
a prefix of their own and expire within a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

import uvloop

from gptrelay.limits import Limiter, MemoryLimiter
from gptrelay.limits.redis import RedisLimiter


async def sequential(limiter: Limiter, calls: int) -> list[float]:
    for _ in range(min(calls // 10, 1000)):  # warm-up (connections, the script loaded)
        await limiter.admit("bench", 10**9, 10**9)
    times = []
    clock = time.perf_counter
    for _ in range(calls):
        started = clock()
        await limiter.admit("bench", 10**9, 10**9)
        times.append(clock() - started)
    return times


async def at_once(call: Callable[[], Awaitable[object]], calls: int, width: int = 64) -> tuple[float, float]:
    """Wall and CPU µs per call, ``width`` calls at a time."""
    rounds = max(calls // width, 10)
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(rounds):
        await asyncio.gather(*(call() for _ in range(width)))
    done = rounds * width
    return (time.perf_counter() - wall) / done * 1e6, (time.process_time() - cpu) / done * 1e6


def line(name: str, times: list[float]) -> str:
    q = statistics.quantiles(times, n=100)
    return f"| {name} | {q[49] * 1e6:.1f} | {q[98] * 1e6:.1f} | {statistics.fmean(times) * 1e6:.1f} |"


async def measure(name: str, limiter: Limiter, calls: int) -> None:
    print(line(f"{name}: admit, one at a time", await sequential(limiter, calls)), flush=True)
    wall, cpu = await at_once(lambda: limiter.admit("bench", 10**9, 10**9), calls)
    print(f"| {name}: admit, 64 at once | wall {wall:.1f} | CPU {cpu:.1f} | |", flush=True)
    wall, cpu = await at_once(lambda: limiter.spend("bench", 100), calls)
    await limiter.close()  # spends still pending are sent
    print(f"| {name}: spend, 64 at once | wall {wall:.1f} | CPU {cpu:.1f} | |", flush=True)


async def main(redis_url: str, calls: int) -> None:
    print("| limiter: call | p50 µs | p99 µs | mean µs |\n| --- | --- | --- | --- |")
    await measure("MemoryLimiter", MemoryLimiter(), calls)
    redis = RedisLimiter(redis_url, prefix=f"bench:{uuid.uuid4().hex}:", fail_open=False)
    await measure(f"RedisLimiter ({redis_url})", redis, calls // 4)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--calls", type=int, default=20000)
    arguments = parser.parse_args()
    uvloop.run(main(arguments.redis, arguments.calls))
