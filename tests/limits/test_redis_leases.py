"""RedisLimiter's leases against a real Redis: a busy key's admissions counted ahead and used with
no round trip, the rpm still exact over two processes, the tokens and changed limits respected, and
what a lease leaves unused given back."""

from __future__ import annotations

import asyncio
import textwrap
from typing import Any

import pytest
from redis import Redis

from gptrelay.limits.redis import LEASE, LEASE_MAX, LEASE_SHARE, RedisLimiter
from tests.limits.test_redis import URL, needs_redis, prefix, redis_now_us, run, run_together

__all__ = ["prefix"]  # the fixture


def counting(limiter: RedisLimiter, wants: list[int] | None = None) -> list[int]:
    """Admissions sent to Redis, one entry per round trip that carried any; the leases they asked
    for go to ``wants``."""
    trips: list[int] = []
    pipeline = limiter._pipeline

    async def counted(calls: list[Any]) -> list[object]:
        admissions = [args for sha, _, args in calls if sha == limiter._admit.sha]
        if admissions:
            trips.append(len(admissions))
        if wants is not None:
            wants.extend(int(args[4]) for args in admissions)
        return await pipeline(calls)

    limiter._pipeline = counted  # type: ignore[method-assign]
    return trips


@needs_redis
def test_a_busy_key_asks_redis_once_per_lease(prefix: str) -> None:
    async def go() -> tuple[list[int | None], list[int], int]:
        limiter = RedisLimiter(URL, prefix=prefix)
        trips = counting(limiter)
        try:
            results = [await limiter.admit("k", 10**6, 10**9) for _ in range(500)]
            with Redis.from_url(URL) as client:
                counted = client.zcard(f"{prefix}{{k}}:r")
        finally:
            await limiter.close()
        return results, trips, counted

    results, trips, counted = run(go())
    assert results == [None] * 500
    # Leases of 2, 6, 14, 30, 62, 126, 254, ... (each twice what the last served): 500 admissions in at most
    # 14 round trips.
    assert len(trips) <= 14, trips
    assert 500 <= counted <= 500 + LEASE_MAX  # the admitted, and the current lease's rest
    with Redis.from_url(URL) as client:
        assert client.zcard(f"{prefix}{{k}}:r") == 500  # closing gave the rest back


@needs_redis
def test_admissions_asked_while_a_lease_is_on_its_way_wait_for_it(prefix: str) -> None:
    async def go() -> tuple[list[int | None], list[int]]:
        limiter = RedisLimiter(URL, prefix=prefix)
        trips = counting(limiter)
        results: list[int | None] = []
        try:
            for _ in range(200):  # 8 at a time, as 8 clients would
                results += await asyncio.gather(*(limiter.admit("k", 10**6, None) for _ in range(8)))
        finally:
            await limiter.close()
        return results, trips

    results, trips = run(go())
    assert results == [None] * 1600
    # The first 8 all ask (no lease yet); then one asks for each lease while the others wait for it.
    assert sum(trips) <= 8 + 1600 // LEASE_MAX + 10, trips


@needs_redis
def test_leased_admissions_count_at_the_lease_end(prefix: str) -> None:
    async def go() -> None:
        limiter = RedisLimiter(URL, prefix=prefix)
        try:
            for _ in range(2):
                await limiter.admit("k", 10**6, None)
            with Redis.from_url(URL) as client:
                now = redis_now_us(client)
                scores = sorted(score for _, score in client.zrange(f"{prefix}{{k}}:r", 0, -1, withscores=True))
            assert len(scores) == 2 + 2  # two admitted, and a lease of two
            assert all(score <= now for score in scores[:2])
            assert all(now < score <= now + LEASE * 1_000_000 for score in scores[2:])
        finally:
            await limiter.close()

    run(go())


@needs_redis
def test_keys_near_their_limits_get_no_lease(prefix: str) -> None:
    async def go() -> tuple[list[int | None], list[int], list[int | None], list[int], list[int]]:
        small = RedisLimiter(URL, prefix=prefix)
        small_trips = counting(small)
        tokens = RedisLimiter(URL, prefix=prefix)
        token_wants: list[int] = []
        token_trips = counting(tokens, token_wants)
        try:
            # An rpm of 2 * LEASE_SHARE leaves room for no lease after its first admissions.
            rpm = 2 * LEASE_SHARE
            small_results = [await small.admit("small", rpm, None) for _ in range(rpm + 2)]
            # Tokens at half the tpm or more: every admission asks Redis, and asks for a lease once.
            await tokens.spend("t", 500)
            await asyncio.sleep(0.1)  # sent
            token_results = [await tokens.admit("t", 10**6, 1000) for _ in range(20)]
        finally:
            await small.close()
            await tokens.close()
        return small_results, small_trips, token_results, token_trips, token_wants

    small_results, small_trips, token_results, token_trips, token_wants = run(go())
    assert small_results[:-2] == [None] * (2 * LEASE_SHARE) and None not in small_results[-2:]
    assert len(small_trips) > LEASE_SHARE  # leases of one at most, while the room was 64 or more
    assert token_results == [None] * 20 and token_trips == [1] * 20
    assert sum(1 for want in token_wants if want) == 1, token_wants


@needs_redis
def test_small_limits_never_ask_for_a_lease_nor_wait_for_one(prefix: str) -> None:
    async def go() -> tuple[list[int | None], list[int], list[int]]:
        limiter = RedisLimiter(URL, prefix=prefix)
        wants: list[int] = []
        trips = counting(limiter, wants)
        try:
            results = [await limiter.admit("k", LEASE_SHARE, None)]
            results += await asyncio.gather(*(limiter.admit("k", LEASE_SHARE, None) for _ in range(10)))
        finally:
            await limiter.close()
        return results, trips, wants

    results, trips, wants = run(go())
    assert results == [None] * 11
    assert not any(wants) and len(trips) <= 3, (trips, wants)  # alone, then together: none held back


@needs_redis
@pytest.mark.parametrize("change", ["tokens spent here", "the rpm lowered"])
def test_a_lease_admits_nothing_its_key_would_not_be(prefix: str, change: str) -> None:
    async def go() -> list[int | None]:
        limiter = RedisLimiter(URL, prefix=prefix)
        try:
            answers = [await limiter.admit("k", 10**6, 1000) for _ in range(3)]  # a lease of two is given
            if change == "tokens spent here":  # they count against the lease at once: Redis is asked
                await limiter.spend("k", 1000)
                answers.append(await limiter.admit("k", 10**6, 1000))
            else:  # a lease holds for the limits it was given for: Redis counts 2 + the lease of 2
                answers.append(await limiter.admit("k", 3, 1000))
            return answers
        finally:
            await limiter.close()

    answers = run(go())
    assert answers[:3] == [None] * 3 and answers[3] in (59, 60)


@needs_redis
def test_an_idle_lease_gives_back_its_rest(prefix: str) -> None:
    async def go() -> tuple[int, int]:
        limiter = RedisLimiter(URL, prefix=prefix)
        try:
            for _ in range(3):
                await limiter.admit("k", 10**6, None)
            with Redis.from_url(URL) as client:
                before = client.zcard(f"{prefix}{{k}}:r")
                await asyncio.sleep(LEASE + 0.3)  # no call in between: the limiter's own timer
                after = client.zcard(f"{prefix}{{k}}:r")
            return before, after
        finally:
            await limiter.close()

    before, after = run(go())
    assert before > 3 and after == 3


@needs_redis
def test_leases_ending_at_different_times_are_each_given_back(prefix: str) -> None:
    async def go() -> list[int]:
        limiter = RedisLimiter(URL, prefix=prefix)
        counts = []
        try:
            with Redis.from_url(URL) as client:
                for _ in range(3):
                    await limiter.admit("early", 10**6, None)
                await asyncio.sleep(LEASE / 2)
                for _ in range(3):
                    await limiter.admit("late", 10**6, None)
                await asyncio.sleep(LEASE / 2 + 0.25)  # the first lease has ended, the second not
                counts += [client.zcard(f"{prefix}{{early}}:r"), client.zcard(f"{prefix}{{late}}:r")]
                await asyncio.sleep(LEASE / 2 + 0.25)  # and now the second: no call in between
                counts += [client.zcard(f"{prefix}{{early}}:r"), client.zcard(f"{prefix}{{late}}:r")]
        finally:
            await limiter.close()
        return counts

    assert run(go()) == [3, 3 + 1, 3, 3]  # "late": 3 admitted, 1 of its lease of 2 left until it ends


@needs_redis
def test_keys_not_used_for_a_while_are_forgotten(prefix: str) -> None:
    async def go() -> tuple[int, int]:
        limiter = RedisLimiter(URL, prefix=prefix)
        try:
            for n in range(100):  # keys too small for a lease: what the limiter keeps is their recent use
                await limiter.admit(f"k{n}", 10, None)
            before = len(limiter._leases)
            await asyncio.sleep(LEASE + 0.1)
            await limiter.admit("next", 10, None)
            return before, len(limiter._leases)
        finally:
            await limiter.close()

    assert run(go()) == (100, 1)


HAMMER = textwrap.dedent("""
    import asyncio, sys
    from gptrelay.limits.redis import RedisLimiter

    async def main(url, prefix, rounds, rpm):
        limiter = RedisLimiter(url, prefix=prefix, timeout=5)
        await limiter.admit("warm-up", 10**6, None)  # connected before the start
        print("ready", flush=True)
        sys.stdin.readline()
        admitted = refused = 0
        for _ in range(rounds):  # 8 at a time, as 8 clients would
            results = await asyncio.gather(*(limiter.admit("k", rpm, None) for _ in range(8)))
            admitted += sum(r is None for r in results)
            refused += sum(r is not None for r in results)
        await limiter.close()
        print(admitted, refused, flush=True)

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
""")


@needs_redis
def test_two_processes_with_leases_never_admit_more_than_the_rpm(prefix: str) -> None:
    rpm, rounds = 4000, 400  # 6,400 asked in all
    counts = run_together(HAMMER, URL, prefix, str(rounds), str(rpm), timeout=120)
    admitted = sum(a for a, _ in counts)
    # Never more than the rpm; fewer only by what a lease held when the other process stopped asking.
    assert rpm - 2 * min(LEASE_MAX, rpm // LEASE_SHARE) <= admitted <= rpm, counts  # a lease's most, each
    with Redis.from_url(URL) as client:
        assert client.zcard(f"{prefix}{{k}}:r") == admitted  # what was leased and unused went back
