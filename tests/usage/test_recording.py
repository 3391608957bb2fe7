"""Usage records of real requests: what each endpoint records, committed before the response ends
(kill -9 right after a client saw its end loses nothing), and the quotas and TPM they feed."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

from gptrelay.db.engine import create_engine
from gptrelay.usage.queries import usage_rows
from tests.conftest import UPSTREAM_KEY, RunningFake, RunningRelay, Store
from tests.helpers import free_port, run_async, user, wait_until_serving

Relay = Callable[..., RunningRelay]


def records(url: str) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        engine = create_engine(url)
        try:
            return await usage_rows(engine, by="request")
        finally:
            await engine.dispose()

    return run_async(go())


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_chat_records_the_upstreams_usage_and_hides_the_chunk_it_asked_for(relay: Relay, store: Store) -> None:
    alice = store.create("alice")
    r = relay(database_url=store.url)
    reply = httpx.post(f"{r.url}/chat", json=user("hi"), headers=bearer(alice))
    done = orjson.loads(reply.text.splitlines()[-1])
    assert "usage" not in done  # the client did not ask for it
    [row] = records(store.url)  # committed before the done frame was sent
    assert (row["key"], row["route"], row["model"], row["status"], row["outcome"], row["estimated"]) == (
        "alice", "/chat", "gpt-4o-mini", 200, "ok", False)
    assert row["prompt_tokens"] == 7 and row["completion_tokens"] > 0
    asked = httpx.post(f"{r.url}/chat", json={**user("hi"), "stream_options": {"include_usage": True}},
                       headers=bearer(alice))
    assert orjson.loads(asked.text.splitlines()[-1])["usage"]["prompt_tokens"] == 7


def test_chatgpt_passes_exactly_what_the_client_asked_for(relay: Relay, store: Store,
                                                          fake_upstream: RunningFake) -> None:
    bob = store.create("bob")
    r = relay(database_url=store.url)
    relayed = httpx.post(f"{r.url}/chatgpt", json=user("hi"), headers=bearer(bob)).content
    direct = httpx.post(f"{fake_upstream.url}/chat/completions", json={**user("hi"), "stream": True,
                                                                        "model": "gpt-4o-mini"},
                        headers=bearer(UPSTREAM_KEY)).content
    assert relayed == direct and b"usage" not in relayed
    [row] = records(store.url)
    assert (row["route"], row["prompt_tokens"], row["estimated"]) == ("/chatgpt", 7, False)


def test_v1_records_reported_and_estimated_tokens(relay: Relay, store: Store, fake_upstream: RunningFake) -> None:
    carol = store.create("carol")
    r = relay(database_url=store.url)
    body = {"model": "gpt-4o-mini", **user("hi")}
    plain = httpx.post(f"{r.url}/v1/chat/completions", json=body, headers=bearer(carol)).json()
    # Streamed without asking for usage: the relay asks, and the client gets what it would have got.
    streamed = httpx.post(f"{r.url}/v1/chat/completions", json={**body, "stream": True}, headers=bearer(carol))
    direct = httpx.post(f"{fake_upstream.url}/chat/completions", json={**body, "stream": True},
                        headers=bearer(UPSTREAM_KEY))
    assert streamed.content == direct.content and b"usage" not in streamed.content
    with_usage = httpx.post(f"{r.url}/v1/chat/completions", headers=bearer(carol),
                            json={**body, "stream": True, "stream_options": {"include_usage": True}})
    assert '"usage":{"prompt_tokens":7' in with_usage.text and '"usage":null' in with_usage.text
    # A compressed body goes upstream as sent (nothing added): its tokens are estimated.
    gzipped = gzip.compress(orjson.dumps({**body, "stream": True}))
    compressed = httpx.post(f"{r.url}/v1/chat/completions", content=gzipped,
                            headers={**bearer(carol), "Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert compressed.text.endswith("data: [DONE]\n\n") and "usage" not in compressed.text
    rows = records(store.url)
    assert [row["route"] for row in rows] == ["/v1/chat/completions"] * 4
    assert (rows[0]["prompt_tokens"], rows[0]["completion_tokens"], rows[0]["estimated"]) == (
        plain["usage"]["prompt_tokens"], plain["usage"]["completion_tokens"], False)
    assert (rows[1]["prompt_tokens"], rows[1]["estimated"]) == (7, False) and rows[1]["completion_tokens"] > 0
    assert (rows[2]["prompt_tokens"], rows[2]["estimated"]) == (7, False)
    assert rows[3]["estimated"] is True and rows[3]["completion_tokens"] > 0


def test_refusals_and_upstream_errors_are_recorded(relay: Relay, store: Store) -> None:
    dave = store.create("dave", rpm=1)
    r = relay(database_url=store.url)
    assert httpx.post(f"{r.url}/chat", json=user("/scenario error status=500"), headers=bearer(dave)).status_code == 500
    assert httpx.post(f"{r.url}/chat", json=user("hi"), headers=bearer(dave)).status_code == 429
    assert httpx.post(f"{r.url}/chat", json=user("hi"), headers=bearer("gr-unknown")).status_code == 401
    rows = records(store.url)
    assert [(row["status"], row["outcome"]) for row in rows] == [(500, "error"), (429, "error")]  # not the 401


def test_a_client_gone_midway_is_recorded_with_what_it_got(relay: Relay, store: Store) -> None:
    erin = store.create("erin")
    r = relay(database_url=store.url)
    with httpx.stream("POST", f"{r.url}/chat", json=user("/scenario bench chunks=200 interval_ms=20"),
                      headers=bearer(erin)) as response:
        for _ in response.iter_lines():
            break
    deadline = time.monotonic() + 5
    while not (rows := records(store.url)) and time.monotonic() < deadline:
        time.sleep(0.05)
    [row] = rows
    assert row["outcome"] == "client_gone" and row["estimated"] is True


def test_quota_and_tpm_refuse_once_spent(relay: Relay, store: Store) -> None:
    frank = store.create("frank", daily_tokens=10)
    grace = store.create("grace", tpm=10)
    r = relay(database_url=store.url)
    for key, code in ((frank, "insufficient_quota"), (grace, "rate_limit_exceeded")):
        assert httpx.post(f"{r.url}/chat", json=user("hi"), headers=bearer(key)).status_code == 200  # > 10 tokens
        refused = httpx.post(f"{r.url}/v1/chat/completions", json={"model": "m", **user("hi")}, headers=bearer(key))
        assert refused.status_code == 429 and refused.json()["error"]["code"] == code
        assert int(refused.headers["retry-after"]) >= 1


def test_a_response_seen_whole_survives_kill_9(fake_upstream: RunningFake, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/relay.db"
    port = free_port()
    env = {**os.environ, "OPENAI_API_KEY": UPSTREAM_KEY, "OPENAI_BASE_URL": fake_upstream.url,
           "AUTHORIZATION_KEY": "owner", "DATABASE_URL": url}
    process = subprocess.Popen([sys.executable, "-m", "gptrelay", "serve", "--port", str(port)], env=env,
                               cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_serving(f"http://127.0.0.1:{port}", process)
        ends = []
        for path in ("/chat", "/chatgpt", "/v1/chat/completions"):
            body = {"model": "gpt-4o-mini", "stream": path != "/chat", **user("hi")}
            with httpx.stream("POST", f"http://127.0.0.1:{port}{path}", json=body, headers=bearer("owner")) as reply:
                for line in reply.iter_lines():
                    if "[DONE]" in line:  # the client has seen its response end
                        ends.append(path)
                        break
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
    assert ends == ["/chat", "/chatgpt", "/v1/chat/completions"]
    assert [row["route"] for row in records(url)] == ends
