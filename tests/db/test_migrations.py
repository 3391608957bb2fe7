"""Upgrades from every earlier revision, on SQLite and PostgreSQL: rows survive, the schema ends as a fresh one.

For each revision in ``migrations/versions`` (found by Alembic, so a new file is
covered without touching this test), an empty database is brought to that
revision, given one row per table with every column filled, and then started
on as a relay starts (``migrate``). The rows must still be there, readable by
the key store and the usage queries, and the schema must be the one an empty
database migrated straight to the head gets.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Boolean, DateTime, Integer, MetaData, Numeric, String, Table, inspect, select, text
from sqlalchemy.engine import Connection

from gptrelay.auth.keys import KeyStore
from gptrelay.db.engine import connected, create_engine
from gptrelay.db.schema import MIGRATIONS, head, migrate, revision
from gptrelay.usage.queries import usage_rows
from tests.db.test_schema import schema_differences
from tests.helpers import run_async


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def revisions() -> list[str]:
    """Every revision, oldest first."""
    script = ScriptDirectory.from_config(_config())
    return [found.revision for found in reversed(list(script.walk_revisions()))]


REVISIONS = revisions()
WHEN = datetime(2026, 11, 25, 12, 30, 15, tzinfo=UTC)
# Values a column of this name holds in a real database (the rest get one by type).
MEANINGFUL: dict[str, Any] = {
    "name": "alice", "key_name": "alice", "key_hash": hashlib.sha256(b"gr-not-a-real-key").hexdigest(),
    "models": '["gpt-4o*"]', "origins": '["https://app.example.com"]', "route": "/chat", "model": "gpt-4o-mini",
    "status": 200, "outcome": "ok", "revoked_at": None, "expires_at": datetime(2099, 1, 1, tzinfo=UTC),
    "time": WHEN, "created_at": WHEN, "prompt_tokens": 7, "completion_tokens": 11, "estimated": True,
    "day": date(2026, 11, 24),  # usage_daily's: the day before the usage row's, which its trigger adds
}


def upgrade_to(url: str, target: str) -> None:
    """Alembic's ``upgrade target`` on an empty database, as an operator at that version would have had it."""
    async def go() -> None:
        engine = await connected(url)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(lambda sync: command.upgrade(_config(sync), target))
        finally:
            await engine.dispose()

    run_async(go())


def value_for(column: Any, n: int) -> Any:
    if column.name in MEANINGFUL:
        return MEANINGFUL[column.name]
    kind = column.type
    if isinstance(kind, Boolean):
        return True
    if isinstance(kind, DateTime):
        return WHEN
    if isinstance(kind, Integer | Numeric):
        return 1000 + n
    if isinstance(kind, String):  # Text too
        return f"{column.name}-{n}"[: kind.length or None]
    raise AssertionError(f"no representative value for {column.table.name}.{column.name} ({kind}): add one")


def fill(connection: Connection) -> dict[str, dict[str, Any]]:
    """One row in each table (but Alembic's own), every column given a value; the rows, by table."""
    tables = MetaData()
    tables.reflect(connection)
    rows = {}
    for n, table in enumerate(tables.sorted_tables):
        if table.name == "alembic_version":
            continue
        row = {column.name: value_for(column, n) for column in table.columns}
        connection.execute(table.insert().values(row))
        rows[table.name] = row
    return rows


def read_back(connection: Connection, rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The same rows, found by their primary keys, limited to the columns they were written with."""
    found = {}
    for name, row in rows.items():
        table = Table(name, MetaData(), autoload_with=connection)
        where = [column == row[column.name] for column in table.primary_key.columns]
        stored_rows = connection.execute(select(table).where(*where)).mappings().all()
        assert len(stored_rows) == 1, f"the row written to {name} is gone after the upgrade"
        stored = stored_rows[0]
        found[name] = {column: normal(stored[column]) for column in row if column in stored}
    return found


def normal(value: Any) -> Any:
    """SQLite hands back times without a zone (they are UTC) and booleans as they went in."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def snapshot(connection: Connection) -> dict[str, Any]:
    """The schema as reflected: tables, their columns, keys, indexes and constraints."""
    seen = inspect(connection)
    schema: dict[str, Any] = {}
    for name in sorted(seen.get_table_names()):
        schema[name] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"], str(c.get("default")), c.get("autoincrement"))
                        for c in seen.get_columns(name)],
            "primary_key": seen.get_pk_constraint(name)["constrained_columns"],
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                              for i in seen.get_indexes(name)),
            "unique": sorted(tuple(u["column_names"]) for u in seen.get_unique_constraints(name)),
            "foreign_keys": sorted((tuple(f["constrained_columns"]), f["referred_table"])
                                   for f in seen.get_foreign_keys(name)),
        }
    return schema


def on(url: str, action: Any) -> Any:
    """``action(sync_connection)`` in one committed transaction on the database at ``url``."""
    async def go() -> Any:
        engine = create_engine(url)
        try:
            async with engine.begin() as connection:
                return await connection.run_sync(action)
        finally:
            await engine.dispose()

    return run_async(go())


def check_upgrade_from(start: str | None, url: str, fresh: Callable[[], dict[str, Any]]) -> None:
    """``fresh()``: the schema of an empty database migrated to the head (called last)."""
    if start is not None:
        upgrade_to(url, start)
        assert run_async(revision(url)) == start
    rows = on(url, fill)
    assert set(rows) >= ({"access_keys", "usage", "changes"} if start is not None else set())
    run_async(migrate(url))  # what `gptrelay serve` does at start
    assert run_async(revision(url)) == head() == REVISIONS[-1]
    assert on(url, lambda connection: read_back(connection, rows)) == {
        name: {column: normal(value) for column, value in row.items()} for name, row in rows.items()}
    assert schema_differences(url) == []  # tables.py describes it
    if start is not None:  # what the relay reads of them still reads
        async def read() -> tuple[Any, Any]:
            engine = create_engine(url)
            try:
                return await KeyStore(engine).get("alice"), await usage_rows(engine, by="request")
            finally:
                await engine.dispose()

        record, usage = run_async(read())
        assert (record.name, record.models, record.origins) == ("alice", ("gpt-4o*",), ("https://app.example.com",))
        assert [(row["key"], row["route"], row["prompt_tokens"]) for row in usage] == [("alice", "/chat", 7)]
    assert on(url, snapshot) == fresh()


STARTS = [None, *REVISIONS]  # None: an empty database


@pytest.mark.parametrize("start", STARTS, ids=lambda r: f"from-{r or 'empty'}")
def test_sqlite_upgrades_from_each_revision(start: str | None, tmp_path: Path) -> None:
    def fresh() -> dict[str, Any]:
        run_async(migrate(f"sqlite:///{tmp_path}/fresh.db"))
        return on(f"sqlite:///{tmp_path}/fresh.db", snapshot)  # type: ignore[no-any-return]

    check_upgrade_from(start, f"sqlite:///{tmp_path}/relay.db", fresh)


@pytest.mark.parametrize("start", STARTS, ids=lambda r: f"from-{r or 'empty'}")
def test_postgresql_upgrades_from_each_revision(start: str | None, postgres_url: str) -> None:
    def empty(connection: Connection) -> None:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))

    def fresh() -> dict[str, Any]:  # the same database, emptied and migrated straight to the head
        on(postgres_url, empty)
        run_async(migrate(postgres_url))
        return on(postgres_url, snapshot)  # type: ignore[no-any-return]

    check_upgrade_from(start, postgres_url, fresh)


def test_every_revision_file_is_found() -> None:
    assert REVISIONS and REVISIONS[0] == "0001" and REVISIONS[-1] == head()
    assert len(REVISIONS) == len(list((MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py")))
