"""Where a batch of usage records goes: one INSERT of many rows, on the database driver itself.

The ``UsageWriter`` commits a batch every time a request ends somewhere, so the cost
of one batch is paid hundreds of times a second. Through SQLAlchemy's async engine a
batch was a greenlet, a pool checkout and, on SQLite, three hops to aiosqlite's thread
(begin, insert, commit), each one waking a thread that then competes with the event
loop for the GIL. A sink does the same work with one call on the driver:

- ``SqliteSink``: a ``sqlite3`` connection of its own in a thread of its own; a batch is
  one hop to that thread (``executemany`` and ``COMMIT`` there) and one back.
- ``PostgresSink``: an ``asyncpg`` connection of its own; a batch is one ``executemany``,
  which asyncpg sends in one go and runs as one transaction.

The table, the column names and how SQLite stores a time and a boolean come from the
SQLAlchemy table (``gptrelay.db.tables.usage``) and its dialect, so rows written here
read back through SQLAlchemy exactly as rows written there. A failed connection is
closed and opened again by the next batch.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import asyncpg
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from gptrelay.db.engine import BUSY_TIMEOUT_MS, CONNECT_TIMEOUT_S, sqlite_pragmas
from gptrelay.db.tables import usage
from gptrelay.usage.records import UsageRecord

COLUMNS: tuple[str, ...] = tuple(column.name for column in usage.columns if not column.primary_key)

Row = tuple[Any, ...]


class Sink(Protocol):
    async def insert(self, records: Sequence[UsageRecord]) -> None:
        """Commit ``records`` in one transaction, or raise."""

    async def close(self) -> None: ...


def sink_for(engine: AsyncEngine) -> Sink:
    """The sink that writes to ``engine``'s database."""
    if engine.dialect.name == "sqlite":
        return SqliteSink(engine.url.database or "")
    return PostgresSink(engine.url)


def _row_maker(processors: dict[str, Callable[[Any], Any]]) -> Callable[[UsageRecord], Row]:
    def row(record: UsageRecord) -> Row:
        values = record.row()
        return tuple(processors[name](values[name]) if name in processors else values[name] for name in COLUMNS)

    return row


class SqliteSink:
    """Batches into SQLite through ``sqlite3`` in one thread of its own."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._thread: ThreadPoolExecutor | None = None  # started by the first batch after a close
        self._connection: sqlite3.Connection | None = None  # used in that thread only
        dialect = sqlite.dialect()
        processors = {}
        for name in COLUMNS:
            process = usage.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                processors[name] = process
        self._row = _row_maker(processors)
        self._sql = f"INSERT INTO usage ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"

    async def insert(self, records: Sequence[UsageRecord]) -> None:
        rows = [self._row(record) for record in records]
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="usage-sqlite")
        await asyncio.get_running_loop().run_in_executor(self._thread, self._insert, rows)

    def _insert(self, rows: list[Row]) -> None:
        if self._connection is None:
            connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                         check_same_thread=False)
            sqlite_pragmas(connection)
            self._connection = connection
        try:
            self._connection.execute("BEGIN")
            try:
                self._connection.executemany(self._sql, rows)
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")
        except sqlite3.Error:
            self._close()
            raise

    def _close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            connection.close()

    async def close(self) -> None:
        if self._thread is not None:
            thread, self._thread = self._thread, None
            await asyncio.get_running_loop().run_in_executor(thread, self._close)
            thread.shutdown(wait=False)


class PostgresSink:
    """Batches into PostgreSQL through an ``asyncpg`` connection of its own."""

    def __init__(self, url: URL) -> None:
        self._url = url.set(drivername="postgresql")
        self._connection: asyncpg.Connection | None = None
        self._row = _row_maker({})  # asyncpg takes datetimes and booleans as they are
        self._sql = (f"INSERT INTO usage ({', '.join(COLUMNS)}) "
                     f"VALUES ({', '.join(f'${n}' for n in range(1, len(COLUMNS) + 1))})")

    async def insert(self, records: Sequence[UsageRecord]) -> None:
        rows = [self._row(record) for record in records]
        if self._connection is None or self._connection.is_closed():
            self._connection = await asyncpg.connect(self._url.render_as_string(hide_password=False),
                                                     timeout=CONNECT_TIMEOUT_S)
        try:
            await self._connection.executemany(self._sql, rows)  # one transaction
        except BaseException:
            await self.close()  # cut or cancelled midway: its state is not worth trusting
            raise

    async def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            connection.terminate()
