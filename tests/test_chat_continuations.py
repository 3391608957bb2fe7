"""CHAT_MAX_CONTINUATIONS: a /chat reply cut by length is asked for again and streams on as one."""

from __future__ import annotations

from collections.abc import Callable

from gptrelay.fake.replies import LONG
from tests.conftest import RunningFake, RunningRelay
from tests.helpers import assert_well_formed, chat, user

Relay = Callable[..., RunningRelay]


def test_a_long_reply_continues_as_one(relay: Relay, fake_upstream: RunningFake) -> None:
    r = relay(chat_max_continuations=20)
    body = {**user("/scenario long cut=60"), "stream_options": {"include_usage": True}}
    reply = chat(r.url, body, r.auth)
    assert reply.status == 200 and not reply.errors
    assert_well_formed(reply)
    assert reply.text == LONG
    requests = [record for record in fake_upstream.fake.log if record.path == "/v1/chat/completions"]
    assert reply.last["rounds"] == len(requests) > 2 and reply.last["finish_reason"] == "stop"
    # each round after the first carries the reply so far as the assistant's
    assert [m["role"] for m in requests[1].body["messages"]] == ["user", "assistant"]
    assert LONG.startswith(requests[-1].body["messages"][-1]["content"])
    usage = reply.last["usage"]  # every round's, added up
    assert usage["prompt_tokens"] == 7 * len(requests)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_continuations_stop_at_the_limit(relay: Relay, fake_upstream: RunningFake) -> None:
    r = relay(chat_max_continuations=1)
    reply = chat(r.url, user("/scenario long cut=30"), r.auth)
    assert reply.last["rounds"] == 2 and reply.last["finish_reason"] == "length"
    assert LONG.startswith(reply.text) and len(reply.text) < len(LONG)


def test_off_by_default(relay: Relay, fake_upstream: RunningFake) -> None:
    r = relay()
    reply = chat(r.url, user("/scenario length cut=3"), r.auth)
    assert reply.last == {"done": True, "error": False, "content": "[DONE]", "finish_reason": "length"}
    assert len([record for record in fake_upstream.fake.log if record.path == "/v1/chat/completions"]) == 1
