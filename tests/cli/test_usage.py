"""``gptrelay usage``, run as a user runs it: real processes on a SQLite file, and on PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from gptrelay.db.engine import create_engine
from gptrelay.db.schema import migrate
from gptrelay.usage.records import UsageRecord
from gptrelay.usage.writer import UsageWriter
from tests.helpers import run_async

GROUPED = {"requests", "prompt_tokens", "completion_tokens", "total_tokens"}
REQUEST = {"time", "key", "route", "model", "status", "prompt_tokens", "completion_tokens", "estimated", "outcome"}


class Usage:
    """``usage("--by", "day")`` runs ``python -m gptrelay usage --by day`` in ``cwd``."""

    def __init__(self, cwd: Path, database_url: str) -> None:
        self.cwd = cwd
        self.url = database_url
        self.env = {**os.environ, "DATABASE_URL": database_url}

    def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "gptrelay", "usage", *args], cwd=self.cwd,
                                capture_output=True, text=True, timeout=60, env=self.env)
        if ok:
            assert result.returncode == 0, result.stderr
            assert result.stderr == ""
        return result

    def json(self, *args: str) -> Any:
        return orjson.loads(self(*args, "--json").stdout)

    def fails(self, *args: str) -> str:
        result = self(*args, ok=False)
        assert result.returncode != 0 and result.stdout == ""
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("gptrelay: "), result.stderr
        return result.stderr.removeprefix("gptrelay: ").strip()

    def record(self, *records: UsageRecord) -> None:
        async def go() -> None:
            await migrate(self.url)
            engine = create_engine(self.url)
            writer = UsageWriter(engine, self.cwd)
            await writer.start()
            await asyncio.gather(*(writer.record(rec) for rec in records))
            await writer.close()
            await engine.dispose()

        run_async(go())


def rec(day: int, hour: int, key: str | None, model: str | None, prompt: int, completion: int, **more: Any,
        ) -> UsageRecord:
    values: dict[str, Any] = {"route": "/chat", "status": 200, "estimated": False, "outcome": "ok",
                              "ttfb_ms": 100, "duration_ms": 500}
    return UsageRecord(time=datetime(2026, 11, day, hour, tzinfo=UTC), key=key, model=model, prompt_tokens=prompt,
                       completion_tokens=completion, **(values | more))


RECORDS = [rec(24, 10, "alice", "gpt-4o", 10, 5), rec(25, 0, "alice", "gpt-4o-mini", 20, 7, estimated=True,
                                                           outcome="client_gone"),
           rec(25, 23, "bob", "gpt-4o", 30, 0, status=429, outcome="error"), rec(26, 1, None, None, 40, 2)]


@pytest.fixture
def usage(tmp_path: Path) -> Usage:
    return Usage(tmp_path, f"sqlite:///{tmp_path}/relay.db")


def check_usage(usage: Usage) -> None:
    assert usage().stdout == "No usage recorded.\n"
    assert usage.json() == []
    usage.record(*RECORDS)

    by_key = usage.json()
    assert [row["key"] for row in by_key] == [None, "alice", "bob"]
    assert all(set(row) == {"key"} | GROUPED for row in by_key)
    assert by_key[1] == {"key": "alice", "requests": 2, "prompt_tokens": 30, "completion_tokens": 12,
                         "total_tokens": 42}
    assert usage.json("--by", "key") == by_key
    assert [(r["model"], r["total_tokens"]) for r in usage.json("--by", "model")] == [
        (None, 42), ("gpt-4o", 45), ("gpt-4o-mini", 27)]
    assert [(r["day"], r["requests"]) for r in usage.json("--by", "day")] == [
        ("2026-11-24", 1), ("2026-11-25", 2), ("2026-11-26", 1)]

    requests = usage.json("--by", "request", "--since", "2026-11-25", "--until", "2026-11-26")
    assert all(set(row) == REQUEST for row in requests)
    assert requests == [
        {"time": "2026-11-25T00:00:00.000Z", "key": "alice", "route": "/chat", "model": "gpt-4o-mini", "status": 200,
         "prompt_tokens": 20, "completion_tokens": 7, "estimated": True, "outcome": "client_gone"},
        {"time": "2026-11-25T23:00:00.000Z", "key": "bob", "route": "/chat", "model": "gpt-4o", "status": 429,
         "prompt_tokens": 30, "completion_tokens": 0, "estimated": False, "outcome": "error"}]
    # a zone: 2026-11-26T01:00+02:00 is 2026-11-25T23:00Z, included by --since
    assert [r["key"] for r in usage.json("--by", "request", "--since", "2026-11-26T01:00+02:00")] == ["bob", None]
    assert usage.json("--key", "alice", "--by", "day") == [
        {"day": "2026-11-24", "requests": 1, "prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        {"day": "2026-11-25", "requests": 1, "prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27}]
    assert usage.json("--key", "nobody") == []
    # the owner's key (AUTHORIZATION_KEY: no key name) alone
    assert usage.json("--owner") == [{"key": None, "requests": 1, "prompt_tokens": 40, "completion_tokens": 2,
                                      "total_tokens": 42}]
    assert [(r["time"], r["key"]) for r in usage.json("--owner", "--by", "request")] == [
        ("2026-11-26T01:00:00.000Z", None)]
    assert usage.json("--owner", "--until", "2026-11-26") == []

    table = usage().stdout
    assert table.splitlines()[0].split() == ["KEY", "REQUESTS", "PROMPT", "COMPLETION", "TOTAL"]
    assert re.search(r"^alice\s+2\s+30\s+12\s+42$", table, re.M), table
    assert re.search(r"^\(no key\)\s+1\s+40\s+2\s+42$", table, re.M), table
    listed = usage("--by", "request", "--key", "bob").stdout
    assert re.search(r"^2026-11-25T23:00:00.000Z\s+bob\s+/chat\s+gpt-4o\s+429\s+30\s+0\s+no\s+error$", listed, re.M)
    assert usage("--key", "nobody").stdout == "No usage recorded for these options.\n"
    assert re.fullmatch(r"DAY\s+REQUESTS\s+PROMPT\s+COMPLETION\s+TOTAL\n2026-11-26\s+1\s+40\s+2\s+42\n",
                        usage("--owner", "--by", "day").stdout)
    assert usage("--owner", "--since", "2026-11-27").stdout == "No usage recorded for these options.\n"


def test_usage_on_sqlite(usage: Usage) -> None:
    check_usage(usage)


def test_usage_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    check_usage(Usage(tmp_path, postgres_url))


def test_mistakes_are_one_line(usage: Usage) -> None:
    assert usage.fails("--by", "week") == "bad --by 'week': use key, model, day or request"
    assert usage.fails("--since", "yesterday").startswith("bad --since 'yesterday': use ISO 8601")
    assert usage.fails("--until", "2026-13-01").startswith("bad --until '2026-13-01'")
    assert usage.fails("--since", "0001-01-01T00:00+01:00").startswith("bad --since '0001-01-01T00:00+01:00'")
    assert usage.fails("--since", "2026-11-02", "--until", "2026-11-01") == "--since must be before --until"
    assert usage.fails("--key", "alice", "--owner") == "give --key or --owner, not both"
    usage.env["DATABASE_URL"] = "postgresql://relay:s3cret@127.0.0.1:1/relay"
    message = usage.fails()
    assert message.startswith("database postgresql://relay:***@127.0.0.1:1/relay: ") and "s3cret" not in message


def test_help_shows_the_options(usage: Usage) -> None:
    shown = usage("--help").stdout
    for option in ("--key NAME", "--owner", "--since DATE", "--until DATE", "--by key|model|day|request", "--json"):
        assert option in shown
