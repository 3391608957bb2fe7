"""The SSE decoder: events reassembled whatever way the bytes were cut."""

from __future__ import annotations

import itertools
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from gptrelay.wire.sse import Event, SSEDecoder

RECORDED = (Path(__file__).parent / "fixtures" / "openai_stream.txt").read_bytes()


def decode(pieces: list[bytes]) -> list[Event]:
    decoder = SSEDecoder()
    events = [event for piece in pieces for event in decoder.feed(piece)]
    return events + decoder.flush()


def cut(data: bytes, points: list[int]) -> list[bytes]:
    bounds = [0, *sorted(set(points)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def test_recorded_stream_whole() -> None:
    events = decode([RECORDED])
    assert [e.data for e in events][-1] == "[DONE]"
    assert len(events) == 14
    assert b"".join(e.raw for e in events) == RECORDED
    assert "你好" in events[1].data


def test_every_single_cut_position_gives_the_same_events() -> None:
    whole = decode([RECORDED])
    for position in range(1, len(RECORDED)):
        assert decode([RECORDED[:position], RECORDED[position:]]) == whole, position


def test_byte_by_byte() -> None:
    assert decode([bytes([b]) for b in RECORDED]) == decode([RECORDED])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(RECORDED) - 1), max_size=40))
def test_random_cuts_give_the_same_events(points: list[int]) -> None:
    assert decode(cut(RECORDED, points)) == decode([RECORDED])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"),
                     max_size=20), min_size=1, max_size=5),
    st.sampled_from([b"\n", b"\r\n", b"\r"]),
    st.lists(st.integers(min_value=1, max_value=500), max_size=10),
)
def test_any_text_any_line_ending_any_cuts(datas: list[str], newline: bytes, points: list[int]) -> None:
    stream = b"".join(b"data: " + d.encode() + newline + newline for d in datas)
    points = [p for p in points if p < len(stream)]
    assert [e.data for e in decode(cut(stream, points))] == datas


def test_crlf_split_between_cr_and_lf() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n\r") == []
    events = decoder.feed(b"\ndata: b\r\n\r\n")
    assert [e.data for e in events] == ["a", "b"]
    assert events[0].raw == b"data: a\r\n\r\n"


def test_utf8_character_cut_in_half() -> None:
    data = "data: 你好😀\n\n".encode()
    decoder = SSEDecoder()
    first = decoder.feed(data[:7])  # inside 你
    second = decoder.feed(data[7:-5])
    third = decoder.feed(data[-5:])
    assert first == second == []
    assert [e.data for e in third] == ["你好😀"]


def test_multiline_data_and_fields() -> None:
    events = decode([b"event: update\nid: 7\nretry: 100\ndata: line1\ndata:line2\ndata\n\n"])
    assert events == [Event("line1\nline2\n", "update", "7", 100,
                            b"event: update\nid: 7\nretry: 100\ndata: line1\ndata:line2\ndata\n\n")]


def test_comments_attach_to_the_next_event() -> None:
    events = decode([b": keep-alive\n\n: OPENROUTER PROCESSING\n\ndata: x\n\n"])
    assert [e.data for e in events] == ["x"]
    assert events[0].raw == b": keep-alive\n\n: OPENROUTER PROCESSING\n\ndata: x\n\n"


def test_comment_only_stream_has_no_events_and_keeps_its_bytes() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b": ping\n\n") == []
    assert decoder.flush() == []
    assert decoder.rest == b": ping\n\n"


def test_event_without_trailing_blank_line_is_kept_at_the_end() -> None:
    assert [e.data for e in decode([b"data: a\n\ndata: [DONE]"])] == ["a", "[DONE]"]
    assert [e.data for e in decode([b"data: a\n\ndata: [DONE]\n"])] == ["a", "[DONE]"]


def test_byte_order_mark_is_dropped_even_split() -> None:
    assert [e.data for e in decode([b"\xef", b"\xbb\xbfdata: x\n\n"])] == ["x"]


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    assert decode([b"data: \xff\n\n"])[0].data == "\ufffd"


def test_empty_data_field_dispatches_an_empty_event() -> None:
    assert [e.data for e in decode([b"data:\n\n"])] == [""]


# A stream with every kind of block: plain data events, comments, several fields, several
# data lines, an empty event, text cut mid-character anywhere.
MIXED = (b'data: {"a":1}\n\n: keep-alive\n\ndata: {"b":"\xe4\xbd\xa0\xe5\xa5\xbd"}\n\n'
         b"event: delta\nid: 7\ndata: two\ndata: lines\n\ndata:\n\n: ping\ndata: after a comment\n\n"
         b"retry: 5\n\ndata: x\n\n" + RECORDED)


def feed_data_all(pieces: list[bytes]) -> list[bytes]:
    decoder = SSEDecoder()
    data = [d for piece in pieces for d in decoder.feed_data(piece)]
    return data + [event.data.encode() for event in decoder.flush()]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(MIXED) - 1), max_size=30))
def test_feed_data_gives_each_events_data_as_bytes_whatever_the_cuts(points: list[int]) -> None:
    expected = [event.data.encode() for event in decode([MIXED])]
    assert feed_data_all(cut(MIXED, points)) == expected
    assert decode(cut(MIXED, points)) == decode([MIXED])


def test_feed_data_keeps_bytes_undecoded() -> None:
    decoder = SSEDecoder()
    assert decoder.feed_data(b'data: {"t":"\xe4\xbd') == []  # a character cut in half waits
    assert decoder.feed_data(b'\xa0"}\n\ndata: [DONE]\n\n') == ['{"t":"你"}'.encode(), b"[DONE]"]
