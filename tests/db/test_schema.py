"""Migrations on empty SQLite and PostgreSQL databases, twice; the engine's one-line failures."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from gptrelay.db.engine import connected, create_engine, masked
from gptrelay.db.schema import head, migrate, revision
from gptrelay.db.tables import changes, metadata
from gptrelay.errors import StorageError
from tests.helpers import run_async


def alembic_head() -> str | None:
    """The head as Alembic finds it: ``head()`` must agree (revision ids are the files' numbers)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from gptrelay.db.schema import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


def schema_differences(url: str) -> list[object]:
    """What the migrated database lacks or has beyond ``tables.py`` (nothing, when they agree)."""

    def compare(connection: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(connection), metadata))

    async def go() -> list[object]:
        engine = await connected(url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(compare)
        finally:
            await engine.dispose()

    return run_async(go())


def change_counter(url: str) -> int:
    async def go() -> int:
        engine = await connected(url)
        try:
            async with engine.connect() as connection:
                return int((await connection.execute(select(changes.c.counter))).scalar_one())
        finally:
            await engine.dispose()

    return run_async(go())


def check_migrates_twice(url: str) -> None:
    assert run_async(revision(url)) is None
    run_async(migrate(url))
    assert run_async(revision(url)) == head() == "0003" == alembic_head()
    assert schema_differences(url) == []
    assert change_counter(url) == 0
    run_async(migrate(url))  # a no-op: same revision, the counter's one row still alone
    assert run_async(revision(url)) == head()
    assert change_counter(url) == 0


def test_migrates_an_empty_sqlite_file_twice(tmp_path: Path) -> None:
    check_migrates_twice(f"sqlite:///{tmp_path}/relay.db")
    with sqlite3.connect(tmp_path / "relay.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"access_keys", "usage", "changes", "alembic_version"} <= tables


def test_a_relative_sqlite_path_is_in_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run_async(migrate("sqlite:///gptrelay.db"))
    assert (tmp_path / "gptrelay.db").is_file()


def test_migrates_an_empty_postgresql_database_twice(postgres_url: str) -> None:
    check_migrates_twice(postgres_url)
    check = postgres_url.replace("postgresql://", "postgres://")  # Heroku's spelling works too
    assert run_async(revision(check)) == head()


def test_relays_starting_together_migrate_one_at_a_time(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/relay.db"

    async def together() -> None:
        await asyncio.gather(*(migrate(url) for _ in range(4)))

    run_async(together())
    assert run_async(revision(url)) == head()
    assert change_counter(url) == 0


def test_connections_opening_a_new_sqlite_file_together_all_get_it(tmp_path: Path) -> None:
    """The first connections to a new file each switch it to WAL; SQLite refuses a switch while
    another runs ("database is locked", its busy timeout not applying), which is no failure."""
    async def together(url: str) -> None:
        engines = [create_engine(url) for _ in range(8)]

        async def connect(engine: AsyncEngine) -> None:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))

        try:
            await asyncio.gather(*(connect(engine) for engine in engines))
        finally:
            for engine in engines:
                await engine.dispose()

    for n in range(30):  # a race: a few rounds in a hundred lost it
        run_async(together(f"sqlite:///{tmp_path}/relay-{n}.db"))
        with sqlite3.connect(tmp_path / f"relay-{n}.db") as db:
            assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_masks_the_password() -> None:
    assert masked("postgresql://bob:s3cret@db:5432/relay") == "postgresql://bob:***@db:5432/relay"
    assert masked("postgresql://bob@db/relay") == "postgresql://bob@db/relay"
    assert masked("sqlite:///gptrelay.db") == "sqlite:///gptrelay.db"
    # the engine's own URL, as the usage writer and the CLI name it: the operator's spelling
    assert masked("postgresql+asyncpg://bob:***@db/relay") == "postgresql://bob:***@db/relay"
    assert masked("sqlite+aiosqlite:////srv/relay.db") == "sqlite:////srv/relay.db"


@pytest.mark.parametrize(("url", "expected"), [
    ("postgresql://bob:s3cret@127.0.0.1:1/relay", "database postgresql://bob:***@127.0.0.1:1/relay: "),
    ("mysql://bob:s3cret@db/relay", "unsupported database 'mysql'"),
    ("sqlite:////nonexistent/folder/relay.db", "the folder /nonexistent/folder does not exist"),
    ("sqlite:////proc/relay.db", "unable to open database file"),
    ("not a url", "DATABASE_URL is not a database URL"),
    ("sqlite://", "SQLite needs a file"),
])
def test_a_database_that_cannot_be_used_is_one_line(url: str, expected: str) -> None:
    with pytest.raises(StorageError) as raised:
        run_async(migrate(url))
    message = raised.value.message
    assert expected in message
    assert "\n" not in message and "s3cret" not in message


def test_a_missing_driver_says_what_to_install() -> None:
    code = ("import asyncio, sys; sys.modules['asyncpg'] = None\n"
            "from gptrelay.db.engine import create_engine\n"
            "from gptrelay.errors import StorageError\n"
            "try:\n    create_engine('postgresql://bob:s3cret@db/relay')\n"
            "except StorageError as error:\n    print(error.message)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout == "DATABASE_URL postgresql://bob:***@db/relay needs the asyncpg driver: pip install asyncpg\n"
