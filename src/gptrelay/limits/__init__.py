"""Rate limits (``rpm``, ``tpm``) per key: in the process, or in Redis shared by every relay."""

from __future__ import annotations

from gptrelay.limits.limiter import WINDOW, Limiter
from gptrelay.limits.memory import MemoryLimiter

__all__ = ["WINDOW", "Limiter", "MemoryLimiter", "limiter_for"]


def limiter_for(redis_url: str | None, fail_open: bool) -> Limiter:
    """The process's own limiter (Redis's comes next)."""
    return MemoryLimiter()
