"""Hostile requests (SPEC, Hostile input): malformed HTTP, odd bytes, crafted paths and hosts,
and an upstream that refuses the relay's own key.

Each test sends what an attacker (or a confused client) would, over a real
socket, and checks the answer, the log and that nothing reached the upstream.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
import orjson
import pytest

from tests.conftest import UPSTREAM_KEY, RunningFake, RunningRelay
from tests.helpers import chat, closes_soon, connect, raw_exchange, read_reply, user

Relay = Callable[..., RunningRelay]
SECRET = "k3y-that-must-never-show"


@pytest.mark.parametrize("request_bytes", [
    # bare-LF line endings, the key among them
    b"POST /chat HTTP/1.1\nHost: x\nAuthorization: Bearer " + SECRET.encode() + b"\nContent-Length: 2\n\n{}",
    # a NUL after the key
    b"POST /chat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + SECRET.encode() + b"\x00\r\n\r\n",
    # a bad request line, HTTP/0.9, a header without a colon, an overlong header line
    b"GET / HTTP/1.1 extra\r\nAuthorization: " + SECRET.encode() + b"\r\n\r\n",
    b"GET /\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization " + SECRET.encode() + b"\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + SECRET.encode() + b"\r\n\r\n",
])
def test_malformed_requests_get_a_quiet_400(relay: Relay, request_bytes: bytes,
                                            caplog: pytest.LogCaptureFixture) -> None:
    r = relay(authorization_key=SECRET)
    caplog.set_level(logging.DEBUG)
    with connect(r.url) as s:
        s.sendall(request_bytes)
        reply = read_reply(s)
    assert reply.status == 400
    assert SECRET.encode() not in reply.head + reply.body
    assert b"Authorization" not in reply.body and b"Bearer" not in reply.body
    logged = [record for record in caplog.records if record.name.startswith("aiohttp") or
              record.name.startswith("gptrelay")]
    assert len(logged) <= 1, [record.getMessage() for record in logged]
    for record in logged:
        text = record.getMessage()
        assert "\n" not in text and SECRET not in text and record.exc_info is None, text
    assert httpx.get(f"{r.url}/healthz").status_code == 200


@pytest.mark.parametrize("header", ["Authorization", "api-key", "X-Anything"])
def test_non_ascii_header_bytes_get_400(relay: Relay, fake_upstream: RunningFake, header: str,
                                        caplog: pytest.LogCaptureFixture) -> None:
    r = relay()
    value = b"Bearer \xff\xfe" if header == "Authorization" else b"\xc3("
    extra = b"" if header == "Authorization" else f"Authorization: Bearer {r.key}\r\n".encode()
    reply = raw_exchange(r.url, b"POST /chat HTTP/1.1\r\nHost: x\r\n" + extra + header.encode() + b": " + value +
                         b"\r\nContent-Length: 2\r\n\r\n{}")
    assert reply.status == 400
    assert "non-ASCII" in reply.body.decode()
    assert fake_upstream.fake.log == []
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


@pytest.mark.parametrize("path", ["/static/a%00b", "/static/" + "n" * 300, "/static/" + "d/" * 3000 + "x",
                                  "/static/..%2f..%2fetc%2fpasswd", "/static/%2e%2e/%2e%2e/etc/passwd"])
def test_odd_static_names_are_404(relay: Relay, path: str, caplog: pytest.LogCaptureFixture) -> None:
    r = relay()
    reply = raw_exchange(r.url, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert reply.status == 404
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


@pytest.mark.parametrize("path", ["/v1/../admin", "/v1/%2e%2e/admin", "/v1/%2E%2E/admin", "/v1/./models",
                                  "/v1/models/..", "/v1/a/%2e/b", "/v1/files%2f..%2fadmin", "/v1/x/..%5cadmin"])
def test_dot_segments_under_v1_are_refused(relay: Relay, fake_upstream: RunningFake, path: str) -> None:
    r = relay()
    reply = raw_exchange(r.url, f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {r.key}\r\n\r\n".encode())
    assert reply.status == 400, reply
    assert orjson.loads(reply.body)["error"]["type"] == "invalid_request_error"
    assert fake_upstream.fake.log == []


def test_dots_inside_names_still_pass(relay: Relay) -> None:
    r = relay()
    response = httpx.get(f"{r.url}/v1/echo/file-1.jsonl/a..b/.hidden", headers=r.auth)
    assert response.status_code == 200 and response.json()["path"] == "/v1/echo/file-1.jsonl/a..b/.hidden"


def test_headers_named_in_connection_are_not_forwarded(relay: Relay) -> None:
    r = relay()
    response = httpx.post(f"{r.url}/v1/echo/h", content=b"{}", headers={
        **r.auth, "Content-Type": "application/json", "Connection": "keep-alive, X-Hop, x-other",
        "X-Hop": "1", "X-Other": "2", "X-Kept": "3"})
    seen = {k.lower() for k in response.json()["headers"]}
    assert "x-hop" not in seen and "x-other" not in seen and "x-kept" in seen


@pytest.mark.parametrize(("host", "status"), [
    ("relay.attacker-rebind.example", 421), ("relay.attacker-rebind.example:3666", 421), ("", 421),
    ("localhost", 200), ("localhost:3666", 200), ("127.0.0.1", 200), ("127.0.0.1:3666", 200), ("[::1]:3666", 200),
    ("127.5.6.7", 200),
])
def test_a_keyless_relay_answers_only_loopback_hosts(relay: Relay, host: str, status: int) -> None:
    r = relay(authorization_key=None)
    head = f"Host: {host}\r\n" if host else ""
    version = "1.1" if host else "1.0"  # (HTTP/1.1 without a Host is malformed: 400)
    for request in (f"GET /v1/models HTTP/{version}\r\n{head}\r\n", f"GET / HTTP/{version}\r\n{head}\r\n"):
        reply = raw_exchange(r.url, request.encode())
        assert reply.status == status, (request, reply.body)
    if status == 421:
        assert b"loopback" in reply.body


def test_a_keyed_relay_answers_any_host(relay: Relay) -> None:
    r = relay()
    reply = raw_exchange(r.url, f"GET /v1/models HTTP/1.1\r\nHost: relay.example.com\r\n"
                                f"Authorization: Bearer {r.key}\r\n\r\n".encode())
    assert reply.status == 200


def test_an_unauthenticated_body_is_not_waited_for(relay: Relay) -> None:
    r = relay()
    with connect(r.url) as s:
        s.sendall(b"POST /v1/files HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\npartial")
        reply = read_reply(s)
        assert reply.status == 401
        assert closes_soon(s)


# -- the upstream refuses the relay's own key ---------------------------------------------------------


@pytest.fixture
def refused(relay: Relay) -> RunningRelay:
    return relay(openai_api_key="sk-test-wrong-upstream-9Zq1")


def assert_no_key_fragment(text: str) -> None:
    for fragment in ("sk-test", "9Zq1", "sk-", "****", "Incorrect API key"):
        assert fragment not in text, text


def test_refused_upstream_key_on_chat(refused: RunningRelay, caplog: pytest.LogCaptureFixture) -> None:
    reply = chat(refused.url, user("hi"), refused.auth)
    assert reply.status == 401
    assert "upstream refused the relay's own API key" in reply.errors[0]
    assert_no_key_fragment(repr(reply.frames))
    for record in caplog.records:
        assert "9Zq1" not in record.getMessage()


def test_refused_upstream_key_on_chatgpt(refused: RunningRelay) -> None:
    response = httpx.post(f"{refused.url}/chatgpt", json=user("hi"), headers=refused.auth)
    assert response.status_code == 401
    error = response.json()["error"]
    assert "upstream refused the relay's own API key" in error["message"]
    assert error["code"] == "upstream_key_refused"
    assert_no_key_fragment(response.text)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_refused_upstream_key_on_v1(refused: RunningRelay, method: str) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{refused.url}/v1", api_key=refused.key, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        if method == "GET":
            client.models.list()
        else:
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert "upstream refused the relay's own API key" in str(caught.value)
    assert_no_key_fragment(str(caught.value))


def test_the_right_upstream_key_is_still_sent(relay: Relay, fake_upstream: RunningFake) -> None:
    r = relay()
    assert httpx.get(f"{r.url}/v1/models", headers=r.auth).status_code == 200
    assert fake_upstream.fake.last("/v1/models").headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"
