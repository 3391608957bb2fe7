"""The gptrelay benchmark, one command: relay vs the byte pipe vs direct, side by side.

    python bench/run.py                  # 5 rounds, 1,000 and 10,000 paced streams
    python bench/run.py --quick          # 1 short round, 1,000 streams: a smoke test
    python bench/run.py --profile        # also py-spy the relay under /chat load

Starts the upstream (bench/fastfake.py by default, or ``--upstream fake`` for
``python -m gptrelay.fake``), ``gptrelay serve`` and bench/bytepipe.py as subprocesses,
pins the relay and the byte pipe to core 0 and the upstream and the load generators to
core 1 (when there are two cores), and writes bench/results/latest.md and latest.json.
Every subprocess is killed on exit, Ctrl-C and errors included. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from project import ensure_requirements, gptrelay_cmd, use_project_venv  # noqa: E402

use_project_venv()
ensure_requirements()
if shutil.which("wrk") is None:
    sys.exit("bench: wrk is not on the PATH (Debian/Ubuntu: apt-get install wrk)")

import psutil  # noqa: E402

import harness as h  # noqa: E402
import instructions  # noqa: E402
import report  # noqa: E402
import team  # noqa: E402
from gptrelay.usage.writer import SPOOL_RETRY  # noqa: E402
from httpclient import percentile  # noqa: E402

PY = h.PYTHON
OWNER_KEY = "bench-key"  # the bench relay's AUTHORIZATION_KEY
TEAM = "team /v1"  # a named key with RPM and TPM limits, usage in SQLite, limits in process
SHARED = "team /v1 pg+redis"  # the same on a second relay: usage in PostgreSQL, limits in Redis
POOL = "relay /v1, 3 upstreams"  # the owner's key on a relay with three upstreams of two keys each
POOL_TOML = "".join(f"""
[[upstreams]]
name = "upstream-{n}"
base_url = "{{base_url}}"
keys = ["sk-bench-{n}a", "sk-bench-{n}b"]
weight = {n}
""" for n in (1, 2, 3))
STREAM_CHUNKS = 20
STREAM_INTERVAL_MS = 50


class Stack:
    """The processes of one run: upstream, relay, byte pipe, and the team relay on PostgreSQL and Redis."""

    def __init__(self, args: argparse.Namespace, logs: Path, relay_cmd: list[str]) -> None:
        self.args = args
        self.logs = logs
        self.relay_cmd = relay_cmd
        two = h.cores() >= 2
        self.relay_cpus: set[int] | None = {0} if two else None
        self.load_cpus: set[int] | None = {1} if two else None
        self.workdir = Path(tempfile.mkdtemp(prefix="gptrelay-bench-"))  # no stray .env
        self.fake_port = h.free_port()
        self.fake: subprocess.Popen[bytes] | None = None
        self.relay: subprocess.Popen[bytes] | None = None
        self.pipe: subprocess.Popen[bytes] | None = None
        self.relay_port = 0
        self.pipe_port = 0
        self.team_key = ""  # a named key with limits, in the bench relay's SQLite database
        self.shared: subprocess.Popen[bytes] | None = None  # the relay on PostgreSQL + Redis
        self.shared_port = 0
        self.shared_key = ""
        self.shared_workdir = Path(tempfile.mkdtemp(prefix="gptrelay-bench-pg-"))
        self.shared_skipped: str | None = "not started"
        self.pool: subprocess.Popen[bytes] | None = None  # the relay with three upstreams
        self.pool_port = 0
        self.pool_workdir = Path(tempfile.mkdtemp(prefix="gptrelay-bench-pool-"))

    @property
    def upstream(self) -> str:
        return f"http://127.0.0.1:{self.fake_port}/v1"

    def start_fake(self, cpus: set[int] | None = None) -> None:
        argv = ([PY, str(BENCH / "fastfake.py")] if self.args.upstream == "fast"
                else [PY, "-m", "gptrelay.fake", "--no-log"])
        self.fake = h.start([*argv, "--port", str(self.fake_port)], cpus=cpus or self.load_cpus,
                            log=self.logs / "upstream.log")
        h.wait_healthy(self.fake_port, self.fake, path="/v1/models")

    def start_relay(self, workers: int = 1, pinned: bool = True) -> None:
        if self.relay is not None:
            h.stop(self.relay)
        self.relay, self.relay_port = self._relay(self.relay_env, self.workdir, "relay.log", workers, pinned)

    def _relay(self, env: dict[str, str], cwd: Path, log: str, workers: int,
               pinned: bool = True) -> tuple[subprocess.Popen[bytes], int]:
        """``gptrelay serve`` on a free port, healthy, with every worker up."""
        port = h.free_port()
        argv = [*self.relay_cmd, "serve", "--host", "127.0.0.1", "--port", str(port)]
        if workers > 1:
            argv += ["--workers", str(workers)]
        proc = h.start(argv, cpus=self.relay_cpus if pinned else None, env=env, log=self.logs / log, cwd=cwd)
        h.wait_healthy(port, proc)
        if workers > 1:  # every worker up: wait until the tree has them
            deadline = time.monotonic() + 10
            while len(h.tree(proc.pid)) < workers and time.monotonic() < deadline:
                time.sleep(0.1)
        return proc, port

    def prepare_team(self) -> None:
        """Named keys with limits: in the bench relay's SQLite database, and (when PostgreSQL and
        Redis answer) in a fresh PostgreSQL database for the second relay."""
        self.team_key = team.create_key(self.relay_cmd, self.relay_env, self.workdir)
        self.shared_skipped = team.shared_services()
        if self.shared_skipped is None:
            self.shared_key = team.create_key(self.relay_cmd, self.shared_env, self.shared_workdir)
            self.start_shared()
        else:
            print(f"  team /v1 pg+redis skipped: {self.shared_skipped}", flush=True)

    @property
    def shared_env(self) -> dict[str, str]:
        return self.relay_env | {"DATABASE_URL": team.PG_URL, "REDIS_URL": team.REDIS_URL}

    def start_shared(self, workers: int = 1) -> None:
        if self.shared is not None:
            h.stop(self.shared)
        self.shared, self.shared_port = self._relay(self.shared_env, self.shared_workdir, "relay-pg.log", workers)

    def start_pool(self) -> None:
        if self.pool is not None:
            h.stop(self.pool)
        (self.pool_workdir / "gptrelay.toml").write_text(POOL_TOML.format(base_url=self.upstream))
        self.pool, self.pool_port = self._relay(self.relay_env, self.pool_workdir, "relay-pool.log", 1)

    def records(self, name: str) -> int:
        """The team key's usage records so far in ``name``'s database."""
        return team.records(team.PG_URL if name == SHARED else self.workdir / "gptrelay.db")

    @property
    def relay_env(self) -> dict[str, str]:
        return {"OPENAI_BASE_URL": self.upstream, "OPENAI_API_KEY": "sk-bench", "AUTHORIZATION_KEY": OWNER_KEY}

    def start_pipe(self) -> None:
        if self.pipe is not None:
            h.stop(self.pipe)
        self.pipe_port = h.free_port()
        self.pipe = h.start([PY, str(BENCH / "bytepipe.py"), "--port", str(self.pipe_port),
                             "--upstream", self.upstream], cpus=self.relay_cpus,
                            log=self.logs / "bytepipe.log")
        h.wait_healthy(self.pipe_port, self.pipe)

    def targets(self) -> dict[str, tuple[int, str, int | None, str]]:
        """name -> (port, path, pid whose CPU counts, access key)."""
        assert self.relay and self.pipe
        v1 = "/v1/chat/completions"
        out = {
            "relay /chat": (self.relay_port, "/chat", self.relay.pid, OWNER_KEY),
            "relay /v1": (self.relay_port, v1, self.relay.pid, OWNER_KEY),
            "byte pipe": (self.pipe_port, v1, self.pipe.pid, OWNER_KEY),
            "direct": (self.fake_port, v1, None, OWNER_KEY),
        }
        if self.team_key:
            out[TEAM] = (self.relay_port, v1, self.relay.pid, self.team_key)
        if self.shared is not None:
            out[SHARED] = (self.shared_port, v1, self.shared.pid, self.shared_key)
        if self.pool is not None:
            out[POOL] = (self.pool_port, v1, self.pool.pid, OWNER_KEY)
        return out

    def team_targets(self) -> list[str]:
        return [name for name in (TEAM, SHARED) if name in self.targets()]

    def extra_targets(self) -> list[str]:
        """The team targets and the relay with three upstreams."""
        return [name for name in (TEAM, SHARED, POOL) if name in self.targets()]


def pinned(cpus: set[int] | None):  # type: ignore[no-untyped-def]
    return (lambda: os.sched_setaffinity(0, cpus)) if cpus else None


def run_json(argv: list[str], cpus: set[int] | None, timeout: float) -> dict[str, Any]:
    done = subprocess.run(argv, capture_output=True, timeout=timeout, check=False,
                          preexec_fn=pinned(cpus))
    if done.returncode != 0:
        raise RuntimeError(f"{argv[2:4]} failed: {done.stderr.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


QUIET = {"wait": 20.0, "noisy": 0}


def quiet() -> None:
    """Let foreign load (other users of the machine) settle before measuring."""
    if QUIET["wait"] > 0 and h.wait_quiet(QUIET["wait"]) > 0.25:
        QUIET["noisy"] += 1


class CpuWatch:
    """CPU seconds used by given process trees, by waited-for children (wrk) and by everyone."""

    def __init__(self, pids: dict[str, int | None], wait: bool = True) -> None:
        if wait:
            quiet()
        self.pids = {k: v for k, v in pids.items() if v}
        self.before = {k: h.cpu_seconds(v) for k, v in self.pids.items()}
        self.children = self._children()
        self.system = self._system()
        self.started = time.monotonic()

    @staticmethod
    def _children() -> float:
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    @staticmethod
    def _system() -> float:
        t = psutil.cpu_times()
        return t.user + t.system + t.nice + t.irq + t.softirq + getattr(t, "steal", 0.0)

    def done(self) -> dict[str, float]:
        used = {k: h.cpu_seconds(v) - self.before[k] for k, v in self.pids.items()}
        used["load"] = self._children() - self.children  # wrk, waited for
        used["other"] = max(0.0, self._system() - self.system - sum(used.values()))
        used["idle"] = max(0.0, (time.monotonic() - self.started) * (os.cpu_count() or 1)
                           - self._system() + self.system)
        return used


def rotated(names: list[str], by: int) -> list[str]:
    """``names`` starting at the ``by``-th: each round measures the targets in another order, so
    a slow spell of the machine (a neighbour on the host) does not always fall on the same one."""
    by %= len(names)
    return names[by:] + names[:by]


def latency_round(stack: Stack, n: int, start: int = 0) -> dict[str, dict[str, float]]:
    out = {}
    targets = stack.targets()
    for name in rotated(list(targets), start):
        port, path, _, key = targets[name]
        argv = [PY, str(BENCH / "loadgen.py"), "latency", "--port", str(port), "--path", path, "--key", key,
                "-n", str(n), "--warmup", str(min(50, n // 5)), "--budget", "60"]
        quiet()
        out[name] = run_json(argv, stack.load_cpus, timeout=120)
    return out


def wrk_round(stack: Stack, names: list[str], body: bytes, seconds: float,
              connections: int, start: int = 0) -> dict[str, dict[str, float]]:
    out = {}
    targets = stack.targets()
    for name in rotated(names, start):
        port, path, pid, key = targets[name]
        url = f"http://127.0.0.1:{port}{path}"
        h.wrk(url, body, seconds=min(2.0, seconds), connections=connections, cpus=stack.load_cpus, key=key)
        watch = CpuWatch({"target": pid, "upstream": stack.fake.pid if stack.fake else None})
        res = h.wrk(url, body, seconds=seconds, connections=connections, cpus=stack.load_cpus, key=key)
        cpu = watch.done()
        res["cpu_us"] = cpu["target"] / max(1, res["requests"]) * 1e6 if pid else 0.0
        res["cpu_util"] = cpu.get("target", 0.0) / seconds
        res["upstream_util"] = cpu.get("upstream", 0.0) / seconds
        res["other_util"] = cpu["other"] / seconds
        out[name] = res
    return out


def streams_run(stack: Stack, name: str, n: int, timeout: float, ramp: float) -> dict[str, Any]:
    """``n`` paced streams at once against one target; relay-side peak RSS sampled every 100 ms."""
    port, path, pid, key = stack.targets()[name]
    quiet()
    procs = 1 if n < 2000 else 2
    share = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
    start_at = time.time() + 2.0 + n / 2500
    argv = [PY, str(BENCH / "loadgen.py"), "streams", "--port", str(port), "--path", path,
            "--chunks", str(STREAM_CHUNKS), "--interval-ms", str(STREAM_INTERVAL_MS),
            "--start-at", f"{start_at:.3f}", "--timeout", str(timeout), "--ramp", str(ramp), "--key", key]
    recorded_before = stack.records(name) if name in (TEAM, SHARED) else 0
    peak = [h.rss_bytes(pid) if pid else 0]
    base_rss = peak[0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.1):
            if pid:
                peak[0] = max(peak[0], h.rss_bytes(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    # Streams still running long after they should have ended: the relay is asked where its tasks wait
    # (SIGUSR1, told in its log), while they still do. Not a relay given with --relay-cmd, which may
    # be one that SIGUSR1 would end.
    overran = threading.Event()
    stream_s = STREAM_CHUNKS * STREAM_INTERVAL_MS / 1000

    def ask_where() -> None:
        overran.set()
        for proc in h.tree(pid or 0):
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGUSR1)

    asker = threading.Timer(max(0.0, start_at - time.time()) + ramp + 3 * stream_s + 10, ask_where)
    if pid and name not in ("direct", "byte pipe") and not stack.args.relay_cmd:
        asker.start()
    watch = CpuWatch({"target": pid, "upstream": stack.fake.pid if stack.fake else None}, wait=False)
    outs = [stack.logs / f"streams-{i}.json" for i in range(procs)]
    for path in outs:
        path.unlink(missing_ok=True)
    gens = [subprocess.Popen([*argv, "-n", str(k), "--seed", str(i + 1), "--out", str(outs[i])],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             preexec_fn=pinned(stack.load_cpus))
            for i, k in enumerate(share)]
    results = []
    try:
        for gen, path in zip(gens, outs, strict=True):
            _, err = gen.communicate(timeout=max(1.0, start_at - time.time()) + timeout + 60)
            if gen.returncode != 0 or not path.exists():
                raise RuntimeError(f"load generator failed: {err.decode()[-2000:]}")
            results.append(json.loads(path.read_text()))
    finally:
        asker.cancel()
        for gen in gens:
            if gen.poll() is None:
                gen.kill()
        stop.set()
        sampler.join()
    if overran.is_set():
        print(f"  streams {n} {name}: still running {asker.interval:.0f} s after their start; the relay was "
              "asked where its tasks wait (SIGUSR1): see its log in the results' logs/", flush=True)
    cpu = watch.done()
    watched = time.monotonic() - watch.started  # connecting included: CPU is counted over it all
    elapsed = max(r["elapsed_s"] for r in results)
    gaps = [g for r in results for g in r["max_gaps"]]
    ttfbs = [g for r in results for g in r["ttfbs"]]
    errors: dict[str, int] = {}
    for r in results:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    gen_cpu = sum(r.get("cpu_s", 0.0) for r in results)
    endings = [e for r in results for e in r.get("incomplete_endings", [])][:3]
    recorded = recorded_at_end = None
    if name in (TEAM, SHARED):
        recorded = recorded_at_end = stack.records(name) - recorded_before
        # Records a stalled database sent to the spool reach it within the writer's SPOOL_RETRY.
        settle_until = time.monotonic() + 2 * SPOOL_RETRY + 2
        while recorded < n and time.monotonic() < settle_until:
            time.sleep(0.5)
            recorded = stack.records(name) - recorded_before
    return {"recorded": recorded, "recorded_at_end": recorded_at_end, "n": n,
            "complete": sum(r["complete"] for r in results), "errors": errors,
            "gap_p50_ms": percentile(gaps, 50) * 1e3, "gap_p99_ms": percentile(gaps, 99) * 1e3,
            "ttfb_p99_ms": percentile(ttfbs, 99) * 1e3,
            "total_p99_ms": percentile([t for r in results for t in r["totals"]], 99) * 1e3,
            "elapsed_s": elapsed,
            "peak_rss_mb": peak[0] / 2**20 if pid else None, "base_rss_mb": base_rss / 2**20 if pid else None,
            "target_cpu_util": cpu.get("target", 0.0) / watched,
            "upstream_cpu_util": cpu.get("upstream", 0.0) / watched,
            "generator_cpu_util": gen_cpu / elapsed, "other_cpu_util": cpu["other"] / watched,
            "generators": procs, "incomplete_endings": endings, "asked_where_waiting": overran.is_set()}


def median_of(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """Per target, the median of every numeric field over the rounds."""
    out: dict[str, dict[str, float]] = {}
    for name in rounds[0]:
        fields = rounds[0][name].keys()
        out[name] = {}
        for f in fields:
            values = [r[name][f] for r in rounds if isinstance(r[name].get(f), int | float)]
            if values:
                out[name][f] = statistics.median(values)
    return out


def machine_info() -> dict[str, Any]:
    import aiohttp
    import uvloop

    model = ""
    with contextlib.suppress(OSError):
        m = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        model = m.group(1).strip() if m else ""
    commit = subprocess.run(["git", "-C", str(BENCH.parent), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, check=False).stdout.strip()
    try:
        from importlib.metadata import version

        relay_version = version("gptrelay")
    except Exception:
        relay_version = "?"
    return {"cpu": model or platform.processor(), "cores": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "kernel": platform.release(), "python": platform.python_version(),
            "aiohttp": aiohttp.__version__, "uvloop": uvloop.__version__,
            "gptrelay": relay_version, "commit": commit,
            "fd_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()]}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="1 round of 3 s, 100 latency requests, streams 1000 only")
    parser.add_argument("--rounds", type=int, default=5, help="rounds to take medians over (default 5)")
    parser.add_argument("--seconds", type=float, default=6.0, help="wrk duration per measurement (default 6)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--requests", type=int, default=500,
                        help="sequential requests per latency measurement (default 500)")
    parser.add_argument("--streams", default=None,
                        help="paced-stream counts (default 1000,10000; --quick: 1000)")
    parser.add_argument("--stream-timeout", type=float, default=60.0, help="seconds a paced stream may take")
    parser.add_argument("--ramp", type=float, default=1.0,
                        help="paced streams start spread over this many seconds (default 1; 0 = all at once)")
    parser.add_argument("--upstream", choices=["fast", "fake"], default="fast",
                        help="fast: bench/fastfake.py (default); fake: python -m gptrelay.fake")
    parser.add_argument("--skip", default="",
                        help="comma-separated parts to skip: latency,streamed,plain,streams,instructions,workers,"
                             "pool (the relay with three upstreams)")
    parser.add_argument("--count-requests", type=int, default=100,
                        help="requests whose instructions are counted under callgrind (default 100)")
    parser.add_argument("--relay-cmd", default="",
                        help="command that runs the relay's CLI instead of the gptrelay entry point, "
                             "e.g. \"python bench/experiments/no_trust_env.py\"")
    parser.add_argument("--quiet-wait", type=float, default=20.0,
                        help="before each measurement wait up to this many seconds for other load "
                             "on the machine to settle (default 20; 0 = don't)")
    parser.add_argument("--profile", nargs="?", const=TEAM, default=None, metavar="TARGET",
                        help=f"py-spy record the relay under load into results/profile.svg: TARGET is one "
                             f"of the measured targets (default {TEAM!r})")
    parser.add_argument("--out", type=Path, default=BENCH / "results", help="results directory")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.requests, args.count_requests = 1, 3.0, 100, 20
    if args.streams is None:
        args.streams = "1000" if args.quick else "1000,10000"
    return args


def main() -> None:
    args = parse_args()
    skip = set(filter(None, args.skip.split(",")))
    QUIET["wait"] = args.quiet_wait
    args.out.mkdir(parents=True, exist_ok=True)
    logs = args.out / "logs"
    logs.mkdir(exist_ok=True)
    for old in logs.iterdir():  # this run's logs only
        old.unlink()
    fd_limit = h.raise_fd_limit()
    relay_cmd = ([PY if w == "python" else str(Path(w).resolve()) if Path(w).is_file() else w
                  for w in shlex.split(args.relay_cmd)] if args.relay_cmd else gptrelay_cmd())
    serve_help = subprocess.run([*relay_cmd, "serve", "--help"], capture_output=True, text=True,
                                check=False).stdout
    has_workers = "--workers" in serve_help
    info = machine_info()
    info["fd_limit"] = fd_limit
    started = time.time()
    data: dict[str, Any] = {"machine": info, "options": {k: str(v) for k, v in vars(args).items()},
                            "rounds": {"latency": [], "streamed": [], "plain": []}}
    stream_counts = [int(x) for x in args.streams.split(",") if x.strip()]

    with h.cleanup():
        stack = Stack(args, logs, relay_cmd)
        stack.start_fake()
        stack.prepare_team()
        if "pool" not in skip:
            stack.start_pool()
        stack.start_relay()
        stack.start_pipe()
        info["pinning"] = ("relay and byte pipe on core 0; upstream, wrk and load generators on core 1"
                           if stack.relay_cpus else "unpinned (one core)")
        streamed_body = h.bench_body(50, 8, 0)
        plain_body = h.bench_body(50, 8, 0, stream=False)
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds}", flush=True)
            if "latency" not in skip:
                data["rounds"]["latency"].append(latency_round(stack, args.requests, r))
                print("  latency done", flush=True)
            if "streamed" not in skip:
                data["rounds"]["streamed"].append(wrk_round(
                    stack, ["relay /v1", "relay /chat", "byte pipe", "direct", *stack.extra_targets()], streamed_body,
                    args.seconds, args.connections, r))
                print("  streamed throughput done", flush=True)
            if "plain" not in skip:
                data["rounds"]["plain"].append(wrk_round(
                    stack, ["relay /v1", "byte pipe", "direct"], plain_body, args.seconds, args.connections, r))
                print("  non-streamed throughput done", flush=True)
        for part in ("latency", "streamed", "plain"):
            if data["rounds"][part]:
                data[part] = median_of(data["rounds"][part])

        if args.profile:
            data["profile"] = profile(stack, streamed_body, args)

        if "streams" not in skip:
            data["streams"] = {}
            for n in stream_counts:
                rows: dict[str, Any] = {}
                for name in ("direct", "byte pipe", "relay /v1", "relay /chat", *stack.team_targets()):
                    # Fresh relays and byte pipe before each target: a clean peak RSS, and no
                    # thousands of pooled upstream connections left holding the upstream's fds.
                    stack.start_pipe()
                    stack.start_relay()
                    if stack.shared is not None:
                        stack.start_shared()
                    time.sleep(1.0)
                    rounds = [streams_run(stack, name, n, args.stream_timeout, args.ramp)
                              for _ in range(1 if n >= 5000 and not args.quick else args.rounds)]
                    rows[name] = median_of([{"x": x} for x in rounds])["x"] | {
                        "errors": rounds[len(rounds) // 2]["errors"], "rounds": len(rounds),
                        "incomplete_endings": rounds[len(rounds) // 2]["incomplete_endings"]}
                    print(f"  streams {n} {name}: {rows[name]['complete']:.0f} complete, "
                          f"gap p99 {rows[name]['gap_p99_ms']:.0f} ms", flush=True)
                if has_workers and 2 * n + 200 > fd_limit:
                    stack.start_pipe()
                    stack.start_relay(workers=2)
                    time.sleep(1.0)
                    rows["relay /v1, 2 workers"] = streams_run(stack, "relay /v1", n, args.stream_timeout, args.ramp)
                    stack.start_relay()
                    if stack.shared is not None:
                        stack.start_shared(workers=2)
                        time.sleep(1.0)
                        rows[f"{SHARED}, 2 workers"] = streams_run(stack, SHARED, n, args.stream_timeout, args.ramp)
                        stack.start_shared()
                data["streams"][str(n)] = rows

        if "instructions" not in skip:
            data["instructions"] = count_instructions(stack, args)

        if "workers" not in skip and has_workers and h.cores() >= 2:
            data["workers"] = workers_test(stack, args, streamed_body)
        elif not has_workers:
            data["workers"] = {"skipped": "gptrelay serve has no --workers"}

    if stack.shared_skipped is None:
        team.drop_database()
    data["elapsed_s"] = time.time() - started
    data["noisy_measurements"] = QUIET["noisy"]
    data["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    md = report.render(data)
    (args.out / "latest.md").write_text(md)
    (args.out / "latest.json").write_text(json.dumps(data, indent=1))
    print(md)
    print(f"wrote {args.out / 'latest.md'} and latest.json")


def count_instructions(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    """Instructions per reply under callgrind (bench/instructions.py): relay /v1, /chat, byte pipe, and the
    team targets."""
    why_not = instructions.missing_tools()
    if why_not:
        print(f"  instructions skipped: {why_not}", flush=True)
        return {"skipped": why_not}
    relay_cmd = [PY, "-m", "gptrelay"] if not args.relay_cmd else stack.relay_cmd
    out: dict[str, Any] = {}
    for shape in ("streamed", "plain"):
        row: dict[str, float] = {}
        for name in ("relay /v1", "relay /chat", "byte pipe", *stack.team_targets()):
            if shape == "plain" and name == "relay /chat":
                continue  # /chat always streams
            port = h.free_port()
            if name == "byte pipe":
                argv = [PY, str(BENCH / "bytepipe.py"), "--port", str(port), "--upstream", stack.upstream]
            else:
                argv = [*relay_cmd, "serve", "--host", "127.0.0.1", "--port", str(port)]
            path = "/chat" if name == "relay /chat" else "/v1/chat/completions"
            shared = name == SHARED
            row[name] = instructions.count(argv, port, path, shape, requests=args.count_requests,
                                           warmup=30, out=stack.logs,
                                           env=stack.shared_env if shared else stack.relay_env,
                                           cwd=stack.shared_workdir if shared else stack.workdir,
                                           cpus=stack.relay_cpus, key=stack.targets()[name][3])
            print(f"  instructions {shape} {name}: {row[name]:,.0f} per reply", flush=True)
        out[shape] = row
    return out


def workers_test(stack: Stack, args: argparse.Namespace, body: bytes) -> dict[str, Any]:
    """Streamed /v1 throughput with 1 and 2 workers, nothing pinned (the upstream and wrk share cores)."""
    assert stack.fake is not None
    h.stop(stack.fake)
    stack.start_fake(cpus={0, 1})
    out: dict[str, Any] = {}
    for workers in (1, 2):
        stack.start_relay(workers=workers, pinned=False)
        rounds = []
        for _ in range(args.rounds):
            port, path, pid, _ = stack.targets()["relay /v1"]
            url = f"http://127.0.0.1:{port}{path}"
            h.wrk(url, body, seconds=min(2.0, args.seconds), connections=args.connections, threads=2)
            watch = CpuWatch({"target": pid, "upstream": stack.fake.pid})
            res = h.wrk(url, body, seconds=args.seconds, connections=args.connections, threads=2)
            cpu = watch.done()
            res["cpu_us"] = cpu["target"] / max(1, res["requests"]) * 1e6
            res["cpu_util"] = cpu["target"] / args.seconds
            res["upstream_util"] = cpu["upstream"] / args.seconds
            res["other_util"] = cpu["other"] / args.seconds
            res["load_util"] = cpu["load"] / args.seconds
            res["idle_util"] = cpu["idle"] / args.seconds
            rounds.append({"x": res})
        out[str(workers)] = median_of(rounds)["x"]
        print(f"  workers {workers}: {out[str(workers)]['rps']:.0f} rps", flush=True)
    stack.start_relay()
    h.stop(stack.fake)
    stack.start_fake()
    return out


def profile(stack: Stack, body: bytes, args: argparse.Namespace) -> dict[str, str]:
    """py-spy record the relay (threads included) while wrk drives ``args.profile``; a flame graph
    and the collapsed stacks."""
    spy = Path(sys.executable).parent / "py-spy"
    svg = args.out / "profile.svg"
    raw = args.out / "profile.txt"
    seconds = max(5, int(args.seconds))
    port, path, pid, key = stack.targets()[args.profile]
    url = f"http://127.0.0.1:{port}{path}"
    out: dict[str, str] = {"target": args.profile}
    for fmt, path in (("flamegraph", svg), ("raw", raw)):
        rec = subprocess.Popen([str(spy), "record", "-p", str(pid), "-d", str(seconds), "--threads",
                                "-r", "250", "-f", fmt, "-o", str(path), "--nonblocking"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        h.wrk(url, body, seconds=seconds + 1, connections=args.connections, cpus=stack.load_cpus, key=key)
        try:
            rec.wait(timeout=30)
        except subprocess.TimeoutExpired:
            rec.kill()
        out[fmt] = str(path)
    return out


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted; all bench processes stopped", file=sys.stderr)
        sys.exit(130)
