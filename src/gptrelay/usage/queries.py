"""``usage_rows``: the rows of ``gptrelay usage --json``, on SQLite and PostgreSQL.

Grouped rows (``by`` ``key``, ``model`` or ``day``) have the group's field and
``requests``, ``prompt_tokens``, ``completion_tokens``, ``total_tokens``; a request
row has ``time``, ``key``, ``route``, ``model``, ``status``, ``prompt_tokens``,
``completion_tokens``, ``estimated``, ``outcome``. ``since`` is inclusive,
``until`` exclusive; days are UTC days (``2026-11-25``). ``key`` keeps one key's
records; ``owner`` keeps the owner's, whose ``key`` is null: ``AUTHORIZATION_KEY``'s
(and every request's on a relay without keys).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import ColumnElement, Select, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gptrelay.db.engine import storage_errors
from gptrelay.db.tables import usage
from gptrelay.errors import BadRequest
from gptrelay.usage.records import iso_ms, utc

By = Literal["key", "model", "day", "request"]
BY: tuple[str, ...] = get_args(By)
GROUPED_FIELDS = ("requests", "prompt_tokens", "completion_tokens", "total_tokens")
REQUEST_FIELDS = ("time", "key", "route", "model", "status", "prompt_tokens", "completion_tokens", "estimated",
                  "outcome")


def utc_day(dialect: str) -> ColumnElement[str]:
    """``usage.time``'s UTC day as ``YYYY-MM-DD``: SQLite keeps UTC text, PostgreSQL a timestamptz."""
    if dialect == "sqlite":
        return func.substr(usage.c.time, 1, 10)
    # Literals, not parameters: PostgreSQL must see the SELECT's expression again in GROUP BY.
    return func.to_char(func.timezone(literal_column("'UTC'"), usage.c.time), literal_column("'YYYY-MM-DD'"))


def _where(query: Select[Any], key: str | None, owner: bool, since: datetime | None, until: datetime | None,
           ) -> Select[Any]:
    if key is not None:
        query = query.where(usage.c.key_name == key)
    if owner:
        query = query.where(usage.c.key_name.is_(None))
    if since is not None:
        query = query.where(usage.c.time >= utc(since))
    if until is not None:
        query = query.where(usage.c.time < utc(until))
    return query


async def usage_rows(engine: AsyncEngine, by: By = "key", key: str | None = None, since: datetime | None = None,
                     until: datetime | None = None, *, owner: bool = False) -> list[dict[str, Any]]:
    """The usage recorded at ``since`` or later and before ``until`` (of the key named ``key`` only, or
    of the owner's key only with ``owner``), one row per group or per request, in the group's (or time's)
    order. ``StorageError`` on failure."""
    if by not in BY:
        raise ValueError(f"by must be one of {BY}, not {by!r}")
    if key is not None and owner:
        raise ValueError("give key or owner, not both")
    if by == "request":
        query = _where(select(usage).order_by(usage.c.time, usage.c.id), key, owner, since, until)
        async with storage_errors(str(engine.url)), engine.connect() as connection:
            rows = (await connection.execute(query)).mappings().all()
        return [{"time": iso_ms(row["time"]), "key": row["key_name"], "route": row["route"], "model": row["model"],
                 "status": row["status"], "prompt_tokens": int(row["prompt_tokens"]),
                 "completion_tokens": int(row["completion_tokens"]), "estimated": bool(row["estimated"]),
                 "outcome": row["outcome"]} for row in rows]
    group: ColumnElement[Any] = {"key": usage.c.key_name, "model": usage.c.model,
                                 "day": utc_day(engine.dialect.name)}[by]
    prompt = func.coalesce(func.sum(usage.c.prompt_tokens), 0)
    completion = func.coalesce(func.sum(usage.c.completion_tokens), 0)
    query = _where(select(group.label("grp"), func.count().label("requests"), prompt.label("prompt"),
                          completion.label("completion")), key, owner, since, until)
    query = query.group_by(group).order_by(literal_column("grp").nulls_first())
    async with storage_errors(str(engine.url)), engine.connect() as connection:
        grouped = (await connection.execute(query)).all()
    return [{by: name, "requests": int(requests), "prompt_tokens": int(p), "completion_tokens": int(c),
             "total_tokens": int(p) + int(c)} for name, requests, p, c in grouped]


def parse_date(option: str, text: str | None) -> datetime | None:
    """An ISO 8601 date or time (``2026-11-01``, ``2026-11-01T08:00``, ``…+02:00``); UTC when no zone."""
    if text is None:
        return None
    try:
        return utc(datetime.fromisoformat(text.strip()))
    except ValueError:
        raise BadRequest(f"bad {option} {text!r}: use ISO 8601, such as 2026-11-01 or 2026-11-01T08:00:00Z"
                         ) from None
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first time UTC has
        raise BadRequest(f"bad {option} {text!r}: out of range once in UTC") from None
