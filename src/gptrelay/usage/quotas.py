"""``QuotaBook``: each key's tokens recorded this UTC day and this UTC month, kept in memory.

``start()`` loads them from ``usage_daily`` (tokens per key and UTC day, which the
database keeps as records arrive: a few rows, however many records the month
holds); a background task reloads them
every ``refresh`` seconds, so relays sharing the database see each other's
usage within seconds; ``add(key, tokens)`` counts this process's own records at
once. ``exceeded(...)`` is a dict lookup, never SQL. The counts restart at UTC
midnight and on the first of the month, by the book's clock.

Tokens added while a reload's query runs are added again on top of its
result: a record committed just before the query began may then count twice
until the next reload (never less than it should).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gptrelay.db.engine import describe
from gptrelay.db.tables import usage_daily
from gptrelay.errors import redact
from gptrelay.usage.records import utc

log = logging.getLogger("gptrelay.usage")


def now_utc() -> datetime:
    return datetime.now(UTC)


class QuotaBook:
    """Tokens per key this UTC day and month; see the module's docstring."""

    def __init__(self, engine: AsyncEngine, refresh: float = 5.0, *, clock: Callable[[], datetime] = now_utc) -> None:
        self.engine = engine
        self.refresh = refresh
        self.clock = clock
        self._day: date = utc(clock()).date()
        self._daily: dict[str, int] = {}
        self._monthly: dict[str, int] = {}
        self._during: list[tuple[str, int]] | None = None  # adds while a reload's query runs
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    async def start(self) -> None:
        """Load the counts (a ``StorageError`` if the database fails), then reload them in the background."""
        await self.reload(raise_errors=True)
        self._task = asyncio.create_task(self._run(), name="quota-book")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def add(self, key: str | None, tokens: int) -> None:
        """Count ``tokens`` this process has just recorded for the key named ``key`` (``None``: no key)."""
        if key is None or tokens <= 0:
            return
        self._roll()
        self._daily[key] = self._daily.get(key, 0) + tokens
        self._monthly[key] = self._monthly.get(key, 0) + tokens
        if self._during is not None:
            self._during.append((key, tokens))

    def used(self, key: str) -> tuple[int, int]:
        """The tokens recorded for ``key`` this UTC day and this UTC month."""
        self._roll()
        return self._daily.get(key, 0), self._monthly.get(key, 0)

    def exceeded(self, key: str | None, daily: int | None, monthly: int | None) -> bool:
        """Whether the key's tokens today reach ``daily`` or this month reach ``monthly`` (``None`` or 0: no
        limit)."""
        if key is None or not (daily or monthly):
            return False
        today, month = self.used(key)
        return bool(daily and today >= daily) or bool(monthly and month >= monthly)

    def _roll(self, now: datetime | None = None) -> None:
        day = utc(now or self.clock()).date()
        if day == self._day:
            return
        if (day.year, day.month) != (self._day.year, self._day.month):
            self._monthly = {}
        self._daily = {}
        self._day = day

    async def reload(self, raise_errors: bool = False) -> None:
        """Read the counts of this day and month from the database, plus what was added meanwhile."""
        now = utc(self.clock())
        today = now.date()
        month_start = today.replace(day=1)
        tokens = usage_daily.c.tokens
        query = (select(usage_daily.c.key_name, func.sum(tokens),
                        func.sum(case((usage_daily.c.day == today, tokens), else_=0)))
                 .where(usage_daily.c.day >= month_start, usage_daily.c.day <= today)
                 .group_by(usage_daily.c.key_name))
        self._during = []
        try:
            async with self.engine.connect() as connection:
                rows = (await connection.execute(query)).all()
        except Exception as error:
            self._during = None
            problem = describe(str(self.engine.url), error)
            if raise_errors:
                raise problem from None
            if not self._failing:
                log.warning("usage: cannot reload the quotas' counts, keeping the last ones: %s",
                            redact(problem.message))
            self._failing = True
            return
        during, self._during = self._during, None
        if self._failing:
            log.info("usage: the quotas' counts reload again")
            self._failing = False
        monthly = {name: int(month) for name, month, _ in rows}
        daily = {name: int(day) for name, _, day in rows if day}
        for key, added in during:
            daily[key] = daily.get(key, 0) + added
            monthly[key] = monthly.get(key, 0) + added
        self._day, self._daily, self._monthly = now.date(), daily, monthly
        self._roll()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.refresh)
            await self.reload()
