"""What ``/chat`` and ``/chatgpt`` share: the request body read and checked, then sent upstream."""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson
from aiohttp import web

from gptrelay.errors import BadRequest, Unprocessable
from gptrelay.http.bodies import decode, read_raw
from gptrelay.http.headers import USER_AGENT
from gptrelay.http.streaming import Stream
from gptrelay.limits.admission import check_model
from gptrelay.observe.ids import keep_upstream_id
from gptrelay.state import BODY_LIMITS, CALLER, METER, SETTINGS, UPSTREAM
from gptrelay.upstream.transport import UpstreamResponse

# What the relay sends upstream for a chat: JSON in, an uncompressed event stream out.
CHAT_HEADERS = (
    ("Content-Type", "application/json"),
    ("Accept", "text/event-stream"),
    ("Accept-Encoding", "identity"),
    ("User-Agent", USER_AGENT),
)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise BadRequest('the request body is empty: send a JSON object such as {"messages": [...]}')
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise BadRequest(f"the request body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


def check_chat(body: dict[str, Any], default_model: str) -> bytes:
    """Validate a chat request and return the upstream's body: streamed, with a model."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Unprocessable("'messages' must be a non-empty array of {role, content} objects")
    for n, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise Unprocessable(f"'messages[{n}]' must be an object with a string 'role'")
    model = body.get("model")
    if model is None or model == "":
        body["model"] = default_model
    elif not isinstance(model, str):
        raise Unprocessable("'model' must be a string")
    body["stream"] = True
    # A copy: orjson returns its 4 KiB working buffer, and this body lives as long as the stream.
    return bytes(memoryview(orjson.dumps(body)))


class ChatRequest(NamedTuple):
    payload: bytes  # the upstream's body
    wants_usage: bool  # the client asked for the usage chunk itself (the relay always asks for it)


def ask_for_usage(body: dict[str, Any]) -> bool:
    """Ask the upstream for the usage chunk; whether the client had asked for it itself."""
    options = body.get("stream_options")
    if options is None:
        body["stream_options"] = {"include_usage": True}
        return False
    if isinstance(options, dict):
        asked = options.get("include_usage") is True
        options["include_usage"] = True
        return asked
    return True  # (not an object: the upstream says what it makes of it)


async def read_chat_request(request: web.Request) -> ChatRequest:
    """The upstream's body for this request; raises ``BadRequest`` and kin for bad input.
    A compressed body is inflated here, after the key check, up to the body limit. The
    relay asks the upstream for the usage chunk (for the usage record)."""
    settings = request.app[SETTINGS]
    limit = settings.max_body_size
    raw = await read_raw(request, request.app[BODY_LIMITS], limit)
    encoding = request.headers.get("Content-Encoding")
    if encoding is not None:
        raw = await decode(raw, encoding, limit)
    body = parse_json_object(raw)
    wants_usage = ask_for_usage(body)
    payload = check_chat(body, settings.default_model)
    meter = request[METER]
    meter.model = body["model"]
    meter.prompt_size = len(raw)
    check_model(request[CALLER], body["model"])
    return ChatRequest(payload, wants_usage)


async def open_chat(request: web.Request, payload: bytes, stream: Stream) -> UpstreamResponse:
    """Send the chat upstream, keeping ``stream`` alive while it thinks; an error status raises
    ``UpstreamStatus`` with the upstream's own message."""
    upstream = await request.app[UPSTREAM].request(
        "POST", "chat/completions", headers=CHAT_HEADERS, data=payload, on_wait=stream.keepalive,
        model=request[METER].model)
    keep_upstream_id(request, upstream.headers)
    if upstream.status >= 400:
        async with upstream:
            raise await upstream.error()
    return upstream
