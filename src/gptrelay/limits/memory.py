"""Rate limits kept in the process: exact, and shared by nothing else.

Each key has a deque of the times its requests were admitted and one of
``(time, tokens)`` for the requests that ended; entries older than the window
fall off the front as the key is used. Keys sit in an ordered dict by the
time of their newest entry, so the ones idle for a whole window (whose deques
are empty by then) are dropped from the front: every call is O(1) amortised and
memory holds only the keys used in the last minute.

There is no ``await`` between a check and its count, so concurrent requests
in one event loop are counted exactly.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from gptrelay.limits.limiter import WINDOW


class _Key:
    __slots__ = ("admitted", "free_at", "last", "spent", "tokens")

    def __init__(self) -> None:
        self.admitted: deque[float] = deque()
        self.spent: deque[tuple[float, int]] = deque()
        self.tokens = 0  # the sum of ``spent``
        self.free_at: tuple[int, float] | None = None  # (tpm, when the tokens drop below it), until the next spend
        self.last = 0.0  # the newest entry's time

    def prune(self, now: float) -> None:
        horizon = now - WINDOW
        admitted, spent = self.admitted, self.spent
        while admitted and admitted[0] <= horizon:
            admitted.popleft()
        while spent and spent[0][0] <= horizon:
            self.tokens -= spent.popleft()[1]

    def tokens_free_at(self, tpm: int) -> float:
        """When enough of ``spent`` has left the window that the rest is below ``tpm``."""
        if self.free_at is None or self.free_at[0] != tpm:
            left = self.tokens
            at = self.last
            for when, tokens in self.spent:
                left -= tokens
                if left < tpm:
                    at = when
                    break
            self.free_at = (tpm, at + WINDOW)
        return self.free_at[1]


class MemoryLimiter:
    """The in-process limiter; ``clock`` (monotonic seconds) is for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._keys: OrderedDict[str, _Key] = OrderedDict()

    def __len__(self) -> int:
        """How many keys have state (used in the last window)."""
        return len(self._keys)

    async def admit(self, key: str, rpm: int | None, tpm: int | None) -> int | None:
        if rpm is None and tpm is None:
            return None
        now = self._clock()
        self._forget_idle(now)
        state = self._keys.get(key)
        if state is not None:
            state.prune(now)
        elif (rpm is None or rpm > 0) and (tpm is None or tpm > 0):
            if rpm is not None:
                self._touch(key, _Key(), now).admitted.append(now)
            return None  # a key with no state has nothing in the window
        free_at = now
        if tpm is not None:
            if tpm <= 0:
                free_at = now + WINDOW
            elif state is not None and state.tokens >= tpm:
                free_at = state.tokens_free_at(tpm)
        if rpm is not None:
            if rpm <= 0:
                free_at = now + WINDOW
            elif state is not None and len(state.admitted) >= rpm:
                # The request that must leave for the count to drop below rpm.
                free_at = max(free_at, state.admitted[len(state.admitted) - rpm] + WINDOW)
        if free_at > now:
            return max(1, math.ceil(free_at - now))
        if rpm is not None and state is not None:
            self._touch(key, state, now).admitted.append(now)
        return None

    async def spend(self, key: str, tokens: int) -> None:
        if tokens <= 0:
            return
        now = self._clock()
        self._forget_idle(now)
        state = self._keys.get(key)
        if state is None:
            state = _Key()
        else:
            state.prune(now)
        state.spent.append((now, tokens))
        state.tokens += tokens
        state.free_at = None
        self._touch(key, state, now)

    async def close(self) -> None:
        self._keys.clear()

    def _touch(self, key: str, state: _Key, now: float) -> _Key:
        """Record that ``state`` (new or not) has an entry made ``now``: it goes to the end."""
        state.last = now
        self._keys[key] = state
        self._keys.move_to_end(key)
        return state

    def _forget_idle(self, now: float) -> None:
        keys = self._keys
        horizon = now - WINDOW
        while keys:
            key, state = next(iter(keys.items()))
            if state.last > horizon:
                break
            del keys[key]
