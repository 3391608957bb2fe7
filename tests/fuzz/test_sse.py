"""The SSE decoder against any bytes, cut anywhere: no exception, the same events however the
bytes are cut, the events a plain reading of the WHATWG algorithm gives, and events round-trip.

``reference`` below is that plain reading, on the whole input at once, with the decoder's two
documented choices: an event still open when the stream ends is dispatched (``flush``), and
``retry`` travels with the next event instead of being applied on the spot.
"""

from __future__ import annotations

import itertools
import re

from hypothesis import given
from hypothesis import strategies as st

from gptrelay.wire.sse import Event, SSEDecoder, ends_an_event, terminated
from tests.fuzz.profiles import budget

# Pieces that make up interesting event streams; anything else comes from st.binary().
TOKENS = [b"data", b"data:", b"data: ", b":", b": ping", b"event:", b"event: x", b"id:", b"id: 7", b"retry:",
          b"retry: 10", b"\n", b"\r", b"\r\n", b"\n\n", b"\r\n\r\n", b" ", b"0", b"42", b"\x00", b"\xef\xbb\xbf",
          "你".encode(), "你".encode()[:2], b"\xff", b"\x80", b"x", b"[DONE]", b'{"a":1}', b"\t", b"DATA:"]
streams = st.lists(st.one_of(st.sampled_from(TOKENS), st.binary(max_size=8)), max_size=60).map(b"".join)


def cut(data: bytes, points: list[int]) -> list[bytes]:
    bounds = [0, *sorted({p % (len(data) + 1) for p in points}), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def decode(pieces: list[bytes]) -> tuple[list[Event], bytes]:
    decoder = SSEDecoder()
    events = [event for piece in pieces for event in decoder.feed(piece)]
    return events + decoder.flush(), decoder.rest


def feed_data(pieces: list[bytes]) -> list[bytes]:
    decoder = SSEDecoder()
    data = [d for piece in pieces for d in decoder.feed_data(piece)]
    return data + [event.data.encode() for event in decoder.flush()]


_LINE = re.compile(rb"\r\n|\r|\n")


def reference(stream: bytes) -> list[tuple[str, str, str | None, int | None]]:
    """(data, event, id, retry) of each event, read line by line as the HTML standard says."""
    if stream.startswith(b"\xef\xbb\xbf"):
        stream = stream[3:]
    events = []
    data: list[bytes] | None = None
    kind, last_id, retry = b"", None, None
    lines = _LINE.split(stream)
    for n, line in enumerate(lines):
        if line == b"" and n < len(lines) - 1:  # a blank line (a last empty piece is no line)
            if data is not None:
                events.append((b"\n".join(data).decode("utf-8", "replace"),
                               kind.decode("utf-8", "replace") or "message", last_id, retry))
                retry = None
            data, kind = None, b""
            continue
        if line.startswith(b":") or line == b"":
            continue
        name, colon, value = line.partition(b":")
        if colon and value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            data = [*(data or []), value]
        elif name == b"event":
            kind = value
        elif name == b"id" and b"\0" not in value:
            last_id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():
            retry = int(value)
    if data is not None:  # the stream ended inside an event: flush() still gives it
        events.append((b"\n".join(data).decode("utf-8", "replace"), kind.decode("utf-8", "replace") or "message",
                       last_id, retry))
    return events


def fields(events: list[Event]) -> list[tuple[str, str, str | None, int | None]]:
    return [(e.data, e.event, e.id, e.retry) for e in events]


@budget()
@given(streams, st.lists(st.integers(min_value=0), max_size=12))
def test_any_bytes_cut_anywhere_give_the_events_the_standard_gives(stream: bytes, points: list[int]) -> None:
    pieces = cut(stream, points)
    events, rest = decode(pieces)
    assert fields(events) == reference(stream)
    assert decode([stream]) == (events, rest)
    # Nothing is lost or made up: the events' bytes and what is left are the input (less a BOM).
    body = stream[3:] if stream.startswith(b"\xef\xbb\xbf") else stream
    assert b"".join(e.raw for e in events) + rest == body


@budget()
@given(streams, st.lists(st.integers(min_value=0), max_size=12))
def test_feed_data_gives_the_same_data_as_feed(stream: bytes, points: list[int]) -> None:
    pieces = cut(stream, points)
    data = feed_data(pieces)
    # feed_data keeps bytes as they came where it can: the same text once decoded as a reader does.
    assert [d.decode("utf-8", "replace") for d in data] == [e.data for e in decode(pieces)[0]]


@budget()
@given(st.lists(st.binary(max_size=50), max_size=20))
def test_arbitrary_reads_never_raise(reads: list[bytes]) -> None:
    decoder = SSEDecoder()
    for read in reads:
        assert all(isinstance(e, Event) for e in decoder.feed(read))
        assert all(isinstance(d, bytes) for d in SSEDecoder().feed_data(read))
    decoder.flush()


_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"), max_size=12)
_events = st.builds(
    lambda data, kind, id_, retry: (data, kind, id_, retry),
    st.lists(_text, min_size=1, max_size=3).map("\n".join),
    st.one_of(st.none(), _text.filter(lambda t: t != "")),
    st.one_of(st.none(), _text.filter(lambda t: "\0" not in t)),
    st.one_of(st.none(), st.integers(min_value=0, max_value=10**12)),
)


def encode(event: tuple[str, str | None, str | None, int | None], newline: bytes, comment: bool,
           spaced: bool) -> bytes:
    data, kind, id_, retry = event
    sep = b": " if spaced else b":"
    lines = [b": keep-alive"] if comment else []
    if kind is not None:
        lines.append(b"event" + sep + kind.encode())
    if id_ is not None:
        lines.append(b"id" + sep + id_.encode())
    if retry is not None:
        lines.append(b"retry" + sep + str(retry).encode())
    lines += [b"data" + sep + line.encode() for line in data.split("\n")]
    return newline.join(lines) + newline + newline


Fields = tuple[str, str | None, str | None, int | None]


@budget()
@given(st.lists(st.tuples(_events, st.booleans(), st.booleans()), max_size=8),
       st.sampled_from([b"\n", b"\r\n", b"\r"]), st.lists(st.integers(min_value=0), max_size=12))
def test_events_round_trip(events: list[tuple[Fields, bool, bool]], newline: bytes, points: list[int]) -> None:
    stream = b"".join(encode(event, newline, comment, spaced) for event, comment, spaced in events)
    decoded, rest = decode(cut(stream, points))
    assert rest == b""
    assert fields(decoded) == expected(events)


def expected(events: list[tuple[Fields, bool, bool]]) -> list[tuple[str, str, str | None, int | None]]:
    """What a reader makes of the events: the last id carries over, and when a value was written
    without a space after the colon, one leading space of its own is taken for the separator."""
    out = []
    last_id = None
    for (data, kind, id_, retry), _, spaced in events:
        def value(text: str, spaced: bool = spaced) -> str:
            return text[1:] if not spaced and text.startswith(" ") else text
        if id_ is not None:
            last_id = value(id_)
        out.append(("\n".join(value(line) for line in data.split("\n")),
                    (value(kind) if kind is not None else "") or "message", last_id, retry))
    return out


@budget()
@given(streams)
def test_an_event_written_after_terminated_bytes_is_read_whole(stream: bytes) -> None:
    ended = terminated(stream)
    assert ended.startswith(stream) and ends_an_event(ended)
    events = reference(ended + b"data: [DONE]\n\n")
    assert events[-1][0] == "[DONE]"
    if ends_an_event(stream):
        assert ended == stream
