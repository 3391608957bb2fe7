"""``POST /chatgpt``: the upstream's server-sent events, relayed unchanged, event by event.

Each event is written whole (with any comment lines just before it), so a
client that parses every network read on its own never sees half an event,
and the keep-alive written while the upstream thinks is one such client can
read too (``KEEPALIVE``).
"""

from __future__ import annotations

from collections.abc import Awaitable

from aiohttp import web

from gptrelay.errors import RelayError, StreamCut, report
from gptrelay.http.streaming import SSE_DONE, Stream, sse_error
from gptrelay.routes.chat_request import open_chat, read_chat_request
from gptrelay.state import METER
from gptrelay.usage.meter import Meter
from gptrelay.wire.asked_usage import NULL_USAGE, is_usage_only
from gptrelay.wire.completions import DONE
from gptrelay.wire.sse import Event, SSEDecoder, terminated
from gptrelay.wire.tokens import MARK

CONTENT_TYPE = "text/event-stream; charset=utf-8"
KEEPALIVE = b': ping data: {"choices":[{"index":0,"delta":{},"finish_reason":null}]}\n\n'
"""What keeps the connection alive while the upstream is silent before its first token: a comment line,
which every SSE parser (EventSource, the SDKs) skips, that also holds ``data: `` and an empty chunk.
Clients that split each network read on ``"data: "`` and parse every piece (the seed blog page does,
and asks for its next read only from a piece that parsed) find a chunk with an empty delta in it, as
in OpenAI's own first and last chunks, and read on; after a bare ``: ping`` they stop reading for good."""


async def chatgpt(request: web.Request) -> web.StreamResponse:
    asked = await read_chat_request(request)
    meter = request[METER]
    stream = Stream(request, CONTENT_TYPE, KEEPALIVE)
    done = SSE_DONE  # the end of the stream, written once the usage record is committed
    relay = _Relay(meter, strip_usage=not asked.wants_usage)
    try:
        async with await open_chat(request, asked.payload, stream) as upstream:
            decoder = SSEDecoder()

            def forward(chunk: bytes) -> Awaitable[None] | None:
                events = decoder.feed(chunk)
                if not events:
                    return None
                data = relay.hold_done(events)
                return stream.write(data) if data else None

            await upstream.pump(forward)
            # What the upstream left open when it ended is ended here: [DONE] must be an event of its own.
            tail = terminated(relay.hold_done(decoder.flush()) + decoder.rest)
            if tail:
                await stream.write(tail)
            done = terminated(relay.done) or SSE_DONE
            meter.reply_size = relay.pieces
    except RelayError as error:
        if not stream.started:
            raise  # rendered with its status; an upstream error keeps the upstream's own body
        report(error, "POST", "/chatgpt")
        meter.failed(error.status, "cut" if isinstance(error, StreamCut) else "error")
        meter.reply_size = relay.pieces  # what was streamed before the cut, for an estimate
        await stream.write(sse_error(error))
    meter.first_byte = stream.started_at
    await meter.commit()  # before [DONE]: a client that saw its stream end has its record
    return await stream.finish(done)


class _Relay:
    """What ``/chatgpt`` keeps back from the upstream's events: the usage chunk the relay asked for
    itself (its counts go to the meter), and ``[DONE]`` until the record is committed."""

    __slots__ = ("done", "meter", "pieces", "strip_usage")

    def __init__(self, meter: Meter, strip_usage: bool) -> None:
        self.meter = meter
        self.strip_usage = strip_usage
        self.done = b""
        self.pieces = 0

    def take_usage(self, events: list[Event]) -> list[Event]:
        kept = []
        for event in events:
            if MARK in event.raw:
                self.meter.read_usage(event.raw)
                if self.strip_usage and is_usage_only(event.raw):
                    continue
            kept.append(event)
        return kept

    def hold_done(self, events: list[Event]) -> bytes:
        """The events' bytes to write now: without a final ``[DONE]`` (kept in ``done``), and, when
        the relay asked for usage, without its usage chunk and the ``"usage":null`` that asking
        adds to every other chunk."""
        self.pieces += len(events)
        if events and events[-1].data == DONE:
            self.done = events[-1].raw
            events = events[:-1]
        data = events[0].raw if len(events) == 1 else b"".join(event.raw for event in events)
        if MARK in data:  # the usage chunk is among them
            events = self.take_usage(events)
            data = b"".join(event.raw for event in events)
        return data.replace(NULL_USAGE, b"") if self.strip_usage else data
