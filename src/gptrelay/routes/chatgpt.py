"""``POST /chatgpt``: the upstream's server-sent events, relayed unchanged, event by event.

Each event is written whole (with any comment lines just before it), so a
client that parses every network read on its own never sees half an event.
"""

from __future__ import annotations

from collections.abc import Awaitable

from aiohttp import web

from gptrelay.errors import RelayError, report
from gptrelay.http.streaming import SSE_DONE, SSE_PING, Stream, sse_error
from gptrelay.routes.chat_request import open_chat, read_chat_request
from gptrelay.wire.completions import DONE
from gptrelay.wire.sse import SSEDecoder

CONTENT_TYPE = "text/event-stream; charset=utf-8"


async def chatgpt(request: web.Request) -> web.StreamResponse:
    payload = await read_chat_request(request)
    stream = Stream(request, CONTENT_TYPE, SSE_PING)
    try:
        async with await open_chat(request, payload, stream) as upstream:
            decoder = SSEDecoder()
            done = False

            def forward(chunk: bytes) -> Awaitable[None] | None:
                nonlocal done
                events = decoder.feed(chunk)
                if not events:
                    return None
                done = events[-1].data == DONE
                return stream.write(events[0].raw if len(events) == 1 else b"".join(e.raw for e in events))

            await upstream.pump(forward)
            events = decoder.flush()
            tail = b"".join(e.raw for e in events) + decoder.rest
            if events:
                done = events[-1].data == DONE
            if tail:
                await stream.write(tail)
            if not done:
                await stream.write(SSE_DONE)
    except RelayError as error:
        if not stream.started:
            raise  # rendered with its status; an upstream error keeps the upstream's own body
        report(error, "POST", "/chatgpt")
        await stream.write(sse_error(error) + SSE_DONE)
    return await stream.finish()
