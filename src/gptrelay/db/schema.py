"""Bring a database's schema to the newest revision: ``await migrate(url)`` at start.

Alembic's ``upgrade head`` runs on one connection of the async engine
(``connection.run_sync``), inside one transaction that first takes a lock
(``BEGIN IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL): relays and
CLI commands starting together migrate one at a time, and the later ones
find nothing to do.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from gptrelay.db.engine import connected, storage_errors

MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK = 0x67707265  # "gpre": PostgreSQL's advisory lock for migrations


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision, as the scripts in ``migrations/versions`` say."""
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None
    return revision


def _upgrade(connection: Connection) -> None:
    command.upgrade(_config(connection), "head")


def _revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def migrate(url: str) -> None:
    """Create or upgrade the schema at ``url``; a no-op when it is current. ``StorageError`` on failure."""
    engine = await connected(url)
    try:
        async with storage_errors(url), engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                await connection.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
            await connection.run_sync(_upgrade)
            await connection.commit()
    finally:
        await engine.dispose()


async def revision(url: str) -> str | None:
    """The revision the database at ``url`` is at; ``None`` before the first migration."""
    engine = await connected(url)
    try:
        async with storage_errors(url), engine.connect() as connection:
            return await connection.run_sync(_revision)
    finally:
        await engine.dispose()
