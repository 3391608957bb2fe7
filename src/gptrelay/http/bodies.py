"""Request bodies, read only after the key check: bounded in size, in time and in inflation.

The server never decompresses on its own (``auto_decompress=False``): a
``/chat`` or ``/chatgpt`` body is inflated here, once its key has passed, and
only up to the body limit; a ``/v1`` body goes upstream as sent, bytes and
``Content-Encoding`` together. Every read of a body that is not all here yet
is watched: a gap longer than ``CLIENT_BODY_TIMEOUT`` ends the request with
408. ``Expect: 100-continue`` is answered here, when the body is wanted.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator

from aiohttp import StreamReader, web

from gptrelay.errors import BadRequest, ExpectationFailed, PayloadTooLarge, RequestTimeout, UnsupportedEncoding
from gptrelay.watchdog import Sweeper, Watchdog

# zlib's window bits for each Content-Encoding it can undo.
WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
_INFLATE_STEP = 1024 * 1024  # inflate this much, then let other requests run


class BodyLimits:
    """What bounds every body: the time between two reads, and the process's one timer."""

    __slots__ = ("sweeper", "timeout")

    def __init__(self, sweeper: Sweeper, timeout: float) -> None:
        self.sweeper = sweeper
        self.timeout = timeout

    def too_slow(self) -> RequestTimeout:
        return RequestTimeout(f"the request body stopped arriving: nothing came for {self.timeout:g} s")


async def answer_expect(request: web.Request) -> None:
    """Send ``100 Continue`` if the client waits for it before sending its body."""
    expect = request.headers.get("Expect")
    if expect is None:
        return
    if expect.lower() != "100-continue":
        raise ExpectationFailed(f"unknown expectation: {expect[:40]!r}")
    if request.version >= (1, 1):
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the response proper has not started


async def read_raw(request: web.Request, limits: BodyLimits, limit: int) -> bytes:
    """The whole body as sent (still encoded), refused with 413 past ``limit`` bytes."""
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge.over(limit)
    content = request.content
    if content.is_eof():  # all of it came with the headers (the usual small JSON body)
        return content.read_nowait()
    await answer_expect(request)
    pieces = []
    size = 0
    async for piece in _watched(content, limits):
        size += len(piece)
        if size > limit:
            raise PayloadTooLarge.over(limit)
        pieces.append(piece)
    return b"".join(pieces)


async def stream_raw(request: web.Request, limits: BodyLimits, limit: int) -> AsyncIterator[bytes]:
    """The body as sent, piece by piece as it comes, for sending upstream while it arrives.

    Raises 413 past ``limit`` bytes, 408 when it stops coming, and 400 when it
    ends short of its ``Content-Length``: the upstream connection that carried
    it is then closed, never reused with a request that was not framed as sent.
    """
    await answer_expect(request)
    length = request.content_length
    size = 0
    async for piece in _watched(request.content, limits):
        size += len(piece)
        if size > limit:
            raise PayloadTooLarge.over(limit)
        yield piece
    if length is not None and size != length:
        raise BadRequest(f"the request body ended after {size} of its {length} bytes")


async def _watched(content: StreamReader, limits: BodyLimits) -> AsyncIterator[bytes]:
    """Each piece of ``content`` until its end; 408 if one is awaited longer than the limit."""
    watchdog = Watchdog(limits.sweeper, limits.timeout, limits.timeout)
    clock = limits.sweeper.loop.time
    try:
        while True:
            watchdog.since = clock()
            try:
                piece = await content.readany()
            except asyncio.CancelledError as error:
                if watchdog.timed_out(error):
                    raise limits.too_slow() from None
                raise
            if not piece:
                return
            watchdog.since = 0.0
            yield piece
    finally:
        watchdog.close()


async def decode(raw: bytes, encoding: str | None, limit: int) -> bytes:
    """``raw`` with its ``Content-Encoding`` undone, refused with 413 once it inflates past ``limit``.

    Inflates a step at a time, letting other requests run between steps, so a
    small body that inflates to gigabytes costs at most ``limit`` bytes of work.
    """
    name = (encoding or "identity").strip().lower()
    if name == "identity":
        return raw
    wbits = WBITS.get(name)
    if wbits is None:
        raise UnsupportedEncoding(f"Content-Encoding {name[:40]!r} is not supported here: "
                                  "send the body as gzip, deflate or uncompressed")
    inflater = zlib.decompressobj(wbits)
    out = []
    size = 0
    pending = raw
    try:
        while pending and not inflater.eof:
            piece = inflater.decompress(pending, min(_INFLATE_STEP, limit + 1 - size))
            pending = inflater.unconsumed_tail
            size += len(piece)
            if size > limit:
                raise PayloadTooLarge.over(limit)
            out.append(piece)
            if pending:
                await asyncio.sleep(0)
        if not inflater.eof:
            raise zlib.error("the compressed data ends early")
    except zlib.error as error:
        raise BadRequest(f"the request body is not valid {name} data: {error}") from None
    return b"".join(out)
