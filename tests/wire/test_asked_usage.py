"""The usage the relay asks for, taken out again: the option added to a body, whole events from
reads cut anywhere, and the stream a client that did not ask gets (byte for byte what it would
have got without asking)."""

from __future__ import annotations

import random

import orjson
import pytest

from gptrelay.fake.chunks import DONE, ChunkWriter
from gptrelay.wire.asked_usage import (
    HOLD_AT_MOST,
    NULL_USAGE,
    WholeEvents,
    body_asking_for_usage,
    without_nulls,
    without_usage,
    without_usage_chunk,
)


def stream(asked: bool, azure: bool = False) -> bytes:
    writer = ChunkWriter("gpt-4o-mini", usage=asked)
    events = [writer.prompt_filter()] if azure else []
    events += [writer.role(), writer.content("你好"), writer.content(", world"), writer.finish("stop")]
    if asked:
        events.append(writer.usage_chunk(9, 3))
    return b"".join(events) + DONE


def relayed(reads: list[bytes]) -> bytes:
    whole = WholeEvents()
    out = b"".join(without_usage(whole.feed(read)) for read in reads)
    return out + whole.rest


def test_the_option_goes_first_in_the_object() -> None:
    body = b' {"model":"gpt-4o-mini","stream":true,"messages":[]}'
    asked = body_asking_for_usage(body)
    assert asked is not None and orjson.loads(asked) == orjson.loads(body) | {
        "stream_options": {"include_usage": True}}
    assert asked.endswith(body[2:])  # the rest as sent


@pytest.mark.parametrize("body", [b"{}", b" { \n} "])
def test_an_empty_object_asks_for_the_usage_alone(body: bytes) -> None:
    asked = body_asking_for_usage(body)
    assert asked is not None and orjson.loads(asked) == {"stream_options": {"include_usage": True}}


@pytest.mark.parametrize("body", [
    b'{"stream":true,"stream_options":{"include_usage":false}}',  # the client chose
    b'{"stream":true,"stream_options":{}}',
    b'[{"stream":true}]', b'"stream"', b'', b'x{"stream":true}',
])
def test_a_body_that_chose_or_is_no_object_is_left_alone(body: bytes) -> None:
    assert body_asking_for_usage(body) is None


@pytest.mark.parametrize("azure", [False, True])
def test_cut_at_every_byte_the_client_gets_what_it_would_have(azure: bool) -> None:
    asked, plain = stream(asked=True, azure=azure), stream(asked=False, azure=azure)
    assert relayed([asked]) == plain
    for cut in range(1, len(asked)):
        assert relayed([asked[:cut], asked[cut:]]) == plain, cut


def test_cut_into_many_random_reads() -> None:
    asked, plain = stream(asked=True), stream(asked=False)
    rng = random.Random(7)
    for _ in range(300):
        cuts = sorted(rng.sample(range(1, len(asked)), rng.randint(2, 40)))
        reads = [asked[a:b] for a, b in zip([0, *cuts], [*cuts, len(asked)], strict=True)]
        assert relayed(reads) == plain


def test_crlf_events_and_a_stream_cut_midway() -> None:
    crlf = stream(asked=True).replace(b"\n\n", b"\r\n\r\n")
    assert relayed([crlf]) == stream(asked=False).replace(b"\n\n", b"\r\n\r\n")
    whole = WholeEvents()
    assert whole.feed(b"data: {\"a\":1}\n\ndata: {\"b\"") == b"data: {\"a\":1}\n\n"
    assert whole.rest == b"data: {\"b\""  # what the relay writes as it is when the upstream stops there


def test_bytes_that_never_end_an_event_are_not_held_forever() -> None:
    whole = WholeEvents()
    assert whole.feed(b"x" * HOLD_AT_MOST) == b""
    assert whole.feed(b"y") == b"x" * HOLD_AT_MOST + b"y" and whole.rest == b""


def test_the_nulls_taken_out_count_the_events_but_the_usage_chunk() -> None:
    asked, plain = stream(asked=True), stream(asked=False)
    events, nulls = without_nulls(asked)
    assert nulls == 4  # role, two contents, finish
    assert without_nulls(plain) == (plain, 0)
    assert without_usage_chunk(events) == plain
    assert without_nulls(b"a" + NULL_USAGE * 2 + b"b" + NULL_USAGE) == (b"ab", 3)  # back to back, and at the end


def test_only_a_usage_only_chunk_goes_wherever_it_is() -> None:
    writer = ChunkWriter("gpt-4o-mini", usage=False)
    usage = ChunkWriter("gpt-4o-mini", usage=True).usage_chunk(9, 3)
    content = writer.content('say "prompt_tokens": 1')  # a quote in text is escaped: no usage there
    with_usage_and_choices = usage.replace(b'"choices":[]', b'"choices":[{"index":0,"delta":{}}]')
    events = usage + content + usage + with_usage_and_choices + usage
    assert without_usage_chunk(events) == content + with_usage_and_choices
    assert without_usage_chunk(content) == content
