"""The pool with real parts: several fake upstreams, faults injected, their logs as the proof."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

import httpx
import orjson
import pytest

from gptrelay.upstream import pool
from tests.conftest import RunningFake, RunningRelay
from tests.helpers import assert_well_formed, chat, free_port, user
from tests.upstream.conftest import Fakes, served

Pooled = Callable[..., RunningRelay]
KEY_A, KEY_B, KEY_C = "sk-pool-aaaa-0123456789-aaaa", "sk-pool-bbbb-0123456789-bbbb", "sk-pool-cccc-0123456789-cccc"


@pytest.fixture
def in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """Upstreams tried in the file's order, not drawn by weight: which one served is then certain."""
    monkeypatch.setattr(pool, "_by_weight", lambda members: members)


def upstream(name: str, url: str, *, keys: list[str] | None = None, weight: float = 1,
             models: list[str] | None = None, extra: str = "") -> str:
    lines = ["[[upstreams]]", f'name = "{name}"', f'base_url = "{url}"', f"weight = {weight}"]
    if keys is not None:
        lines.append(f"keys = {orjson.dumps(keys).decode()}")
    if models is not None:
        lines.append(f"models = {orjson.dumps(models).decode()}")
    return "\n".join([*lines, extra, ""])


def refused_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"


def keys_used(fake: RunningFake) -> list[str]:
    return [record.headers.get("Authorization", "").removeprefix("Bearer ") for record in fake.fake.log]


@pytest.mark.usefixtures("in_order")
def test_failover_before_the_first_byte(fakes: Fakes, pooled: Pooled) -> None:
    """A 503, a refused connection and a 429 before the one that serves: the client sees only the
    reply, and each upstream's log shows what it was asked."""
    failing = fakes(scenario="error status=503")
    limited = fakes(scenario="error status=429 retry_after=none")
    good = fakes()
    relay = pooled(upstream("failing", failing.url, keys=[KEY_A])
                   + upstream("refused", refused_url(), keys=[KEY_B])
                   + upstream("limited", limited.url, keys=[KEY_C])
                   + upstream("good", good.url, keys=[KEY_A]))
    reply = chat(relay.url, user("hello"), relay.auth)
    assert reply.status == 200 and not reply.errors and reply.text, reply.frames
    assert_well_formed(reply)
    assert (served(failing), served(limited), served(good)) == (1, 1, 1)
    # the failing ones now rest: the next requests go straight to the good one
    for _ in range(3):
        assert chat(relay.url, user("again"), relay.auth).status == 200
    assert (served(failing), served(limited), served(good)) == (1, 1, 4)


@pytest.mark.usefixtures("in_order")
def test_a_slow_upstream_is_left_before_its_headers(fakes: Fakes, pooled: Pooled) -> None:
    slow = fakes(scenario="slow-headers seconds=30")
    good = fakes()
    relay = pooled(upstream("slow", slow.url) + upstream("good", good.url),
                   first_byte_timeout=1.0)
    r = httpx.post(f"{relay.url}/v1/chat/completions", json={"model": "gpt-4o-mini", **user("hi")},
                   headers=relay.auth, timeout=20)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"]
    assert (served(slow), served(good)) == (1, 1)
    assert slow.fake.log[0].disconnected is not None  # the relay let go of it


@pytest.mark.usefixtures("in_order")
def test_nothing_is_retried_after_the_first_byte(fakes: Fakes, pooled: Pooled) -> None:
    """A stream cut midway ends with an error for the client; the other upstream is never asked."""
    cut = fakes(scenario="cut cut=3")
    good = fakes()
    relay = pooled(upstream("cut", cut.url) + upstream("good", good.url))
    reply = chat(relay.url, user("hello"), relay.auth)
    assert reply.status == 200 and reply.text and reply.errors, reply.frames
    assert_well_formed(reply)
    with httpx.stream("POST", f"{relay.url}/chatgpt", json=user("hello"), headers=relay.auth, timeout=20) as r:
        body = r.read()
    assert b'"error"' in body and body.rstrip().endswith(b"data: [DONE]")
    assert (served(cut), served(good)) == (2, 0)


@pytest.mark.usefixtures("in_order")
def test_when_every_upstream_fails_the_client_gets_the_last_failure(fakes: Fakes, pooled: Pooled) -> None:
    first = fakes(scenario="error status=502")
    last = fakes(scenario="error status=503 text='the last one is down'")
    relay = pooled(upstream("first", first.url) + upstream("last", last.url))
    reply = chat(relay.url, user("hello"), relay.auth)
    assert reply.status == 503 and reply.errors == ["upstream error 503: the last one is down"]
    r = httpx.post(f"{relay.url}/chatgpt", json=user("hello"), headers=relay.auth, timeout=20)
    assert r.status_code == 503  # both rest now, and are tried all the same: nowhere else to go
    assert (served(first), served(last)) == (2, 2)


@pytest.mark.usefixtures("in_order")
def test_keys_in_turn_and_a_refused_key_set_aside(fakes: Fakes, pooled: Pooled,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    fake = fakes(key_scenarios={KEY_B: "error status=401"})
    relay = pooled(upstream("openai", fake.url, keys=[KEY_A, KEY_B, KEY_C]))
    with caplog.at_level(logging.INFO, logger="gptrelay"):
        for _ in range(6):
            assert chat(relay.url, user("hi"), relay.auth).status == 200
    used = keys_used(fake)
    assert used.count(KEY_B) == 1 and used.count(KEY_A) >= 2 and used.count(KEY_C) >= 2, used
    assert len(used) == 7  # six replies and the one refusal
    assert "upstream openai: key sk-…bbbb set aside (401 invalid_api_key)" in caplog.text
    assert not any(key in caplog.text for key in (KEY_A, KEY_B, KEY_C))


@pytest.mark.parametrize(("scenario", "state", "logged"), [
    ("error status=429 retry_after=7", "resting", "upstream openai: key sk-…aaaa rests for 7 s (429)"),
    ("error status=429 code=insufficient_quota", "set_aside",
     "upstream openai: key sk-…aaaa set aside (429 insufficient_quota)"),
])
def test_a_limited_key_rests_and_one_out_of_quota_is_set_aside(fakes: Fakes, pooled: Pooled, scenario: str,
                                                                state: str, logged: str,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    """Told in the log and in the admin API, keys masked."""
    fake = fakes(key_scenarios={KEY_A: scenario})
    relay = pooled(upstream("openai", fake.url, keys=[KEY_A, KEY_B]), admin_key="admin-key-for-tests")
    with caplog.at_level(logging.INFO, logger="gptrelay"):
        for _ in range(4):
            assert chat(relay.url, user("hi"), relay.auth).status == 200
    assert keys_used(fake).count(KEY_A) == 1
    assert logged in caplog.text
    assert KEY_A not in caplog.text and KEY_B not in caplog.text
    r = httpx.get(f"{relay.url}/admin/api/upstreams", headers={"Authorization": "Bearer admin-key-for-tests"})
    assert r.status_code == 200, r.text
    (listed,) = r.json()["data"]
    assert listed["name"] == "openai" and listed["failures"] == 1 and listed["state"] == "ready"
    first, second = listed["keys"]
    assert first["key"] == "sk-…aaaa" and first["state"] == state and first["failures"] == 1
    if state == "resting":
        assert 5 < first["resting_seconds"] <= 7
    else:
        assert first["set_aside_because"] == "429 insufficient_quota"
    assert second == {"key": "sk-…bbbb", "state": "ready", "resting_seconds": 0, "set_aside_because": None,
                      "failures": 0}
    assert KEY_A not in r.text and KEY_B not in r.text
    assert httpx.get(f"{relay.url}/admin/api/upstreams", headers=relay.auth).status_code == 401


def test_the_admin_api_lists_the_one_upstream_of_the_environment(relay: Callable[..., RunningRelay]) -> None:
    r = relay(admin_key="admin-key-for-tests")
    listed = httpx.get(f"{r.url}/admin/api/upstreams", headers={"Authorization": "Bearer admin-key-for-tests"})
    (only,) = listed.json()["data"]
    assert only["name"] == "openai" and only["keys"][0]["key"] == "sk-…7f3a" and only["proxy"] is None


@pytest.mark.usefixtures("in_order")
def test_a_streamed_body_is_sent_again_when_it_fits(fakes: Fakes, pooled: Pooled) -> None:
    """A 2 MiB upload (streamed to the upstream, not read whole) goes again with the next key."""
    fake = fakes(key_scenarios={KEY_A: "error status=429"})
    relay = pooled(upstream("openai", fake.url, keys=[KEY_A, KEY_B]))
    body = bytes(range(256)) * 8192
    r = httpx.post(f"{relay.url}/v1/echo/upload", content=body, timeout=20,
                   headers={**relay.auth, "Content-Type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    assert r.json()["body_size"] == len(body) and r.json()["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert keys_used(fake)[-1] == KEY_B


def test_the_openai_sdk_sees_only_successes_while_an_upstream_fails(fakes: Fakes, pooled: Pooled) -> None:
    from openai import OpenAI

    down, flaky, good = fakes(scenario="error status=500"), fakes(scenario="error status=429"), fakes()
    relay = pooled(upstream("down", down.url) + upstream("flaky", flaky.url)
                   + upstream("good", good.url) + upstream("refused", refused_url()))
    client = OpenAI(base_url=f"{relay.url}/v1", api_key=relay.key, max_retries=0)
    for _ in range(4):
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content
        stream = client.chat.completions.create(model="gpt-4o-mini", stream=True,
                                                messages=[{"role": "user", "content": "hi"}])
        assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert served(good) == 8
    assert served(down) <= 1 and served(flaky) <= 1


def test_weights_share_the_traffic() -> None:
    class Weighted:
        def __init__(self, weight: float) -> None:
            self.weight = weight

    heavy, light = Weighted(3), Weighted(1)
    firsts = [pool._by_weight([heavy, light])[0] for _ in range(4000)]  # type: ignore[list-item]
    assert 0.70 < firsts.count(heavy) / len(firsts) < 0.80
