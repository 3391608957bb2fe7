"""An upstream whose connection breaks anywhere in its event stream: every route still ends the
client's reply in its own shape, and no event the relay writes itself is glued to half of one."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import orjson
import pytest

from tests.conftest import RunningRelay
from tests.fuzz.conftest import CUT, ScriptedUpstream
from tests.fuzz.test_sse import reference
from tests.helpers import assert_well_formed, chat, user

Relay = Callable[..., RunningRelay]
STREAM = (b'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n'
          b'data: {"choices":[{"index":0,"delta":{"content":" there"}}]}\n\n')
CUTS = [60, 61, 70, len(STREAM) - 1]  # inside the second event, just after its first byte, at its end


@pytest.mark.parametrize("at", CUTS)
@pytest.mark.parametrize("asks_usage", [False, True], ids=["usage-asked-by-the-relay", "usage-asked-by-the-client"])
@pytest.mark.parametrize("path", ["/chatgpt", "/v1/chat/completions"])
def test_a_broken_event_stream_ends_with_an_error_event(relay: Relay, scripted_upstream: ScriptedUpstream,
                                                        path: str, asks_usage: bool, at: int) -> None:
    r = relay(openai_base_url=scripted_upstream.url)
    prompt = scripted_upstream.reply(STREAM[:at], CUT)
    body = {**user(prompt), "model": "gpt-4o-mini", "stream": True}
    if asks_usage:
        body["stream_options"] = {"include_usage": True}  # the relay then forwards reads as they come
    with httpx.stream("POST", f"{r.url}{path}", json=body, headers=r.auth, timeout=20) as response:
        data = response.read()
    assert response.status_code == 200
    events = [event[0] for event in reference(data)]
    assert events[0] == STREAM[6:STREAM.index(b"\n")].decode()
    if events[-1] == "[DONE]":
        events.pop()
    # The relay's error event comes last, read whole: no half event before it or after it.
    assert orjson.loads(events[-1])["error"]["message"], data
    assert data.endswith(b"\n\n")


@pytest.mark.parametrize("at", CUTS)
def test_a_broken_stream_on_chat_ends_with_an_error_frame(relay: Relay, scripted_upstream: ScriptedUpstream,
                                                          at: int) -> None:
    r = relay(openai_base_url=scripted_upstream.url)
    reply = chat(r.url, user(scripted_upstream.reply(STREAM[:at], CUT)), r.auth)
    assert_well_formed(reply)
    assert reply.text == "Hi" and reply.errors
