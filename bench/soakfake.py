"""The soak's upstream: gptrelay's fake upstream (every scenario), counting its connections.

    python bench/soakfake.py --port P

``GET /_soak/stats`` answers ``{"connections": open connections, "in_progress": requests whose
handler is still running, "requests": requests served, "gone": replies cut off because the
relay closed the connection}``. After a soak, when every client is done, nothing may be in
progress (a relay that forgot an upstream request leaves it running) and the connections left
are the relay's idle pooled ones, which its pool closes within twice its keep-alive (aiohttp's
connector sweeps idle connections once per keep-alive period).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from aiohttp import web

from gptrelay.fake.app import FakeUpstream


class Counts:
    __slots__ = ("gone", "in_progress", "requests")

    def __init__(self) -> None:
        self.in_progress = 0
        self.requests = 0
        self.gone = 0


def build(counts: Counts) -> web.Application:
    fake = FakeUpstream(log=False)

    @web.middleware
    async def counted(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/_soak"):
            return await handler(request)  # type: ignore[no-any-return]
        counts.in_progress += 1
        counts.requests += 1
        try:
            return await handler(request)  # type: ignore[no-any-return]
        except (asyncio.CancelledError, ConnectionError):
            counts.gone += 1
            raise
        finally:
            counts.in_progress -= 1

    app = fake.app()
    app.middlewares.insert(0, counted)  # outside the fake's own (its key check and forced errors)
    return app


async def serve(host: str, port: int, keepalive: float) -> None:
    counts = Counts()
    app = build(counts)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, keepalive_timeout=keepalive)

    async def stats(request: web.Request) -> web.Response:
        server = runner.server
        return web.json_response({"connections": len(server.connections) if server else 0,
                                  "in_progress": counts.in_progress, "requests": counts.requests,
                                  "gone": counts.gone})

    app.router.add_get("/_soak/stats", stats)
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=4096).start()
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--keepalive", type=float, default=300.0,
                        help="seconds an idle connection is kept (default 300: longer than the relay's pool "
                             "keeps one, so what closes them is the relay)")
    args = parser.parse_args()
    import uvloop

    uvloop.run(serve(args.host, args.port, args.keepalive))


if __name__ == "__main__":
    main()
