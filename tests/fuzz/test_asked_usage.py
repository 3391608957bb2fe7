"""The usage the relay asks for, taken out again, and the token counts read from any bytes:
``WholeEvents`` loses and adds nothing however reads are cut; ``without_usage`` gives back exactly
the stream the client would have had without the relay's asking; ``tokens.reported`` gives counts
or None for any bytes, never an exception and never a count a database column cannot hold."""

from __future__ import annotations

import itertools
import json

import orjson
from hypothesis import given
from hypothesis import strategies as st

from gptrelay.wire.asked_usage import HOLD_AT_MOST, WholeEvents, body_asking_for_usage, without_usage
from gptrelay.wire.tokens import MOST, count, reported
from tests.fuzz.profiles import budget
from tests.fuzz.test_sse import streams


def cut(data: bytes, points: list[int]) -> list[bytes]:
    bounds = [0, *sorted({p % (len(data) + 1) for p in points}), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@budget()
@given(st.one_of(streams, st.binary(max_size=300)), st.lists(st.integers(min_value=0), max_size=12))
def test_whole_events_keep_every_byte(stream: bytes, points: list[int]) -> None:
    whole = WholeEvents()
    out = [whole.feed(piece) for piece in cut(stream, points)]
    assert b"".join(out) + whole.rest == stream
    for piece in out:
        assert not piece or piece.endswith((b"\n\n", b"\r\n\r\n", b"\r\r")) or len(piece) > HOLD_AT_MOST


_piece = st.text(max_size=12)


@st.composite
def openai_streams(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """The same reply as the upstream sends it when asked for usage, and as it sends it otherwise."""
    newline = draw(st.sampled_from([b"\n", b"\r\n"]))
    plain, asked = [], []
    for text in draw(st.lists(_piece, max_size=6)):
        chunk = orjson.dumps({"id": "c", "object": "chat.completion.chunk",
                              "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})
        plain.append(b"data: " + chunk + newline * 2)
        asked.append(b"data: " + chunk[:-1] + b',"usage":null}' + newline * 2)
        if draw(st.booleans()):
            plain.append(b": keep-alive" + newline * 2)
            asked.append(b": keep-alive" + newline * 2)
    usage = {"prompt_tokens": draw(st.integers(0, MOST)), "completion_tokens": draw(st.integers(0, MOST))}
    space = draw(st.sampled_from([b"", b" "]))
    asked.append(b'data: {"id":"c","choices":' + space + b"[]," + b'"usage":' + orjson.dumps(usage) + b"}"
                 + newline * 2)
    done = b"data: [DONE]" + newline * 2
    return b"".join(asked) + done, b"".join(plain) + done


@budget()
@given(openai_streams(), st.lists(st.integers(min_value=0), max_size=12))
def test_the_client_gets_the_stream_it_would_have_had(streams: tuple[bytes, bytes], points: list[int]) -> None:
    asked, plain = streams
    whole = WholeEvents()
    out = b"".join(without_usage(whole.feed(piece)) for piece in cut(asked, points))
    assert out + whole.rest == plain


@budget()
@given(st.one_of(st.binary(max_size=200), streams), st.lists(st.integers(min_value=0), max_size=6))
def test_without_usage_on_any_bytes(stream: bytes, points: list[int]) -> None:
    whole = WholeEvents()
    for piece in cut(stream, points):
        out = without_usage(whole.feed(piece))
        assert isinstance(out, bytes)


@budget()
@given(st.one_of(st.binary(max_size=200), st.builds(
    lambda prefix, digits, suffix: prefix + b'"usage":{"prompt_tokens":' + digits + b',"completion_tokens":' + digits
    + suffix, st.binary(max_size=20), st.integers(1, 6000).map(lambda n: b"7" * n), st.binary(max_size=20))))
def test_reported_counts_from_any_bytes(data: bytes) -> None:
    found = reported(data)
    assert found is None or all(count(n) is not None for n in found)


from tests.fuzz.test_completions import json_values  # noqa: E402

# What the gateway asks for usage in: JSON bodies that say "stream": true (a body that does not say
# so is never changed), and any bytes.
_stream_bodies = st.dictionaries(st.text(max_size=6), json_values, max_size=4).map(
    lambda body: json.dumps({**body, "stream": True}).encode())


@budget()
@given(st.one_of(st.binary(max_size=100), _stream_bodies))
def test_asking_for_usage_keeps_a_json_object_one(body: bytes) -> None:
    asked = body_asking_for_usage(body)
    if asked is None:
        return
    try:
        original = orjson.loads(body)
    except orjson.JSONDecodeError:
        return  # not JSON before either: the upstream answers it
    if isinstance(original, dict):
        assert orjson.loads(asked) == {"stream_options": {"include_usage": True}, **original}
