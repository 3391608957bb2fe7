"""``/v1/{path}``: an OpenAI-compatible gateway that streams both ways.

Method, path, query and end-to-end headers go upstream as sent, with the
relay's credentials instead of the client's; the reply's status, headers
and body come back as they arrive, never decoded or buffered whole. The
request body goes as sent too (compressed or not), with framing that matches
its bytes. Paths with ``.`` or ``..`` segments are refused, never forwarded.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import AsyncIterator, Awaitable, Mapping
from urllib.parse import unquote

import orjson
from aiohttp import web

from gptrelay.auth.caller import Caller
from gptrelay.errors import BadRequest, PayloadTooLarge, RelayError, UpstreamError, report
from gptrelay.http import headers as header_rules
from gptrelay.http.bodies import WBITS, decode, read_raw, stream_raw
from gptrelay.http.streaming import SSE_DONE, SSE_PING, STREAM_HEADERS, sse_error
from gptrelay.limits.admission import check_model
from gptrelay.observe.ids import keep_upstream_id
from gptrelay.state import BODY_LIMITS, CALLER, METER, SETTINGS, UPSTREAM
from gptrelay.upstream.transport import UpstreamResponse
from gptrelay.usage.meter import Meter
from gptrelay.wire.asked_usage import WholeEvents, body_asking_for_usage, without_nulls, without_usage_chunk
from gptrelay.wire.sse import terminated
from gptrelay.wire.tokens import MARK

# Bodies up to this size are read whole (they are JSON, almost always); larger ones stream.
SMALL_BODY = 1024 * 1024
# `"stream": true` in a JSON body; inside a string its quotes would be escaped, so no false match.
_STREAM_TRUE = re.compile(rb'"stream"\s*:\s*true')
_DOT_SEGMENTS = frozenset({".", ".."})
# Where a streamed reply's usage can be asked for (``stream_options``), for the record.
_ASKS_USAGE = frozenset({"/v1/chat/completions", "/v1/completions"})
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
    meter = request[METER]
    is_json = request.content_type == "application/json"
    limit = settings.max_body_size if is_json else settings.max_upload_size
    data: bytes | AsyncIterator[bytes] | None = None
    accept_encoding = None
    hide_usage = False  # the relay asked for the usage chunk: the client gets the stream without it
    length = request.content_length
    models_checked = caller.models is not None and is_json  # its model must be read, however large
    if request.body_exists:
        if length is not None and length > limit:
            raise PayloadTooLarge.over(limit)
        if (length is not None and length <= SMALL_BODY) or models_checked:
            data = await read_raw(request, request.app[BODY_LIMITS], limit)
            if models_checked:
                check_model(caller, await _model_of(data, request.headers.get("Content-Encoding"), limit))
            meter.prompt_size = len(data)
            if is_json and _STREAM_TRUE.search(data):
                accept_encoding = "identity"  # a streamed reply is never compressed
                if path in _ASKS_USAGE and "Content-Encoding" not in request.headers:
                    asked = body_asking_for_usage(data)  # None: the client chose for itself
                    if asked is not None:
                        data, hide_usage = asked, True
            if is_json:
                meter.model = _model_named(data)
        else:
            data = stream_raw(request, request.app[BODY_LIMITS], limit)
            meter.prompt_size = length or 0
    listing = caller.models is not None and request.method == "GET" and path == "/v1/models"
    if listing:
        accept_encoding = "identity"  # the list is read and filtered here
    headers = header_rules.to_upstream(request.headers, accept_encoding)
    if isinstance(data, AsyncIterator) and length is not None:
        headers.append(("Content-Length", str(length)))  # streamed, not chunked, as the client sent it

    upstream = await request.app[UPSTREAM].request(
        request.method, path.removeprefix("/v1/"), headers=headers, data=data, query=query, model=meter.model)
    keep_upstream_id(request, upstream.headers)
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
        meter.status = upstream.status
        if upstream.status >= 400:
            meter.outcome = "error"
        await response.prepare(request)
        meter.sent_first_byte()
        if streaming:
            upstream.keep_alive(lambda: response.write(SSE_PING))
        end = _StreamEnd(meter, response, hide_usage) if streaming else _BodyEnd(meter, response, upstream.headers)
        try:
            await upstream.pump(end.write)
        except RelayError as error:
            report(error, request.method, request.path)
            meter.failed(meter.status if meter.status >= 400 else 502, "cut")
            if not streaming:
                await meter.commit()
                # The body's framing is left unfinished: the client sees it is incomplete.
                if request.transport is not None:
                    request.transport.close()
                return response
            assert isinstance(end, _StreamEnd)  # (a body's returned above)
            await end.fail(error)
        last = await end.finish()
    await response.write_eof(last)  # the end's bytes and the body's end in one write
    return response



_MODEL = re.compile(rb'"model"\s*:\s*"([^"\\]{1,200})"')


def _model_named(data: bytes) -> str | None:
    """The model a JSON body names, found without parsing it (the first ``"model": "…"``)."""
    found = _MODEL.search(data)
    return found.group(1).decode("utf-8", "replace") if found else None


class _StreamEnd:
    """An event stream's reads go to the client as they come; the usage they report goes to the
    meter; a final ``data: [DONE]`` waits until the record is committed. When the relay asked for
    the usage chunk itself, the client gets the stream without it (``wire.asked_usage``): whole
    events then, the bytes of one cut by a network read going with the read that completes it."""

    __slots__ = ("_done", "_end", "_meter", "_whole", "_write")

    def __init__(self, meter: Meter, response: web.StreamResponse, hide_usage: bool = False) -> None:
        self._meter = meter
        self._write = response.write
        self._done = b""
        self._end = b""  # the last bytes written (at least 4 when there are): whether an event is open
        self._whole = WholeEvents() if hide_usage else None

    def write(self, chunk: bytes) -> Awaitable[None] | None:
        meter = self._meter
        whole = self._whole
        if whole is not None:
            chunk = whole.feed(chunk)
            if not chunk:
                return None
            chunk, events = without_nulls(chunk)  # each event but the usage chunk had one
            meter.reply_size += events or chunk.count(b"data:")  # events: about a token each, for an estimate
            if chunk.rfind(MARK) >= 0:  # (backward: see wire.asked_usage)
                meter.read_usage(chunk)
                chunk = without_usage_chunk(chunk)
        else:
            if chunk.rfind(MARK) >= 0:
                meter.read_usage(chunk)
            meter.reply_size += chunk.count(b"data:")
        if chunk.endswith(SSE_DONE):
            self._done = SSE_DONE
            chunk = chunk[:-len(SSE_DONE)]
            if not chunk:
                return None
        self._end = chunk if len(chunk) >= 4 else (self._end + chunk)[-4:]
        return self._write(chunk)

    async def fail(self, error: RelayError) -> None:
        """The upstream broke off: the half event it left is dropped (when events are held whole) or
        ended (when reads went on as they came), and the relay's error event follows, whole."""
        if self._whole is not None:
            self._whole.rest = b""
        end = self._end
        await self._write(terminated(end)[len(end):] + sse_error(error))

    async def finish(self) -> bytes:
        """Commit the record; the bytes that end the stream (``data: [DONE]`` if it came)."""
        if self._whole is not None and self._whole.rest:  # the upstream stopped inside an event
            await self._write(self._whole.rest)
        await self._meter.commit()
        return self._done


class _BodyEnd:
    """A body's reads go to the client one read late, so that its last bytes wait until the
    record is committed. The usage a JSON reply reports is at its end: the end is kept (inflated
    on the side when the reply is compressed, as it passes through compressed)."""

    __slots__ = ("_held", "_inflater", "_meter", "_tail", "_write")

    def __init__(self, meter: Meter, response: web.StreamResponse, headers: Mapping[str, str]) -> None:
        self._meter = meter
        self._write = response.write
        self._held = b""
        self._tail = b""  # the (inflated) end of what was written
        wbits = WBITS.get(headers.get("Content-Encoding", "").lower())
        json = headers.get("Content-Type", "").startswith("application/json")
        self._inflater = zlib.decompressobj(wbits) if wbits is not None and json else None

    def write(self, chunk: bytes) -> Awaitable[None] | None:
        held, self._held = self._held, chunk
        if not held:
            return None
        self._keep(held)
        return self._write(held)

    def _keep(self, data: bytes) -> None:
        if self._inflater is not None:
            try:
                data = self._inflater.decompress(data)
            except zlib.error:
                self._inflater = None
                return
        self._tail = (self._tail + data)[-4096:]

    async def finish(self) -> bytes:
        """Commit the record; the body's last bytes, held until then."""
        meter = self._meter
        meter.prompt, meter.completion = 0, 0  # a body that reports no usage used no tokens
        self._keep(self._held)
        if MARK in self._tail:
            meter.read_usage(self._tail)
        await meter.commit()
        return self._held


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
