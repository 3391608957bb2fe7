"""What a stream of ``chat.completion.chunk`` events says: text, finish reason, usage.

Knows OpenAI's chunk shape and nothing of HTTP or of how frames are written.
Tolerates what real upstreams send: chunks with empty ``choices`` (Azure's
prompt filter, the final usage chunk), role-only and tool-call deltas, null
content, and a missing ``[DONE]`` after a finish reason.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from gptrelay.errors import StreamCut, UpstreamError, redact

DONE = "[DONE]"
_DONE = b"[DONE]"


def error_message(body: Any) -> str | None:
    """The message of an OpenAI error envelope ``{"error": {"message": …}}``, if that is what this is."""
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict):
        message = error.get("message")
        return str(message) if message else str(error.get("code") or error.get("type") or "error")
    if isinstance(error, str):
        return error
    return None


_CODE = re.compile(r"[a-z0-9_.\-]{1,64}")


def error_code(body: Any) -> str | None:
    """The ``code`` (else ``type``) of an OpenAI error envelope when it is a plain identifier
    (``invalid_api_key``, ``unsupported_country_region_territory``): safe to repeat anywhere."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None
    for field in ("code", "type"):
        value = error.get(field)
        if isinstance(value, str) and _CODE.fullmatch(value):
            return value
    return None


class CompletionReader:
    """Reads one streamed chat completion, event by event (each event's data, as bytes or text)."""

    __slots__ = ("done", "finish_reason", "pieces", "usage")

    def __init__(self) -> None:
        self.done = False
        self.pieces = 0  # content deltas read: about one token each
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None

    def read(self, data: bytes | str) -> str | None:
        """The text this event adds to the reply (``None`` if none); raises on an error event."""
        if data in (_DONE, DONE):
            self.done = True
            return None
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            if isinstance(data, bytes):  # not UTF-8? Read it as the text decoder would.
                return self.read(data.decode("utf-8", "replace"))
            raise UpstreamError(f"the upstream sent an event that is not JSON: {data[:80]!r}") from None
        if not isinstance(chunk, dict):
            return None
        choices = chunk.get("choices")
        if choices:
            # Parts of another shape than OpenAI's (a choice, delta or usage that is no object,
            # content or a finish reason that is no string) say nothing: they are passed over.
            choice = choices[0] if isinstance(choices, list) else None
            if not isinstance(choice, dict):
                return None
            reason = choice.get("finish_reason")
            if reason and isinstance(reason, str):
                self.finish_reason = reason
            delta = choice.get("delta")
            if delta and isinstance(delta, dict):
                content = delta.get("content")
                if content and isinstance(content, str):
                    self.pieces += 1
                    return content
            return None
        usage = chunk.get("usage")
        if usage and isinstance(usage, dict):
            self.usage = usage
            return None
        message = error_message(chunk)
        if message is not None:
            raise UpstreamError(f"upstream error: {redact(message)}")
        return None

    def check_complete(self) -> None:
        """Raise unless the upstream said the reply is over (``[DONE]`` or a finish reason)."""
        if not self.done and self.finish_reason is None:
            raise StreamCut("the upstream stream was cut off before the reply was complete")
