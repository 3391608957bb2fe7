"""``/v1/{path}``: an OpenAI-compatible gateway that streams both ways.

Method, path, query and end-to-end headers go upstream as sent, with the
relay's credentials instead of the client's; the reply's status, headers
and body come back as they arrive, never decoded or buffered whole.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from aiohttp import web

from gptrelay import headers as header_rules
from gptrelay.chat_request import read_body
from gptrelay.errors import PayloadTooLarge, RelayError, report
from gptrelay.state import SETTINGS, UPSTREAM
from gptrelay.streaming import SSE_PING, STREAM_HEADERS, sse_error

# Bodies up to this size are read whole (they are JSON, almost always); larger ones stream.
SMALL_BODY = 1024 * 1024
# `"stream": true` in a JSON body; inside a string its quotes would be escaped, so no false match.
_STREAM_TRUE = re.compile(rb'"stream"\s*:\s*true')


async def _stream_body(request: web.Request, limit: int) -> AsyncIterator[bytes]:
    received = 0
    async for chunk in request.content.iter_any():
        received += len(chunk)
        if received > limit:
            raise PayloadTooLarge.over(limit)
        yield chunk


async def gateway(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    is_json = request.content_type == "application/json"
    limit = settings.max_body_size if is_json else settings.max_upload_size
    data: bytes | AsyncIterator[bytes] | None = None
    accept_encoding = None
    length = request.content_length
    if request.body_exists:
        if length is not None and length > limit:
            raise PayloadTooLarge.over(limit)
        if length is not None and length <= SMALL_BODY:
            data = await read_body(request, limit, length)
            if is_json and _STREAM_TRUE.search(data):
                accept_encoding = "identity"  # a streamed reply is never compressed
        else:
            data = _stream_body(request, limit)
    headers = header_rules.to_upstream(request.headers, accept_encoding)
    if isinstance(data, AsyncIterator) and length is not None:
        headers.append(("Content-Length", str(length)))  # streamed, not chunked, as the client sent it

    path, _, query = request.raw_path.partition("?")  # as sent: still percent-encoded
    upstream = await request.app[UPSTREAM].request(
        request.method, path.removeprefix("/v1/"), headers=headers, data=data, query=query)
    async with upstream:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason,
                                      headers=header_rules.to_client(upstream.headers))
        streaming = upstream.is_event_stream
        if streaming:
            response.headers.update(STREAM_HEADERS)
        await response.prepare(request)
        if streaming:
            upstream.keep_alive(lambda: response.write(SSE_PING))
        try:
            await upstream.pump(response.write)
        except RelayError as error:
            report(error, request.method, request.path)
            if not streaming:
                # The body's framing is left unfinished: the client sees it is incomplete.
                if request.transport is not None:
                    request.transport.close()
                return response
            await response.write(sse_error(error))
    await response.write_eof()
    return response

