"""Streamed responses to the client: the headers every stream carries, sent on first write,
and the event-stream pieces the relay writes itself."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import orjson
from aiohttp import web

from gptrelay.errors import RelayError

STREAM_HEADERS = {
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",
}
SSE_PING = b": ping\n\n"
SSE_DONE = b"data: [DONE]\n\n"


def sse_error(error: RelayError) -> bytes:
    """A failure after an event stream started, as an event OpenAI's SDKs raise on."""
    return b"data: " + orjson.dumps(error.envelope()) + b"\n\n"


class Stream:
    """A streamed response whose status and headers are sent with the first bytes.

    Until then ``status`` can still change, so an error that comes before the
    first byte is told with its own status.
    """

    __slots__ = ("_keepalive", "request", "response", "started_at")

    def __init__(self, request: web.Request, content_type: str, keepalive: bytes) -> None:
        self.request = request
        self.started_at = 0.0  # the loop's time when the first bytes went out
        self.response = web.StreamResponse(headers={"Content-Type": content_type, **STREAM_HEADERS})
        self._keepalive = keepalive

    @property
    def started(self) -> bool:
        return self.response.prepared

    def set_status(self, status: int) -> None:
        if not self.started:
            self.response.set_status(status)

    def write(self, data: bytes) -> Awaitable[None]:
        """Send ``data``; once started, this is the response's own write (no extra coroutine per token)."""
        response = self.response
        if response.prepared:
            return response.write(data)
        return self._start(data)

    async def _start(self, data: bytes) -> None:
        await self._prepare()
        await self.response.write(data)

    async def _prepare(self) -> None:
        self.started_at = asyncio.get_running_loop().time()
        await self.response.prepare(self.request)

    async def keepalive(self) -> None:
        await self.write(self._keepalive)

    async def finish(self, last: bytes = b"") -> web.StreamResponse:
        """Send ``last`` and end the response, in one write."""
        if not self.response.prepared:
            await self._prepare()
        await self.response.write_eof(last)
        return self.response
