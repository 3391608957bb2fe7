"""An upstream over HTTPS whose certificate the relay does not trust: a clear 502, never a hang."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator

import httpx
import pytest
import trustme

from gptrelay.fake import FakeUpstream
from tests.conftest import UPSTREAM_KEY, LoopThread, RunningRelay
from tests.helpers import chat, user

Relay = Callable[..., RunningRelay]


@pytest.fixture
def untrusted_upstream(loop_thread: LoopThread) -> Iterator[str]:
    """The fake upstream on https://localhost, its certificate signed by a CA nobody trusts."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    runner, port = loop_thread.serve_app(FakeUpstream(api_key=UPSTREAM_KEY).app(), ssl_context=context)
    yield f"https://localhost:{port}/v1"
    loop_thread.run(runner.cleanup())


def test_untrusted_certificate_is_a_502_that_says_so(relay: Relay, untrusted_upstream: str) -> None:
    r = relay(openai_base_url=untrusted_upstream)
    reply = chat(r.url, user("hi"), r.auth)
    assert reply.status == 502
    assert reply.errors and "cannot connect to the upstream at localhost" in reply.errors[0]
    assert "certificate" in reply.errors[0].lower()

    response = httpx.post(f"{r.url}/v1/chat/completions", headers=r.auth, json={"messages": []})
    assert response.status_code == 502
    assert "certificate" in response.json()["error"]["message"].lower()
