"""What the team relay's checks cost per request, step by step, next to each other.

    .venv/bin/python bench/door.py [--calls 20000] [--redis redis://127.0.0.1:6379/0]
                                   [--database postgresql://postgres@127.0.0.1/empty_db]

Sequential calls on uvloop (as the relay runs), in one process, with the
relay's own objects: the key check for the owner's key and for a named key
(among 1,000 cached), admission of a key with RPM and TPM (in process, and on
Redis when given), and the usage record committed before a response ends
(SQLite in a temporary directory, or the empty database given; 1 request at a
time, and 64 at once, which the writer commits in batches, with the CPU time
the process spent per record, its threads included); and what each request
costs to observe: its id, its metrics (in one process, and in the files
that ``--workers N`` share), its access-log line (text and JSON, written to
/dev/null). p50/p99/mean in microseconds per request.
The whole-relay figures are in bench/run.py; this says where they go.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import uvloop
from aiohttp.test_utils import make_mocked_request

from gptrelay.auth.access import AccessKeys
from gptrelay.auth.caller import Caller
from gptrelay.auth.keycache import KeyCache
from gptrelay.auth.keys import KeyStore
from gptrelay.db.engine import create_engine
from gptrelay.db.schema import migrate
from gptrelay.limits import limiter_for
from gptrelay.limits.admission import Admission
from gptrelay.observe import logs
from gptrelay.observe.ids import REQUEST_ID, request_id, stamp
from gptrelay.observe.metrics import Metrics
from gptrelay.observe.tally import Tally
from gptrelay.state import CALLER
from gptrelay.usage.records import UsageRecord
from gptrelay.usage.writer import UsageWriter


async def timed(step: Callable[[], Awaitable[object] | object], calls: int) -> list[float]:
    for _ in range(min(calls // 10, 1000)):
        result = step()
        if asyncio.iscoroutine(result):
            await result
    times = []
    clock = time.perf_counter
    for _ in range(calls):
        started = clock()
        result = step()
        if asyncio.iscoroutine(result):
            await result
        times.append((clock() - started) * 1e6)
    return times


def report(name: str, times: list[float]) -> None:
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(f"| {name} | {statistics.median(times):.1f} | {p99:.1f} | {statistics.fmean(times):.1f} |", flush=True)


async def main(calls: int, redis: str | None, database: str | None) -> None:
    folder = tempfile.mkdtemp(prefix="gptrelay-bench-")
    url = database or f"sqlite:///{folder}/relay.db"
    await migrate(url)
    engine = create_engine(url)
    store = KeyStore(engine)
    named = ""
    for n in range(1000):
        named = (await store.create(f"user-{n}"))[1]
    cache = KeyCache(store)
    await cache.start()
    keys = AccessKeys(("owner-key",))
    keys.named = cache
    owner_request = make_mocked_request("POST", "/chat", headers={"Authorization": "Bearer owner-key"})
    named_request = make_mocked_request("POST", "/chat", headers={"Authorization": f"Bearer {named}"})
    print("| step | p50 µs | p99 µs | mean µs |\n| --- | --- | --- | --- |")
    report("key check: the owner's key", await timed(lambda: keys.identify(owner_request), calls))
    report("key check: a named key (1,000 cached)", await timed(lambda: keys.identify(named_request), calls))
    limited = Caller("bench", rpm=10**9, tpm=10**9)
    admission = Admission()
    report("admission: rpm + tpm, in process", await timed(lambda: admission.admit(named_request, limited), calls))
    if redis:
        admission.limiter = limiter_for(redis, True)
        limited = Caller(f"bench-{time.time_ns()}", rpm=10**9, tpm=10**9)
        report("admission: rpm + tpm, Redis", await timed(lambda: admission.admit(named_request, limited), calls))

        async def after_a_reply() -> None:  # as requests one after another: the last one's tokens wait
            await admission.limiter.spend(limited.name, 57)
            await admission.admit(named_request, limited)

        report("admission: rpm + tpm, Redis, the previous request's tokens pending",
               await timed(after_a_reply, calls))
        await admission.limiter.close()
    writer = UsageWriter(engine, spool_dir=folder)
    await writer.start()

    def record() -> Awaitable[None]:
        return writer.record(UsageRecord(time=datetime.now(UTC), key="bench", route="/v1/chat/completions",
                                         model="gpt-4o-mini", status=200, prompt_tokens=7, completion_tokens=50,
                                         estimated=False, outcome="ok", ttfb_ms=1, duration_ms=100))

    report("usage record committed, 1 request at a time", await timed(record, max(calls // 20, 200)))

    async def sixty_four() -> None:
        await asyncio.gather(*(record() for _ in range(64)))

    cpu = time.process_time()
    batches = await timed(sixty_four, max(calls // 400, 50))
    cpu = time.process_time() - cpu
    report("usage record committed, 64 at once (per request)", [t / 64 for t in batches])
    records = 64 * (len(batches) + min(len(batches) // 10, 1000))  # the warm-up's too
    print(f"| usage record, 64 at once: CPU per record, all threads | {cpu / records * 1e6:.1f} | | |")
    await writer.close()
    await cache.close()
    await engine.dispose()
    await observing(calls, folder)


class _Metered:
    """What the door hands over of a relayed request: a committed meter's record."""

    def __init__(self, record: UsageRecord) -> None:
        self.record = record


async def observing(calls: int, folder: str) -> None:
    """What the door adds to each request to observe it (gptrelay.observe)."""
    from aiohttp import web
    from prometheus_client import values

    request = make_mocked_request("POST", "/v1/chat/completions", headers={"X-Request-ID": "client-id-0123"})
    request[REQUEST_ID] = "client-id-0123"
    request[CALLER] = Caller("alice")
    response = web.StreamResponse(headers={"x-request-id": "req_upstream"})
    meter: Any = _Metered(UsageRecord(
        time=datetime.now(UTC), key="alice", route="/v1/chat/completions", model="gpt-4o-mini", status=200,
        prompt_tokens=7, completion_tokens=50, estimated=False, outcome="ok", ttfb_ms=120, duration_ms=900))
    report("request id: a new one", await timed(lambda: request_id(None), calls))
    report("request id: the client's, checked", await timed(lambda: request_id("client-id-0123"), calls))
    fresh = make_mocked_request("GET", "/chat")
    fresh[REQUEST_ID] = "client-id-0123"
    stamped = web.Response()

    def stamp_anew() -> Awaitable[None]:
        stamped.headers.pop("X-Request-ID", None)
        return stamp(fresh, stamped)

    report("request id: put on a response as it is prepared", await timed(stamp_anew, calls))
    single = Tally(Metrics("gpt-4o-mini"), access_log=True)
    route = "/v1/chat/completions"
    report("metrics: a relayed request (1 process)", await timed(lambda: single.done(request, route, 0.0, response,
                                                                                   meter), calls))
    report("metrics: a request without a record (1 process)",
           await timed(lambda: single.done(request, "/healthz", 0.0, response, None), calls))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder  # as a worker of --workers N
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    try:
        shared = Tally(Metrics("gpt-4o-mini"))
        report("metrics: a relayed request (--workers: shared files)",
               await timed(lambda: shared.done(request, route, 0.0, response, meter), calls))
    finally:
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]
        values.ValueClass = values.MutexValue
    access = logging.getLogger(logs.ACCESS)
    access.propagate = False
    access.setLevel(logging.INFO)
    logs.lean_records()  # as gptrelay serve's logging is
    with open(os.devnull, "w") as devnull:
        for log_format in ("text", "json"):
            access.handlers = [logs.handler(log_format, devnull)]
            report(f"metrics + access-log line, {log_format} (1 process)",
                   await timed(lambda: single.done(request, route, 0.0, response, meter), calls))
    access.handlers = []


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--redis", default=None, help="also measure admission on this Redis")
    parser.add_argument("--database", default=None,
                        help="an empty database for keys and usage (default: SQLite in a temporary folder)")
    args = parser.parse_args()
    uvloop.run(main(args.calls, args.redis, args.database))
