"""A migrated database per test, SQLite or PostgreSQL, and records to write into it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gptrelay.db.schema import migrate
from gptrelay.usage.records import UsageRecord
from tests.helpers import run_async


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/relay.db"
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
    run_async(migrate(url))
    return url


def make(n: int = 0, **fields: Any) -> UsageRecord:
    """A record: ``n`` tells them apart (its prompt tokens); ``fields`` override the rest."""
    values: dict[str, Any] = {
        "time": datetime(2026, 11, 25, 12, 0, tzinfo=UTC), "key": "alice", "route": "/v1/chat/completions",
        "model": "gpt-4o-mini", "status": 200, "prompt_tokens": n, "completion_tokens": 1, "estimated": False,
        "outcome": "ok", "ttfb_ms": 120, "duration_ms": 900}
    return UsageRecord(**(values | fields))
