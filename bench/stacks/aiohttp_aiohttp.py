"""Candidate (a): aiohttp server + aiohttp client, uvloop."""

from __future__ import annotations

import sys
from pathlib import Path

import aiohttp
import uvloop
from aiohttp import web

sys.path.insert(0, str(Path(__file__).parent))
from common import parse_args
from reframe import NDJSON_HEADERS, SSE_HEADERS, UPSTREAM_PATH, Reframer, upstream_body

SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)


async def chat(request: web.Request) -> web.StreamResponse:
    body = upstream_body(await request.read())
    session = request.app[SESSION]
    async with session.post(request.app[UPSTREAM] + UPSTREAM_PATH, data=body,
                            headers={"Content-Type": "application/json",
                                     "Authorization": "Bearer sk-bench"}) as upstream:
        response = web.StreamResponse(headers=NDJSON_HEADERS)
        await response.prepare(request)
        reframer = Reframer()
        async for data in upstream.content.iter_any():
            out = reframer.feed(data)
            if out:
                await response.write(out)
        await response.write(reframer.close())
    await response.write_eof()
    return response


async def passthrough(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    session = request.app[SESSION]
    async with session.post(request.app[UPSTREAM] + UPSTREAM_PATH, data=body,
                            headers={"Content-Type": "application/json",
                                     "Authorization": "Bearer sk-bench"}) as upstream:
        response = web.StreamResponse(status=upstream.status, headers=SSE_HEADERS)
        await response.prepare(request)
        async for data in upstream.content.iter_any():
            await response.write(data)
    await response.write_eof()
    return response


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app(upstream: str) -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")

    async def session_ctx(app: web.Application):  # type: ignore[no-untyped-def]
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None)
        app[SESSION] = aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                             timeout=aiohttp.ClientTimeout(sock_read=60))
        yield
        await app[SESSION].close()

    app.cleanup_ctx.append(session_ctx)
    app.router.add_post("/chat", chat)
    app.router.add_post("/v1/chat/completions", passthrough)
    app.router.add_get("/healthz", healthz)
    return app


if __name__ == "__main__":
    args = parse_args(__doc__ or "")
    uvloop.install()
    web.run_app(create_app(args.upstream), host=args.host, port=args.port, print=None,
                access_log=None, backlog=4096)
