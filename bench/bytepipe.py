"""The floor: a raw aiohttp byte-copying relay. Part of the bench, never of the product.

POST in -> one pooled aiohttp ClientSession POSTs upstream -> bytes copied back with
``iter_any`` as they arrive. No parsing, no auth, no header policy: whatever gptrelay does
beyond this costs something, and the bench measures how much.

    python bench/bytepipe.py --port 8200 --upstream http://127.0.0.1:9000/v1
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable

import aiohttp
import uvloop
from aiohttp import web

SESSION = web.AppKey("session", aiohttp.ClientSession)
BASE = web.AppKey("base", str)
HOP = {"content-length", "transfer-encoding", "connection", "keep-alive", "content-encoding"}


async def relay(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    url = request.app[BASE] + request.match_info["path"]
    headers = {"Content-Type": request.headers.get("Content-Type", "application/json"),
               "Authorization": "Bearer sk-bench"}
    async with request.app[SESSION].request(request.method, url, data=body, headers=headers,
                                            params=request.query) as upstream:
        response = web.StreamResponse(status=upstream.status, headers={
            k: v for k, v in upstream.headers.items() if k.lower() not in HOP})
        await response.prepare(request)
        async for data in upstream.content.iter_any():
            await response.write(data)
    await response.write_eof()
    return response


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app(base: str, handler: Callable[[web.Request], Awaitable[web.StreamResponse]] = relay) -> web.Application:
    """The pipe's application; ``handler`` serves ``/v1/…`` (this pipe's ``relay``, or a variant's)."""
    app = web.Application(client_max_size=64 * 1024**2)
    app[BASE] = base.rstrip("/") + "/"

    async def session(app: web.Application):  # type: ignore[no-untyped-def]
        app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                             auto_decompress=False,
                                             timeout=aiohttp.ClientTimeout(sock_connect=10, sock_read=300))
        yield
        await app[SESSION].close()

    app.cleanup_ctx.append(session)
    app.router.add_get("/healthz", healthz)
    app.router.add_route("*", "/v1/{path:.*}", handler)
    return app


def main(make_app: Callable[[str], web.Application], description: str | None, port: int) -> None:
    """Serve ``make_app(upstream)`` as the command line says (this pipe's, or a variant's)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--upstream", default="http://127.0.0.1:9000/v1")
    args = parser.parse_args()
    uvloop.install()
    web.run_app(make_app(args.upstream), host=args.host, port=args.port, print=None,
                access_log=None, backlog=4096)


if __name__ == "__main__":
    main(create_app, __doc__, 8200)
