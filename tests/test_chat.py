"""POST /chat: the frame stream, against the fake upstream's quirks and failures."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest

from gptrelay.fake import replies
from tests.conftest import UPSTREAM_KEY, RunningFake, RunningRelay
from tests.helpers import ChatReply, assert_well_formed, chat, user

Relay = Callable[..., RunningRelay]


def ask(relay: RunningRelay, text: str, **extra: object) -> ChatReply:
    reply = chat(relay.url, {**user(text), **extra}, relay.auth)
    assert_well_formed(reply)
    return reply


@pytest.mark.parametrize("scenario", [
    "chinese", "split-utf8", "split-events", "coalesced", "crlf", "comments", "empty-choices",
])
def test_content_arrives_exactly_whatever_the_wire_does(relay: Relay, scenario: str) -> None:
    expected = replies.CHINESE if scenario in ("chinese", "split-utf8") else replies.text_for(
        scenario, user(f"/scenario {scenario}"))
    reply = ask(relay(), f"/scenario {scenario}")
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/x-ndjson; charset=utf-8"
    assert reply.text == expected
    assert reply.errors == []
    assert reply.last["finish_reason"] == "stop"


def test_one_frame_per_upstream_piece_in_order(relay: Relay) -> None:
    reply = ask(relay(), "/scenario chinese")
    pieces = [f["content"] for f in reply.frames[:-1]]
    assert pieces == replies.pieces(replies.CHINESE)


def test_whitespace_pieces_are_frames(relay: Relay) -> None:
    reply = ask(relay(), "/scenario whitespace")
    assert [f["content"] for f in reply.frames[:-1]] == replies.WHITESPACE_PIECES


def test_tool_calls_make_no_frames(relay: Relay) -> None:
    reply = ask(relay(), "/scenario tool-calls")
    assert reply.frames == [reply.last]
    assert reply.last["finish_reason"] == "tool_calls"


def test_length_finish_reason_is_on_the_done_frame(relay: Relay) -> None:
    reply = ask(relay(), "/scenario length cut=4")
    assert len(reply.frames) == 5
    assert reply.last["finish_reason"] == "length"


def test_usage_is_on_the_done_frame(relay: Relay) -> None:
    reply = ask(relay(), "/scenario chinese", stream_options={"include_usage": True})
    assert reply.last["usage"]["total_tokens"] > 0


def test_request_goes_upstream_streamed_with_defaults_and_params(relay: Relay,
                                                                 fake_upstream: RunningFake) -> None:
    ask(relay(default_model="gpt-test"), "hi", temperature=0.2, max_tokens=5)
    sent = fake_upstream.fake.last()
    assert sent.body["stream"] is True
    assert sent.body["model"] == "gpt-test"
    assert sent.body["temperature"] == 0.2 and sent.body["max_tokens"] == 5
    ask(relay(), "hi", model="gpt-4o")
    assert fake_upstream.fake.last().body["model"] == "gpt-4o"


def test_upstream_gets_the_upstream_key_never_the_access_key(relay: Relay, fake_upstream: RunningFake) -> None:
    r = relay(openai_organization="org-relay")
    ask(r, "hi")
    headers = fake_upstream.fake.last().headers
    assert headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert headers["OpenAI-Organization"] == "org-relay"
    assert r.key not in repr(headers)


@pytest.mark.parametrize("status", [400, 404, 429, 500, 503])
def test_upstream_error_status_before_the_stream(relay: Relay, status: int) -> None:
    reply = ask(relay(), f"/scenario error status={status}")
    assert reply.status == status
    assert len(reply.frames) == 2
    assert reply.errors[0].startswith(f"upstream error {status}: ")
    assert "cannot" not in reply.errors[0]


@pytest.mark.parametrize("status", [401, 403])
def test_the_upstream_refusing_the_relays_key_is_told_in_the_relays_words(relay: Relay, status: int) -> None:
    reply = ask(relay(), f"/scenario error status={status}")
    assert reply.status == status
    assert reply.errors[0].startswith("the upstream refused the relay's own API key")


def test_unreachable_upstream_is_502(relay: Relay) -> None:
    reply = ask(relay(openai_base_url="http://127.0.0.1:9/v1"), "hi")
    assert reply.status == 502
    assert "cannot connect to the upstream at 127.0.0.1" in reply.errors[0]


@pytest.fixture
def unanswering_port() -> Iterator[int]:
    """A port whose accept queue is full: connecting to it hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    yield port
    for s in [*fillers, listener]:
        s.close()


def test_connect_timeout_is_504(relay: Relay, unanswering_port: int) -> None:
    reply = ask(relay(openai_base_url=f"http://127.0.0.1:{unanswering_port}/v1", connect_timeout=0.3), "hi")
    assert reply.status == 504
    assert "did not answer in time" in reply.errors[0]


def test_first_byte_timeout_is_504(relay: Relay) -> None:
    reply = ask(relay(first_byte_timeout=0.3), "/scenario slow-headers seconds=5")
    assert reply.status == 504


def test_silence_before_first_token_gets_keepalive_frames(relay: Relay) -> None:
    reply = ask(relay(keepalive_interval=0.1), "/scenario slow-first seconds=0.8")
    keepalives = [f for f in reply.frames if f == {"done": False, "error": False, "content": ""}]
    assert len(keepalives) >= 2
    assert reply.frames[:len(keepalives)] == keepalives  # all before the first token
    assert reply.text == replies.text_for("demo", user("/scenario slow-first seconds=0.8"))


def test_slow_headers_get_keepalives_and_then_the_reply(relay: Relay) -> None:
    reply = ask(relay(keepalive_interval=0.1), "/scenario slow-headers seconds=0.35")
    assert reply.status == 200
    assert reply.frames[0]["content"] == ""
    assert reply.text.startswith("Hello!")


def test_idle_read_timeout_mid_stream(relay: Relay) -> None:
    reply = ask(relay(read_timeout=0.3), "/scenario stall seconds=10 cut=3")
    assert reply.status == 200
    assert reply.text == "Hello! This"
    assert reply.errors == ["the upstream sent nothing for 0.3 s"]


def test_read_timeout_is_not_a_total_timeout(relay: Relay) -> None:
    # 40 pieces 50 ms apart: 2 s in all, twice the 1 s idle limit, never idle that long.
    reply = ask(relay(read_timeout=1.0), "/scenario long cut=40 interval_ms=50")
    assert reply.errors == []
    assert len(reply.frames) == 41


def test_error_event_inside_the_stream(relay: Relay) -> None:
    reply = ask(relay(), "/scenario error-in-stream cut=2")
    assert reply.status == 200
    assert reply.text == "Hello!"
    assert reply.errors == ["upstream error: The server had an error while processing your request. "
                            "Sorry about that!"]


def test_stream_cut_off(relay: Relay) -> None:
    reply = ask(relay(), "/scenario cut cut=2")
    assert reply.text == "Hello!"
    assert reply.errors == ["the upstream stream was cut off before the reply was complete"]


@pytest.mark.parametrize(("body", "status", "message"), [
    (b"not json", 400, "not valid JSON"),
    (b"", 400, "empty"),
    (b"[1,2]", 400, "JSON object"),
    (b"{}", 422, "'messages' must be a non-empty array"),
    (b'{"messages": []}', 422, "'messages' must be a non-empty array"),
    (b'{"messages": "hi"}', 422, "'messages' must be a non-empty array"),
    (b'{"messages": [1]}', 422, "'messages[0]'"),
    (b'{"messages": [{"role": "user", "content": "x"}], "model": 5}', 422, "'model'"),
])
def test_bad_input(relay: Relay, body: bytes, status: int, message: str) -> None:
    reply = chat(relay().url, body, relay().auth)
    assert reply.status == status
    assert message in reply.errors[0]
    assert_well_formed(reply)
    assert len(reply.frames) == 2


def test_body_too_large_is_413(relay: Relay) -> None:
    r = relay(max_body_size=1000)
    reply = chat(r.url, user("x" * 2000), r.auth)
    assert reply.status == 413
    assert_well_formed(reply)
    assert "larger than the limit" in reply.errors[0]


def test_images_within_the_default_limit_pass(relay: Relay, fake_upstream: RunningFake) -> None:
    image = "data:image/png;base64," + "A" * (5 * 1024 * 1024)
    body = {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": image}}]}]}
    r = relay()
    reply = chat(r.url, body, r.auth)
    assert reply.status == 200 and reply.errors == []
    assert fake_upstream.fake.last().body_size > 5 * 1024 * 1024


def test_streaming_headers(relay: Relay) -> None:
    reply = ask(relay(), "hi")
    assert reply.headers["cache-control"] == "no-cache, no-transform"
    assert reply.headers["x-accel-buffering"] == "no"
    assert "content-encoding" not in reply.headers


def test_compression_is_never_used_even_when_asked(relay: Relay) -> None:
    r = relay()
    reply = chat(r.url, user("hi"), {**r.auth, "Accept-Encoding": "gzip, br"})
    assert "content-encoding" not in reply.headers


def test_tls_failure_is_502_with_a_reason(relay: Relay, fake_upstream: RunningFake) -> None:
    # An https URL to a plain-http server: the TLS handshake fails.
    reply = ask(relay(openai_base_url=fake_upstream.url.replace("http://", "https://")), "hi")
    assert reply.status == 502
    assert reply.errors[0].startswith("cannot connect to the upstream at 127.0.0.1: ")


def test_the_upstream_can_be_reached_through_a_proxy(relay: Relay, loop_thread: object,
                                                      fake_upstream: RunningFake,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP_PROXY is honoured (read once at start): requests go to the proxy with absolute URLs."""
    from aiohttp import ClientSession, web

    seen: list[str] = []

    async def forward(request: web.Request) -> web.StreamResponse:
        seen.append(str(request.url))
        async with ClientSession(auto_decompress=False) as session, session.request(
                request.method, str(request.url), headers=request.headers, data=await request.read()) as up:
            response = web.StreamResponse(status=up.status, headers={
                k: v for k, v in up.headers.items() if k.lower() not in ("transfer-encoding", "content-length")})
            await response.prepare(request)
            async for chunk in up.content.iter_any():
                await response.write(chunk)
            return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner, port = loop_thread.serve_app(app)  # type: ignore[attr-defined]
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("NO_PROXY", "")
    try:
        reply = ask(relay(), "/scenario chinese")
    finally:
        loop_thread.run(runner.cleanup())  # type: ignore[attr-defined]
    assert reply.text == replies.CHINESE
    assert f"{fake_upstream.url}/chat/completions" in seen  # (the test's own httpx may use the proxy too)
