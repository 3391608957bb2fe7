"""How long one ``admit`` takes: MemoryLimiter in the process, RedisLimiter on a Redis.

    .venv/bin/python bench/limits.py [--redis redis://127.0.0.1:6379/0] [--calls 20000]

Sequential calls on uvloop (as the relay runs), one key with rpm and tpm both
checked and never reached; p50/p99/mean per call in microseconds. The Redis
keys live under a prefix of their own and expire within a minute.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

import uvloop

from gptrelay.limits import Limiter, MemoryLimiter
from gptrelay.limits.redis import RedisLimiter


async def measure(limiter: Limiter, calls: int) -> list[float]:
    for _ in range(min(calls // 10, 1000)):  # warm-up (connections, the script loaded)
        await limiter.admit("bench", 10**9, 10**9)
    times = []
    clock = time.perf_counter
    for _ in range(calls):
        started = clock()
        await limiter.admit("bench", 10**9, 10**9)
        times.append(clock() - started)
    await limiter.close()
    return times


def line(name: str, times: list[float]) -> str:
    q = statistics.quantiles(times, n=100)
    return (f"| {name} | {len(times)} | {q[49] * 1e6:.1f} | {q[98] * 1e6:.1f} "
            f"| {statistics.fmean(times) * 1e6:.1f} |")


async def main(redis_url: str, calls: int) -> None:
    print("| limiter | calls | p50 µs | p99 µs | mean µs |\n| --- | --- | --- | --- | --- |")
    print(line("MemoryLimiter.admit", await measure(MemoryLimiter(), calls)), flush=True)
    redis = RedisLimiter(redis_url, prefix=f"bench:{uuid.uuid4().hex}:", fail_open=False)
    print(line(f"RedisLimiter.admit ({redis_url})", await measure(redis, calls // 4)), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--calls", type=int, default=20000)
    arguments = parser.parse_args()
    uvloop.run(main(arguments.redis, arguments.calls))
