"""MemoryLimiter on a fake clock: the sliding window, Retry-After, tpm, idle keys, concurrency."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from gptrelay.limits import MemoryLimiter, limiter_for
from tests.helpers import run_async


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def admit(limiter: MemoryLimiter, key: str, rpm: int | None, tpm: int | None = None) -> int | None:
    return run_async(limiter.admit(key, rpm, tpm))


def spend(limiter: MemoryLimiter, key: str, tokens: int) -> None:
    run_async(limiter.spend(key, tokens))


def test_rpm_is_a_sliding_window_not_minute_buckets() -> None:
    clock = Clock(1000.0)
    limiter = MemoryLimiter(clock)
    for _ in range(2):
        assert admit(limiter, "k", 3) is None
    clock.now = 1030.0
    assert admit(limiter, "k", 3) is None
    # Three in the window: refused until the first two (at 1000) leave, at 1060.
    clock.now = 1059.5
    assert admit(limiter, "k", 3) == 1
    clock.now = 1040.0
    assert admit(limiter, "k", 3) == 20
    clock.now = 1060.0
    assert admit(limiter, "k", 3) is None  # one of the two left exactly at 1060 (both did)
    assert admit(limiter, "k", 3) is None
    assert admit(limiter, "k", 3) == 30  # 1030, 1060, 1060 are in: 1030 leaves at 1090


def test_refusals_count_nothing() -> None:
    clock = Clock()
    limiter = MemoryLimiter(clock)
    assert admit(limiter, "k", 1) is None
    for second in range(1, 60):
        clock.now = 1000.0 + second
        assert admit(limiter, "k", 1) == 60 - second
    clock.now = 1060.0
    assert admit(limiter, "k", 1) is None


def test_retry_after_is_a_whole_number_at_least_one() -> None:
    clock = Clock(1000.0)
    limiter = MemoryLimiter(clock)
    assert admit(limiter, "k", 1) is None
    clock.now = 1000.25
    assert admit(limiter, "k", 1) == 60  # 59.75 s, rounded up
    clock.now = 1059.999
    assert admit(limiter, "k", 1) == 1


def test_a_lowered_rpm_waits_for_enough_requests_to_leave() -> None:
    clock = Clock(1000.0)
    limiter = MemoryLimiter(clock)
    for second in range(5):
        clock.now = 1000.0 + second
        assert admit(limiter, "k", 10) is None
    clock.now = 1010.0
    # 5 in the window, rpm now 2: four must leave (to make room for one), the fourth at 1003 + 60.
    assert admit(limiter, "k", 2) == 53


def test_tpm_counts_the_tokens_of_ended_requests() -> None:
    clock = Clock(1000.0)
    limiter = MemoryLimiter(clock)
    assert admit(limiter, "k", None, 100) is None
    spend(limiter, "k", 60)
    clock.now = 1010.0
    assert admit(limiter, "k", None, 100) is None  # 60 < 100
    spend(limiter, "k", 30)
    clock.now = 1020.0
    assert admit(limiter, "k", None, 100) is None  # 90 < 100
    spend(limiter, "k", 20)
    # 110 spent: refused until enough leaves that the rest is below 100: the 60 at 1000, at 1060.
    assert admit(limiter, "k", None, 100) == 40
    # Below 21 needs the 60 and the 30 gone: at 1070; below 20, the 20 too: at 1080.
    assert admit(limiter, "k", None, 21) == 50
    assert admit(limiter, "k", None, 20) == 60
    clock.now = 1060.0
    assert admit(limiter, "k", None, 100) is None
    clock.now = 1080.0
    assert admit(limiter, "k", None, 1) is None  # everything left


def test_tpm_exactly_reached_is_refused() -> None:
    clock = Clock(1000.0)
    limiter = MemoryLimiter(clock)
    spend(limiter, "k", 50)
    clock.now = 1001.0
    assert admit(limiter, "k", None, 50) == 59
    assert admit(limiter, "k", None, 51) is None


def test_both_limits_wait_for_the_later() -> None:
    clock = Clock(1000.0)
    limiter = MemoryLimiter(clock)
    assert admit(limiter, "k", 1, 10) is None
    clock.now = 1030.0
    spend(limiter, "k", 10)
    clock.now = 1031.0
    assert admit(limiter, "k", 1, 10) == 59  # the tokens (until 1090) outlast the request (until 1060)
    assert admit(limiter, "k", 1, None) == 29
    assert admit(limiter, "k", None, None) is None


def test_none_limits_keep_no_state() -> None:
    limiter = MemoryLimiter(Clock())
    for _ in range(100):
        assert admit(limiter, "k", None, None) is None
        assert admit(limiter, "j", None, 5) is None
    assert len(limiter) == 0


def test_zero_admits_nothing() -> None:
    limiter = MemoryLimiter(Clock())
    assert admit(limiter, "k", 0) == 60
    assert admit(limiter, "k", None, 0) == 60
    assert len(limiter) == 0


def test_keys_are_apart() -> None:
    limiter = MemoryLimiter(Clock())
    assert admit(limiter, "a", 1) is None
    assert admit(limiter, "a", 1) is not None
    assert admit(limiter, "b", 1) is None


def test_idle_keys_are_dropped() -> None:
    clock = Clock(1000.0)
    limiter = MemoryLimiter(clock)
    for n in range(1000):
        admit(limiter, f"key-{n}", 5)
        spend(limiter, f"key-{n}", 7)
    assert len(limiter) == 1000
    clock.now = 1030.0
    admit(limiter, "late", 5)
    assert len(limiter) == 1001
    clock.now = 1060.0
    admit(limiter, "late", 5)  # the first thousand are a whole window old
    assert len(limiter) == 1
    clock.now = 1120.0
    spend(limiter, "other", 1)
    assert len(limiter) == 1
    # A dropped key starts afresh, as it would have anyway.
    assert admit(limiter, "key-1", 1) is None


def test_refused_new_keys_keep_no_state() -> None:
    limiter = MemoryLimiter(Clock())
    for n in range(10):
        assert admit(limiter, f"k{n}", 0) == 60
    assert len(limiter) == 0


def test_200_at_once_against_rpm_50_admit_exactly_50() -> None:
    async def go() -> list[int | None]:
        limiter = MemoryLimiter()
        return await asyncio.gather(*(limiter.admit("k", 50, None) for _ in range(200)))

    results = run_async(go())
    assert results.count(None) == 50
    assert all(r is not None and 1 <= r <= 60 for r in results if r is not None)


def test_limiter_for_without_redis_is_the_memory_one() -> None:
    assert isinstance(limiter_for(None, True), MemoryLimiter)
    assert isinstance(limiter_for("", False), MemoryLimiter)


Step = tuple[str, float, int | None, int | None, int]  # (what, seconds later, rpm, tpm, tokens)
steps = st.lists(st.tuples(
    st.sampled_from(["admit", "admit", "spend"]),
    # Quarters of a second are exact in binary, and these sums land on the window's edges often.
    st.one_of(st.sampled_from([0.0, 0.25, 1.0, 15.0, 29.75, 30.0, 59.75, 60.0]),
              st.integers(0, 120).map(lambda quarters: quarters / 4)),
    st.one_of(st.none(), st.integers(1, 4)),
    st.one_of(st.none(), st.integers(1, 60)),
    st.integers(1, 30),
), max_size=60)


@settings(max_examples=300, deadline=None)
@given(steps)
def test_every_answer_agrees_with_a_plain_recount(script: list[Step]) -> None:
    """Against a model that keeps everything and recounts: admitted exactly when the limits allow
    it, and Retry-After the first whole second at which they would."""
    clock = Clock(0.0)
    limiter = MemoryLimiter(clock)
    admitted: list[float] = []
    spent: list[tuple[float, int]] = []

    def allowed(at: float, rpm: int | None, tpm: int | None) -> bool:
        requests = sum(1 for t in admitted if t > at - 60)
        tokens = sum(n for t, n in spent if t > at - 60)
        return (rpm is None or requests < rpm) and (tpm is None or tokens < tpm)

    for what, later, rpm, tpm, tokens in script:
        clock.now += later
        now = clock.now
        if what == "spend":
            spend(limiter, "k", tokens)
            spent.append((now, tokens))
            continue
        wait = admit(limiter, "k", rpm, tpm)
        if wait is None:
            assert allowed(now, rpm, tpm)
            if rpm is not None:
                admitted.append(now)
        else:
            assert not allowed(now, rpm, tpm)
            assert wait >= 1 and allowed(now + wait, rpm, tpm)
            assert wait == 1 or not allowed(now + wait - 1, rpm, tpm)
