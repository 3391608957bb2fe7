"""An async SQLAlchemy engine from ``DATABASE_URL``, chosen by its scheme.

``sqlite:///path`` (relative to the working directory; ``sqlite:////abs/path``
for an absolute one) runs on aiosqlite, in WAL mode with a busy timeout so
relays and the CLI can share the file. ``postgresql://`` and ``postgres://``
run on asyncpg. A missing driver, an unknown scheme, an unreachable or a
read-only database is a ``StorageError`` of one line, naming the URL with its
password masked.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gptrelay.errors import StorageError

BUSY_TIMEOUT_MS = 10_000
WRITER_BUSY_TIMEOUT_S = 0.5
"""SQLite's busy timeout for the usage writer's connections (``gptrelay.usage.sinks``): a reply waits on
its record, and the writer retries (and then spools) by itself, so it must not sit in SQLite's busy wait,
which no cancel stops."""
CONNECT_TIMEOUT_S = 10.0
STATEMENT_TIMEOUT_S = 10.0
"""PostgreSQL, for a running relay (``serving=True``): the longest wait for a statement's answer (asyncpg's
``command_timeout``). A server behind a network that drops packets sends no error either: without it the
key cache and the quotas would wait, untold, for as long as the kernel keeps the connection (a quarter
of an hour). Not for migrations and the CLI, whose statements may take long on a large usage table."""

_DRIVERS = {"sqlite": ("sqlite+aiosqlite", "aiosqlite"), "postgresql": ("postgresql+asyncpg", "asyncpg"),
            "postgres": ("postgresql+asyncpg", "asyncpg")}
_DRIVER = re.compile(r"^(sqlite|postgresql)\+(?:aiosqlite|asyncpg)://", re.I)
_PASSWORD = re.compile(r"^([a-z][a-z0-9+.\-]*://[^:/@]*):[^@/]*@", re.I)


def masked(url: str) -> str:
    """The URL with its password, if any, replaced by ``***``, and without the driver the relay picks
    (``sqlite+aiosqlite://`` → ``sqlite://``): as the operator writes it in ``DATABASE_URL``."""
    return _DRIVER.sub(r"\1://", _PASSWORD.sub(r"\1:***@", url.strip()))


def async_url(url: str) -> URL:
    """``sqlite:///x.db`` → ``sqlite+aiosqlite:///x.db``; ``postgres://…`` → ``postgresql+asyncpg://…``."""
    try:
        parsed = make_url(url.strip())
    except ArgumentError:
        raise StorageError(f"DATABASE_URL is not a database URL: {masked(url)!r} "
                           "(use sqlite:///gptrelay.db or postgresql://user:pass@host:5432/db)") from None
    scheme = parsed.drivername.split("+")[0]
    if scheme not in _DRIVERS:
        raise StorageError(f"DATABASE_URL {masked(url)}: unsupported database {scheme!r} "
                           "(use sqlite:///path or postgresql://user:pass@host:5432/db)")
    drivername, _ = _DRIVERS[scheme]
    if "+" in parsed.drivername and parsed.drivername != drivername:
        raise StorageError(f"DATABASE_URL {masked(url)}: the relay runs on {drivername}, not {parsed.drivername}")
    if scheme == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise StorageError(f"DATABASE_URL {masked(url)}: SQLite needs a file, such as sqlite:///gptrelay.db")
    return parsed.set(drivername=drivername)


def sqlite_pragmas(dbapi_connection: Any, _record: Any = None, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
    """What every SQLite connection of the relay sets: WAL, a busy timeout, and no fsync per commit
    (WAL with ``synchronous = NORMAL`` loses nothing when the process dies, only on power loss)."""
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {_SWITCH_WAIT_MS}")
    _wal(cursor, attempts=max(1, busy_timeout_ms // _SWITCH_WAIT_MS))
    cursor.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


_SWITCH_WAIT_MS = 100


def _wal(cursor: Any, attempts: int) -> None:
    """Put the file in WAL mode (it stays so: only a new file's first connections switch it). Two
    connections switching at once can each hold the lock the other waits for, and SQLite's busy wait
    then ends in "database is locked" for both: each attempt waits briefly, then looks again."""
    for attempt in range(attempts):
        try:
            cursor.execute("PRAGMA journal_mode")
            if str(cursor.fetchone()[0]).lower() == "wal":
                return
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except Exception as error:  # the driver's OperationalError, whichever module it is from
            if "locked" not in str(error) or attempt == attempts - 1:
                raise


def create_engine(url: str, *, serving: bool = False) -> AsyncEngine:
    """The engine for ``url``; connects lazily (see ``connected`` for a first, checked connection).
    A relay's own (``serving``) waits at most ``STATEMENT_TIMEOUT_S`` for a PostgreSQL statement."""
    target = async_url(url)
    _, module = _DRIVERS[target.drivername.split("+")[0]]
    options: dict[str, Any] = {"pool_pre_ping": True}
    if target.drivername.startswith("postgresql"):
        options["connect_args"] = {"timeout": CONNECT_TIMEOUT_S}
        if serving:
            options["connect_args"]["command_timeout"] = STATEMENT_TIMEOUT_S
    else:
        options["connect_args"] = {"timeout": BUSY_TIMEOUT_MS / 1000}
    try:
        engine = create_async_engine(target, **options)
    except (ImportError, NoSuchModuleError):
        raise StorageError(f"DATABASE_URL {masked(url)} needs the {module} driver: "
                           f"pip install {module}") from None
    if target.drivername.startswith("sqlite"):
        event.listen(engine.sync_engine, "connect", sqlite_pragmas)
    return engine


def describe(url: str, error: BaseException) -> StorageError:
    """The driver's exception as one line naming the database (password masked), and for SQLite
    whether its file or folder is read-only (SQLite itself says only that it cannot open or write it)."""
    if isinstance(error, StorageError):
        return error
    original = getattr(error, "orig", None) or error
    detail = " ".join(str(original).split()) or type(original).__name__
    if isinstance(error, TimeoutError):
        detail = f"no answer within {max(CONNECT_TIMEOUT_S, STATEMENT_TIMEOUT_S):g} seconds"
    elif (why := _read_only(url)) is not None:
        detail = f"{detail} ({why})"
    return StorageError(f"database {masked(url)}: {detail}")


def _read_only(url: str) -> str | None:
    """For a SQLite URL, what of its file and folder the file system will not let us write."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if not parsed.drivername.startswith("sqlite") or not parsed.database:
        return None
    path = Path(parsed.database).resolve()
    if path.exists() and not os.access(path, os.W_OK):
        return f"the file {path} is read-only"
    if path.parent.is_dir() and not os.access(path.parent, os.W_OK):
        return f"its folder {path.parent} is read-only, and SQLite writes its journal there"
    return None


FAILURES = (DBAPIError, OSError, TimeoutError)


@asynccontextmanager
async def storage_errors(url: str) -> AsyncIterator[None]:
    """Turn the driver's failures inside the block into ``StorageError``."""
    try:
        yield
    except FAILURES as error:
        raise describe(url, error) from None


async def connected(url: str, *, serving: bool = False) -> AsyncEngine:
    """An engine whose database answered ``SELECT 1`` (that connection kept in its pool), or a
    ``StorageError``."""
    engine = create_engine(url, serving=serving)
    sqlite = engine.dialect.name == "sqlite"
    if sqlite and engine.url.database and not Path(engine.url.database).resolve().parent.is_dir():
        raise StorageError(f"database {masked(url)}: the folder {Path(engine.url.database).parent} does not exist")
    try:
        async with storage_errors(url), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except BaseException:
        await engine.dispose()
        if sqlite:
            # After a failed connect, aiosqlite stops its worker thread through a future it does not
            # await; the loop must outlive that future (asyncio.run's loop closes right after us).
            await asyncio.sleep(0.05)
        raise
    return engine
