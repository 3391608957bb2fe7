"""What one reload of the quotas' counts costs as a month of usage records grows.

    .venv/bin/python bench/quotas.py [--rows 1000000] [--keys 100]
                                     [--database postgresql://postgres@127.0.0.1/empty_db]

Every relay reloads each key's tokens of this UTC day and month every few
seconds (``gptrelay.usage.quotas.QuotaBook``). It used to sum the month's usage
records (one GROUP BY over every record of the month); it now sums
``usage_daily``, which the database keeps by a trigger as records arrive (keys
times days rows). This fills a fresh database (SQLite in a temporary directory,
or the empty database given) with ``--rows`` records of this month spread over
``--keys`` keys, then times both queries (median of 5). The records go in batches
of 10,000, every other one with the trigger dropped: what the trigger adds per record.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import case, func, select, text

from gptrelay.db.engine import create_engine
from gptrelay.db.schema import migrate
from gptrelay.db.tables import usage
from gptrelay.usage.quotas import QuotaBook
from gptrelay.usage.records import UsageRecord
from gptrelay.usage.sinks import sink_for


def month_query(now: datetime):  # type: ignore[no-untyped-def]
    """The query the book ran before ``usage_daily``: the month's records, summed per key."""
    month_start = datetime(now.year, now.month, 1, tzinfo=UTC)
    day_start = datetime(now.year, now.month, now.day, tzinfo=UTC)
    tokens = usage.c.prompt_tokens + usage.c.completion_tokens
    return (select(usage.c.key_name, func.sum(tokens), func.sum(case((usage.c.time >= day_start, tokens), else_=0)))
            .where(usage.c.time >= month_start, usage.c.key_name.is_not(None)).group_by(usage.c.key_name))


async def fill(url: str, rows: int, keys: int, now: datetime) -> tuple[float, float]:
    """``rows`` records of this month, as a relay writes them, in batches of 10,000: every other batch
    with the trigger dropped. The seconds per record, with and without the trigger."""
    migration = importlib.import_module("gptrelay.db.migrations.versions.0003_usage_daily")
    engine = create_engine(url)
    sqlite = engine.dialect.name == "sqlite"
    create = [migration._SQLITE_TRIGGER] if sqlite else [migration._POSTGRES_TRIGGER]
    drop = "DROP TRIGGER usage_daily_add" + ("" if sqlite else " ON usage")
    month_start = datetime(now.year, now.month, 1, tzinfo=UTC)
    span = (now - month_start).total_seconds()
    sink = sink_for(engine)
    await sink.open()
    spent = {True: 0.0, False: 0.0}
    async with engine.begin() as connection:
        await connection.execute(text(drop))
    batch = 10_000
    for start in range(0, rows, batch):
        with_trigger = start // batch % 2 == 0
        if with_trigger:
            async with engine.begin() as connection:
                for sql in create:
                    await connection.execute(text(sql))
        records = [UsageRecord(
            time=month_start + timedelta(seconds=span * n / rows), key=f"key-{n % keys}", route="/v1/chat/completions",
            model="gpt-4o-mini", status=200, prompt_tokens=n % 100, completion_tokens=20, estimated=False,
            outcome="ok", ttfb_ms=100, duration_ms=900) for n in range(start, min(start + batch, rows))]
        started = time.perf_counter()
        await sink.insert(records)
        spent[with_trigger] += time.perf_counter() - started
        if with_trigger:
            async with engine.begin() as connection:
                await connection.execute(text(drop))
    await sink.close()
    await engine.dispose()
    return spent[True] / (rows / 2), spent[False] / (rows / 2)


async def timed(run) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(5):
        started = time.perf_counter()
        await run()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


async def main(rows: int, keys: int, database: str | None) -> None:
    url = database or f"sqlite:///{tempfile.mkdtemp(prefix='gptrelay-bench-quotas-')}/relay.db"
    await migrate(url)
    now = datetime.now(UTC)
    with_trigger, without = await fill(url, rows, keys, now)
    engine = create_engine(url)
    book = QuotaBook(engine)

    async def old() -> None:
        async with engine.connect() as connection:
            (await connection.execute(month_query(now))).all()

    print(f"{engine.dialect.name}, {rows:,} records of this month, {keys} keys")
    print(f"  reload, summing the month's records (before): {await timed(old):8.1f} ms")
    print(f"  reload, summing usage_daily (now):            {await timed(book.reload):8.1f} ms")
    print(f"  writing a record, batches of 10,000: {without * 1e6:.1f} µs without the trigger, "
          f"{with_trigger * 1e6:.1f} µs with it")
    await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--database", default=None, help="an empty PostgreSQL database (default: SQLite)")
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.keys, args.database))
