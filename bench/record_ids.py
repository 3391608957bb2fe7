"""What a usage record's id costs its insert as the table grows: random ids against rising ones.

    .venv/bin/python bench/record_ids.py [--rows 500000] [--database postgresql://postgres@127.0.0.1/empty_db]

Every record carries an id (``record_id``, unique, so a batch written twice is stored
once). Ids used to be ``uuid4().hex``: each insert lands somewhere in the unique index,
touching pages all over it. They are now this process's random prefix and a serial
number (``gptrelay.usage.records.new_record_id``): each process's inserts land at one
end of the index. This fills two fresh databases side by side, one with each kind, in
batches of 64 through the relay's own sink, alternating batches between them, and
prints the CPU per record (this process and the sink's thread; on PostgreSQL the
server's CPU is not counted) and the time per record until committed (the server's
work included) at each fifth of the way.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import text

from gptrelay.db.engine import create_engine
from gptrelay.db.schema import migrate
from gptrelay.usage.records import UsageRecord, new_record_id
from gptrelay.usage.sinks import Sink, sink_for

BATCH = 64
KINDS: dict[str, Callable[[], str]] = {"uuid4": lambda: uuid.uuid4().hex, "prefix + serial": new_record_id}


def batch(make_id: Callable[[], str]) -> list[UsageRecord]:
    now = datetime.now(UTC)
    return [UsageRecord(time=now, key=f"key-{i % 10}", route="/v1/chat/completions", model="gpt-4o-mini",
                        status=200, prompt_tokens=7, completion_tokens=50, estimated=False, outcome="ok",
                        ttfb_ms=1, duration_ms=100, record_id=make_id()) for i in range(BATCH)]


async def fresh(database: str | None, name: str) -> str:
    if database is None:
        return f"sqlite:///{tempfile.mkdtemp(prefix='gptrelay-ids-')}/{name}.db"
    admin = create_engine(database)
    async with admin.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    return database.rsplit("/", 1)[0] + f"/{name}"


async def main(rows: int, database: str | None) -> None:
    sinks: dict[str, Sink] = {}
    for n, kind in enumerate(KINDS):
        url = await fresh(database, f"gptrelay_bench_ids_{n}")
        await migrate(url)
        sinks[kind] = sink_for(create_engine(url))
        await sinks[kind].open()
    spent = dict.fromkeys(KINDS, 0.0)
    took = dict.fromkeys(KINDS, 0.0)
    batches = rows // BATCH
    print("| records in the table | " + " | ".join(f"{kind}: µs CPU, µs until committed (per record)"
                                                  for kind in KINDS) + " |")
    print("| --- |" + " --- |" * len(KINDS))
    for done in range(1, batches + 1):
        for kind, make_id in KINDS.items():
            records = batch(make_id)
            started, cpu = time.perf_counter(), time.process_time()
            await sinks[kind].insert(records)
            spent[kind] += time.process_time() - cpu
            took[kind] += time.perf_counter() - started
        if done % max(1, batches // 5) == 0:
            written = batches // 5 * BATCH
            print(f"| {done * BATCH:,} | " + " | ".join(
                f"{spent[kind] / written * 1e6:.1f}, {took[kind] / written * 1e6:.1f}" for kind in KINDS) + " |",
                flush=True)
            spent = dict.fromkeys(KINDS, 0.0)
            took = dict.fromkeys(KINDS, 0.0)
    for sink in sinks.values():
        await sink.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=500_000, help="records written into each database")
    parser.add_argument("--database", default=None,
                        help="a PostgreSQL URL whose server makes the two databases (default: SQLite files)")
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.database))
