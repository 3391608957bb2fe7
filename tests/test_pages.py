"""GET /, /static/… and /healthz."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.conftest import RunningRelay

Relay = Callable[..., RunningRelay]


def test_healthz(relay: Relay) -> None:
    response = httpx.get(f"{relay().url}/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_page_is_served_with_a_strict_csp(relay: Relay) -> None:
    response = httpx.get(f"{relay(default_model='gpt-page-test').url}/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe-eval" not in csp
    assert "__GPTRELAY_DEFAULT_MODEL__" not in response.text


def test_static_cannot_escape_its_folder(relay: Relay) -> None:
    url = relay().url
    for path in ("/static/../settings.py", "/static/%2e%2e/settings.py", "/static/..%2fsettings.py"):
        response = httpx.get(f"{url}{path}")
        assert response.status_code in (401, 404)
        assert "class Settings" not in response.text


def test_unknown_path_is_404_in_openai_shape(relay: Relay) -> None:
    r = relay()
    response = httpx.get(f"{r.url}/nope", headers=r.auth)
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Not Found: GET /nope"


def test_wrong_method_is_405(relay: Relay) -> None:
    r = relay()
    assert httpx.get(f"{r.url}/chat", headers=r.auth).status_code == 405
    assert httpx.post(f"{r.url}/healthz", headers=r.auth).status_code == 405


def test_head_works_where_get_does(relay: Relay) -> None:
    r = relay()
    for path in ("/healthz", "/"):
        response = httpx.head(f"{r.url}{path}")
        assert response.status_code == 200 and response.content == b""
