"""usage_rows on SQLite and PostgreSQL: grouped by key, model and UTC day, per request; since and until."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from gptrelay.db.engine import create_engine
from gptrelay.usage.queries import By, usage_rows
from gptrelay.usage.records import UsageRecord
from gptrelay.usage.writer import UsageWriter
from tests.helpers import run_async
from tests.usage.conftest import make

DAY1 = datetime(2026, 11, 24, 23, 59, 59, 999000, tzinfo=UTC)
DAY2 = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
RECORDS = [
    make(10, time=DAY1, key="alice", model="gpt-4o", completion_tokens=5),
    make(20, time=DAY2, key="alice", model="gpt-4o-mini", completion_tokens=7, estimated=True, outcome="cut"),
    # 02:00 at +03:00 is 23:00 UTC the day before
    make(30, time=datetime(2026, 11, 26, 2, 0, tzinfo=timezone(timedelta(hours=3))), key="bob", model="gpt-4o",
         completion_tokens=0, status=429, outcome="error"),
    make(40, time=DAY2 + timedelta(days=1, hours=1), key=None, model=None, completion_tokens=2),
]


def query(url: str, records: list[UsageRecord], tmp_path: Path, **options: Any) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        engine = create_engine(url)
        try:
            if records:
                writer = UsageWriter(engine, tmp_path)
                for rec in records:
                    await writer.record(rec)
            return await usage_rows(engine, **options)
        finally:
            await engine.dispose()

    return run_async(go())


def totals(requests: int, prompt: int, completion: int) -> dict[str, int]:
    return {"requests": requests, "prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def test_grouped_and_per_request(database_url: str, tmp_path: Path) -> None:
    def rows(by: By, **options: Any) -> list[dict[str, Any]]:
        return query(database_url, [], tmp_path, by=by, **options)

    assert rows("key") == []
    query(database_url, RECORDS, tmp_path)
    assert rows("key") == [{"key": None} | totals(1, 40, 2), {"key": "alice"} | totals(2, 30, 12),
                           {"key": "bob"} | totals(1, 30, 0)]
    assert rows("model") == [{"model": None} | totals(1, 40, 2), {"model": "gpt-4o"} | totals(2, 40, 5),
                             {"model": "gpt-4o-mini"} | totals(1, 20, 7)]
    assert rows("day") == [{"day": "2026-11-24"} | totals(1, 10, 5), {"day": "2026-11-25"} | totals(2, 50, 7),
                           {"day": "2026-11-26"} | totals(1, 40, 2)]
    assert rows("day", key="alice") == [{"day": "2026-11-24"} | totals(1, 10, 5),
                                        {"day": "2026-11-25"} | totals(1, 20, 7)]
    requests = rows("request")
    assert [r["time"] for r in requests] == ["2026-11-24T23:59:59.999Z", "2026-11-25T00:00:00.000Z",
                                             "2026-11-25T23:00:00.000Z", "2026-11-26T01:00:00.000Z"]
    assert requests[1] == {"time": "2026-11-25T00:00:00.000Z", "key": "alice", "route": "/v1/chat/completions",
                           "model": "gpt-4o-mini", "status": 200, "prompt_tokens": 20, "completion_tokens": 7,
                           "estimated": True, "outcome": "cut"}
    assert (requests[2]["status"], requests[2]["outcome"], requests[3]["key"]) == (429, "error", None)


def test_since_is_inclusive_and_until_exclusive(database_url: str, tmp_path: Path) -> None:
    query(database_url, RECORDS, tmp_path)

    def numbers(**options: Any) -> list[int]:
        return [r["prompt_tokens"] for r in query(database_url, [], tmp_path, by="request", **options)]

    assert numbers(since=DAY2) == [20, 30, 40]
    assert numbers(until=DAY2) == [10]
    assert numbers(since=DAY1, until=DAY2) == [10]
    assert numbers(since=DAY1 + timedelta(milliseconds=1), until=DAY2 + timedelta(microseconds=1)) == [20]
    # a zone other than UTC means the same instant
    assert numbers(since=datetime(2026, 11, 25, 2, 0, tzinfo=timezone(timedelta(hours=2)))) == [20, 30, 40]
    assert numbers(since=DAY2, until=DAY2) == []
    assert query(database_url, [], tmp_path, by="key", key="bob", since=DAY2) == [{"key": "bob"} | totals(1, 30, 0)]


def test_the_owner_key_alone(database_url: str, tmp_path: Path) -> None:
    """``owner`` keeps the records without a key name (AUTHORIZATION_KEY's), in every grouping."""
    query(database_url, [*RECORDS, make(50, time=DAY1, key=None, model="gpt-4o", completion_tokens=3)], tmp_path)

    def rows(by: By, **options: Any) -> list[dict[str, Any]]:
        return query(database_url, [], tmp_path, by=by, owner=True, **options)

    assert rows("key") == [{"key": None} | totals(2, 90, 5)]
    assert rows("model") == [{"model": None} | totals(1, 40, 2), {"model": "gpt-4o"} | totals(1, 50, 3)]
    assert rows("day") == [{"day": "2026-11-24"} | totals(1, 50, 3), {"day": "2026-11-26"} | totals(1, 40, 2)]
    assert [(r["key"], r["prompt_tokens"]) for r in rows("request")] == [(None, 50), (None, 40)]
    assert rows("key", since=DAY2) == [{"key": None} | totals(1, 40, 2)]
    assert rows("request", until=DAY1) == []
    # owner=False is no filter; a key name still filters by name alone
    assert len(query(database_url, [], tmp_path, by="request", owner=False)) == 5
    assert query(database_url, [], tmp_path, by="key", key="bob", owner=False) == [{"key": "bob"} | totals(1, 30, 0)]


def test_an_unknown_grouping_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="by must be one of"):
        query(f"sqlite:///{tmp_path}/x.db", [], tmp_path, by="week")


def test_a_key_and_the_owner_at_once_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="key or owner, not both"):
        query(f"sqlite:///{tmp_path}/x.db", [], tmp_path, key="alice", owner=True)
