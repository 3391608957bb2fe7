"""Reading OpenAI's chat.completion.chunk events, and the /chat frames."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from gptrelay.errors import StreamCut, UpstreamError
from gptrelay.wire import frames
from gptrelay.wire.completions import CompletionReader
from gptrelay.wire.sse import SSEDecoder

RECORDED = (Path(__file__).parent / "fixtures" / "openai_stream.txt").read_bytes()


def chunk(**choice: object) -> bytes:
    return orjson.dumps({"choices": [{"index": 0, **choice}]})


def test_recorded_stream() -> None:
    reader = CompletionReader()
    decoder = SSEDecoder()
    texts = [t for data in decoder.feed_data(RECORDED) if (t := reader.read(data))]
    assert "".join(texts) == "你好！ I'm fine 😀\n\n Ça va?"
    assert " " in texts and "\n\n" in texts  # whitespace-only pieces are kept
    assert reader.finish_reason == "stop"
    assert reader.usage == {"prompt_tokens": 9, "completion_tokens": 10, "total_tokens": 19}
    assert reader.done
    reader.check_complete()


def test_role_tool_call_and_null_deltas_give_no_text() -> None:
    reader = CompletionReader()
    assert reader.read(chunk(delta={"role": "assistant", "content": ""})) is None
    assert reader.read(chunk(delta={"content": None})) is None
    assert reader.read(chunk(delta={"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]})) is None
    assert reader.read(chunk(delta={}, finish_reason="tool_calls")) is None
    assert reader.finish_reason == "tool_calls"


def test_empty_choices_are_tolerated() -> None:
    reader = CompletionReader()
    assert reader.read('{"id":"","choices":[],"prompt_filter_results":[]}') is None
    assert reader.read('{"choices":[],"usage":null}') is None


def test_error_event_raises_with_the_upstream_message() -> None:
    with pytest.raises(UpstreamError, match="The server had an error"):
        CompletionReader().read('{"error":{"message":"The server had an error","type":"server_error"}}')


def test_non_json_event_is_an_error() -> None:
    with pytest.raises(UpstreamError, match="not JSON"):
        CompletionReader().read("<html>")


def test_cut_stream_is_detected() -> None:
    reader = CompletionReader()
    reader.read(chunk(delta={"content": "hi"}))
    with pytest.raises(StreamCut):
        reader.check_complete()


def test_finish_reason_without_done_is_complete() -> None:
    reader = CompletionReader()
    reader.read(chunk(delta={}, finish_reason="length"))
    reader.check_complete()


def test_frames_are_one_json_object_per_line() -> None:
    assert b"".join(frames.content_parts("你\n")) == '{"done":false,"error":false,"content":"你\\n"}\n'.encode()
    assert orjson.loads(frames.error("bad")) == {"done": False, "error": True, "content": "bad"}
    assert frames.done() == b'{"done":true,"error":false,"content":"[DONE]"}\n'
    assert orjson.loads(frames.done("length", {"total_tokens": 3})) == {
        "done": True, "error": False, "content": "[DONE]", "finish_reason": "length",
        "usage": {"total_tokens": 3}}
    assert orjson.loads(frames.KEEPALIVE) == {"done": False, "error": False, "content": ""}
