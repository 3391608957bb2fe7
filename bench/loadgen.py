"""Load generators on raw asyncio streams (uvloop): sequential latency and many paced streams.

    python bench/loadgen.py latency --port P --path /chat -n 500
    python bench/loadgen.py streams --port P --path /v1/chat/completions -n 5000 --start-at T

Each prints one JSON object on stdout. ``streams`` connects every socket first, waits until
the wall-clock ``--start-at``, then starts the streams spread uniformly over ``--ramp`` seconds
(0: all at once); with a ramp no longer than one stream, all N are open together at the peak.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import bench_body
from httpclient import Connection, Result, percentile, request_bytes


def headers(key: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}


async def latency(port: int, path: str, body: bytes, n: int, warmup: int, budget: float,
                  key: str) -> dict[str, Any]:
    """``n`` requests one after another on one kept-alive connection."""
    raw = request_bytes("POST", path, f"127.0.0.1:{port}", body, headers(key))
    conn = Connection("127.0.0.1", port)
    ttfb: list[float] = []
    total: list[float] = []
    errors = 0
    deadline = time.monotonic() + budget
    for i in range(warmup + n):
        if time.monotonic() > deadline:
            break
        try:
            result = await asyncio.wait_for(conn.send(raw), 30)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            errors += 1
            conn.close()
            continue
        if result.status != 200:
            errors += 1
        elif i >= warmup:
            ttfb.append(result.ttfb)
            total.append(result.total)
    conn.close()
    return {"n": len(ttfb), "errors": errors,
            "ttfb_p50_ms": percentile(ttfb, 50) * 1e3, "ttfb_p99_ms": percentile(ttfb, 99) * 1e3,
            "total_p50_ms": percentile(total, 50) * 1e3, "total_p99_ms": percentile(total, 99) * 1e3}


async def one_stream(conn: Connection, raw: bytes, start: asyncio.Event, delay: float,
                     timeout: float) -> Result:
    await start.wait()
    if delay:
        await asyncio.sleep(delay)
    try:
        return await asyncio.wait_for(conn.send(raw, count=True), timeout)
    except TimeoutError:
        return Result(error="timeout")
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
        return Result(error=type(exc).__name__)
    finally:
        conn.close()


async def streams(port: int, path: str, body: bytes, n: int, start_at: float, timeout: float,
                  expect: int, ramp: float, seed: int, key: str) -> dict[str, Any]:
    raw = request_bytes("POST", path, f"127.0.0.1:{port}", body, headers(key))
    conns = [Connection("127.0.0.1", port) for _ in range(n)]
    gate = asyncio.Semaphore(200)
    connect_errors = 0

    async def connect(conn: Connection) -> None:
        nonlocal connect_errors
        async with gate:
            for _ in range(3):
                try:
                    await asyncio.wait_for(conn.connect(), 10)
                    return
                except (TimeoutError, OSError):
                    await asyncio.sleep(0.2)
            connect_errors += 1

    await asyncio.gather(*(connect(c) for c in conns))
    live = [c for c in conns if c.writer is not None]
    start = asyncio.Event()
    rng = random.Random(seed)
    tasks = [asyncio.create_task(one_stream(c, raw, start, rng.uniform(0, ramp), timeout)) for c in live]
    await asyncio.sleep(max(0.0, start_at - time.time()))
    began, cpu = time.perf_counter(), time.process_time()
    start.set()
    results = await asyncio.gather(*tasks)
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    errors: dict[str, int] = {}
    for r in results:
        if r.error:
            errors[r.error] = errors.get(r.error, 0) + 1
        elif r.status != 200:
            errors[f"status {r.status}"] = errors.get(f"status {r.status}", 0) + 1
        elif not (r.pieces == expect and r.done):
            errors["incomplete"] = errors.get("incomplete", 0) + 1
    complete = [r for r in results if not r.error and r.status == 200 and r.pieces == expect and r.done]
    if connect_errors:
        errors["connect"] = connect_errors
    endings = [r.ending.decode("utf-8", "replace") for r in results
               if not r.error and r.status == 200 and not (r.pieces == expect and r.done)][:3]
    return {"n": n, "complete": len(complete), "incomplete_endings": endings, "errors": errors,
            "elapsed_s": elapsed, "cpu_s": cpu,
            "max_gaps": [r.max_gap for r in complete], "ttfbs": [r.ttfb for r in complete],
            "totals": [r.total for r in complete]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["latency", "streams"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/v1/chat/completions")
    parser.add_argument("-n", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--chunks", type=int, default=50)
    parser.add_argument("--interval-ms", type=int, default=0)
    parser.add_argument("--no-stream", action="store_true")
    parser.add_argument("--start-at", type=float, default=0.0, help="wall-clock time to send (streams)")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--ramp", type=float, default=1.0,
                        help="spread the streams' starts uniformly over this many seconds (streams)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, help="write the JSON here instead of stdout")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds (latency)")
    parser.add_argument("--key", default="bench-key", help="the access key sent (default: the bench relay's owner key)")
    args = parser.parse_args()
    import uvloop

    body = bench_body(args.chunks, 8, args.interval_ms, stream=not args.no_stream)
    if args.mode == "latency":
        coro = latency(args.port, args.path, body, args.n, args.warmup, args.budget, args.key)
    else:
        coro = streams(args.port, args.path, body, args.n, args.start_at or time.time(),
                       args.timeout, args.chunks, args.ramp, args.seed, args.key)
    result = json.dumps(uvloop.run(coro))
    if args.out:
        args.out.write_text(result)
    else:
        with contextlib.suppress(BrokenPipeError):
            print(result)


if __name__ == "__main__":
    main()
