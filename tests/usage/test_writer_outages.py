"""UsageWriter through a database outage: how long a reply waits on its record, and how often the outage
is told. Both tests fail today and are marked so (``gptrelay.usage.writer`` is being rewritten; the
fixes are in their reasons)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, text

from gptrelay.db.engine import create_engine
from gptrelay.db.schema import migrate
from gptrelay.db.tables import usage
from gptrelay.usage.writer import SPOOL_NAME, UsageWriter
from tests.helpers import run_async
from tests.usage.conftest import make

DEAD = "postgresql://postgres@127.0.0.1:1/nothing"  # refused at once


@pytest.mark.xfail(strict=True, reason=(
    "UsageWriter._write bounds an attempt with asyncio.wait_for, which waits for the cancelled insert to "
    "unwind; an insert stuck in the driver's thread (SQLite on a stalled disk) cannot be cancelled, so "
    "record() waits as long as it is stuck. Fix: run the insert as a task, asyncio.wait({task}, "
    "timeout=remaining); on timeout cancel it without awaiting it (keep a reference, log its end), spool "
    "the batch and resolve its futures. The cancelled transaction rolls back, so nothing is counted twice."))
def test_an_insert_stuck_in_the_driver_does_not_hold_the_reply(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/relay.db"
    run_async(migrate(url))

    async def go() -> tuple[float, int, list[int]]:
        engine = create_engine(url)

        @event.listens_for(engine.sync_engine, "connect")
        def stall(dbapi_connection: Any, _record: Any) -> None:  # a disk that stops answering for 5 s
            dbapi_connection.create_function("stall", 0, lambda: time.sleep(5))

        async with engine.begin() as connection:
            await connection.execute(text(
                "CREATE TRIGGER stalls AFTER INSERT ON usage BEGIN SELECT stall(); END"))
        writer = UsageWriter(engine, tmp_path, retry_for=0.5)
        await writer.start()
        started = time.monotonic()
        try:
            await asyncio.wait_for(writer.record(make(1)), 20)
        finally:
            took = time.monotonic() - started
            await asyncio.wait_for(writer.close(), 20)
            await asyncio.sleep(5)  # let the stuck insert end (and roll back)
        async with engine.connect() as connection:
            stored = [row[0] for row in await connection.execute(select(usage.c.prompt_tokens))]
        await engine.dispose()
        return took, writer.spooled, stored

    took, spooled, stored = run_async(go())
    assert spooled == 1 and stored == []  # in the spool, and only there
    assert (tmp_path / SPOOL_NAME).exists()
    assert took < 2.0, f"record() took {took:.1f} s with a 0.5 s retry time"


@pytest.mark.xfail(strict=True, reason=(
    "While the database is down every batch retries for retry_for (2 s) before it is spooled, so every "
    "reply waits 2 s more than it would, and each batch logs its own warning. Fix: once a batch has "
    "been spooled, spool the next ones at once (no retry) while a background probe (one insert attempt "
    "a second, or the next batch's single attempt) finds the database still failing; warn once when "
    "the outage starts (and at most every 30 s after, like the rate limiter), and once when it ends, "
    "with the number of records spooled meanwhile."))
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
