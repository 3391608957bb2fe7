"""Access keys: three header forms, constant-time checks, 401 in each endpoint's own shape."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from gptrelay.auth.access import AccessKeys
from tests.conftest import RunningFake, RunningRelay
from tests.helpers import assert_well_formed, chat, user

Relay = Callable[..., RunningRelay]


@pytest.mark.parametrize("header", [
    {"Authorization": "test-access-key"},
    {"Authorization": "Bearer test-access-key"},
    {"Authorization": "bearer test-access-key"},
    {"api-key": "test-access-key"},
])
def test_each_header_form_is_accepted(relay: Relay, header: dict[str, str]) -> None:
    reply = chat(relay().url, user("hi"), header)
    assert reply.status == 200 and reply.errors == []


@pytest.mark.parametrize("header", [{}, {"Authorization": "Bearer nope"}, {"api-key": "test-access-ke"},
                                    {"Authorization": "Bearer"}])
def test_missing_or_wrong_key_on_chat_is_401_with_frames(relay: Relay, header: dict[str, str],
                                                         fake_upstream: RunningFake) -> None:
    reply = chat(relay().url, user("hi"), header)
    assert reply.status == 401
    assert_well_formed(reply)
    assert len(reply.frames) == 2 and "access key" in reply.errors[0]
    assert reply.headers["www-authenticate"] == 'Bearer realm="gptrelay"'
    assert fake_upstream.fake.log == []  # nothing went upstream


@pytest.mark.parametrize("path", ["/chatgpt", "/v1/chat/completions", "/v1/models"])
def test_missing_key_elsewhere_is_401_in_openai_shape(relay: Relay, path: str) -> None:
    response = httpx.post(f"{relay().url}{path}", json=user("hi"))
    assert response.status_code == 401
    assert response.json() == {"error": {"message": "missing access key: send it as 'Authorization: "
                                         "Bearer <key>'", "type": "invalid_request_error",
                               "code": "invalid_api_key"}}


@pytest.mark.parametrize("path", ["/", "/healthz"])
def test_open_paths_need_no_key(relay: Relay, path: str) -> None:
    assert httpx.get(f"{relay().url}{path}").status_code == 200


def test_static_files_need_no_key(relay: Relay) -> None:
    assert httpx.get(f"{relay().url}/static/nothing-here.js").status_code == 404


def test_no_key_configured_on_loopback_lets_everyone_in(relay: Relay) -> None:
    r = relay(authorization_key=None)
    assert chat(r.url, user("hi")).status == 200


def test_the_key_is_never_echoed(relay: Relay) -> None:
    r = relay()
    response = httpx.post(f"{r.url}/chat", json=user("hi"), headers={"Authorization": "Bearer sk-guess-123"})
    assert "sk-guess" not in response.text and r.key not in response.text


def test_key_comparison() -> None:
    keys = AccessKeys(("alpha-key", "beta-key"))
    assert keys.allows("alpha-key") and keys.allows("beta-key")
    assert not keys.allows("alpha") and not keys.allows(None) and not keys.allows("")
    assert not AccessKeys(()).required
