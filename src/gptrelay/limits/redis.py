"""Rate limits kept in Redis, so every process and host that shares it enforces one set.

Each key has two sorted sets (hash-tagged together, so a cluster keeps them on one
node): the requests admitted, scored by the time they were, and the requests that
ended, as ``tokens:id`` scored by the time they did, with their sum kept beside
them. One Lua script checks and counts (``admit``), another records tokens
(``spend``); each reads Redis's own clock (``TIME``), so hosts whose clocks
disagree still agree, and runs atomically, so the limits are exact under any
concurrency. Every write sets an expiry of one window: an idle key vanishes.

Calls are batched, since a round trip through redis-py costs far more CPU than
the script it runs: an admission asked for while nothing is on its way to Redis
goes at once, from its own task; the ones asked for while a round trip is under
way go together in the next, in one pipeline, and each caller gets its own answer.
Spent tokens are summed per key and ride along with the next batch, or leave
on their own ``SPEND_DELAY`` after the first of them: a request's tokens count
against TPM within that time after it ended (on every process and host), and
spending never waits on Redis.

A key used often is not asked about at every request: Redis hands the relay a
*lease*, admissions counted ahead (at most ``LEASE_MAX``, and at most 1/64 of what the
key's rpm has left, so only keys far from their limit get one), which this process
uses without a round trip for ``LEASE`` seconds. They are counted as admitted at the
lease's end, so the rpm stays exact: in any 60 s, no more than rpm requests are
admitted over all processes. A lease is given only while the key's tokens are below
half its tpm, and the tokens this process spends meanwhile count against it at once
(other processes' within ``LEASE``). What a lease leaves unused goes back when it
ends. Lease sizes follow demand: a key whose last lease ran out before its end asks
for twice as many as it used.

Redis unreachable or slow: every batch gives up after ``timeout`` seconds for the
connection and as long again for the answer, then, for a second, no call tries
Redis at all. Meanwhile ``fail_open`` admits every request (the default: an
outage of the counters is not an outage of the relay) or refuses each with
:class:`~gptrelay.errors.LimiterUnavailable` (503). Either way one warning
line at most every 30 seconds, naming the URL with its password masked.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from gptrelay.errors import LimiterUnavailable, log, redact
from gptrelay.limits.limiter import WINDOW

WARN_EVERY = 30.0
"""Seconds between two warnings that Redis cannot be reached."""
PAUSE = 1.0
"""Seconds after a failure during which the policy applies without trying Redis."""
SPEND_DELAY = 0.05
"""Seconds spent tokens may wait for a batch of admissions to travel with."""
LEASE = 1.0
"""Seconds a lease of admissions counted ahead may be used for."""
LEASE_MAX = 512
"""The most admissions one lease holds (a key's rpm bounds it first: 1/LEASE_SHARE of its room). Each
lease is a round trip through redis-py, some 300 µs of the relay's CPU: at 64, a key served 3,000
times a second asked for ~50 leases a second."""
LEASE_SHARE = 64
"""A lease takes at most 1/LEASE_SHARE of the requests a key's rpm has left."""

# Times are microseconds of Redis's clock; numbers are formatted with %.0f because
# Lua's own conversion keeps 14 digits. The sum of the tokens follows the set.
_PRELUDE = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local window = tonumber(ARGV[1])
local horizon = string.format('%.0f', now - window)
local function prune_tokens(tokens_key, sum_key)
    local gone = redis.call('ZRANGEBYSCORE', tokens_key, '-inf', horizon)
    if #gone > 0 then
        local removed = 0
        for i = 1, #gone do
            removed = removed + tonumber(string.match(gone[i], '^%d+'))
        end
        redis.call('ZREMRANGEBYSCORE', tokens_key, '-inf', horizon)
        if redis.call('ZCARD', tokens_key) == 0 then
            redis.call('DEL', sum_key)
        else
            redis.call('DECRBY', sum_key, removed)
        end
    end
    return tonumber(redis.call('GET', sum_key) or '0')
end
"""

# KEYS: admitted, tokens, sum. ARGV: window (us), rpm or '', tpm or '', a unique id, the lease
# wanted (admissions), the lease's length (us). Returns {0, leased, tokens spent} when admitted,
# else {the seconds to wait, 0, tokens spent}. Leased admissions are counted at the lease's end.
ADMIT = _PRELUDE + """
local rpm = tonumber(ARGV[2])
local tpm = tonumber(ARGV[3])
local free_at = now
local spent = 0
local count = 0
if tpm then
    if tpm <= 0 then
        free_at = now + window
    else
        spent = prune_tokens(KEYS[2], KEYS[3])
        if spent >= tpm then
            local left = spent
            local entries = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
            for i = 1, #entries, 2 do
                left = left - tonumber(string.match(entries[i], '^%d+'))
                if left < tpm then
                    free_at = tonumber(entries[i + 1]) + window
                    break
                end
            end
        end
    end
end
if rpm then
    if rpm <= 0 then
        free_at = now + window
    else
        redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', horizon)
        count = redis.call('ZCARD', KEYS[1])
        if count >= rpm then
            local leaving = redis.call('ZRANGE', KEYS[1], count - rpm, count - rpm, 'WITHSCORES')
            free_at = math.max(free_at, tonumber(leaving[2]) + window)
        end
    end
end
if free_at > now then
    return {math.max(1, math.ceil((free_at - now) / 1000000)), 0, spent}
end
local leased = tonumber(ARGV[5])
if tpm and spent * 2 >= tpm then
    leased = 0
end
if rpm then
    leased = math.min(leased, math.floor((rpm - count - 1) / """ + str(LEASE_SHARE) + """))
    local stamp = string.format('%.0f', now)
    redis.call('ZADD', KEYS[1], stamp, stamp .. ARGV[4])
    if leased > 0 then
        local ends = string.format('%.0f', now + tonumber(ARGV[6]))
        local entries = {}
        for j = 1, leased do
            entries[#entries + 1] = ends
            entries[#entries + 1] = ARGV[4] .. '#' .. j
        end
        redis.call('ZADD', KEYS[1], unpack(entries))
    end
    redis.call('PEXPIRE', KEYS[1], math.ceil((window + tonumber(ARGV[6])) / 1000) + 1000)
end
return {0, leased, spent}
"""

# KEYS: tokens, sum. ARGV: window (us), tokens, a unique id.
SPEND = _PRELUDE + """
prune_tokens(KEYS[1], KEYS[2])
redis.call('ZADD', KEYS[1], string.format('%.0f', now), ARGV[2] .. ':' .. ARGV[3])
redis.call('INCRBY', KEYS[2], ARGV[2])
local ttl = math.ceil(window / 1000) + 1000
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return 0
"""

# KEYS: admitted. ARGV: the leased admissions left unused.
GIVE_BACK = "return redis.call('ZREM', KEYS[1], unpack(ARGV))"

SCRIPTS = (ADMIT, SPEND, GIVE_BACK)


@dataclass(slots=True)
class _Lease:
    """This process's admissions of one key, counted ahead in Redis (``slots`` left of ``leased``),
    usable until ``ends``; also the key's recent demand (``used``) and its tokens (``spent``)."""

    rpm: int | None
    tpm: int | None
    ends: float  # this process's clock
    leased: int
    slots: int
    member: str  # the leased admissions are the members f"{member}#{j}", j = 1..leased
    used: int = 1  # admissions of the key here since the lease was given, the one that asked included
    spent: int = 0  # the key's tokens in the window: Redis's count when given, plus this process's since
    refused: bool = False  # asked for, none given (the key is near a limit): not asked again until it ends
    asking: asyncio.Future[None] | None = None  # resolved when the admission asking for the next lease is answered

    def fits(self, rpm: int | None, tpm: int | None, now: float) -> bool:
        return (self.slots > 0 and now < self.ends and self.rpm == rpm and self.tpm == tpm
                and (tpm is None or self.spent < tpm))

    def unused(self) -> list[str]:
        return [f"{self.member}#{j}" for j in range(self.leased - self.slots + 1, self.leased + 1)]


_Asked = tuple[str, int | None, int | None, int, str, "asyncio.Future[list[int] | None]"]
"""An admission to send: key, rpm, tpm, the lease wanted, its id, and where its answer goes."""


def masked(url: str) -> str:
    """``redis://user:****@host:6379/0``: the URL without its password (or query)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        netloc = f"{user}:****@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class RedisLimiter:
    """The limiter shared through Redis at ``url`` (``redis://``, ``rediss://``, ``unix://``)."""

    def __init__(self, url: str, *, fail_open: bool = True, timeout: float = 0.25, connections: int = 64,
                 prefix: str = "gptrelay:limits:", clock: Callable[[], float] = time.monotonic) -> None:
        # One batch at a time is in flight (on one connection of at most ``connections``).
        # No retries: the policy decides instead.
        pool = BlockingConnectionPool.from_url(url, max_connections=connections, timeout=2 * timeout,
                                               socket_connect_timeout=timeout, socket_timeout=timeout,
                                               retry=Retry(NoBackoff(), 0))
        self._redis = Redis.from_pool(pool)
        # EVALSHA (their .sha), with the scripts loaded on the first NOSCRIPT answer.
        self._admit = self._redis.register_script(ADMIT)
        self._spend = self._redis.register_script(SPEND)
        self._give_back = self._redis.register_script(GIVE_BACK)
        self._asked: list[_Asked] = []  # admissions to send
        self._spent: dict[str, int] = {}  # tokens to send, per key
        self._unused: list[tuple[str, list[str]]] = []  # leased admissions to give back, per key
        self._leases: dict[str, _Lease] = {}
        self._sweep_at = float("-inf")  # when the next lease ends
        self._sweep_due: asyncio.TimerHandle | None = None
        self._wake = asyncio.Event()
        self._spend_due: asyncio.TimerHandle | None = None
        self._sender: asyncio.Task[None] | None = None  # started by the first call
        self._in_flight = 0  # batches sent and not yet answered
        self._closing = False
        self._fail_open = fail_open
        self._deadline = 2 * timeout
        self._prefix = prefix
        self._clock = clock
        self._where = masked(url)
        self._password = urlsplit(url).password
        self._id = f":{secrets.token_hex(4)}:"
        self._ids = itertools.count()
        self._window = str(WINDOW * 1_000_000)
        self._lease_us = str(int(LEASE * 1_000_000))
        self._paused_until = float("-inf")
        self._warned_at = float("-inf")
        self._failing = False

    async def admit(self, key: str, rpm: int | None, tpm: int | None) -> int | None:
        if rpm is None and tpm is None:
            return None
        now = self._clock()
        if now < self._paused_until:
            self._unavailable()
            return None
        lease = self._leases.get(key)
        if lease is not None and lease.asking is not None and not lease.fits(rpm, tpm, now):
            await asyncio.shield(lease.asking)  # the next lease is on its way: wait for it, rather than ask
            now = self._clock()
            lease = self._leases.get(key)
        want = 0
        if lease is not None:
            if lease.fits(rpm, tpm, now):  # counted ahead: nothing to ask
                lease.slots -= 1
                lease.used += 1
                return None
            if lease.asking is None and lease.slots == 0 and now < lease.ends and not lease.refused \
                    and (rpm is None or rpm > LEASE_SHARE):  # ran out: ask for more
                want = min(LEASE_MAX, 2 * lease.used)
                lease.asking = asyncio.get_running_loop().create_future()
        answer: asyncio.Future[list[int] | None] = asyncio.get_running_loop().create_future()
        asked = (key, rpm, tpm, want, f"{self._id}{next(self._ids)}", answer)
        try:
            if not self._in_flight and not self._asked:  # nothing to wait for: go now, from this task
                spent, self._spent = self._spent, {}
                await self._send([asked], spent)
            else:  # with the next batch
                self._asked.append(asked)
                self._wake.set()
                if self._sender is None:
                    self._start()
            result = await answer
            if result is None:  # the batch failed
                self._unavailable()
                return None
            return self._answered(asked, now, result)
        finally:
            if want and lease is not None and lease.asking is not None:  # the ones waiting for it go on
                lease.asking.set_result(None)
                lease.asking = None

    def _answered(self, asked: _Asked, now: float, result: list[int]) -> int | None:
        """Redis's answer to ``asked``, sent at ``now``: the lease it gives, or the key's use counted."""
        key, rpm, tpm, want, member, _ = asked
        wait, leased, spent_tokens = result
        if wait:
            return wait
        lease = self._leases.get(key)
        if want or lease is None or not now < lease.ends:  # a new lease, or a key's first admission in a while
            if lease is not None and lease.slots:
                self._unused.append((key, lease.unused()))
            self._leases[key] = _Lease(rpm, tpm, now + LEASE, leased, leased, member, spent=spent_tokens,
                                       refused=bool(want) and not leased)
            if leased:  # what it leaves unused goes back when it ends
                self._sweep_when(now + LEASE)
            elif now >= self._sweep_at:  # keys not used for a while are forgotten
                self._sweep()
                if self._unused:
                    self._sweep_now()
        else:
            lease.used += 1
        return None

    async def spend(self, key: str, tokens: int) -> None:
        """Never waits and never raises: tokens that cannot be recorded are lost (the failure logged)."""
        if tokens <= 0 or self._clock() < self._paused_until:
            return
        self._spent[key] = self._spent.get(key, 0) + tokens
        lease = self._leases.get(key)
        if lease is not None:
            lease.spent += tokens
        if self._spend_due is None:
            self._spend_due = asyncio.get_running_loop().call_later(SPEND_DELAY, self._wake.set)
        if self._sender is None:
            self._start()

    def _start(self) -> None:
        self._sender = asyncio.get_running_loop().create_task(self._run(), name="redis-limits")

    async def _run(self) -> None:
        """Send what waits, one batch at a time: what arrives during a round trip goes in the next."""
        while True:
            self._sweep()
            if not self._asked and not self._spent and not self._unused:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            asked, self._asked = self._asked, []
            spent, self._spent = self._spent, {}
            try:
                await self._send(asked, spent)
            except Exception as error:  # a bug must not leave requests waiting forever
                log.error("rate limits: a batch failed: %s", redact(" ".join(repr(error).split())))
                for *_, answer in asked:
                    if not answer.done():
                        answer.set_result(None)

    def _sweep_when(self, at: float) -> None:
        """Make sure a sweep comes at ``at`` (this process's clock) or before."""
        if self._sweep_due is None and not self._closing:
            self._sweep_due = asyncio.get_running_loop().call_later(max(0.0, at - self._clock()), self._sweep_now)
            if self._sender is None:
                self._start()

    def _sweep_now(self) -> None:
        self._sweep_due = None
        self._sweep_at = float("-inf")
        self._wake.set()
        if self._sender is None:
            self._start()

    def _sweep(self) -> None:
        """Forget the leases that ended (giving back what they left), when the first of them ends
        and at most every quarter of a lease's length; all of them when closing."""
        now = self._clock()
        if now < self._sweep_at and not self._closing:
            return
        first_end = first_unused = float("inf")
        for key, lease in list(self._leases.items()):
            if self._closing or (now >= lease.ends and lease.asking is None):
                del self._leases[key]
                if lease.slots:
                    self._unused.append((key, lease.unused()))
            else:
                first_end = min(first_end, lease.ends)
                if lease.slots:
                    first_unused = min(first_unused, lease.ends)
        self._sweep_at = max(min(first_end, now + LEASE), now + LEASE / 4)
        if first_unused < float("inf"):
            self._sweep_when(max(first_unused, self._sweep_at))

    async def _send(self, asked: list[_Asked], spent: dict[str, int]) -> None:
        """One pipeline: the tokens and the admissions given back first (so the admissions beside
        them see them), then the admissions."""
        if self._spend_due is not None:
            self._spend_due.cancel()
            self._spend_due = None
        unused, self._unused = self._unused, []
        calls: list[tuple[str, list[str], list[str | int]]] = []
        for key, tokens in spent.items():
            tag = f"{self._prefix}{{{key}}}"
            calls.append((self._spend.sha, [f"{tag}:t", f"{tag}:s"],
                          [self._window, tokens, f"{self._id}{next(self._ids)}"]))
        for key, members in unused:
            calls.append((self._give_back.sha, [f"{self._prefix}{{{key}}}:r"], list(members)))
        for key, rpm, tpm, want, member, _ in asked:
            tag = f"{self._prefix}{{{key}}}"
            calls.append((self._admit.sha, [f"{tag}:r", f"{tag}:t", f"{tag}:s"],
                          [self._window, "" if rpm is None else rpm, "" if tpm is None else tpm, member,
                           want, self._lease_us]))
        self._in_flight += 1
        try:
            async with asyncio.timeout(self._deadline):
                results: list[object] = await self._pipeline(calls)
        except (RedisError, OSError, TimeoutError) as error:
            self._failed(error)
            results = [None] * len(calls)
        else:
            self._recovered()
        finally:
            self._in_flight -= 1
        for (*_, answer), result in zip(asked, results[len(calls) - len(asked):], strict=True):
            if not answer.done():
                answer.set_result(None if result is None else [int(n) for n in result])  # type: ignore[attr-defined]

    async def _pipeline(self, calls: list[tuple[str, list[str], list[str | int]]]) -> list[object]:
        """EVALSHA each call in one round trip; after a NOSCRIPT (a restarted Redis), load the
        scripts and send again the calls that met it."""
        if len(calls) == 1:  # alone: a plain call costs less than a pipeline of one
            sha, keys, args = calls[0]
            try:
                return [await self._redis.evalsha(sha, len(keys), *keys, *args)]
            except NoScriptError:
                await self._load_scripts()
                return [await self._redis.evalsha(sha, len(keys), *keys, *args)]
        results: list[object] = [None] * len(calls)
        todo = list(range(len(calls)))
        for attempt in range(2):
            pipe = self._redis.pipeline(transaction=False)
            for i in todo:
                sha, keys, args = calls[i]
                pipe.evalsha(sha, len(keys), *keys, *args)
            answers = await pipe.execute(raise_on_error=False)
            missing = []
            for i, answer in zip(todo, answers, strict=True):
                if isinstance(answer, NoScriptError) and attempt == 0:
                    missing.append(i)
                elif isinstance(answer, Exception):
                    raise answer
                else:
                    results[i] = answer
            if not missing:
                break
            await self._load_scripts()
            todo = missing
        return results

    async def _load_scripts(self) -> None:
        for script in SCRIPTS:
            await self._redis.script_load(script)

    async def close(self) -> None:
        """Send the tokens still waiting and give back the leases' unused admissions, then close."""
        self._closing = True
        if self._sweep_due is not None:
            self._sweep_due.cancel()
            self._sweep_due = None
        self._wake.set()
        if self._sender is None and (self._spent or self._leases):
            self._start()
        if self._sender is not None:
            await self._sender
        await self._redis.aclose()

    def _unavailable(self) -> None:
        """Admit (return) or refuse (raise), as the policy says."""
        if not self._fail_open:
            raise LimiterUnavailable("the rate limits cannot be checked right now (their store is "
                                     "unreachable); try again in a few seconds")

    def _failed(self, error: BaseException) -> None:
        now = self._clock()
        self._paused_until = now + PAUSE
        if now - self._warned_at < WARN_EVERY:
            return
        self._warned_at = now
        self._failing = True  # so the recovery is told too, once per warning
        why = str(error) or f"no answer within {self._deadline:g} s"
        if self._password:
            why = why.replace(self._password, "****")
        policy = "admitting requests unchecked" if self._fail_open else "refusing requests (503)"
        log.warning("rate limits: Redis at %s cannot be reached (%s): %s until it can",
                    self._where, redact(why).replace("\n", " "), policy)

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            log.warning("rate limits: Redis at %s is reachable again", self._where)
