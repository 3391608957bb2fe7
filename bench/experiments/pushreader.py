"""An experiment: the byte pipe with aiohttp's own client, its body reader pushed, not pulled.

``bench/bytepipe.py`` reads each reply with ``iter_any``: every HTTP chunk the parser
finds is queued in the reply's ``StreamReader`` (and counted for ``iter_chunks``), the
handler's task is woken, takes the queue out piece by piece (``readany``, which asks to
resume reading after each piece) and writes it. Here, once the headers are in, the
reader's class is swapped for one whose ``feed_data`` keeps the pieces of one loop turn
and writes them to the client in one ``call_soon`` callback: no task woken per read,
no per-piece bookkeeping. Connecting, pooling and parsing stay aiohttp's.

Not a relay: no timeouts and no flow control (a slow client's bytes pile up in its
transport). It measures what pushing saves while aiohttp still does the rest:

    python bench/experiments/pushreader.py --port 8300 --upstream http://127.0.0.1:9000/v1
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from aiohttp import web
from aiohttp.streams import StreamReader

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bytepipe import BASE, HOP, SESSION, create_app, main  # the pipe's app and command line


class Pushed(StreamReader):
    """A ``StreamReader`` whose pieces go to ``_push[self]`` once per loop turn (no slot of its
    own can be added: the swap needs the same layout)."""

    __slots__ = ()

    def feed_data(self, data: bytes, size: int = 0) -> bool:
        if data:
            buffer = self._buffer
            if not buffer:
                self._loop.call_soon(_flush, self)
            buffer.append(data)
        return False

    def begin_http_chunk_receiving(self) -> None:
        pass

    def end_http_chunk_receiving(self) -> None:
        pass

    def feed_eof(self) -> None:
        self._eof = True
        if not self._buffer:
            self._loop.call_soon(_flush, self)


_PUSH: dict[StreamReader, tuple[asyncio.Transport, asyncio.Future[None]]] = {}


def _flush(reader: StreamReader) -> None:
    transport, done = _PUSH[reader]
    buffer = reader._buffer
    if buffer:
        data = b"".join(buffer) if len(buffer) > 1 else buffer[0]
        buffer.clear()
        transport.writelines((b"%x\r\n" % len(data), data, b"\r\n"))
    if reader._eof and not done.done():
        done.set_result(None)


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
        content = upstream.content
        early = content._read_nowait(-1) if content._buffer else b""  # what came with the head
        if early:
            await response.write(early)
        transport = request.transport
        assert transport is not None
        done = asyncio.get_running_loop().create_future()
        _PUSH[content] = (transport, done)
        try:
            if content.is_eof():
                done.set_result(None)
            else:
                content.__class__ = Pushed
            await done
        finally:
            del _PUSH[content]
            content.__class__ = StreamReader
    await response.write_eof()
    return response


if __name__ == "__main__":
    main(lambda base: create_app(base, relay), __doc__, 8300)
