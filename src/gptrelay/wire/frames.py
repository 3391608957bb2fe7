"""The ``/chat`` stream's frames: one JSON object per line.

``{"done":false,"error":false,"content":"…"}`` for each piece of text,
``{"done":false,"error":true,"content":"…"}`` for an error, and always one
``{"done":true,"error":false,"content":"[DONE]"}`` last.
"""

from __future__ import annotations

from typing import Any

import orjson

CONTENT_TYPE = "application/x-ndjson; charset=utf-8"

_CONTENT = b'{"done":false,"error":false,"content":'
_END = b"}\n"
KEEPALIVE = _CONTENT + b'""}\n'
DONE = b'{"done":true,"error":false,"content":"[DONE]"}\n'


def content_parts(text: str) -> tuple[bytes, bytes, bytes]:
    """The content frame for ``text``, in three parts: a read's frames are joined at once."""
    return _CONTENT, orjson.dumps(text), _END


def error(message: str) -> bytes:
    return b'{"done":false,"error":true,"content":' + orjson.dumps(message) + b"}\n"


def done(finish_reason: str | None = None, usage: dict[str, Any] | None = None, rounds: int | None = None) -> bytes:
    if finish_reason is None and usage is None and rounds is None:
        return DONE
    frame: dict[str, Any] = {"done": True, "error": False, "content": "[DONE]"}
    if finish_reason is not None:
        frame["finish_reason"] = finish_reason
    if usage is not None:
        frame["usage"] = usage
    if rounds is not None:
        frame["rounds"] = rounds  # CHAT_MAX_CONTINUATIONS: the upstream requests this reply took
    return orjson.dumps(frame) + b"\n"
