"""``/v1/{path}``: an OpenAI-compatible gateway that streams both ways.

Method, path, query and end-to-end headers go upstream as sent, with the
relay's credentials instead of the client's; the reply's status, headers
and body come back as they arrive, never decoded or buffered whole. The
request body goes as sent too (compressed or not), with framing that matches
its bytes. Paths with ``.`` or ``..`` segments are refused, never forwarded.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import unquote

import orjson
from aiohttp import web

from gptrelay.auth.caller import Caller
from gptrelay.errors import BadRequest, PayloadTooLarge, RelayError, UpstreamError, report
from gptrelay.http import headers as header_rules
from gptrelay.http.bodies import decode, read_raw, stream_raw
from gptrelay.http.streaming import SSE_PING, STREAM_HEADERS, sse_error
from gptrelay.limits.admission import check_model
from gptrelay.state import BODY_LIMITS, CALLER, SETTINGS, UPSTREAM
from gptrelay.upstream.transport import UpstreamResponse

# Bodies up to this size are read whole (they are JSON, almost always); larger ones stream.
SMALL_BODY = 1024 * 1024
# `"stream": true` in a JSON body; inside a string its quotes would be escaped, so no false match.
_STREAM_TRUE = re.compile(rb'"stream"\s*:\s*true')
_DOT_SEGMENTS = frozenset({".", ".."})
_BODY_HEADERS = frozenset({"content-length", "content-type", "content-encoding"})  # of a body rewritten here


def check_path(path: str) -> None:
    """Refuse a path with ``.`` or ``..`` segments, raw or percent-encoded (``%2e``, and
    ``%2f`` or a backslash as a separator), which an upstream could resolve elsewhere."""
    if "." not in path and "%" not in path:  # the usual path: nothing to decode
        return
    if any(segment in _DOT_SEGMENTS for segment in unquote(path).replace("\\", "/").split("/")):
        raise BadRequest("the path has '.' or '..' segments: send the API path as it is, such as /v1/models")


async def gateway(request: web.Request) -> web.StreamResponse:
    path, _, query = request.raw_path.partition("?")  # as sent: still percent-encoded
    check_path(path)
    settings = request.app[SETTINGS]
    caller = request[CALLER]
    is_json = request.content_type == "application/json"
    limit = settings.max_body_size if is_json else settings.max_upload_size
    data: bytes | AsyncIterator[bytes] | None = None
    accept_encoding = None
    length = request.content_length
    models_checked = caller.models is not None and is_json  # its model must be read, however large
    if request.body_exists:
        if length is not None and length > limit:
            raise PayloadTooLarge.over(limit)
        if (length is not None and length <= SMALL_BODY) or models_checked:
            data = await read_raw(request, request.app[BODY_LIMITS], limit)
            if models_checked:
                check_model(caller, await _model_of(data, request.headers.get("Content-Encoding"), limit))
            if is_json and _STREAM_TRUE.search(data):
                accept_encoding = "identity"  # a streamed reply is never compressed
        else:
            data = stream_raw(request, request.app[BODY_LIMITS], limit)
    listing = caller.models is not None and request.method == "GET" and path == "/v1/models"
    if listing:
        accept_encoding = "identity"  # the list is read and filtered here
    headers = header_rules.to_upstream(request.headers, accept_encoding)
    if isinstance(data, AsyncIterator) and length is not None:
        headers.append(("Content-Length", str(length)))  # streamed, not chunked, as the client sent it

    upstream = await request.app[UPSTREAM].request(
        request.method, path.removeprefix("/v1/"), headers=headers, data=data, query=query)
    if upstream.refuses_key:
        async with upstream:
            raise await upstream.error()
    if listing and upstream.status == 200:
        return await _allowed_models(upstream, caller)
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



async def _model_of(data: bytes, encoding: str | None, limit: int) -> object:
    """The ``model`` a JSON body names (None when it names none or is no JSON object: the upstream
    answers such a body itself)."""
    try:
        body = orjson.loads(await decode(data, encoding, limit) if encoding else data)
    except orjson.JSONDecodeError:
        return None
    return body.get("model") if isinstance(body, dict) else None


async def _allowed_models(upstream: UpstreamResponse, caller: Caller) -> web.Response:
    """``GET /v1/models`` as a key with a model allowlist sees it: only the models it may use."""
    async with upstream:
        body = await upstream.read()
    try:
        listing = orjson.loads(body)
        listing["data"] = [model for model in listing["data"]
                           if isinstance(model, dict) and caller.may_use(str(model.get("id")))]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise UpstreamError("the upstream's model list could not be read") from None
    kept = [(name, value) for name, value in header_rules.to_client(upstream.headers)
            if name.lower() not in _BODY_HEADERS]
    return web.Response(body=orjson.dumps(listing), content_type="application/json", headers=kept)
