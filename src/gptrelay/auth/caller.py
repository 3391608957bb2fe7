"""Who is calling: what the key check finds, kept on the request for the steps after it."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from gptrelay.auth.keys import KeyRecord


@dataclass(frozen=True, slots=True)
class Caller:
    """The holder of the key a request came with, and what that key may do.

    ``name`` is what usage records and logs call it: a key's own name,
    ``owner`` for ``AUTHORIZATION_KEY`` (no limits), ``anonymous`` on a relay
    without keys. Limits that are ``None`` are not checked.
    """

    name: str
    rpm: int | None = None
    tpm: int | None = None
    daily_tokens: int | None = None
    monthly_tokens: int | None = None
    models: re.Pattern[str] | None = None  # the allowed model patterns, as one expression
    origins: frozenset[str] | None = None
    expires: float | None = None  # a Unix time
    revoked: bool = False

    @classmethod
    def of(cls, record: KeyRecord) -> Caller:
        models = None
        if record.models:
            models = re.compile("|".join(f"(?:{fnmatch.translate(pattern)})" for pattern in record.models))
        return cls(
            name=record.name, rpm=record.rpm, tpm=record.tpm, daily_tokens=record.daily_tokens,
            monthly_tokens=record.monthly_tokens, models=models,
            origins=frozenset(origin.rstrip("/").lower() for origin in record.origins) if record.origins else None,
            expires=record.expires_at.timestamp() if record.expires_at else None, revoked=record.revoked,
        )

    def usable(self, now: float) -> bool:
        """Neither revoked nor expired at ``now`` (a Unix time)."""
        return not self.revoked and (self.expires is None or now < self.expires)

    @property
    def limited(self) -> bool:
        """Whether anything must be checked before its requests go upstream."""
        return (self.rpm is not None or self.tpm is not None or self.daily_tokens is not None
                or self.monthly_tokens is not None or self.models is not None or self.origins is not None)

    def may_use(self, model: str) -> bool:
        return self.models is None or self.models.fullmatch(model) is not None


OWNER = Caller("owner")
ANONYMOUS = Caller("anonymous")
