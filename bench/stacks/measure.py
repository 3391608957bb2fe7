"""Task 1: measure the candidate stacks against the byte pipe. Writes bench/results/stacks.json.

    python bench/stacks/measure.py [--seconds 10] [--only NAME,...]

Relay pinned to core 0; the fake, wrk and the latency client on core 1.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import harness as h  # noqa: E402

PY = h.PYTHON
CANDIDATES: dict[str, list[str]] = {
    "bytepipe (floor)": [PY, str(h.BENCH / "bytepipe.py")],
    "a) aiohttp + aiohttp": [PY, str(HERE / "aiohttp_aiohttp.py")],
    "b) starlette/uvicorn + httpx": [PY, str(HERE / "starlette_app.py"), "--client", "httpx"],
    "c) starlette/uvicorn + aiohttp": [PY, str(HERE / "starlette_app.py"), "--client", "aiohttp"],
    "d) granian RSGI + aiohttp": [PY, str(HERE / "granian_rsgi.py"), "--interface", "rsgi"],
    "d') granian ASGI starlette + aiohttp": [PY, str(HERE / "granian_rsgi.py"), "--interface", "asgi"],
}


def latency(port: int, path: str, n: int, cpus: set[int] | None) -> dict[str, float]:
    argv = [PY, str(h.BENCH / "loadgen.py"), "latency", "--port", str(port), "--path", path, "-n", str(n)]
    pin = (lambda: __import__("os").sched_setaffinity(0, cpus)) if cpus else None
    out = subprocess.run(argv, capture_output=True, timeout=120, check=True, preexec_fn=pin)
    return json.loads(out.stdout)


def measure(name: str, port: int, relay_pid: int | None, seconds: float, n: int,
            paths: list[str], relay_cpus: set[int] | None, load_cpus: set[int] | None) -> dict[str, object]:
    body = h.bench_body(50, 8, 0)
    row: dict[str, object] = {"name": name}
    for path in paths:
        h.wrk(f"http://127.0.0.1:{port}{path}", body, seconds=2, cpus=load_cpus)  # warm-up
        before = h.cpu_seconds(relay_pid) if relay_pid else 0.0
        res = h.wrk(f"http://127.0.0.1:{port}{path}", body, seconds=seconds, cpus=load_cpus)
        used = (h.cpu_seconds(relay_pid) - before) if relay_pid else 0.0
        lat = latency(port, path, n, load_cpus)
        row[path] = {"rps": res["rps"], "errors": res["errors"], "requests": res["requests"],
                     "cpu_us_per_response": used / max(1, res["requests"]) * 1e6 if relay_pid else None,
                     "cpu_util": used / seconds, **lat}
        print(f"  {path}: {res['rps']:.0f} rps, errors {res['errors']}, "
              f"cpu {row[path]['cpu_us_per_response'] or 0:.0f} us/resp, "
              f"ttfb p50 {lat['ttfb_p50_ms']:.3f} ms p99 {lat['ttfb_p99_ms']:.3f} ms", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("-n", type=int, default=500, help="requests for the latency measurement")
    parser.add_argument("--only", default="")
    parser.add_argument("--upstream", choices=["fast", "fake"], default="fast",
                        help="bench/fastfake.py (default) or python -m gptrelay.fake")
    args = parser.parse_args()
    two = h.cores() >= 2
    relay_cpus, load_cpus = ({0}, {1}) if two else (None, None)
    results = []
    logs = h.BENCH / "results" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with h.cleanup():
        fake_port = h.free_port()
        fake_argv = ([PY, str(h.BENCH / "fastfake.py")] if args.upstream == "fast"
                     else [PY, "-m", "gptrelay.fake", "--no-log"])
        fake = h.start([*fake_argv, "--port", str(fake_port)],
                       cpus=load_cpus, log=logs / "stacks-fake.log")
        h.wait_healthy(fake_port, fake, path="/v1/models")
        upstream = f"http://127.0.0.1:{fake_port}/v1"
        print("direct (fake)", flush=True)
        results.append(measure("direct (fake)", fake_port, None, args.seconds, args.n,
                               ["/v1/chat/completions"], relay_cpus, load_cpus))
        for name, argv in CANDIDATES.items():
            if args.only and not any(o in name for o in args.only.split(",")):
                continue
            print(name, flush=True)
            port = h.free_port()
            proc = h.start([*argv, "--port", str(port), "--upstream", upstream], cpus=relay_cpus,
                           log=logs / f"stacks-{port}.log")
            try:
                h.wait_healthy(port, proc)
                paths = ["/v1/chat/completions"] if "bytepipe" in name else ["/v1/chat/completions", "/chat"]
                results.append(measure(name, port, proc.pid, args.seconds, args.n, paths,
                                       relay_cpus, load_cpus))
            except Exception as exc:  # keep measuring the others
                print(f"  failed: {exc}", flush=True)
                results.append({"name": name, "failed": str(exc)})
            finally:
                h.stop(proc)
                time.sleep(0.5)
    out = h.BENCH / "results" / f"stacks-{args.upstream}.json"
    out.write_text(json.dumps({"when": time.strftime("%Y-%m-%d %H:%M:%S"), "upstream": args.upstream,
                                  "seconds": args.seconds, "results": results}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
