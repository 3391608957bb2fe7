"""The soak: many mixed requests against one relay, then checks that nothing was left behind.

    python bench/soak.py                          # 100,000 requests, SQLite
    python bench/soak.py --storage pg             # keys and usage in PostgreSQL, limits in Redis
    python bench/soak.py --quick                  # 3,000 requests
    python bench/soak.py --requests 300 --clients 20 --settle 5     # the smoke test's run

Starts the soak's upstream (bench/soakfake.py: the fake upstream, counting its connections) and
``gptrelay serve``; makes named keys with limits; sends a warm-up, lets it settle and takes the
baseline; then sends the requests (bench/soakload.py's mix: /v1 streams and non-streams, /chat
and /chatgpt streams, clients that leave mid-stream, upstream errors, cut streams, wrong keys,
RPM/TPM-limited keys, a model allowlist) from ``--clients`` concurrent clients; lets the relay
settle, and checks:

- the relay's RSS (its process tree) grew at most 5% from the end of the first 10% to the end;
- no file descriptor leaked (the end's, after settling, against the baseline's, both without
  the client and upstream connections, which are counted apart);
- no upstream request is still in progress and no upstream connection is left (once the relay's
  pool has swept its idle ones, within 120 s, when ``--settle`` lasts that long; else only idle
  pooled ones may stay);
- the usage records stored equal the requests that passed the key check, per key and route
  (and by status where the client saw the status the record must carry);
- no 5xx that the upstream did not cause, every answer what its kind expects, no transport error.

Exit status 1 when a check fails (2 when the soak could not run), so it can gate a change.
Writes ``soak.md`` and ``soak.json`` under ``--out`` (default bench/results/), logs in ``logs/``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from project import ensure_requirements, gptrelay_cmd, use_project_venv  # noqa: E402

use_project_venv()
ensure_requirements()

import harness as h  # noqa: E402
import soakcheck  # noqa: E402
import team  # noqa: E402
from soakload import Load  # noqa: E402
from soakstack import Relay, Storage  # noqa: E402

OWNER_KEY = "soak-owner-key"
KEYS = {  # role -> (name, gptrelay keys create options)
    "open": ("soak-open", team.LIMITS),  # limits checked, never reached
    "rpm": ("soak-rpm", ["--rpm", "60"]),
    "tpm": ("soak-tpm", ["--tpm", "2000"]),
    "models": ("soak-models", ["--models", "gpt-4o*"]),
}
WRONG_KEY = "gr-" + "0" * 43
# The relay's upstream pool closes connections idle for its keep-alive (60 s, upstream.transport), at
# aiohttp's sweep, which runs once per keep-alive period: within 120 s.
POOL_SWEPT = 120.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=None, help="requests in the soak (default 100,000)")
    parser.add_argument("--quick", action="store_true", help="3,000 requests")
    parser.add_argument("--clients", type=int, default=100, help="concurrent clients (default 100)")
    parser.add_argument("--storage", choices=["sqlite", "pg"], default="sqlite",
                        help="sqlite: keys and usage in SQLite, limits in the process; pg: PostgreSQL (a "
                             "database gptrelay_soak, made and dropped) and Redis (a private redis-server)")
    parser.add_argument("--workers", type=int, default=1, help="relay worker processes (default 1)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="warm-up requests before the baseline (default 2%% of --requests, 100 to 2,000)")
    parser.add_argument("--prefill", type=int, default=100_000,
                        help="usage records put into the database before the relay starts, 40 days old, under a "
                             "key name of their own: the state of a relay in use (default 100,000; 0: an empty "
                             "database, where SQLite's page caches fill during the soak)")
    parser.add_argument("--settle", type=float, default=POOL_SWEPT + 5,
                        help="seconds the relay may take to let go of connections after the load (default "
                             f"{POOL_SWEPT + 5:g}: its upstream pool closes idle connections within {POOL_SWEPT:g} s;"
                             " with less, idle pooled connections are allowed)")
    parser.add_argument("--redis", default=None,
                        help="with --storage pg: a Redis URL to use instead of a private redis-server "
                             "(its database is emptied: never give db 0 of a shared Redis)")
    parser.add_argument("--max-rss-growth", type=float, default=5.0, help="percent (default 5)")
    parser.add_argument("--relay-cmd", default="",
                        help="command that runs the relay's CLI instead of the gptrelay entry point, e.g. "
                             "\"python bench/experiments/small_sqlite_cache.py\"")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=BENCH / "results", help="results directory")
    args = parser.parse_args(argv)
    if args.requests is None:
        args.requests = 3000 if args.quick else 100_000
    if args.warmup is None:
        args.warmup = max(100, min(2000, args.requests // 50))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    logs = args.out / "logs"
    logs.mkdir(exist_ok=True)
    for name in ("soak-relay.log", "soak-upstream.log", "soak-redis.log"):
        (logs / name).unlink(missing_ok=True)
    h.raise_fd_limit()
    relay_cmd = ([h.PYTHON if w == "python" else str(Path(w).resolve()) if Path(w).is_file() else w
                  for w in shlex.split(args.relay_cmd)] if args.relay_cmd else gptrelay_cmd())
    workdir = Path(tempfile.mkdtemp(prefix="gptrelay-soak-"))
    with h.cleanup():
        storage = Storage(args.storage, workdir, logs, args.redis)
        try:
            why_not = storage.open()
            if why_not is not None:
                print(f"soak: cannot run on {args.storage}: {why_not}", file=sys.stderr)
                return 2
            fake_port = h.free_port()
            fake = h.start([h.PYTHON, str(BENCH / "soakfake.py"), "--port", str(fake_port)],
                           log=logs / "soak-upstream.log")
            h.wait_healthy(fake_port, fake, path="/_soak/stats")
            env = {"OPENAI_BASE_URL": f"http://127.0.0.1:{fake_port}/v1", "OPENAI_API_KEY": "sk-soak",
                   "AUTHORIZATION_KEY": OWNER_KEY, "TRUSTED_PROXIES": "127.0.0.1", **storage.env}
            keys = {"owner": OWNER_KEY, "wrong": WRONG_KEY}
            for role, (name, options) in KEYS.items():
                keys[role] = team.create_key(relay_cmd, env, workdir, name, options)
            storage.prefill(args.prefill)
            names: dict[str, str | None] = {role: name for role, (name, _) in KEYS.items()} | {"owner": None}
            relay = Relay(relay_cmd, env, workdir, logs / "soak-relay.log", args.workers, fake_port, storage)
            relay.start()
            data = soak(args, relay, keys, names)
            data["records"] = storage.records()
        finally:
            storage.close()
    checks = soakcheck.checks(data, args)
    data["checks"] = checks
    md = soakcheck.render(data, args)
    (args.out / "soak.md").write_text(md)
    (args.out / "soak.json").write_text(soakcheck.as_json(data))
    print(md)
    failed = [c for c in checks if not c["ok"]]
    print(f"soak: {'FAILED: ' + ', '.join(c['name'] for c in failed) if failed else 'all checks passed'}")
    return 1 if failed else 0


def soak(args: argparse.Namespace, relay: Relay, keys: dict[str, str],
         names: dict[str, str | None]) -> dict[str, Any]:
    """Warm up, take the baseline, send the load with RSS sampled, settle, take the end's state."""
    print(f"soak: {args.requests:,} requests, {args.clients} clients, {args.storage}, "
          f"{args.workers} worker(s); warm-up of {args.warmup:,}", flush=True)
    warm = Load(relay.port, keys, names, args.warmup, args.clients, seed=args.seed + 1000)
    import uvloop

    uvloop.run(warm.run())
    baseline = relay.settle(min(args.settle, 10.0), wait_pool=False)
    print(f"soak: baseline {baseline['fds']} fds ({baseline['upstream']} idle upstream connections)", flush=True)

    samples: list[dict[str, float]] = []  # every second: time, requests done, RSS
    marks: dict[int, int] = {}  # tenth of the run -> RSS when it was reached
    tenth = max(1, args.requests // 10)
    began = time.monotonic()
    load = Load(relay.port, keys, names, args.requests, args.clients, seed=args.seed)

    def on_done(done: int) -> None:
        if done % tenth == 0 or done == args.requests:
            marks[min(10, done // tenth) if done < args.requests else 10] = relay.rss()
            if done % tenth == 0:
                print(f"  {done:,} done, {time.monotonic() - began:.0f} s, RSS {relay.rss() / 2**20:.1f} MiB",
                      flush=True)

    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(1.0):
            samples.append({"t": round(time.monotonic() - began, 1), "done": load.done, "rss": relay.rss()})

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    load.on_done = on_done
    cpu = time.process_time()
    try:
        elapsed = uvloop.run(load.run())
    finally:
        stop.set()
        sampler.join()
    cpu = time.process_time() - cpu
    print(f"soak: load done in {elapsed:.0f} s; settling (up to {args.settle:g} s)", flush=True)
    end = relay.settle(args.settle, wait_pool=args.settle >= POOL_SWEPT, baseline=baseline)
    tally = warm.tally
    for part in ("by_kind", "unexpected", "server_errors", "records", "statuses"):
        getattr(tally, part).update(getattr(load.tally, part))
    for name, example in load.tally.examples.items():
        tally.examples.setdefault(name, example)
    tally.sent += load.tally.sent
    tally.relay_refusals += load.tally.relay_refusals
    tally.left += load.tally.left
    return {"requests": args.requests, "warmup": args.warmup, "elapsed_s": elapsed,
            "rps": args.requests / elapsed if elapsed else 0.0, "rss_marks": marks, "samples": samples,
            "baseline": baseline, "end": end, "tally": tally, "log": relay.log_summary(),
            "load_cpu_s": cpu}


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; every soak process stopped", file=sys.stderr)
        sys.exit(130)
    except Exception:  # the soak could not run (a process that would not start, a tool missing)
        traceback.print_exc()
        print("soak: could not run (above: why)", file=sys.stderr)
        sys.exit(2)
