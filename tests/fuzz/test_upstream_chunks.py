"""Any chunk an upstream sends, over real sockets: ``/chat`` answers with frames that end in
exactly one done frame, ``/chatgpt`` with an event stream that ends in ``data: [DONE]``; the relay
never breaks off a reply with an exception of its own."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from hypothesis import example, given
from hypothesis import strategies as st

from gptrelay.wire.sse import SSEDecoder
from tests.conftest import RunningRelay
from tests.fuzz.conftest import ScriptedUpstream
from tests.fuzz.profiles import budget
from tests.fuzz.test_completions import event_data
from tests.fuzz.test_sse import cut, reference, streams
from tests.helpers import assert_well_formed, chat, user

Relay = Callable[..., RunningRelay]


def stream_of(events: list[bytes | str]) -> bytes:
    data = [d if isinstance(d, bytes) else d.encode("utf-8", "surrogatepass") for d in events]
    return b"".join(b"data: " + d.replace(b"\n", b" ").replace(b"\r", b" ") + b"\n\n" for d in data)


def check_both_routes(relay: RunningRelay, upstream: ScriptedUpstream, stream: bytes) -> None:
    prompt = upstream.reply(stream)
    reply = chat(relay.url, user(prompt), relay.auth)
    assert reply.status in (200, 502), reply.frames  # 502: the upstream's stream could not be read
    assert_well_formed(reply)
    assert all(isinstance(frame["content"], str) for frame in reply.frames)
    with httpx.stream("POST", f"{relay.url}/chatgpt", json=user(prompt), headers=relay.auth, timeout=20) as r:
        body = r.read()
    assert r.status_code == 200, body
    assert body.endswith(b"data: [DONE]\n\n"), body[-200:]
    decoder = SSEDecoder()
    assert decoder.feed(body)[-1].data == "[DONE]"


ODD_CHUNKS = [b'{"choices":"x"}', b'{"choices":{"0":1}}', b'{"choices":[1]}', b'{"choices":[[]]}',
              b'{"choices":[{"delta":5}]}', b'{"choices":[{"delta":{"content":5}}]}',
              b'{"choices":[{"delta":{"content":["a"]}}]}', b'{"choices":[{"finish_reason":{"a":1}}]}',
              b'{"choices":[{"finish_reason":9}]}', b'{"choices":[],"usage":[1]}', b'{"choices":[],"usage":"x"}',
              b'{"choices":[],"usage":{"prompt_tokens":' + b"9" * 5000 + b',"completion_tokens":1}}']


def test_odd_chunks_end_well_on_both_routes(relay: Relay, scripted_upstream: ScriptedUpstream) -> None:
    r = relay(openai_base_url=scripted_upstream.url)
    for chunk in ODD_CHUNKS:
        check_both_routes(r, scripted_upstream, stream_of([chunk]) + b"data: [DONE]\n\n")


def test_any_chunks_over_sockets(relay: Relay, scripted_upstream: ScriptedUpstream) -> None:
    r = relay(openai_base_url=scripted_upstream.url)  # one relay for every example

    @budget(10)
    @given(events=st.lists(event_data(), max_size=4))
    def check(events: list[bytes | str]) -> None:
        check_both_routes(r, scripted_upstream, stream_of(events))

    check()


def test_chatgpt_relays_any_stream_cut_anywhere_event_for_event(relay: Relay,
                                                                scripted_upstream: ScriptedUpstream) -> None:
    """A client that asked for the usage chunk itself gets the upstream's events unchanged, each
    read holding whole events, whatever the upstream's bytes and however its writes cut them."""
    r = relay(openai_base_url=scripted_upstream.url)

    @budget(10)
    @example(stream=b'data: {"a":1}', points=[])  # ended inside its last event: [DONE] is still an event
    @example(stream=b"data: [DONE]\r", points=[])
    @given(stream=streams.filter(lambda s: b"_tokens" not in s), points=st.lists(st.integers(min_value=0),
                                                                               max_size=6))
    def check(stream: bytes, points: list[int]) -> None:
        prompt = scripted_upstream.reply(*cut(stream, points))
        body = {**user(prompt), "stream_options": {"include_usage": True}}
        with httpx.stream("POST", f"{r.url}/chatgpt", json=body, headers=r.auth, timeout=20) as response:
            reads = list(response.iter_raw())
        assert response.status_code == 200
        sent = [event for event in reference(stream) if event[0] != "[DONE]"]
        got = reference(b"".join(reads))
        assert got[-1][0] == "[DONE]" and [event for event in got if event[0] != "[DONE]"] == sent
        for read in reads[:-1]:  # each read whole events (the last may hold what the upstream left open)
            decoder = SSEDecoder()
            decoder.feed(read)
            assert decoder.rest.strip(b"\r\n") == b"" or not decoder.feed(b"\n\n"), read

    check()
