"""An experiment: the byte pipe with its upstream side pushed, not pulled. What a relay could
save below ``aiohttp.ClientSession``.

``bench/bytepipe.py`` (the floor the bench compares with) reads the upstream with
aiohttp's client: every network read is parsed, queued in a ``StreamReader``, wakes the
handler's task, which takes it out (``readany``) and writes it. Here the upstream
connection is a bare ``asyncio.Protocol`` with ``httptools``' parser, and each network
read's body bytes are written to the client's transport from inside ``data_received``:
no queue, no task woken per read. The server side is the same aiohttp as the pipe's.

Not a relay: no timeouts, no flow control (a slow client's bytes pile up in its
transport), no TLS or proxies, one upstream host. It measures how low the floor
goes when nothing waits between a read and its write:

    python bench/experiments/pushpipe.py --port 8300 --upstream http://127.0.0.1:9000/v1
    # then compare with bench/bytepipe.py under the same wrk load
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httptools  # type: ignore[import-untyped]
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bytepipe import healthz, main  # the pipe's own health check and command line

# PUSHPIPE_HOLD_MS: how long the first of a reply's reads waits for more to go out with it (0: the
# reads of one turn of the loop go together).
HOLD = float(os.environ.get("PUSHPIPE_HOLD_MS", "0")) / 1000
HOP = {b"content-length", b"transfer-encoding", b"connection", b"keep-alive", b"content-encoding"}
BASE = web.AppKey("base", str)
POOL = web.AppKey("pool", list)


class Upstream(asyncio.Protocol):
    """One kept-alive connection to the upstream; a reply's body goes to ``sink`` as it is read."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.head: asyncio.Future[int] | None = None
        self.done: asyncio.Future[None] | None = None
        self.body: list[bytes] = []
        self.sink = self.body.append  # until the client's response is under way: kept
        self.keep_alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.keep_alive = False
        for waiter in (self.head, self.done):
            if waiter is not None and not waiter.done():
                waiter.set_exception(ConnectionResetError("upstream closed"))

    def data_received(self, data: bytes) -> None:
        pieces: list[bytes] = []
        self.sink, sink = pieces.append, self.sink
        try:
            self.parser.feed_data(data)
        finally:
            self.sink = sink
        if pieces:  # the read's body bytes, written once
            sink(b"".join(pieces) if len(pieces) > 1 else pieces[0])
        if self._complete:
            self._complete = False
            assert self.done is not None
            self.done.set_result(None)

    _complete = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()
        assert self.head is not None
        self.head.set_result(self.parser.get_status_code())

    def on_body(self, body: bytes) -> None:
        self.sink(body)

    def on_message_complete(self) -> None:
        self._complete = True

    async def request(self, raw: bytes) -> int:
        loop = asyncio.get_running_loop()
        self.headers, self.body = [], []
        self.sink = self.body.append
        self.head, self.done = loop.create_future(), loop.create_future()
        assert self.transport is not None
        self.transport.write(raw)
        return await self.head


async def relay(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    base = request.app[BASE]
    parts = urlsplit(base)
    pool: list[Upstream] = request.app[POOL]
    if pool:
        upstream = pool.pop()
    else:
        loop = asyncio.get_running_loop()
        _, upstream = await loop.create_connection(Upstream, parts.hostname, parts.port)
    path = parts.path + request.match_info["path"]
    raw = (f"{request.method} {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
           f"Content-Type: {request.headers.get('Content-Type', 'application/json')}\r\n"
           f"Authorization: Bearer sk-bench\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    status = await upstream.request(raw)
    response = web.StreamResponse(status=status, headers={
        k.decode(): v.decode() for k, v in upstream.headers if k.lower() not in HOP})
    await response.prepare(request)
    await response.write(b"".join(upstream.body))  # what came with the head (and the headers, with it)
    transport = request.transport
    assert transport is not None and upstream.done is not None

    pending: list[bytes] = []
    loop = asyncio.get_running_loop()

    def flush() -> None:  # the reads held, in one write
        if not pending:
            return
        data = b"".join(pending) if len(pending) > 1 else pending[0]
        pending.clear()
        transport.writelines((b"%x\r\n" % len(data), data, b"\r\n"))

    def push(data: bytes) -> None:
        if not pending:
            if HOLD:
                loop.call_later(HOLD, flush)
            else:
                loop.call_soon(flush)
        pending.append(data)

    upstream.sink = push
    await upstream.done
    if pending:
        flush()
    await response.write_eof()
    if upstream.keep_alive:
        pool.append(upstream)
    elif upstream.transport is not None:
        upstream.transport.close()
    return response


def create_app(base: str) -> web.Application:
    app = web.Application(client_max_size=64 * 1024**2)
    app[BASE] = base.rstrip("/") + "/"
    app[POOL] = []
    app.router.add_get("/healthz", healthz)
    app.router.add_route("*", "/v1/{path:.*}", relay)
    return app


if __name__ == "__main__":
    main(create_app, __doc__, 8300)
