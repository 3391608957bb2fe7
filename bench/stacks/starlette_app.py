"""Candidates (b) and (c): a Starlette app on uvicorn (httptools + uvloop).

``--client httpx`` (b) or ``--client aiohttp`` (c). Also importable as an ASGI app for granian.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).parent))
from reframe import NDJSON_HEADERS, SSE_HEADERS, UPSTREAM_PATH, Reframer, upstream_body

UPSTREAM_HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}


class HttpxUpstream:
    def __init__(self, base: str) -> None:
        self.url = base.rstrip("/") + UPSTREAM_PATH
        self.client = httpx.AsyncClient(limits=httpx.Limits(max_connections=None,
                                                            max_keepalive_connections=1000),
                                        timeout=httpx.Timeout(60.0))

    async def open(self, body: bytes) -> tuple[int, AsyncIterator[bytes]]:
        request = self.client.build_request("POST", self.url, content=body, headers=UPSTREAM_HEADERS)
        response = await self.client.send(request, stream=True)

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for data in response.aiter_raw():
                    yield data
            finally:
                await response.aclose()

        return response.status_code, chunks()

    async def close(self) -> None:
        await self.client.aclose()


class AiohttpUpstream:
    def __init__(self, base: str) -> None:
        self.url = base.rstrip("/") + UPSTREAM_PATH
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                             auto_decompress=False,
                                             timeout=aiohttp.ClientTimeout(sock_read=60))

    async def open(self, body: bytes) -> tuple[int, AsyncIterator[bytes]]:
        response = await self.session.post(self.url, data=body, headers=UPSTREAM_HEADERS)

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for data in response.content.iter_any():
                    yield data
            finally:
                response.release()

        return response.status, chunks()

    async def close(self) -> None:
        await self.session.close()


def create_app(upstream_base: str, client: str) -> Starlette:
    state: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state["up"] = HttpxUpstream(upstream_base) if client == "httpx" else AiohttpUpstream(upstream_base)
        yield
        await state["up"].close()

    async def chat(request: Request) -> Response:
        body = upstream_body(await request.body())
        _, chunks = await state["up"].open(body)

        async def frames() -> AsyncIterator[bytes]:
            reframer = Reframer()
            async for data in chunks:
                out = reframer.feed(data)
                if out:
                    yield out
            yield reframer.close()

        return StreamingResponse(frames(), headers=NDJSON_HEADERS)

    async def passthrough(request: Request) -> Response:
        status, chunks = await state["up"].open(await request.body())
        return StreamingResponse(chunks, status_code=status, headers=SSE_HEADERS)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/chat", chat, methods=["POST"]),
                             Route("/v1/chat/completions", passthrough, methods=["POST"]),
                             Route("/healthz", healthz)],
                     lifespan=lifespan)


def asgi_from_env() -> Starlette:
    """For granian: ``granian --interface asgi --factory starlette_app:asgi_from_env``."""
    return create_app(os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:9000/v1"),
                      os.environ.get("BENCH_CLIENT", "aiohttp"))


if __name__ == "__main__":
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--upstream", default="http://127.0.0.1:9000/v1")
    parser.add_argument("--client", choices=["httpx", "aiohttp"], default="httpx")
    args = parser.parse_args()
    uvicorn.run(create_app(args.upstream, args.client), host=args.host, port=args.port,
                loop="uvloop", http="httptools", lifespan="on", access_log=False,
                log_level="warning", backlog=4096)
