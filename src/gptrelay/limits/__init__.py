"""Rate limits (``rpm``, ``tpm``) per key: in the process, or in Redis shared by every relay."""

from __future__ import annotations

from gptrelay.limits.limiter import WINDOW, Limiter
from gptrelay.limits.memory import MemoryLimiter

__all__ = ["WINDOW", "Limiter", "MemoryLimiter", "limiter_for"]


def limiter_for(redis_url: str | None, fail_open: bool) -> Limiter:
    """Redis's limiter when ``redis_url`` is set (admitting or refusing every request while Redis
    cannot be reached, as ``fail_open`` says), else the process's own."""
    if redis_url:
        from gptrelay.limits.redis import RedisLimiter  # imports the Redis client only when used

        return RedisLimiter(redis_url, fail_open=fail_open)
    return MemoryLimiter()
