"""POST /chatgpt: the upstream's events relayed unchanged, event by event."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import openai
import orjson
import pytest

from gptrelay.fake import chunks, replies
from gptrelay.routes.chatgpt import KEEPALIVE
from gptrelay.wire.sse import SSEDecoder
from tests.conftest import RunningRelay
from tests.helpers import user

Relay = Callable[..., RunningRelay]


def raw_events(relay: RunningRelay, text: str, **extra: object) -> tuple[httpx.Response, list[bytes]]:
    """The response, and each network read of its body as it came."""
    with httpx.stream("POST", f"{relay.url}/chatgpt", json={**user(text), **extra}, headers=relay.auth,
                      timeout=20) as response:
        reads = list(response.iter_raw())
    return response, reads


def direct(fake_url: str, text: str) -> bytes:
    body = {**user(text), "stream": True, "model": "gpt-4o-mini"}
    return httpx.post(f"{fake_url}/chat/completions", json=body,
                      headers={"Authorization": "Bearer sk-test-upstream-7f3a"}, timeout=20).content


@pytest.mark.parametrize("scenario", ["chinese", "split-utf8", "split-events", "crlf", "empty-choices",
                                      "tool-calls"])
def test_bytes_are_the_upstreams(relay: Relay, fake_upstream: object, scenario: str) -> None:
    response, reads = raw_events(relay(), f"/scenario {scenario}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache, no-transform"
    assert response.headers["x-accel-buffering"] == "no"
    assert b"".join(reads) == direct(fake_upstream.url, f"/scenario {scenario}")  # type: ignore[attr-defined]


def test_each_read_holds_whole_events_even_when_the_upstream_splits_them(relay: Relay) -> None:
    _, reads = raw_events(relay(), "/scenario split-events")
    assert len(reads) > 3
    for read in reads:
        decoder = SSEDecoder()
        events = decoder.feed(read)
        assert events and decoder.rest == b"", read  # whole events only, nothing left over
        assert b"".join(e.raw for e in events) == read


def test_comments_travel_with_the_next_event(relay: Relay) -> None:
    _, reads = raw_events(relay(), "/scenario comments")
    joined = b"".join(reads)
    assert b": keep-alive\n\n" in joined and joined.endswith(chunks.DONE)
    assert not any(read.startswith(b":") and read.count(b"data:") == 0 for read in reads)


def test_upstream_error_status_and_body_pass_through(relay: Relay) -> None:
    r = relay()
    response = httpx.post(f"{r.url}/chatgpt", json=user("/scenario error status=429"), headers=r.auth)
    assert response.status_code == 429
    assert response.json() == chunks.error_body(429)
    assert response.headers["content-type"].startswith("application/json")


def test_bad_input_in_openai_shape(relay: Relay) -> None:
    r = relay()
    response = httpx.post(f"{r.url}/chatgpt", content=b"{", headers=r.auth)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_unreachable_upstream_is_502_in_openai_shape(relay: Relay) -> None:
    r = relay(openai_base_url="http://127.0.0.1:9/v1")
    response = httpx.post(f"{r.url}/chatgpt", json=user("hi"), headers=r.auth)
    assert response.status_code == 502
    assert "cannot connect" in response.json()["error"]["message"]


def test_cut_stream_ends_with_an_error_event_and_done(relay: Relay) -> None:
    _, reads = raw_events(relay(), "/scenario cut cut=2")
    body = b"".join(reads)
    events = SSEDecoder().feed(body)
    assert orjson.loads(events[-2].data)["error"]["message"].startswith("the upstream stream was cut off")
    assert events[-1].data == "[DONE]"
    assert "".join(orjson.loads(e.data)["choices"][0]["delta"].get("content", "")
                   for e in events[:-2]) == "Hello!"


def test_ping_comments_while_the_upstream_thinks(relay: Relay) -> None:
    _, reads = raw_events(relay(keepalive_interval=0.1), "/scenario slow-first seconds=0.45")
    body = b"".join(reads)
    assert body.startswith(KEEPALIVE * 2) and KEEPALIVE.startswith(b": ping")
    assert body.endswith(chunks.DONE)
    # A comment to every SSE parser: the events are the upstream's alone.
    def events(stream: bytes) -> list[tuple[str, str]]:
        return [(event.event, event.data) for event in SSEDecoder().feed(stream)]

    assert events(body) == events(body.replace(KEEPALIVE, b""))
    # And a chunk with an empty delta to a client that splits each read on "data: " (the seed page).
    for piece in KEEPALIVE.decode().strip().split("data: ")[1:]:
        assert orjson.loads(piece)["choices"][0]["delta"] == {}


class _ToChatgpt(httpx.HTTPTransport):
    """Sends the SDK's /chat/completions to the relay's /chatgpt."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(path="/chatgpt")
        return super().handle_request(request)


def test_the_openai_sdk_reads_through_the_keepalives(relay: Relay) -> None:
    r = relay(keepalive_interval=0.1)
    client = openai.OpenAI(base_url=f"{r.url}/v1", api_key=r.key, http_client=httpx.Client(transport=_ToChatgpt()))
    prompt = "/scenario slow-first seconds=0.45"
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}],
                                            stream=True)
    chunks_read = list(stream)
    assert all(chunk.id for chunk in chunks_read)  # no chunk made of a keep-alive
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks_read if chunk.choices)
    assert text == replies.text_for("demo", user(prompt))


def test_seed_client_reads_text(relay: Relay) -> None:
    """The seed blog's parser: split each read on 'data: ' and JSON.parse every piece."""
    _, reads = raw_events(relay(), "/scenario chinese")
    text = ""
    for read in reads:
        for piece in read.decode().strip().split("data: "):
            if piece and piece.strip() != "[DONE]":
                delta = orjson.loads(piece)["choices"][0]["delta"]
                text += delta.get("content") or ""
    assert text == replies.CHINESE


def test_seed_client_never_gets_a_cut_utf8_character(relay: Relay) -> None:
    _, reads = raw_events(relay(), "/scenario split-utf8")
    for read in reads:
        read.decode("utf-8")  # each read decodes on its own, as TextDecoder without stream:true does


