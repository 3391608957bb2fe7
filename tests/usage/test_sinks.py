"""The sinks write rows that SQLAlchemy reads back as it wrote them, each record once however often it
is written; SQLite's sink never blocks the event loop on another connection's write lock."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select

from gptrelay.db.engine import create_engine
from gptrelay.db.tables import usage
from gptrelay.usage.records import UsageRecord
from gptrelay.usage.sinks import SqliteSink, sink_for
from gptrelay.usage.writer import SPOOL_NAME, UsageWriter
from tests.helpers import run_async
from tests.usage.conftest import make


async def read_back(url: str) -> list[UsageRecord]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            rows = (await connection.execute(select(usage).order_by(usage.c.prompt_tokens))).mappings().all()
    finally:
        await engine.dispose()
    return [UsageRecord(time=row["time"], key=row["key_name"], route=row["route"], model=row["model"],
                        status=row["status"], prompt_tokens=row["prompt_tokens"],
                        completion_tokens=row["completion_tokens"], estimated=row["estimated"],
                        outcome=row["outcome"], ttfb_ms=row["ttfb_ms"], duration_ms=row["duration_ms"])
            for row in rows]


def test_rows_read_back_through_sqlalchemy_as_written(database_url: str) -> None:
    records = [make(1), make(2, key=None, model=None, estimated=True, outcome="cut", ttfb_ms=None,
                              duration_ms=None)]

    async def go() -> list[UsageRecord]:
        engine = create_engine(database_url)
        sink = sink_for(engine)
        try:
            await sink.insert(records, 10)
        finally:
            await sink.close()
            await engine.dispose()
        return await read_back(database_url)

    back = run_async(go())
    assert [(r.time.timestamp(), r.key, r.model, r.estimated, r.outcome, r.ttfb_ms) for r in back] == [
        (r.time.timestamp(), r.key, r.model, r.estimated, r.outcome, r.ttfb_ms) for r in records]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_held_write_lock_is_waited_for_in_the_thread_and_the_loop_runs_on(database_url: str) -> None:
    path = database_url.removeprefix("sqlite:///")
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # another writer: the CLI, another worker, a key change
    released = threading.Timer(0.3, lambda: holder.execute("COMMIT"))  # within WRITER_BUSY_TIMEOUT_S

    async def go() -> tuple[float, int]:
        engine = create_engine(database_url)
        sink = SqliteSink(engine.url.database or "")
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        started = time.monotonic()
        released.start()
        try:
            await sink.insert([make(1)], 10)
            took = time.monotonic() - started
        finally:
            ticker.cancel()
            await sink.close()
            await engine.dispose()
        return took, ticks

    took, ticks = run_async(go())
    holder.close()
    assert took >= 0.25  # it waited for the lock, in the thread ...
    assert ticks >= 10  # ... while the loop went on
    assert [r.prompt_tokens for r in run_async(read_back(database_url))] == [1]


def test_a_record_written_twice_is_stored_once(database_url: str, tmp_path: Path) -> None:
    """A batch given up on after it had been committed, then imported from the spool: stored once."""
    records = [make(1), make(2)]

    async def go() -> list[UsageRecord]:
        engine = create_engine(database_url)
        sink = sink_for(engine)
        try:
            await sink.insert(records, 10)
            await sink.insert([*records, make(3)], 10)  # the same two again, with a new one
        finally:
            await sink.close()
            await engine.dispose()
        (tmp_path / SPOOL_NAME).write_bytes(b"".join(orjson.dumps(r.as_json()) + b"\n" for r in records))
        engine = create_engine(database_url)
        try:
            assert await UsageWriter(engine, tmp_path).import_spool() == 2  # read, and skipped as stored
        finally:
            await engine.dispose()
        return await read_back(database_url)

    assert [r.prompt_tokens for r in run_async(go())] == [1, 2, 3]


def test_two_relays_batches_of_the_same_keys_never_deadlock(postgres_url: str) -> None:
    """Each row's trigger locks its key's ``usage_daily`` row until the batch commits: two relays writing
    the same keys in opposite orders would wait on each other (PostgreSQL then aborts one batch after
    a second). The sinks write in key order, so every batch commits."""
    from gptrelay.db.schema import migrate

    run_async(migrate(postgres_url))
    keys = [f"key-{n}" for n in range(8)]

    async def relay(order: list[str], rounds: int) -> None:
        sink = sink_for(create_engine(postgres_url))
        await sink.open()
        try:
            for _ in range(rounds):
                await sink.insert([make(1, key=key) for key in order], 10)
        finally:
            await sink.close()

    async def go() -> None:
        await asyncio.gather(*(relay(keys if n % 2 else keys[::-1], 25) for n in range(4)))

    run_async(go())
    assert len(run_async(read_back(postgres_url))) == 4 * 25 * len(keys)
