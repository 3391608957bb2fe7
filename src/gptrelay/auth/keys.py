"""Named access keys in the database: made once, shown once, stored only as a hash.

A key is ``gr-`` and 43 URL-safe random characters (``secrets.token_urlsafe(32)``);
the database keeps its SHA-256 (``hash_key``), never the key. ``KeyStore``
makes, lists, changes and revokes keys; every change also bumps the one
counter in ``changes``, in the same transaction, so a relay that polls
``change_counter()`` knows when its cache of keys is stale.

``by_hash`` answers whatever the key's state: a revoked or expired key is
still found, and ``KeyRecord.usable()`` says whether it may be used now.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict
from urllib.parse import urlsplit

import orjson
from sqlalchemy import Row, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gptrelay.db.engine import storage_errors
from gptrelay.db.tables import access_keys, changes
from gptrelay.errors import BadRequest, Conflict, NotFound

PREFIX = "gr-"
NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_DURATION = re.compile(r"(\d{1,9})\s*([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s?#]+")
MAX_TTL = timedelta(days=36500)
LIMITS = ("rpm", "tpm", "daily_tokens", "monthly_tokens")  # gptrelay.cli.keys has the same names
MAX_LIMIT = 2**63 - 1  # the database's BIGINT


def new_key() -> str:
    """A fresh key: ``gr-`` and 43 random URL-safe characters."""
    return PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """What the database stores and ``KeyStore.by_hash`` looks up: the key's SHA-256, in hex."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise BadRequest(f"bad key name {name!r}: use 1 to 64 of the characters A-Z a-z 0-9 . _ -")
    return name


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``12h``, ``7d`` (``0`` is no time at all)."""
    found = _DURATION.fullmatch(text.strip().lower())
    if text.strip() == "0":
        return timedelta(0)
    if not found:
        raise BadRequest(f"bad duration {text!r}: use a whole number and a unit, such as 90s, 30m, 12h or 7d")
    duration = timedelta(seconds=int(found[1]) * _UNITS[found[2]])
    if duration > MAX_TTL:
        raise BadRequest(f"bad duration {text!r}: at most {MAX_TTL.days}d")
    return duration


def parse_when(text: str) -> datetime:
    """An ISO 8601 date or time (``2026-12-31``, ``2026-12-31T18:00``, ``…+02:00``); UTC when no zone."""
    try:
        return utc(datetime.fromisoformat(text.strip()))
    except ValueError:
        raise BadRequest(f"bad date {text!r}: use ISO 8601, such as 2026-12-31 or 2026-12-31T18:00:00Z") from None
    except OverflowError:  # 9999-12-31T23:00-02:00 is after the last time UTC has
        raise BadRequest(f"bad date {text!r}: out of range once in UTC") from None


def utc(when: datetime) -> datetime:
    """``when`` in UTC; a time without a zone is taken as UTC (SQLite returns them so)."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def iso(when: datetime | None) -> str | None:
    return None if when is None else utc(when).isoformat(timespec="seconds").replace("+00:00", "Z")


class KeyFields(TypedDict, total=False):
    """What ``create`` sets and ``update`` changes. A field left out is left as it is;
    ``None``, ``0`` or an empty list removes a limit (and ``expires_at=None`` the expiry)."""

    rpm: int | None
    tpm: int | None
    daily_tokens: int | None
    monthly_tokens: int | None
    models: Sequence[str] | None
    origins: Sequence[str] | None
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One access key as stored, without the key or its hash."""

    name: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    rpm: int | None
    tpm: int | None
    daily_tokens: int | None
    monthly_tokens: int | None
    models: tuple[str, ...]  # names or * patterns; empty: any model
    origins: tuple[str, ...]  # browser origins; empty: any origin

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or datetime.now(UTC))

    def usable(self, now: datetime | None = None) -> bool:
        """Neither revoked nor expired (at ``now``, by default the present)."""
        return not self.revoked and not self.expired(now)

    def status(self, now: datetime | None = None) -> str:
        return "revoked" if self.revoked else "expired" if self.expired(now) else "active"

    def as_json(self) -> dict[str, Any]:
        """The key object of ``keys list --json`` and the admin API; never the key or its hash."""
        return {
            "name": self.name, "created_at": iso(self.created_at), "expires_at": iso(self.expires_at),
            "revoked": self.revoked, "revoked_at": iso(self.revoked_at),
            "rpm": self.rpm, "tpm": self.tpm, "daily_tokens": self.daily_tokens,
            "monthly_tokens": self.monthly_tokens, "models": list(self.models), "origins": list(self.origins),
        }

    @classmethod
    def from_row(cls, row: Row[Any]) -> KeyRecord:
        m = row._mapping
        return cls(
            name=m["name"], created_at=utc(m["created_at"]),
            expires_at=utc(m["expires_at"]) if m["expires_at"] else None,
            revoked_at=utc(m["revoked_at"]) if m["revoked_at"] else None,
            rpm=m["rpm"], tpm=m["tpm"], daily_tokens=m["daily_tokens"], monthly_tokens=m["monthly_tokens"],
            models=tuple(orjson.loads(m["models"])), origins=tuple(orjson.loads(m["origins"])),
        )


def _limit(field: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest(f"bad {field} {value!r}: use a whole number, or 0 for no limit")
    if value > MAX_LIMIT:
        raise BadRequest(f"bad {field} {value!r}: at most {MAX_LIMIT}")
    return value or None


def _origin(value: str, item: str) -> str:
    """``item`` as browsers send it in ``Origin`` (lower case), if they can send it at all."""
    origin = item.lower()
    try:
        parts = urlsplit(origin)
        parts.port  # noqa: B018 -- raises ValueError when out of range
    except ValueError:
        parts = None
    if parts is None or not origin.isascii() or not _ORIGIN.fullmatch(origin) or not parts.hostname \
            or "@" in parts.netloc:
        raise BadRequest(f"bad origin {value!r}: use a browser origin such as https://app.example.com "
                         "(a name in another script in its xn-- form)")
    return origin


def _patterns(field: str, values: Sequence[str] | None) -> str:
    cleaned = []
    for value in values or ():
        if not isinstance(value, str):
            raise BadRequest(f"bad {field}: {value!r} is not a string")
        item = value.strip().rstrip("/") if field == "origins" else value.strip()
        if not item:
            continue
        if field == "origins":
            item = _origin(value, item)
        if field == "models" and (len(item) > 200 or any(c.isspace() for c in item)):
            raise BadRequest(f"bad model pattern {value!r}: a model name or * pattern such as gpt-4o*")
        if item not in cleaned:
            cleaned.append(item)
    return orjson.dumps(cleaned).decode()


def _columns(fields: KeyFields, now: datetime) -> dict[str, Any]:
    """The columns to write for ``fields``, checked; only the fields given."""
    unknown = set(fields) - set(KeyFields.__annotations__)
    if unknown:
        raise BadRequest(f"unknown key fields: {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for field in LIMITS:
        if field in fields:
            values[field] = _limit(field, fields[field])  # type: ignore[literal-required]
    for field in ("models", "origins"):
        if field in fields:
            values[field] = _patterns(field, fields[field])  # type: ignore[literal-required]
    if "expires_at" in fields:
        expires = fields["expires_at"]
        if expires is not None:
            expires = utc(expires)
            if expires <= now:
                raise BadRequest(f"the expiry {iso(expires)} is already past "
                                 "(to stop a key now, revoke it: gptrelay keys revoke NAME)")
        values["expires_at"] = expires
    return values


class KeyStore:
    """Access keys in the database at ``engine``. Changes raise ``BadRequest``, ``NotFound`` or
    ``Conflict``; the database's failures are ``StorageError``."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._url = engine.url.render_as_string(hide_password=True)

    async def _bump(self, connection: AsyncConnection) -> None:
        # First in every change: on SQLite the write lock is taken at once (waiting out the busy
        # timeout), never upgraded from a read; on PostgreSQL the counter's row serialises changes.
        await connection.execute(update(changes).where(changes.c.id == 1).values(counter=changes.c.counter + 1))

    async def _row(self, connection: AsyncConnection, name: str) -> Row[Any]:
        row = (await connection.execute(select(access_keys).where(access_keys.c.name == name))).first()
        if row is None:
            raise NotFound(f"no key named {name!r}")
        return row

    async def create(self, name: str, fields: KeyFields | None = None) -> tuple[KeyRecord, str]:
        """A new key named ``name``: its record and the key itself, which is not stored and not shown again."""
        now = datetime.now(UTC)
        values = _columns(fields or {}, now)
        values.setdefault("models", "[]")
        values.setdefault("origins", "[]")
        key = new_key()
        async with storage_errors(self._url), self.engine.begin() as connection:
            await self._bump(connection)
            taken = (await connection.execute(select(access_keys.c.id).where(access_keys.c.name == check_name(name))))
            if taken.first() is not None:
                raise Conflict(f"a key named {name!r} already exists")
            try:
                await connection.execute(access_keys.insert().values(
                    name=name, key_hash=hash_key(key), created_at=now, **values))
            except IntegrityError:
                raise Conflict(f"a key named {name!r} already exists") from None
            return KeyRecord.from_row(await self._row(connection, name)), key

    async def list(self) -> list[KeyRecord]:
        """Every key, revoked and expired ones too, by name."""
        async with storage_errors(self._url), self.engine.connect() as connection:
            rows = await connection.execute(select(access_keys).order_by(access_keys.c.name))
            return [KeyRecord.from_row(row) for row in rows]

    async def get(self, name: str) -> KeyRecord:
        async with storage_errors(self._url), self.engine.connect() as connection:
            return KeyRecord.from_row(await self._row(connection, check_name(name)))

    async def update(self, name: str, fields: KeyFields) -> KeyRecord:
        """Change the fields given (``None``, ``0`` or ``[]`` removes a limit); the rest stay."""
        values = _columns(fields, datetime.now(UTC))
        if not values:
            raise BadRequest("nothing to change: give at least one limit, list or expiry")
        async with storage_errors(self._url), self.engine.begin() as connection:
            await self._bump(connection)
            await self._row(connection, check_name(name))
            await connection.execute(update(access_keys).where(access_keys.c.name == name).values(**values))
            return KeyRecord.from_row(await self._row(connection, name))

    async def revoke(self, name: str) -> KeyRecord:
        """Revoke the key for good (revoking it again changes nothing)."""
        async with storage_errors(self._url), self.engine.begin() as connection:
            await self._bump(connection)
            await self._row(connection, check_name(name))
            await connection.execute(update(access_keys)
                                     .where(access_keys.c.name == name, access_keys.c.revoked_at.is_(None))
                                     .values(revoked_at=datetime.now(UTC)))
            return KeyRecord.from_row(await self._row(connection, name))

    async def by_hash(self, key_hash: str) -> KeyRecord | None:
        """The key whose ``hash_key`` is ``key_hash``, whatever its state (see ``KeyRecord.usable``)."""
        async with storage_errors(self._url), self.engine.connect() as connection:
            row = (await connection.execute(select(access_keys).where(access_keys.c.key_hash == key_hash))).first()
            return None if row is None else KeyRecord.from_row(row)

    async def hashed(self) -> dict[str, KeyRecord]:
        """Every key by its hash, revoked and expired ones too (for a cache of them)."""
        async with storage_errors(self._url), self.engine.connect() as connection:
            rows = await connection.execute(select(access_keys))
            return {row._mapping["key_hash"]: KeyRecord.from_row(row) for row in rows}

    async def change_counter(self) -> int:
        """A number that grows with every change to any key: poll it, reload the keys when it moved."""
        async with storage_errors(self._url), self.engine.connect() as connection:
            counter = (await connection.execute(select(changes.c.counter).where(changes.c.id == 1))).scalar_one()
            return int(counter)
