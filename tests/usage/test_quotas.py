"""QuotaBook on SQLite and PostgreSQL: loaded at start, reloaded from other writers, added to, rolled over."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gptrelay.db.engine import create_engine
from gptrelay.errors import StorageError
from gptrelay.usage.quotas import QuotaBook
from gptrelay.usage.writer import UsageWriter
from tests.helpers import run_async
from tests.usage.conftest import make


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_loads_this_day_and_month_and_sees_other_writers(database_url: str, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    month_start = datetime(now.year, now.month, 1, tzinfo=UTC)
    day_start = datetime(now.year, now.month, now.day, tzinfo=UTC)

    async def go() -> None:
        other = create_engine(database_url)  # another relay
        writer = UsageWriter(other, tmp_path)
        for rec in (make(100, time=day_start, completion_tokens=0),  # today
                    make(10, time=day_start - timedelta(microseconds=1), completion_tokens=0),  # this month or the last
                    make(1000, time=month_start - timedelta(seconds=1), completion_tokens=0),  # last month
                    make(7, key=None, time=now)):  # no key: never counted
            await writer.record(rec)
        engine = create_engine(database_url)
        book = QuotaBook(engine, refresh=0.05)
        await book.start()
        earlier = 10 if day_start > month_start else 0
        assert book.used("alice") == (100, 100 + earlier)
        assert book.exceeded("alice", 100, None) and not book.exceeded("alice", 101, None)
        assert book.exceeded("alice", None, 100 + earlier) and not book.exceeded("alice", 0, 0)
        assert not book.exceeded("bob", 1, 1) and not book.exceeded(None, 1, 1)

        await writer.record(make(5, key="bob", time=datetime.now(UTC), completion_tokens=1))
        for _ in range(100):
            if book.used("bob") == (6, 6):
                break
            await asyncio.sleep(0.05)
        assert book.used("bob") == (6, 6)

        book.add("bob", 4)  # this process's own record: at once, and kept by the next reload
        assert book.used("bob") == (10, 10)
        await book.close()
        await engine.dispose()
        await other.dispose()

    run_async(go())


def test_counts_restart_at_utc_midnight_and_month_start(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/relay.db"
    from gptrelay.db.schema import migrate

    run_async(migrate(url))
    clock = Clock(datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC))

    async def go() -> None:
        engine = create_engine(url)
        book = QuotaBook(engine, refresh=3600, clock=clock)
        await book.start()
        book.add("alice", 50)
        assert book.used("alice") == (50, 50) and book.exceeded("alice", 50, None)
        clock.now = datetime(2026, 2, 1, 0, 0, tzinfo=UTC)  # a new day and a new month
        assert book.used("alice") == (0, 0) and not book.exceeded("alice", 50, 50)
        book.add("alice", 20)
        clock.now = datetime(2026, 2, 2, 0, 0, 1, tzinfo=UTC)  # a new day, the same month
        assert book.used("alice") == (0, 20)
        await book.close()
        await engine.dispose()

    run_async(go())


def test_reload_counts_recorded_rows_by_the_books_clock(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/relay.db"
    from gptrelay.db.schema import migrate

    run_async(migrate(url))
    clock = Clock(datetime(2026, 3, 2, 12, 0, tzinfo=UTC))

    async def go() -> None:
        engine = create_engine(url)
        writer = UsageWriter(engine, tmp_path)
        await writer.record(make(30, time=datetime(2026, 3, 2, 0, 0, tzinfo=UTC), completion_tokens=0))
        await writer.record(make(20, time=datetime(2026, 3, 1, 23, 0, tzinfo=UTC), completion_tokens=0))
        await writer.record(make(40, time=datetime(2026, 2, 28, 23, 0, tzinfo=UTC), completion_tokens=0))
        book = QuotaBook(engine, refresh=3600, clock=clock)
        await book.start()
        assert book.used("alice") == (30, 50)
        clock.now = datetime(2026, 3, 3, 0, 0, tzinfo=UTC)
        await book.reload()
        assert book.used("alice") == (0, 50)
        await book.close()
        await engine.dispose()

    run_async(go())


def test_a_failing_database_at_start_is_a_storage_error_and_later_keeps_the_counts(tmp_path: Path) -> None:
    async def go() -> None:
        engine = create_engine("postgresql://postgres@127.0.0.1:1/nothing")
        book = QuotaBook(engine)
        with pytest.raises(StorageError, match=r"127\.0\.0\.1:1"):
            await book.start()
        book.add("alice", 5)
        await book.reload()  # logs, keeps what it had
        assert book.used("alice") == (5, 5)
        await engine.dispose()

    run_async(go())


def test_the_database_keeps_tokens_per_key_and_day_as_records_arrive(database_url: str, tmp_path: Path) -> None:
    """``usage_daily`` (what the book reads) equals the records summed, whoever wrote them: times near
    midnight in another zone count on their UTC day, a record stored twice counts once, no key counts nowhere."""
    from zoneinfo import ZoneInfo

    from sqlalchemy import func, select

    from gptrelay.db.tables import usage, usage_daily

    east = ZoneInfo("Asia/Shanghai")
    records = [make(100), make(20, key="bob"), make(3, key=None),
               make(5, time=datetime(2026, 11, 26, 7, 59, tzinfo=east)),  # 23:59 on the 25th in UTC
               make(8, time=datetime(2026, 11, 26, 8, 0, tzinfo=east))]  # midnight of the 26th in UTC

    async def go() -> tuple[set[tuple[str, str, int]], set[tuple[str, str, int]]]:
        engine = create_engine(database_url)
        writer = UsageWriter(engine, tmp_path)
        await writer.start()
        for rec in records:
            await writer.record(rec)
        await writer._sink.insert(records[:2], 10)  # a batch given up on, then imported from the spool: skipped
        await writer.close()
        day = func.substr(usage.c.time, 1, 10) if engine.dialect.name == "sqlite" else func.date(
            func.timezone("UTC", usage.c.time))
        async with engine.connect() as connection:
            summed = {(name, str(on), int(tokens)) for name, on, tokens in (await connection.execute(
                select(usage.c.key_name, day, func.sum(usage.c.prompt_tokens + usage.c.completion_tokens))
                .where(usage.c.key_name.is_not(None)).group_by(usage.c.key_name, day))).all()}
            kept = {(name, str(on), int(tokens)) for name, on, tokens in
                    (await connection.execute(select(usage_daily))).all()}
        await engine.dispose()
        return summed, kept

    summed, kept = run_async(go())
    assert kept == summed == {("alice", "2026-11-25", 101 + 6), ("alice", "2026-11-26", 9), ("bob", "2026-11-25", 21)}


def test_upgrading_sums_the_records_already_stored(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import select, text

    from gptrelay.db.engine import connected
    from gptrelay.db.schema import migrate
    from gptrelay.db.tables import usage_daily
    from tests.db.test_migrations import _config

    url = f"sqlite:///{tmp_path}/relay.db"

    async def go() -> list[tuple[str, object, int]]:
        engine = await connected(url)
        async with engine.begin() as connection:
            await connection.run_sync(lambda sync: command.upgrade(_config(sync), "0002"))
            for key, when, tokens in (("alice", "2026-11-25 23:59:59.000000", 5),
                                      ("alice", "2026-11-25 01:00:00.000000", 7),
                                      ("alice", "2026-11-26 00:00:00.000000", 11),
                                      (None, "2026-11-25 02:00:00.000000", 13)):
                await connection.execute(text(
                    "INSERT INTO usage (time, key_name, route, status, prompt_tokens, completion_tokens, estimated, "
                    "outcome) VALUES (:time, :key, '/chat', 200, :tokens, 0, 0, 'ok')"),
                    {"time": when, "key": key, "tokens": tokens})
        await engine.dispose()
        await migrate(url)
        engine = await connected(url)
        async with engine.connect() as connection:
            rows = (await connection.execute(select(usage_daily).order_by(usage_daily.c.day))).all()
        await engine.dispose()
        return [(name, str(day), tokens) for name, day, tokens in rows]

    assert run_async(go()) == [("alice", "2026-11-25", 12), ("alice", "2026-11-26", 11)]
