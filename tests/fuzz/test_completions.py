"""The OpenAI chunk reader and the ``/chat`` frame writer against any chunk an upstream could send:
valid, truncated, of the wrong types, with huge numbers, deep nesting, lone surrogates or bytes that
are no UTF-8. Each event gives text (a string) or nothing, or raises the relay's own error; every
frame written is one line of JSON whose ``content`` is a string.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from gptrelay.errors import RelayError
from gptrelay.routes.continuation import Rounds
from gptrelay.wire import frames
from gptrelay.wire.completions import CompletionReader, error_code, error_message
from tests.fuzz.profiles import budget

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=10))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)), max_leaves=12)


def anything_or(*shapes: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(json_values, *shapes)


deltas = anything_or(st.fixed_dictionaries({}, optional={
    "role": anything_or(st.just("assistant")), "content": anything_or(st.text()),
    "tool_calls": json_values, "refusal": json_values}))
choices = anything_or(st.lists(anything_or(st.fixed_dictionaries({}, optional={
    "index": json_values, "delta": deltas,
    "finish_reason": anything_or(st.sampled_from(["stop", "length", "tool_calls", "content_filter"]))})),
    max_size=2))
usages = anything_or(st.fixed_dictionaries({}, optional={
    "prompt_tokens": anything_or(st.integers(min_value=0)), "completion_tokens": anything_or(st.integers()),
    "total_tokens": json_values}))
chunks = anything_or(st.fixed_dictionaries({}, optional={
    "id": json_values, "object": json_values, "choices": choices, "usage": usages,
    "error": anything_or(st.fixed_dictionaries({}, optional={"message": json_values, "code": json_values,
                                                             "type": json_values}))}))


def dump(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:  # integers past 64 bits: written as JSON can
        return repr(value).encode()


@st.composite
def event_data(draw: st.DrawFn) -> bytes | str:
    data = dump(draw(chunks))
    mangle = draw(st.sampled_from(["none", "truncate", "surrogate", "bad-utf8", "deep", "huge", "bytes", "text"]))
    if mangle == "truncate" and data:
        data = data[:draw(st.integers(0, len(data) - 1))]
    elif mangle == "surrogate":
        data = data.replace(b'"', b'"\\ud800', 1)
    elif mangle == "bad-utf8":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xe4\xbd"])) + data[at:]
    elif mangle == "deep":
        depth = draw(st.integers(1, 3000))
        data = b'{"choices":' + b"[" * depth + b"]" * depth + b"}"
    elif mangle == "huge":
        data = b'{"choices":[{"delta":{"content":"x"},"finish_reason":' + b"9" * draw(st.integers(1, 6000)) + b"}]}"
    elif mangle == "bytes":
        data = draw(st.binary(max_size=30))
    if draw(st.booleans()):
        return data.decode("utf-8", "replace")  # the decoder's slow path hands over text
    return data


@budget()
@given(st.lists(event_data(), max_size=6), st.integers(0, 3))
def test_any_chunks_give_frames_or_the_relays_own_errors(events: list[bytes | str], continuations: int) -> None:
    reader = CompletionReader()
    written: list[bytes] = []
    kept: list[str] = []
    for data in events:
        try:
            text = reader.read(data)
        except RelayError as error:
            written.append(frames.error(error.message))
            break
        assert text is None or isinstance(text, str)
        if text:
            written.append(b"".join(frames.content_parts(text)))
            kept.append(text)
    assert reader.finish_reason is None or isinstance(reader.finish_reason, str)
    assert reader.usage is None or isinstance(reader.usage, dict)
    try:
        reader.check_complete()
    except RelayError as error:
        written.append(frames.error(error.message))
    rounds = Rounds(orjson.dumps({"messages": [{"role": "user", "content": "hi"}]}), continuations)
    rounds.text = kept if continuations else None
    rounds.finished(reader.finish_reason, reader.usage)
    assert rounds.usage is None or isinstance(rounds.usage, dict)
    written.append(frames.done(reader.finish_reason, rounds.usage, rounds.count if rounds.limit else None))
    for frame in written:
        assert frame.endswith(b"\n") and frame.count(b"\n") == 1
        parsed = orjson.loads(frame)
        assert set(parsed) >= {"done", "error", "content"} and isinstance(parsed["content"], str)
    assert orjson.loads(written[-1])["done"] is True


@budget()
@given(json_values)
def test_error_envelopes_of_any_shape(body: Any) -> None:
    message, code = error_message(body), error_code(body)
    assert message is None or isinstance(message, str)
    assert code is None or isinstance(code, str)
    assert orjson.loads(frames.error(message or "x"))["error"] is True


@budget()
@given(st.text())
def test_any_text_is_one_frame_line(text: str) -> None:
    frame = b"".join(frames.content_parts(text)) if text.encode("utf-8", "surrogatepass") else b""
    try:
        text.encode()
    except UnicodeEncodeError:
        return  # no text the reader gives holds a lone surrogate (orjson refuses them when parsing)
    if frame:
        assert frame.count(b"\n") == 1 and orjson.loads(frame)["content"] == text
