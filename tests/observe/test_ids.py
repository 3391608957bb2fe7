"""``X-Request-ID`` on every response: the client's own when it is a good one, else a new one; the
upstream's own on a ``/v1`` reply that carries one."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest

from gptrelay.observe.ids import request_id
from tests.conftest import RunningRelay
from tests.helpers import raw_exchange, user

Relay = Callable[..., RunningRelay]
NEW = re.compile(r"[0-9a-f]{32}")
GOOD = "client-id_0123:ABC/xyz.=+"
BAD = ("x" * 129, "with space", "tab\there", "")


def test_a_good_id_is_kept_and_any_other_replaced() -> None:
    assert request_id(GOOD) == GOOD
    assert request_id("~" * 128) == "~" * 128
    assert request_id(None) != request_id(None)
    for bad in (*BAD, "é", "bell\x07", "del\x7f"):
        assert NEW.fullmatch(request_id(bad)), bad


def sent(headers: dict[str, str], request_id: str | None) -> dict[str, str]:
    return {**headers, "X-Request-ID": request_id} if request_id is not None else headers


@pytest.mark.parametrize("path", ["/chat", "/chatgpt", "/v1/models", "/v1/chat/completions"])
def test_every_route_answers_with_an_id(observed: Relay, path: str) -> None:
    r = observed()
    body = {"model": "gpt-4o-mini", "stream": True, **user("hi")}
    upstreams = path == "/v1/chat/completions"  # the fake upstream's reply carries its own id there

    def ask(request_id: str | None, headers: dict[str, str] = r.auth) -> httpx.Response:
        method = "GET" if path == "/v1/models" else "POST"
        with httpx.stream(method, f"{r.url}{path}", json=None if method == "GET" else body,
                          headers=sent(headers, request_id)) as response:
            response.read()
            return response

    mine, again = ask(None), ask(None)
    assert mine.status_code == 200
    if upstreams:
        assert mine.headers["x-request-id"] == "req_fake"  # the upstream's, which its support knows
        assert ask(GOOD).headers["x-request-id"] == "req_fake"
    else:
        assert NEW.fullmatch(mine.headers["x-request-id"]) and mine.headers["x-request-id"] != \
            again.headers["x-request-id"]
        assert ask(GOOD).headers["x-request-id"] == GOOD
        for bad in BAD:
            assert NEW.fullmatch(ask(bad).headers["x-request-id"])
    # Refused by the relay itself (no key): the relay's id, whatever the route.
    refused = ask(GOOD, {})
    assert refused.status_code == 401 and refused.headers["x-request-id"] == GOOD
    assert NEW.fullmatch(ask(None, {}).headers["x-request-id"])


def test_errors_preflights_and_pages_carry_an_id(observed: Relay) -> None:
    r = observed(cors_origins="https://app.example.com")
    upstream_error = httpx.post(f"{r.url}/chat", json=user("/scenario error status=500"),
                                headers=sent(r.auth, GOOD))
    assert upstream_error.status_code == 500 and upstream_error.headers["x-request-id"] == GOOD
    cut = httpx.post(f"{r.url}/chatgpt", json=user("/scenario cut cut=2"), headers=sent(r.auth, GOOD))
    assert cut.status_code == 200 and cut.headers["x-request-id"] == GOOD
    bad_path = httpx.get(f"{r.url}/v1/a/%2e%2e/models", headers=sent(r.auth, GOOD))
    assert bad_path.status_code == 400 and bad_path.headers["x-request-id"] == GOOD
    preflight = httpx.options(f"{r.url}/chat", headers={"Origin": "https://app.example.com",
                                                        "Access-Control-Request-Method": "POST"})
    assert NEW.fullmatch(preflight.headers["x-request-id"])
    for page in ("/", "/healthz", "/no/such/page"):
        assert NEW.fullmatch(httpx.get(f"{r.url}{page}").headers["x-request-id"]), page
    # A page reading the reply may read its id: CORS exposes it.
    answered = httpx.post(f"{r.url}/chat", json=user("hi"),
                          headers={**r.auth, "Origin": "https://app.example.com"})
    assert "x-request-id" in answered.headers["access-control-expose-headers"]


def test_a_request_with_header_bytes_the_relay_refuses_still_gets_an_id(observed: Relay) -> None:
    r = observed()
    reply = raw_exchange(r.url, b"POST /chat HTTP/1.1\r\nHost: x\r\nX-Request-ID: caf\xc3\xa9\r\n"
                                b"Content-Length: 0\r\n\r\n")
    assert reply.status == 400
    assert NEW.fullmatch(reply.header("X-Request-ID") or "")


def test_a_malformed_request_gets_an_id_too(observed: Relay) -> None:
    r = observed()
    reply = raw_exchange(r.url, b"POST /chat HTTP/1.1\nHost: x\nContent-Length: 2\n\n{}")
    assert reply.status == 400
    assert NEW.fullmatch(reply.header("X-Request-ID") or "")
