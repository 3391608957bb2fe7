"""Admission: what a key may do, checked before anything goes upstream (a refusal costs no upstream call).

In the front door, for a caller with limits: its browser origins, its daily
and monthly token quotas, then its RPM and TPM (the limiter counts an
admitted request). The model allowlist is checked where the body is read
(``check_model``), since the model is named there.
"""

from __future__ import annotations

from aiohttp import web

from gptrelay.auth.caller import Caller
from gptrelay.errors import Forbidden, QuotaExceeded, RateLimited
from gptrelay.limits.limiter import Limiter
from gptrelay.limits.memory import MemoryLimiter


class Quotas:
    """Tokens recorded per key this UTC day and month: told by the usage records."""

    def exceeded(self, caller: Caller) -> int | None:
        """None while ``caller`` is under its quotas, else seconds until the day or month turns."""
        return None


class Admission:
    """Attached at start: the limiter (this process's, or Redis's) and the quotas."""

    __slots__ = ("limiter", "quotas")

    def __init__(self) -> None:
        self.limiter: Limiter = MemoryLimiter()
        self.quotas = Quotas()

    async def admit(self, request: web.Request, caller: Caller) -> None:
        """Raise ``Forbidden``, ``QuotaExceeded`` or ``RateLimited`` unless ``caller`` may go on."""
        if caller.origins is not None:
            origin = request.headers.get("Origin")
            if origin is None or origin.rstrip("/") not in caller.origins:
                raise Forbidden(f"this access key may be used only from {', '.join(sorted(caller.origins))}",
                                "origin_not_allowed")
        if caller.daily_tokens is not None or caller.monthly_tokens is not None:
            wait = self.quotas.exceeded(caller)
            if wait is not None:
                raise QuotaExceeded("this access key has used its token quota: it can be used again "
                                    f"in {wait} s, when the UTC day or month turns", wait)
        if caller.rpm is not None or caller.tpm is not None:
            wait = await self.limiter.admit(caller.name, caller.rpm, caller.tpm)
            if wait is not None:
                raise RateLimited(f"rate limit reached for this access key ({describe(caller)}): "
                                  f"try again in {wait} s", wait)


def describe(caller: Caller) -> str:
    limits = [f"{caller.rpm} requests" if caller.rpm is not None else "",
              f"{caller.tpm} tokens" if caller.tpm is not None else ""]
    return " and ".join(limit for limit in limits if limit) + " a minute"


def check_model(caller: Caller, model: object) -> None:
    """Raise ``Forbidden`` when ``caller`` may not use ``model`` (a request naming no model passes)."""
    if caller.models is not None and isinstance(model, str) and not caller.may_use(model):
        raise Forbidden(f"this access key may not use the model {model[:100]!r}", "model_not_allowed")
