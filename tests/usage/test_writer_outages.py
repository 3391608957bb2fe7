"""UsageWriter through a database outage: how long a reply waits on its record, and how often the outage
is told."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
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


def test_a_batch_postgresql_reads_too_slowly_is_spooled_not_waited_for(postgres_url: str, tmp_path: Path) -> None:
    """A batch the server takes in more slowly than the writer's time limit (as under thousands of streams)
    is given up and spooled, and the writer goes on. asyncpg swallows a cancellation while it waits for
    the socket to take more rows, then waits for ever: every later record then waited behind it."""
    run_async(migrate(postgres_url))

    async def slow_down() -> None:  # a server that reads a big batch slowly: 0.5 ms a row
        connection = await asyncpg.connect(postgres_url)
        try:
            await connection.execute("CREATE FUNCTION slowly() RETURNS trigger AS $$ BEGIN "
                                     "PERFORM pg_sleep(0.0005); RETURN NEW; END $$ LANGUAGE plpgsql")
            await connection.execute("CREATE TRIGGER slowly BEFORE INSERT ON usage FOR EACH ROW "
                                     "EXECUTE FUNCTION slowly()")
        finally:
            await connection.close()

    run_async(slow_down())
    count = 40_000  # megabytes of rows: more than the sockets hold, so asyncpg waits to write

    async def go() -> tuple[bool, float, UsageWriter]:
        engine = create_engine(postgres_url)
        writer = UsageWriter(engine, tmp_path, retry_for=0.5)
        await writer.start()
        started = time.monotonic()
        everyone = asyncio.ensure_future(asyncio.gather(*(writer.record(make(n)) for n in range(count))))
        done, _ = await asyncio.wait({everyone}, timeout=30)  # (no cancellation: it would be swallowed too)
        took = time.monotonic() - started
        if done:
            await asyncio.wait_for(writer.record(make(count)), 10)  # and the writer goes on
        else:
            await writer._sink.close()  # cut the stuck connection, so that the test can end
        await asyncio.wait_for(writer.close(), 20)
        await engine.dispose()
        return bool(done), took, writer

    finished, took, writer = run_async(go())
    assert finished, f"records still waited after {took:.0f} s: the batch's insert never ended"
    assert writer.committed + writer.spooled == count + 1 and writer.spooled >= count // 2, \
        (writer.committed, writer.spooled)
    assert took < 10, f"record() took {took:.1f} s with a 0.5 s retry time"
