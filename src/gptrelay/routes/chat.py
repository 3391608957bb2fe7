"""``POST /chat``: the upstream's reply as a stream of NDJSON frames."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence

from aiohttp import web

from gptrelay.errors import RelayError, StreamCut, report
from gptrelay.http.streaming import Stream
from gptrelay.routes.chat_request import open_chat, read_chat_request
from gptrelay.routes.continuation import Rounds
from gptrelay.state import METER, SETTINGS
from gptrelay.wire import frames
from gptrelay.wire.completions import CompletionReader
from gptrelay.wire.sse import SSEDecoder


async def chat(request: web.Request) -> web.StreamResponse:
    asked = await read_chat_request(request)
    meter = request[METER]
    stream = Stream(request, frames.CONTENT_TYPE, frames.KEEPALIVE)
    rounds = Rounds(asked.payload, request.app[SETTINGS].chat_max_continuations)
    reader = CompletionReader()
    pieces = 0
    try:
        while True:
            await _round(request, rounds, stream, reader)
            if rounds.finished(reader.finish_reason, reader.usage):
                break
            pieces += reader.pieces
            reader = CompletionReader()
    except RelayError as error:
        report(error, "POST", "/chat")
        stream.set_status(error.status)
        meter.failed(error.status, "cut" if isinstance(error, StreamCut) else "error")
        await stream.write(frames.error(error.message))
    usage = rounds.usage if rounds.count > 1 else reader.usage
    meter.count(usage, pieces + reader.pieces)
    meter.first_byte = stream.started_at
    await meter.commit()  # before the done frame: a client that saw its reply end has its record
    return await stream.finish(frames.done(reader.finish_reason, usage if asked.wants_usage else None,
                                           rounds.count if rounds.limit else None))


async def _round(request: web.Request, rounds: Rounds, stream: Stream, reader: CompletionReader) -> None:
    """One upstream request's reply, read by ``reader`` and written to ``stream`` as frames."""
    kept = rounds.text
    async with await open_chat(request, rounds.payload, stream) as upstream:
        decoder = SSEDecoder()
        await upstream.pump(lambda chunk: _relay(decoder.feed_data(chunk), reader, stream, kept))
        pending = _relay([event.data for event in decoder.flush()], reader, stream, kept)
        if pending is not None:
            await pending
        reader.check_complete()


def _relay(events: Sequence[bytes | str], reader: CompletionReader, stream: Stream,
           kept: list[str] | None) -> Awaitable[None] | None:
    """The write of one network read's text as frames (one write), or None if it has none; the
    text also goes to ``kept``, if given (for a continuation).

    Text read before an error event is still written before the error is raised.
    """
    out: list[bytes] = []
    try:
        for data in events:
            text = reader.read(data)
            if text:
                out += frames.content_parts(text)
                if kept is not None:
                    kept.append(text)
    except RelayError as error:
        return _write_then_raise(stream, b"".join(out), error)
    if not out:
        return None
    return stream.write(b"".join(out))


async def _write_then_raise(stream: Stream, data: bytes, error: RelayError) -> None:
    if data:
        await stream.write(data)
    raise error
