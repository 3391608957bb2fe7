"""The access log: one line per request (``ACCESS_LOG=true``), as text or JSON lines (``LOG_FORMAT``),
through ``logging``; the request's id on its error lines too; never a key or a message."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gptrelay.observe.logs import ACCESS, AccessLine, plain
from tests.conftest import UPSTREAM_KEY, RunningFake, RunningRelay, Store
from tests.helpers import chat, eventually, serve_process, user

Relay = Callable[..., RunningRelay]
SECRET = "the-secret-prompt-7c1d"


def lines(caplog: pytest.LogCaptureFixture) -> list[AccessLine]:
    return [record.msg for record in caplog.records if record.name == ACCESS and isinstance(record.msg, AccessLine)]


def test_a_text_word_cannot_break_the_line_or_forge_a_field() -> None:
    assert plain("gpt-4o-mini") == "gpt-4o-mini" and plain(12) == "12"
    assert plain('m" key=owner\nPOST') == '"m\\" key=owner\\nPOST"'
    line = AccessLine(method="POST", path="/v1/a b", status=200, outcome="ok", route="/v1/{path}", key="alice",
                      model="x\ny z", prompt_tokens=None, completion_tokens=3, estimated=True, ttfb_ms=None,
                      duration_ms=5, request_id='a"b', upstream_request_id=None)
    assert str(line) == ('POST "/v1/a b" 200 ok route=/v1/{path} key=alice model="x\\ny z" prompt_tokens=- '
                         'completion_tokens=3 estimated=True ttfb_ms=- duration_ms=5 request_id="a\\"b" '
                         'upstream_request_id=-')
    assert str(AccessLine(a=1, b="c d")) == 'a=1 b="c d"'


def test_one_line_per_request_with_what_it_used(relay: Relay, store: Store, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    alice = store.create("alice")
    r = relay(database_url=store.url, access_log=True)
    headers = {"Authorization": f"Bearer {alice}", "X-Request-ID": "mine-1"}
    answered = httpx.post(f"{r.url}/v1/chat/completions", json={"model": "gpt-4o-mini", **user(SECRET)},
                          headers=headers)
    assert answered.status_code == 200
    assert chat(r.url, user("hi"), r.auth).status == 200
    assert httpx.post(f"{r.url}/chat", json=user(SECRET), headers={"Authorization": "Bearer gr-wrong"}
                      ).status_code == 401
    with httpx.stream("POST", f"{r.url}/chat", json=user("/scenario bench chunks=200 interval_ms=20"),
                      headers=r.auth) as response:
        for _ in response.iter_lines():
            break
    assert eventually(lambda: len(lines(caplog)) == 4)
    v1, owner, refused, gone = lines(caplog)
    assert v1 == {"method": "POST", "path": "/v1/chat/completions", "status": 200, "outcome": "ok",
                  "route": "/v1/chat/completions", "key": "alice", "model": "gpt-4o-mini",
                  "prompt_tokens": v1["prompt_tokens"], "completion_tokens": v1["completion_tokens"],
                  "estimated": False, "ttfb_ms": v1["ttfb_ms"], "duration_ms": v1["duration_ms"],
                  "request_id": "mine-1", "upstream_request_id": "req_fake"}
    assert v1["prompt_tokens"] > 0 and v1["completion_tokens"] > 0 and v1["ttfb_ms"] is not None
    assert (owner["path"], owner["key"], owner["status"], owner["upstream_request_id"]) == \
        ("/chat", "owner", 200, "req_fake")  # /chat's reply has the relay's id; its line has the upstream's too
    assert (refused["status"], refused["outcome"], refused["key"], refused["model"]) == (401, "error", None, None)
    assert (gone["status"], gone["outcome"]) == (499, "client_gone")
    text = "\n".join(str(line) for line in lines(caplog))
    assert text.startswith("POST /v1/chat/completions 200 ok route=/v1/chat/completions key=alice ")
    assert "request_id=mine-1 upstream_request_id=req_fake" in text
    assert SECRET not in text and alice not in text and alice[3:] not in text


def test_no_access_line_unless_asked(relay: Relay, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    r = relay()
    assert chat(r.url, user("hi"), r.auth).status == 200
    assert not [record for record in caplog.records if record.name == ACCESS]


def relay_env(fake: RunningFake, store: Store, **more: str) -> dict[str, str]:
    return {**os.environ, "OPENAI_API_KEY": UPSTREAM_KEY, "OPENAI_BASE_URL": fake.url,
            "AUTHORIZATION_KEY": "sk-owner-key-5b6a7c8d9e", "DATABASE_URL": store.url, **more}


def exercise(url: str, key: str) -> dict[str, str]:
    """Requests of every kind with ``key`` and a secret prompt; the ids the relay answered with, by kind."""
    auth = {"Authorization": f"Bearer {key}"}
    ids = {}
    ids["v1"] = httpx.post(f"{url}/v1/chat/completions", json={"model": "gpt-4o-mini", "stream": True,
                                                               **user(SECRET)}, headers=auth).headers["x-request-id"]
    ids["chat"] = httpx.post(f"{url}/chat", json=user(SECRET), headers=auth).headers["x-request-id"]
    failed = httpx.post(f"{url}/chatgpt", json=user(f"/scenario error status=500 {SECRET}"), headers=auth)
    assert failed.status_code == 500
    ids["failed"] = failed.headers["x-request-id"]
    ids["refused"] = httpx.post(f"{url}/chat", json=user(SECRET), headers={"Authorization": "Bearer " + key[:-1]}
                                ).headers["x-request-id"]
    return ids


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_real_relay_logs_each_request_and_never_a_key_or_a_message(
        fake_upstream: RunningFake, store: Store, tmp_path: Path, log_format: str) -> None:
    alice = store.create("alice")
    env = relay_env(fake_upstream, store, ACCESS_LOG="true", LOG_FORMAT=log_format)
    relay = serve_process(env, tmp_path)
    try:
        ids = exercise(relay.url, alice)
    finally:
        stderr = relay.stop()
    assert relay.process.returncode == 0, stderr
    for secret in (alice, alice[3:], UPSTREAM_KEY, env["AUTHORIZATION_KEY"], SECRET):
        assert secret not in stderr
    logged = stderr.splitlines()
    if log_format == "json":
        entries = [orjson.loads(line) for line in logged]  # every line is JSON
        access = [entry for entry in entries if entry["logger"] == ACCESS and entry["route"] != "/healthz"]
        assert [(entry["route"], entry["status"], entry["key"]) for entry in access] == [
            ("/v1/chat/completions", 200, "alice"), ("/chat", 200, "alice"), ("/chatgpt", 500, "alice"),
            ("/chat", 401, None)]
        assert [entry["request_id"] for entry in access] == [_ours(ids["v1"], access[0]), ids["chat"],
                                                             ids["failed"], ids["refused"]]
        assert access[0]["upstream_request_id"] == "req_fake" and access[0]["completion_tokens"] > 0
        assert [entry["upstream_request_id"] for entry in access[1:]] == ["req_fake", "req_fake_error", None]
        assert all(entry["time"].endswith("Z") and entry["level"] == "INFO" for entry in access)
        [warning] = [entry for entry in entries if entry["level"] == "WARNING"]
        assert warning["request_id"] == ids["failed"] and "upstream error 500" in warning["message"]
    else:
        access = [line for line in logged if f" INFO {ACCESS}: " in line and " route=/healthz " not in line]
        assert len(access) == 4
        assert " POST /v1/chat/completions 200 ok route=/v1/chat/completions key=alice model=gpt-4o-mini" in access[0]
        assert "upstream_request_id=req_fake" in access[0]
        assert f"request_id={ids['chat']} upstream_request_id=req_fake" in access[1]
        assert "upstream_request_id=req_fake_error" in access[2] and access[3].endswith("upstream_request_id=-")
        assert " POST /chat 401 error route=/chat key=- " in access[3]
        [warning] = [line for line in logged if " WARNING " in line]
        assert "upstream error 500" in warning and warning.endswith(f" request_id={ids['failed']}")


def _ours(answered: str, entry: dict[str, Any]) -> str:
    """A /v1 reply carries the upstream's id: the line has it beside the relay's own."""
    assert answered == entry["upstream_request_id"] == "req_fake"
    return str(entry["request_id"])


def test_access_log_off_by_default_in_a_real_relay(fake_upstream: RunningFake, store: Store, tmp_path: Path) -> None:
    relay = serve_process(relay_env(fake_upstream, store), tmp_path)
    try:
        assert chat(relay.url, user("hi"), {"Authorization": "Bearer sk-owner-key-5b6a7c8d9e"}).status == 200
    finally:
        stderr = relay.stop()
    assert ACCESS not in stderr


def test_log_format_is_text_or_json(tmp_path: Path) -> None:
    from gptrelay.settings import Settings

    assert Settings(_env_file=None, log_format="JSON").log_format == "json"  # type: ignore[call-arg]
    assert Settings(_env_file=None).log_format == "text"  # type: ignore[call-arg]
    refused = subprocess.run([sys.executable, "-m", "gptrelay", "serve"], cwd=tmp_path, capture_output=True,
                             text=True, timeout=60, env={**os.environ, "LOG_FORMAT": "xml", "OPENAI_API_KEY": "sk-x"})
    assert refused.returncode == 2
    assert refused.stderr == "gptrelay: LOG_FORMAT: Input should be 'text' or 'json' (got 'xml')\n"
