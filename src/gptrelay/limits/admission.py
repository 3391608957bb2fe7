"""Admission: what a key may do, checked before anything goes upstream (a refusal costs no upstream call).

In the front door, for a caller with limits: its browser origins, its daily
and monthly token quotas, then its RPM and TPM (the limiter counts an
admitted request). The model allowlist is checked where the body is read
(``check_model``), since the model is named there.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Protocol

from aiohttp import web

from gptrelay.auth.caller import Caller
from gptrelay.errors import Forbidden, QuotaExceeded, RateLimited
from gptrelay.limits.limiter import Limiter
from gptrelay.limits.memory import MemoryLimiter


class Quotas(Protocol):
    """Tokens recorded per key this UTC day and month (``gptrelay.usage.quotas.QuotaBook``)."""

    def exceeded(self, key: str | None, daily: int | None, monthly: int | None) -> bool: ...

    def used(self, key: str) -> tuple[int, int]: ...

    def add(self, key: str | None, tokens: int) -> None: ...


class NoQuotas:
    """Before the usage records are read: nothing is used yet."""

    def exceeded(self, key: str | None, daily: int | None, monthly: int | None) -> bool:
        return False

    def used(self, key: str) -> tuple[int, int]:
        return 0, 0

    def add(self, key: str | None, tokens: int) -> None:
        pass


class Admission:
    """Attached at start: the limiter (this process's, or Redis's) and the quotas."""

    __slots__ = ("limiter", "quotas")

    def __init__(self) -> None:
        self.limiter: Limiter = MemoryLimiter()
        self.quotas: Quotas = NoQuotas()

    async def admit(self, request: web.Request, caller: Caller) -> None:
        """Raise ``Forbidden``, ``QuotaExceeded`` or ``RateLimited`` unless ``caller`` may go on."""
        if caller.origins is not None:
            origin = request.headers.get("Origin")
            if origin is None or origin.rstrip("/").lower() not in caller.origins:
                raise Forbidden(f"this access key may be used only from {', '.join(sorted(caller.origins))}",
                                "origin_not_allowed")
        if (caller.daily_tokens is not None or caller.monthly_tokens is not None) and \
                self.quotas.exceeded(caller.name, caller.daily_tokens, caller.monthly_tokens):
            raise quota_exceeded(caller, self.quotas.used(caller.name))
        if caller.rpm is not None or caller.tpm is not None:
            wait = await self.limiter.admit(caller.name, caller.rpm, caller.tpm)
            if wait is not None:
                raise RateLimited(f"rate limit reached for this access key ({describe(caller)}): "
                                  f"try again in {wait} s", wait)


def quota_exceeded(caller: Caller, used: tuple[int, int]) -> QuotaExceeded:
    """The refusal, with the seconds until the quota that is spent renews (the UTC day's or month's)."""
    now = datetime.now(UTC)
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    next_month = (now.replace(day=1) + timedelta(days=32)).replace(day=1, hour=0, minute=0, second=0,
                                                                   microsecond=0)
    monthly_spent = caller.monthly_tokens is not None and used[1] >= caller.monthly_tokens
    renews = next_month if monthly_spent else tomorrow
    which = "monthly" if monthly_spent else "daily"
    return QuotaExceeded(f"this access key has used its {which} token quota; it renews at "
                         f"{renews.isoformat(timespec='seconds')}", max(1, math.ceil((renews - now).total_seconds())))


def describe(caller: Caller) -> str:
    limits = [f"{caller.rpm} requests" if caller.rpm is not None else "",
              f"{caller.tpm} tokens" if caller.tpm is not None else ""]
    return " and ".join(limit for limit in limits if limit) + " a minute"


def check_model(caller: Caller, model: object) -> None:
    """Raise ``Forbidden`` when ``caller`` may not use ``model`` (a request naming no model passes)."""
    if caller.models is not None and isinstance(model, str) and not caller.may_use(model):
        raise Forbidden(f"this access key may not use the model {model[:100]!r}", "model_not_allowed")
