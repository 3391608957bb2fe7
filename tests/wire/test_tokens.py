"""Token counts found in the upstream's bytes."""

from __future__ import annotations

from gptrelay.fake import chunks
from gptrelay.wire.tokens import MARK, estimate, reported


def test_a_chat_completion_stream_s_usage_chunk() -> None:
    writer = chunks.ChunkWriter("gpt-4o-mini", usage=True)
    stream = writer.role() + writer.content("hi") + writer.finish("stop") + writer.usage_chunk(7, 3) + chunks.DONE
    assert MARK in stream
    assert reported(stream) == (7, 3)


def test_the_responses_api_and_embeddings() -> None:
    responses = (b'{"usage":{"input_tokens":11,"input_tokens_details":{"cached_tokens":0},'
                 b'"output_tokens":5,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":16}}')
    assert reported(responses) == (11, 5)
    assert reported(b'{"usage":{"prompt_tokens":3,"total_tokens":3}}') == (3, 0)


def test_details_are_not_counts_and_nothing_is_none() -> None:
    assert reported(b'{"prompt_tokens_details":{"cached_tokens":9}}') is None
    assert reported(b"data: [DONE]\n\n") is None


def test_the_last_usage_wins() -> None:
    assert reported(b'{"prompt_tokens":1,"completion_tokens":2}{"prompt_tokens":10,"completion_tokens":20}') == (10, 20)


def test_estimate() -> None:
    assert (estimate(0), estimate(1), estimate(4), estimate(5)) == (0, 1, 1, 2)
