"""The /chat hot path shared by every candidate stack: upstream SSE bytes in, NDJSON frames out.

Deliberately small and the same for each stack, so the stacks differ only in server and client.
"""

from __future__ import annotations

import orjson

DONE_FRAME = b'{"done":true,"error":false,"content":"[DONE]"}\n'
UPSTREAM_PATH = "/chat/completions"
SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",
}
NDJSON_HEADERS = {
    "Content-Type": "application/x-ndjson; charset=utf-8",
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",
}


def upstream_body(raw: bytes) -> bytes:
    """The client's /chat body, asked to stream."""
    body = orjson.loads(raw)
    body.setdefault("model", "gpt-4o-mini")
    body["stream"] = True
    return orjson.dumps(body)


class Reframer:
    """Incremental SSE -> NDJSON: ``feed(bytes) -> bytes`` of complete frames."""

    __slots__ = ("buffer", "done", "finish")

    def __init__(self) -> None:
        self.buffer = b""
        self.finish: str | None = None
        self.done = False

    def feed(self, data: bytes) -> bytes:
        buffer = self.buffer + data
        *events, self.buffer = buffer.split(b"\n\n")
        out: list[bytes] = []
        for event in events:
            for line in event.split(b"\n"):
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    self.done = True
                    continue
                chunk = orjson.loads(payload)
                choices = chunk.get("choices")
                if not choices:
                    continue
                choice = choices[0]
                content = (choice.get("delta") or {}).get("content")
                if content:
                    out.append(orjson.dumps({"done": False, "error": False, "content": content}))
                    out.append(b"\n")
                if choice.get("finish_reason"):
                    self.finish = choice["finish_reason"]
        return b"".join(out)

    def close(self) -> bytes:
        if self.finish:
            return orjson.dumps({"done": True, "error": False, "content": "[DONE]",
                                 "finish_reason": self.finish}) + b"\n"
        return DONE_FRAME
