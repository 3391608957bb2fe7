"""KeyStore on SQLite and on PostgreSQL: keys made, listed, changed and revoked; the counter; the hash."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import select

from gptrelay.auth.keys import KeyFields, KeyRecord, KeyStore, hash_key, parse_duration, parse_when
from gptrelay.db.engine import create_engine
from gptrelay.db.schema import migrate
from gptrelay.db.tables import access_keys
from gptrelay.errors import BadRequest, Conflict, NotFound
from tests.helpers import run_async

T = TypeVar("T")
Run = Callable[[Callable[[KeyStore], Awaitable[T]]], T]

JSON_FIELDS = {"name", "created_at", "expires_at", "revoked", "rpm", "tpm", "daily_tokens", "monthly_tokens",
               "models", "origins"}


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/relay.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def run(database_url: str) -> Iterator[Callable[[Callable[[KeyStore], Awaitable[object]]], object]]:
    """``run(lambda store: store.create(...))``: a fresh store on a migrated database, in a loop of its own."""
    run_async(migrate(database_url))

    def call(action: Callable[[KeyStore], Awaitable[object]]) -> object:
        async def go() -> object:
            engine = create_engine(database_url)
            try:
                return await action(KeyStore(engine))
            finally:
                await engine.dispose()

        return run_async(go())

    yield call


def test_create_list_get_update_revoke(run: Run[object]) -> None:
    record, key = run(lambda s: s.create("alice", KeyFields(rpm=60, models=["gpt-4o*"])))
    assert re.fullmatch(r"gr-[A-Za-z0-9_-]{43}", key)
    assert isinstance(record, KeyRecord) and record.usable()
    assert record.as_json() | {"created_at": None} == {
        "name": "alice", "created_at": None, "expires_at": None, "revoked": False, "revoked_at": None,
        "rpm": 60, "tpm": None, "daily_tokens": None, "monthly_tokens": None, "models": ["gpt-4o*"], "origins": []}
    assert set(record.as_json()) >= JSON_FIELDS
    assert abs(record.created_at - datetime.now(UTC)) < timedelta(seconds=30)

    run(lambda s: s.create("bob"))
    names = run(lambda s: s.list())
    assert [r.name for r in names] == ["alice", "bob"]

    changed = run(lambda s: s.update("alice", KeyFields(rpm=0, tpm=1000, origins=["https://app.example.com/"])))
    assert isinstance(changed, KeyRecord)
    assert (changed.rpm, changed.tpm, changed.models, changed.origins) == (
        None, 1000, ("gpt-4o*",), ("https://app.example.com",))
    assert run(lambda s: s.get("alice")) == changed

    revoked = run(lambda s: s.revoke("alice"))
    assert isinstance(revoked, KeyRecord)
    assert revoked.revoked and not revoked.usable() and revoked.as_json()["revoked"] is True
    assert run(lambda s: s.revoke("alice")) == revoked  # again: no change


def test_by_hash_finds_a_key_in_any_state_and_only_by_its_hash(run: Run[object], database_url: str) -> None:
    _, key = run(lambda s: s.create("alice"))
    assert hash_key(key) == hashlib.sha256(key.encode()).hexdigest()
    found = run(lambda s: s.by_hash(hash_key(key)))
    assert isinstance(found, KeyRecord) and found.name == "alice"
    assert run(lambda s: s.by_hash(key)) is None
    assert run(lambda s: s.by_hash(hash_key(key + "x"))) is None
    run(lambda s: s.revoke("alice"))
    found = run(lambda s: s.by_hash(hash_key(key)))
    assert isinstance(found, KeyRecord) and not found.usable()

    async def stored(store: KeyStore) -> list[tuple[str, ...]]:
        async with store.engine.connect() as connection:
            return [tuple(str(v) for v in row) for row in await connection.execute(select(access_keys))]

    rows = run(stored)
    assert isinstance(rows, list) and hash_key(key) in rows[0]
    assert not any(key in value for row in rows for value in row)


def test_every_change_bumps_the_counter_and_reads_do_not(run: Run[object]) -> None:
    counter = run(lambda s: s.change_counter())
    assert counter == 0
    run(lambda s: s.create("alice"))
    assert run(lambda s: s.change_counter()) == 1
    run(lambda s: s.list())
    run(lambda s: s.get("alice"))
    assert run(lambda s: s.change_counter()) == 1
    run(lambda s: s.update("alice", KeyFields(rpm=5)))
    run(lambda s: s.revoke("alice"))
    assert run(lambda s: s.change_counter()) == 3
    with pytest.raises(Conflict):
        run(lambda s: s.create("alice"))
    with pytest.raises(NotFound):
        run(lambda s: s.update("nobody", KeyFields(rpm=5)))
    assert run(lambda s: s.change_counter()) == 3  # a failed change bumps nothing


def test_errors(run: Run[object]) -> None:
    run(lambda s: s.create("alice"))
    with pytest.raises(Conflict, match="a key named 'alice' already exists"):
        run(lambda s: s.create("alice"))
    for bad in ("", "has space", "x" * 65, "ünïcode", "a/b"):
        with pytest.raises(BadRequest, match="bad key name"):
            run(lambda s, bad=bad: s.create(bad))
    with pytest.raises(NotFound, match="no key named 'bob'"):
        run(lambda s: s.get("bob"))
    with pytest.raises(NotFound):
        run(lambda s: s.revoke("bob"))
    with pytest.raises(BadRequest, match="bad rpm -1"):
        run(lambda s: s.create("carol", KeyFields(rpm=-1)))
    with pytest.raises(BadRequest, match="bad tpm 9223372036854775808: at most 9223372036854775807"):
        run(lambda s: s.create("carol", KeyFields(tpm=2**63)))  # beyond the database's BIGINT
    for origin in ("app.example.com", "https://é.example", "https://a.example:99999", "http://[::1",
                   "https://user@a.example", "https://a.example/path"):  # none a browser can send
        with pytest.raises(BadRequest, match="bad origin"):
            run(lambda s, origin=origin: s.create("carol", KeyFields(origins=[origin])))
    with pytest.raises(BadRequest, match="already past"):
        run(lambda s: s.create("carol", KeyFields(expires_at=datetime(2020, 1, 1, tzinfo=UTC))))
    with pytest.raises(BadRequest, match="nothing to change"):
        run(lambda s: s.update("alice", KeyFields()))


def test_expiry(run: Run[object]) -> None:
    soon = datetime.now(UTC) + timedelta(hours=1)
    record = run(lambda s: s.create("alice", KeyFields(expires_at=soon)))
    assert isinstance(record, tuple)
    alice: KeyRecord = record[0]
    assert alice.expires_at is not None and abs(alice.expires_at - soon) < timedelta(seconds=1)
    assert alice.usable() and not alice.usable(soon + timedelta(seconds=1))
    assert alice.status(soon + timedelta(seconds=1)) == "expired"
    cleared = run(lambda s: s.update("alice", KeyFields(expires_at=None)))
    assert isinstance(cleared, KeyRecord) and cleared.expires_at is None


def test_durations_and_dates() -> None:
    assert [parse_duration(t) for t in ("90s", "30m", "12h", "7d", "0")] == [
        timedelta(seconds=90), timedelta(minutes=30), timedelta(hours=12), timedelta(days=7), timedelta(0)]
    for bad in ("", "7", "7w", "-1d", "1.5h", "d"):
        with pytest.raises(BadRequest, match="bad duration"):
            parse_duration(bad)
    assert parse_when("2026-12-31") == datetime(2026, 12, 31, tzinfo=UTC)
    assert parse_when("2026-12-31T18:00") == datetime(2026, 12, 31, 18, tzinfo=UTC)
    assert parse_when("2026-12-31T18:00:00Z") == datetime(2026, 12, 31, 18, tzinfo=UTC)
    assert parse_when("2026-12-31T20:00:00+02:00") == datetime(2026, 12, 31, 18, tzinfo=UTC)
    with pytest.raises(BadRequest, match="bad date"):
        parse_when("next tuesday")
    for beyond in ("9999-12-31T23:59:59-14:00", "0001-01-01T00:00+01:00"):  # valid, but not in UTC's range
        with pytest.raises(BadRequest, match="bad date"):
            parse_when(beyond)


def test_concurrent_changes_from_several_engines_all_land(database_url: str) -> None:
    run_async(migrate(database_url))

    async def together() -> tuple[int, list[str]]:
        engines = [create_engine(database_url) for _ in range(4)]
        stores = [KeyStore(engine) for engine in engines]
        try:
            await asyncio.gather(*(stores[i % 4].create(f"k{i}", KeyFields(rpm=i + 1)) for i in range(20)))
            await asyncio.gather(*(stores[i % 4].update(f"k{i}", KeyFields(tpm=5)) for i in range(20)))
            return await stores[0].change_counter(), [r.name for r in await stores[1].list()]
        finally:
            for engine in engines:
                await engine.dispose()

    counter, names = run_async(together())
    assert counter == 40
    assert sorted(names) == sorted(f"k{i}" for i in range(20))
