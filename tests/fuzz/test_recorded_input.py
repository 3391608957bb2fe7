"""What a client or an upstream sends reaches the usage records: whatever it is, the record is
stored, and no one else's record in the same batch is lost with it (PostgreSQL refuses text with
NUL characters and numbers past BIGINT; one refused row fails its whole batch)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from gptrelay.usage.writer import SPOOL_NAME
from tests.conftest import RunningRelay
from tests.fuzz.conftest import ScriptedUpstream
from tests.helpers import chat, user
from tests.usage.test_recording import records

Relay = Callable[..., RunningRelay]


def test_a_model_name_with_nul_is_recorded(relay: Relay, postgres_url: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # where a spool would go
    r = relay(database_url=postgres_url)
    reply = chat(r.url, {**user("hi"), "model": "gpt-4o\u0000mini"}, r.auth)
    assert reply.status == 200 and reply.last["content"] == "[DONE]"
    gateway = httpx.post(f"{r.url}/v1/chat/completions", timeout=20,
                         headers={**r.auth, "Content-Type": "application/json"},
                         content=b'{"model":"gpt\x00x","messages":[{"role":"user","content":"hi"}]}')
    assert gateway.status_code < 500
    assert chat(r.url, user("hi"), r.auth).status == 200
    rows = records(postgres_url)
    assert len(rows) == 3, rows
    assert {"gpt-4o\ufffdmini", "gpt\ufffdx"} <= {row["model"] for row in rows}
    assert not (tmp_path / SPOOL_NAME).exists()


def test_token_counts_past_bigint_are_not_taken(relay: Relay, postgres_url: str, tmp_path: Path,
                                                scripted_upstream: ScriptedUpstream,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = relay(database_url=postgres_url, openai_base_url=scripted_upstream.url)
    huge = b'data: {"choices":[],"usage":{"prompt_tokens":99999999999999999999,"completion_tokens":1}}\n\n'
    stream = b'data: {"choices":[{"delta":{"content":"hi"},"finish_reason":"stop"}]}\n\n' + huge + b"data: [DONE]\n\n"
    prompt = scripted_upstream.reply(stream)
    assert chat(r.url, user(prompt), r.auth).status == 200
    assert httpx.post(f"{r.url}/chatgpt", json=user(prompt), headers=r.auth, timeout=20).status_code == 200
    rows = records(postgres_url)
    assert len(rows) == 2 and all(row["estimated"] for row in rows), rows
    assert not (tmp_path / SPOOL_NAME).exists()
