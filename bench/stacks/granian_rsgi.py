"""Candidate (d): granian's native RSGI interface + aiohttp client.

Run: ``granian --interface rsgi --loop uvloop --workers 1 granian_rsgi:app``
(``BENCH_UPSTREAM`` names the upstream base URL). ``python granian_rsgi.py --port P`` does that.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))
from reframe import NDJSON_HEADERS, SSE_HEADERS, UPSTREAM_PATH, Reframer, upstream_body

UPSTREAM_HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}
NDJSON = list(NDJSON_HEADERS.items())
SSE = list(SSE_HEADERS.items())


class App:
    def __init__(self) -> None:
        self.url = os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:9000/v1").rstrip("/") + UPSTREAM_PATH
        self.session: aiohttp.ClientSession | None = None

    def __rsgi_init__(self, loop: Any) -> None:
        pass

    def _session(self) -> aiohttp.ClientSession:
        if self.session is None:
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                                 auto_decompress=False,
                                                 timeout=aiohttp.ClientTimeout(sock_read=60))
        return self.session

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        path = scope.path
        if path == "/healthz":
            proto.response_bytes(200, [("content-type", "application/json")], b'{"status":"ok"}')
            return
        raw = await proto()
        if path == "/chat":
            async with self._session().post(self.url, data=upstream_body(raw),
                                            headers=UPSTREAM_HEADERS) as upstream:
                stream = proto.response_stream(200, NDJSON)
                reframer = Reframer()
                async for data in upstream.content.iter_any():
                    out = reframer.feed(data)
                    if out:
                        await stream.send_bytes(out)
                await stream.send_bytes(reframer.close())
            return
        if path == "/v1/chat/completions":
            async with self._session().post(self.url, data=raw, headers=UPSTREAM_HEADERS) as upstream:
                stream = proto.response_stream(upstream.status, SSE)
                async for data in upstream.content.iter_any():
                    await stream.send_bytes(data)
            return
        proto.response_bytes(404, [], b"not found")


app = App()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--upstream", default="http://127.0.0.1:9000/v1")
    parser.add_argument("--interface", choices=["rsgi", "asgi"], default="rsgi")
    args = parser.parse_args()
    os.environ["BENCH_UPSTREAM"] = args.upstream
    os.environ["BENCH_CLIENT"] = "aiohttp"
    here = str(Path(__file__).parent)
    os.chdir(here)
    target = "granian_rsgi:app" if args.interface == "rsgi" else "starlette_app:asgi_from_env"
    argv = [sys.executable, "-m", "granian", "--interface", args.interface, "--loop", "uvloop",
            "--workers", "1", "--host", args.host, "--port", str(args.port), "--backlog", "4096",
            "--log-level", "warning", "--no-ws"]
    if args.interface == "asgi":
        argv += ["--factory"]
    os.execv(sys.executable, [*argv, target])
