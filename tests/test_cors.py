"""CORS: preflights before any key check; credentialed allow-origin on every response."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.conftest import RunningRelay
from tests.helpers import user

Relay = Callable[..., RunningRelay]
ORIGIN = "https://www.example.com"


def preflight(url: str, origin: str = ORIGIN, asked: str = "authorization,content-type,x-stainless-os"
              ) -> httpx.Response:
    return httpx.options(url, headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                       "Access-Control-Request-Headers": asked})


@pytest.mark.parametrize("path", ["/chat", "/chatgpt", "/v1/chat/completions", "/anything"])
def test_preflight_answers_204_without_a_key(relay: Relay, path: str) -> None:
    response = preflight(f"{relay().url}{path}")
    assert response.status_code == 204
    h = response.headers
    assert h["access-control-allow-origin"] == ORIGIN
    assert h["access-control-allow-credentials"] == "true"
    allowed = h["access-control-allow-headers"].lower()
    for name in ("authorization", "content-type", "api-key", "x-stainless-os"):
        assert name in allowed
    assert "POST" in h["access-control-allow-methods"]
    assert "Origin" in h["vary"]


@pytest.mark.parametrize(("path", "status"), [("/chat", 401), ("/chatgpt", 401), ("/v1/models", 401)])
def test_errors_carry_cors_headers(relay: Relay, path: str, status: int) -> None:
    response = httpx.post(f"{relay().url}{path}", json=user("hi"), headers={"Origin": ORIGIN})
    assert response.status_code == status
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"


def test_streamed_replies_carry_cors_headers(relay: Relay) -> None:
    r = relay()
    response = httpx.post(f"{r.url}/chat", json=user("hi"), headers={"Origin": ORIGIN, **r.auth})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "x-request-id" in response.headers["access-control-expose-headers"]


def test_allowlist(relay: Relay) -> None:
    r = relay(cors_origins="https://good.example, http://localhost:8080")
    assert preflight(f"{r.url}/chat", "https://good.example").headers["access-control-allow-origin"] == \
        "https://good.example"
    bad = preflight(f"{r.url}/chat", "https://evil.example")
    assert bad.status_code == 204 and "access-control-allow-origin" not in bad.headers
    response = httpx.post(f"{r.url}/chat", json=user("hi"), headers={"Origin": "https://evil.example", **r.auth})
    assert "access-control-allow-origin" not in response.headers


def test_never_a_wildcard_with_credentials(relay: Relay) -> None:
    r = relay()
    response = httpx.post(f"{r.url}/chat", json=user("hi"), headers={"Origin": "null", **r.auth})
    assert response.headers.get("access-control-allow-origin") != "*"


def test_private_network_preflight(relay: Relay) -> None:
    response = httpx.options(f"{relay().url}/chat", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Private-Network": "true"})
    assert response.headers["access-control-allow-private-network"] == "true"
