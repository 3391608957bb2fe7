"""Bring a database's schema to the newest revision: ``await migrate(url)`` at start.

Alembic's ``upgrade head`` runs on one connection of the async engine
(``connection.run_sync``), inside one transaction that first takes a lock
(``BEGIN IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL): relays and
CLI commands starting together migrate one at a time, and the later ones
find nothing to do. A database already at the newest revision is told by
one query, without loading Alembic (revision ids are the files' numbers).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from gptrelay.db.engine import connected, storage_errors

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK = 0x67707265  # "gpre": PostgreSQL's advisory lock for migrations


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision: the highest number among ``migrations/versions/NNNN_what.py``."""
    numbers = (re.match(r"(\d{4})_", path.name) for path in (MIGRATIONS / "versions").glob("*.py"))
    return max(found[1] for found in numbers if found)


def _upgrade(connection: Connection) -> None:
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its INFO lines are not the operator's news
    from alembic import command

    command.upgrade(_config(connection), "head")


def _revision(connection: Connection) -> str | None:
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


async def migrate(url: str) -> None:
    """Create or upgrade the schema at ``url``; a no-op when it is current. ``StorageError`` on failure."""
    engine = await connected(url)
    try:
        async with storage_errors(url), engine.connect() as connection:
            if await connection.run_sync(_revision) == head():
                return
        async with storage_errors(url), engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                await connection.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
            await connection.run_sync(_upgrade)
            await connection.commit()
    finally:
        await engine.dispose()


async def check_writable(engine: AsyncEngine, url: str) -> None:
    """``StorageError`` unless the database at ``url`` takes a write (one that changes nothing, rolled
    back): a read-only file, file system or server is told at start, not at the first usage record."""
    async with storage_errors(url), engine.connect() as connection:
        await connection.execute(text("UPDATE changes SET counter = counter WHERE id = 1"))
        await connection.rollback()


async def revision(url: str) -> str | None:
    """The revision the database at ``url`` is at; ``None`` before the first migration."""
    engine = await connected(url)
    try:
        async with storage_errors(url), engine.connect() as connection:
            return await connection.run_sync(_revision)
    finally:
        await engine.dispose()
