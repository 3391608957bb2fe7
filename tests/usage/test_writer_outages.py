"""UsageWriter through a database outage: how long a reply waits on its record, and how often the outage
is told."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from pathlib import Path

import pytest

from gptrelay.db.engine import create_engine
from gptrelay.db.schema import migrate
from gptrelay.usage.writer import SPOOL_NAME, UsageWriter
from tests.helpers import run_async
from tests.usage.conftest import make

DEAD = "postgresql://postgres@127.0.0.1:1/nothing"  # refused at once


def test_an_insert_stuck_in_the_driver_does_not_hold_the_reply(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/relay.db"
    run_async(migrate(url))
    with sqlite3.connect(f"{tmp_path}/relay.db") as connection:  # a disk that stops answering: an insert
        # that takes seconds inside SQLite, where no cancel reaches it
        connection.execute("CREATE TABLE slow (x)")
        connection.executemany("INSERT INTO slow VALUES (?)", [(n,) for n in range(6000)])
        connection.execute("CREATE TRIGGER stalls AFTER INSERT ON usage BEGIN "
                           "SELECT count(*) FROM slow a, slow b, slow c WHERE a.x + b.x + c.x >= 0; END")

    async def go() -> tuple[float, int]:
        engine = create_engine(url)
        writer = UsageWriter(engine, tmp_path, retry_for=0.5)
        await writer.start()
        started = time.monotonic()
        try:
            await asyncio.wait_for(writer.record(make(1)), 20)
        finally:
            took = time.monotonic() - started
            await asyncio.wait_for(writer.close(), 20)
            await engine.dispose()
        return took, writer.spooled

    took, spooled = run_async(go())
    with sqlite3.connect(f"{tmp_path}/relay.db") as connection:
        stored = connection.execute("SELECT count(*) FROM usage").fetchone()[0]
    assert spooled == 1 and stored == 0  # in the spool, and only there: the stuck insert was interrupted
    assert (tmp_path / SPOOL_NAME).exists()
    assert took < 2.0, f"record() took {took:.1f} s with a 0.5 s retry time"


def test_an_outage_is_told_once_and_only_the_first_record_waits(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    async def go() -> list[float]:
        engine = create_engine(DEAD)
        writer = UsageWriter(engine, tmp_path, retry_for=1.0)
        await writer.start()
        times = []
        try:
            for n in range(5):  # one request after another, as a client sends them
                started = time.monotonic()
                await asyncio.wait_for(writer.record(make(n)), 20)
                times.append(time.monotonic() - started)
        finally:
            await asyncio.wait_for(writer.close(), 20)
            await engine.dispose()
        assert writer.spooled == 5
        return times

    with caplog.at_level(logging.WARNING, "gptrelay.usage"):
        times = run_async(go())
    warnings = [r for r in caplog.records if r.name == "gptrelay.usage" and r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert max(times[1:]) < 0.5, times
