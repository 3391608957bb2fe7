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
read back through SQLAlchemy exactly as rows written there. Each sink connects at
``open()`` (the writer's start) and keeps its connection through failed batches; only a
PostgreSQL connection cut, timed out or cancelled midway is dropped, and made again by the next batch.

A batch has a time limit (``insert``'s ``timeout``), which each sink keeps in the way its driver
allows: SQLite's statement is interrupted from the loop; asyncpg is given the limit itself, since a
cancellation from outside is not safe there (below).
"""

from __future__ import annotations

import asyncio
import contextlib
import operator
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from gptrelay.db.engine import CONNECT_TIMEOUT_S, WRITER_BUSY_TIMEOUT_S, sqlite_pragmas
from gptrelay.db.tables import usage
from gptrelay.usage.records import UsageRecord

COLUMNS: tuple[str, ...] = tuple(column.name for column in usage.columns if not column.primary_key)

Row = tuple[Any, ...]
CUT_AFTER = 1.0  # seconds past its time limit after which a PostgreSQL batch's connection is cut
SKIP_WRITTEN = "ON CONFLICT (record_id) DO NOTHING"  # a record already stored (a batch given up on that had
# been committed, then imported from the spool) is not stored again


class Sink(Protocol):
    async def open(self) -> None:
        """Connect now, at start, while file descriptors are to be had: a relay holding thousands
        of streams may have none left when the first of them ends."""

    async def insert(self, records: Sequence[UsageRecord], timeout: float) -> None:
        """Commit ``records`` in one transaction, or raise (``TimeoutError`` after ``timeout`` seconds)."""

    async def close(self) -> None: ...


def sink_for(engine: AsyncEngine) -> Sink:
    """The sink that writes to ``engine``'s database."""
    if engine.dialect.name == "sqlite":
        return SqliteSink(engine.url.database or "")
    return PostgresSink(engine.url)


def _row_maker(processors: Mapping[str, Callable[[Any], Any]]) -> Callable[[UsageRecord], Row]:
    """A record's values in ``COLUMNS``'s order, each through its column's processor if it has one."""
    pick = operator.itemgetter(*COLUMNS)
    if not processors:
        return lambda record: pick(record.row())
    processed = [(COLUMNS.index(name), process) for name, process in processors.items()]

    def row(record: UsageRecord) -> Row:
        values = list(pick(record.row()))
        for at, process in processed:
            values[at] = process(values[at])
        return tuple(values)

    return row


def _by_key(record: UsageRecord) -> str:
    return record.key or ""


class _SqliteConnection:
    """One ``sqlite3`` connection that commits batches of rows. It is kept after a failed batch
    (SQLite's connections outlive their errors), so it needs no new file descriptor later."""

    def __init__(self, path: str, sql: str, *, wait: float) -> None:
        self._path = path
        self._sql = sql
        self._wait = wait
        self._connection: sqlite3.Connection | None = None

    def open(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite3.connect(self._path, timeout=self._wait, isolation_level=None,
                                         check_same_thread=False)
            sqlite_pragmas(connection, busy_timeout_ms=round(self._wait * 1000))
            self._connection = connection
        return self._connection

    def insert(self, rows: list[Row]) -> None:
        connection = self.open()
        try:
            connection.execute("BEGIN IMMEDIATE")  # the write lock first: SQLITE_BUSY before any work
            connection.executemany(self._sql, rows)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("ROLLBACK")
            raise

    def interrupt(self) -> None:
        """Stop the statement under way (from another thread): its transaction rolls back."""
        if self._connection is not None:
            self._connection.interrupt()

    def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            connection.close()


class SqliteSink:
    """Batches into SQLite on a ``sqlite3`` connection in a thread of its own, so that a disk that
    stalls holds the records, never the event loop (and with it every stream). The connection
    waits ``WRITER_BUSY_TIMEOUT_S`` for another writer's lock (another worker, the CLI, a key
    change), then the writer tries again, and spools. A batch given up on (the writer's deadline)
    is interrupted, so it rolls back rather than commit after it was spooled."""

    def __init__(self, path: str) -> None:
        dialect = sqlite.dialect()
        processors: dict[str, Callable[[Any], Any]] = {}
        for name in COLUMNS:
            process = usage.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                processors[name] = process
        self._row = _row_maker(processors)
        sql = (f"INSERT INTO usage ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
               f"{SKIP_WRITTEN}")
        self._connection = _SqliteConnection(path, sql, wait=WRITER_BUSY_TIMEOUT_S)
        self._thread: ThreadPoolExecutor | None = None  # started when first needed after a close

    async def open(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._in_thread(), self._connection.open)

    async def insert(self, records: Sequence[UsageRecord], timeout: float) -> None:
        rows = [self._row(record) for record in records]
        async with asyncio.timeout(timeout):
            try:
                await asyncio.get_running_loop().run_in_executor(self._in_thread(), self._connection.insert, rows)
            except asyncio.CancelledError:  # timed out (or the writer is cancelled): the thread stops too
                self._connection.interrupt()
                raise

    def _in_thread(self) -> ThreadPoolExecutor:
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="usage-sqlite")
        return self._thread

    async def close(self) -> None:
        if self._thread is not None:
            thread, self._thread = self._thread, None
            await asyncio.get_running_loop().run_in_executor(thread, self._connection.close)
            thread.shutdown(wait=False)


class PostgresSink:
    """Batches into PostgreSQL through an ``asyncpg`` connection of its own.

    Its time limit is asyncpg's own ``timeout``, never a cancellation: while ``executemany``
    waits for the socket to take more rows (a server slow to read them), asyncpg 0.32 swallows a
    cancellation and then waits for an answer to rows it never sent, for ever; every record of
    the relay then waits behind it (found with 10,000 streams on PostgreSQL). Should a batch
    outlive its limit anyway, the connection is cut ``CUT_AFTER`` seconds later, which ends it."""

    def __init__(self, url: URL) -> None:
        self._url = url.set(drivername="postgresql")
        self._connection: asyncpg.Connection | None = None
        self._row = _row_maker({})  # asyncpg takes datetimes and booleans as they are
        self._sql = (f"INSERT INTO usage ({', '.join(COLUMNS)}) "
                     f"VALUES ({', '.join(f'${n}' for n in range(1, len(COLUMNS) + 1))}) {SKIP_WRITTEN}")

    async def open(self) -> None:
        if self._connection is None or self._connection.is_closed():
            self._connection = await asyncpg.connect(self._url.render_as_string(hide_password=False),
                                                     timeout=CONNECT_TIMEOUT_S)

    async def insert(self, records: Sequence[UsageRecord], timeout: float) -> None:
        # In key order: each row's trigger updates its key's ``usage_daily`` row, so two relays' batches
        # lock those rows in the same order and never wait on each other in a circle (a deadlock).
        rows = [self._row(record) for record in sorted(records, key=_by_key)]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with asyncio.timeout(timeout):  # (connecting can be cancelled safely)
            await self.open()
        connection = self._connection
        assert connection is not None
        cut = loop.call_later(timeout + CUT_AFTER, connection.terminate)
        try:
            await connection.executemany(self._sql, rows, timeout=max(deadline - loop.time(), 0.001))  # one transaction
        except asyncpg.PostgresError:
            raise  # the server refused the batch: the connection is as good as before
        except BaseException:
            await self.close()  # cut, timed out or cancelled midway: its state is not worth trusting
            raise
        finally:
            cut.cancel()

    async def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            connection.terminate()
