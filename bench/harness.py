"""Processes for the bench: start pinned, wait until healthy, measure CPU, always clean up."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import psutil

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV_BIN = Path(sys.executable).parent
PYTHON = sys.executable

_LIVE: list[subprocess.Popen[bytes]] = []


def raise_fd_limit(want: int = 200_000) -> int:
    """Raise RLIMIT_NOFILE (inherited by every child); return what we got."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for target in (want, 100_000, 65_536, hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, max(target, hard)))
            return target
        except (ValueError, OSError):
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (min(target, hard), hard))
                return min(target, hard)
            except (ValueError, OSError):
                continue
    return soft


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cores() -> int:
    return len(os.sched_getaffinity(0))


def start(argv: Sequence[str], *, cpus: set[int] | None = None, env: dict[str, str] | None = None,
          log: Path | None = None, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start a process in its own session, optionally pinned to ``cpus``."""
    full_env = {**os.environ, **(env or {})}

    def pin() -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)

    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(list(argv), env=full_env, stdout=out, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=pin,
                            cwd=cwd)
    _LIVE.append(proc)
    return proc


def stop(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """SIGTERM the process group (and any stray descendants), SIGKILL after ``timeout``."""
    if proc.poll() is None:
        try:
            descendants = psutil.Process(proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            descendants = []
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        for child in descendants:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
    if proc in _LIVE:
        _LIVE.remove(proc)


def stop_all() -> None:
    for proc in list(_LIVE):
        stop(proc, timeout=3.0)


@contextlib.contextmanager
def cleanup() -> Iterator[None]:
    """Kill every started process on exit, Ctrl-C and SIGTERM included."""

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        stop_all()
        signal.signal(signal.SIGTERM, previous)


def wait_healthy(port: int, proc: subprocess.Popen[bytes], path: str = "/healthz",
                 timeout: float = 20.0, expect_any: bool = False) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{port}{path}"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError:
            if expect_any:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not healthy after {timeout}s")


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its live descendants."""
    total = 0.0
    for p in tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def rss_bytes(pid: int) -> int:
    total = 0
    for p in tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total


def wrk(url: str, body: bytes, *, connections: int = 64, seconds: float = 10.0, threads: int = 1,
        cpus: set[int] | None = None, timeout_s: int = 10, key: str = "bench-key") -> dict[str, float]:
    """Run wrk with post.lua, sending ``key``; return its summary plus ``rps`` and ``errors``."""
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", f"--timeout={timeout_s}s",
            "-s", str(BENCH / "post.lua"), url]
    env = {**os.environ, "BENCH_BODY": body.decode(), "BENCH_KEY": key}

    def pin() -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)

    done = subprocess.run(argv, env=env, capture_output=True, timeout=seconds + 30,
                          preexec_fn=pin, check=False)
    out = done.stdout.decode()
    for line in out.splitlines():
        if line.startswith("BENCHJSON "):
            summary: dict[str, float] = json.loads(line[len("BENCHJSON "):])
            summary["rps"] = summary["requests"] / (summary["duration_us"] / 1e6)
            summary["errors"] = sum(summary[k] for k in ("connect", "read", "write", "status", "timeout"))
            return summary
    raise RuntimeError(f"wrk failed: {out}\n{done.stderr.decode()}")


def bench_body(chunks: int = 50, size: int = 8, interval_ms: int = 0, stream: bool = True) -> bytes:
    body: dict[str, object] = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user",
                      "content": f"/scenario bench chunks={chunks} size={size} interval_ms={interval_ms}"}],
    }
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":")).encode()


def wait_quiet(max_wait: float, threshold_cores: float = 0.25) -> float:
    """Wait (up to ``max_wait`` s) until the machine is idle between measurements.

    Between measurements the bench's own processes idle, so whatever CPU is busy belongs to
    someone else (a test suite, a browser). Returns the busy cores last seen.
    """
    deadline = time.monotonic() + max_wait
    busy = 0.0
    while True:
        busy = psutil.cpu_percent(interval=0.5) / 100 * (os.cpu_count() or 1)
        if busy <= threshold_cores or time.monotonic() >= deadline:
            return busy
