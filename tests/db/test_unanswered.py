"""A PostgreSQL server the relay stops hearing from (a network that drops packets: no error, no answer)
is told within seconds, and the relay goes on with what it has: its keys as last read."""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy.engine import make_url

from gptrelay.db import engine
from tests.conftest import LoopThread, RunningRelay, Store
from tests.helpers import Link, eventually


def test_a_database_that_stops_answering_is_told_and_the_keys_stay(
        relay: Callable[..., RunningRelay], loop_thread: LoopThread, postgres_url: str,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(engine, "STATEMENT_TIMEOUT_S", 1.0, raising=False)
    store = Store(loop_thread, postgres_url)
    key = store.create("alice")
    link = Link(make_url(postgres_url).port or 5432)
    port = loop_thread.run(link.start())
    r = relay(database_url=make_url(postgres_url).set(port=port).render_as_string(hide_password=False))
    headers = {"Authorization": f"Bearer {key}"}
    try:
        assert httpx.get(f"{r.url}/v1/models", headers=headers).status_code == 200
        with caplog.at_level(logging.WARNING, logger="gptrelay"):
            link.freeze()
            told = eventually(lambda: [m for m in caplog.messages if m.startswith("access keys: database")],
                              within=10)
            assert told, "nothing told in 10 s: the key cache waited on the silent database"
            assert "no answer within" in told[0] and "the keys loaded before stay in force" in told[0], told
            assert httpx.get(f"{r.url}/v1/models", headers=headers, timeout=20).status_code == 200  # from memory
            link.thaw()
            eventually(lambda: "access keys: the database answers again" in caplog.messages, within=15)
    finally:
        link.thaw()
        loop_thread.run(link.close())
        store.close()
