"""Instructions per reply, counted by valgrind's callgrind: a CPU cost that does not drift.

Throughput on a shared virtual machine moves by several percent from one run to the
next, which is as large as the differences this bench looks for. An instruction count
does not: the same binary, inputs and environment give the same count whatever else
the machine is doing. So each target also runs under ``valgrind --tool=callgrind``
(some 50 times slower, which does not matter here) and serves sequential requests
(``loadgen.py latency``); after a warm-up the counters are zeroed, ``--count-requests``
requests are served, and the count is dumped. The server then idles, counted, for as
long as those requests took: what its timers do meanwhile (the relay looks at the key
table's change counter four times a second) is subtracted, since under valgrind those
requests take some 50 times longer and would be charged 50 times the timers' work.
The rest is divided by the requests.

The streamed shape is paced (events 2 ms apart) so that every event is its own network
read whatever the speed, which keeps the count independent of timing. Instructions are
not time (a cache miss costs more than an add), but for the same interpreter running
much the same code they rank the targets' CPU cost reliably.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import harness as h

PY = h.PYTHON
SHAPES = {
    "streamed": (["--chunks", "50", "--interval-ms", "2"], 50),  # (loadgen args, pieces)
    "plain": (["--no-stream"], 0),
}


def missing_tools() -> str | None:
    """Why instructions cannot be counted here, or None."""
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian/Ubuntu: apt-get install valgrind)"
    return None


def count(argv: list[str], port: int, path: str, shape: str, *, requests: int, warmup: int, out: Path,
          env: dict[str, str] | None = None, cwd: Path | None = None, cpus: set[int] | None = None,
          key: str = "bench-key") -> float:
    """Instructions per request of the server ``argv`` (listening on ``port``) answering ``path``."""
    prefix = out / f"callgrind.{port}"
    proc = h.start(["valgrind", "--tool=callgrind", f"--callgrind-out-file={prefix}.%p", *argv],
                   cpus=cpus, env=env, log=out / f"valgrind.{port}.log", cwd=cwd)
    try:
        h.wait_healthy(port, proc, timeout=180)
        load = [PY, str(h.BENCH / "loadgen.py"), "latency", "--port", str(port), "--path", path,
                "--warmup", "0", "--budget", "900", "--key", key, *SHAPES[shape][0]]
        subprocess.run([*load, "-n", str(warmup)], capture_output=True, check=True, timeout=900)
        _control("-z", proc.pid)
        started = time.monotonic()
        subprocess.run([*load, "-n", str(requests)], capture_output=True, check=True, timeout=900)
        busy = _dumped(prefix, proc.pid)
        took = time.monotonic() - started
        time.sleep(took)
        idle = _dumped(prefix, proc.pid) * took / (time.monotonic() - started - took)
        return (busy - idle) / requests
    finally:
        h.stop(proc, timeout=30)
        for dump in out.glob(f"{prefix.name}.*"):
            dump.unlink()


def _dumped(prefix: Path, pid: int) -> int:
    """Instructions since the counters were last zeroed; zeroes them."""
    _control("-d", pid)
    _control("-z", pid)
    dumps = sorted(prefix.parent.glob(f"{prefix.name}.{pid}.*"), key=lambda p: int(p.suffix[1:]))
    totals = [line for line in dumps[-1].read_text().splitlines() if line.startswith("totals:")]
    return int(totals[0].split()[1])


def _control(action: str, pid: int) -> None:
    subprocess.run(["callgrind_control", action, str(pid)], capture_output=True, check=True, timeout=120)
