"""OpenAI's wire format: chat completion chunks, error bodies, Responses events."""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

import orjson

CREATED = int(time.time())

ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", "invalid_value", "Invalid value for 'messages'."),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
    ),
    403: ("invalid_request_error", "unsupported_country_region_territory",
          "Country, region, or territory not supported"),
    404: ("invalid_request_error", "model_not_found",
          "The model `no-such-model` does not exist or you do not have access to it."),
    429: ("requests", "rate_limit_exceeded",
          "Rate limit reached for gpt-4o-mini in organization org-fake on requests "
          "per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    503: ("server_error", None, "The engine is currently overloaded, please try again later"),
}


def error_body(status: int, message: str | None = None) -> dict[str, Any]:
    kind, code, default = ERRORS.get(status, ("server_error", None, f"Upstream error {status}"))
    return {"error": {"message": message or default, "type": kind, "param": None, "code": code}}


def event(data: Any) -> bytes:
    """One server-sent event as OpenAI writes it."""
    payload = data if isinstance(data, bytes) else orjson.dumps(data)
    return b"data: " + payload + b"\n\n"


DONE = b"data: [DONE]\n\n"


class ChunkWriter:
    """Builds ``chat.completion.chunk`` events for one response."""

    def __init__(self, model: str, *, usage: bool = False, request_id: str = "chatcmpl-fake") -> None:
        self.base = {
            "id": request_id,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "system_fingerprint": "fp_fake",
        }
        self.usage = usage

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        body: dict[str, Any] = {
            **self.base,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if self.usage:
            body["usage"] = None
        return event(body)

    def role(self) -> bytes:
        return self.chunk({"role": "assistant", "content": "", "refusal": None})

    def content(self, text: str) -> bytes:
        return self.chunk({"content": text})

    def finish(self, reason: str) -> bytes:
        return self.chunk({}, reason)

    def usage_chunk(self, prompt: int, completion: int) -> bytes:
        return event({
            **self.base,
            "choices": [],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion},
        })

    def prompt_filter(self) -> bytes:
        """Azure's first chunk: empty ``choices`` and the prompt's filter results."""
        return event({
            "id": "", "object": "", "created": 0, "model": "", "choices": [],
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {
                "hate": {"filtered": False, "severity": "safe"}}}],
        })


def completion(model: str, text: str, finish_reason: str, prompt_tokens: int) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": CREATED,
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": None},
            "logprobs": None,
            "finish_reason": finish_reason,
        }],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(text),
                  "total_tokens": prompt_tokens + len(text)},
    }


@lru_cache(maxsize=64)
def bench_events(model: str, chunks: int, size: int, usage: bool = False) -> tuple[bytes, ...]:
    """The benchmark's stream, built once per shape (with the usage chunk, and ``"usage":null`` in
    every other chunk, when the request asked for it, as OpenAI does)."""
    writer = ChunkWriter(model, usage=usage)
    piece = ("x" * (size - 1) + " ") if size > 0 else ""
    return (writer.role(), *(writer.content(piece) for _ in range(chunks)),
            writer.finish("stop"), *((writer.usage_chunk(9, chunks),) if usage else ()), DONE)


def responses_events(model: str, text_pieces: list[str]) -> list[bytes]:
    """A streamed Responses API call: typed events with ``event:`` lines."""
    response = {
        "id": "resp_fake", "object": "response", "created_at": CREATED, "model": model,
        "status": "in_progress", "output": [], "parallel_tool_calls": True,
        "tool_choice": "auto", "tools": [],
    }
    seq = 0
    out: list[bytes] = []

    def emit(kind: str, **data: Any) -> None:
        nonlocal seq
        payload = orjson.dumps({"type": kind, "sequence_number": seq, **data})
        out.append(b"event: " + kind.encode() + b"\ndata: " + payload + b"\n\n")
        seq += 1

    emit("response.created", response=response)
    item = {"id": "msg_fake", "type": "message", "role": "assistant", "status": "in_progress", "content": []}
    emit("response.output_item.added", output_index=0, item=item)
    for piece in text_pieces:
        emit("response.output_text.delta", item_id="msg_fake", output_index=0,
             content_index=0, delta=piece)
    text = "".join(text_pieces)
    part = {"type": "output_text", "text": text, "annotations": []}
    done_item = {**item, "status": "completed", "content": [part]}
    emit("response.output_text.done", item_id="msg_fake", output_index=0, content_index=0, text=text)
    emit("response.output_item.done", output_index=0, item=done_item)
    emit("response.completed", response={**response, "status": "completed", "output": [done_item],
                                         "usage": {"input_tokens": 5, "output_tokens": len(text_pieces),
                                                   "total_tokens": 5 + len(text_pieces)}})
    return out
