"""What every rate limiter offers, and the window they share."""

from __future__ import annotations

from typing import Protocol

WINDOW = 60
"""Seconds: ``rpm`` counts the requests admitted, ``tpm`` the tokens of the requests ended, in the last minute."""


class Limiter(Protocol):
    async def admit(self, key: str, rpm: int | None, tpm: int | None) -> int | None:
        """Admit one request of ``key`` (counting it against ``rpm`` when admitted), or refuse it:
        None when admitted, else the whole number of seconds (>= 1) after which it would be.

        ``rpm``: at most that many requests admitted in any 60 seconds (a sliding window).
        ``tpm``: refused while the tokens spent by ``key`` in the last 60 seconds reach it.
        A refusal counts nothing; a limit that is None is not checked, one of 0 admits nothing."""
        ...

    async def spend(self, key: str, tokens: int) -> None:
        """The tokens (prompt + completion) of a request of ``key`` that just ended, for TPM."""
        ...

    async def close(self) -> None: ...
