"""The upstreams a request may go to, and the one it goes to.

Routes call ``Pool.request`` with the API path, the client's headers, its
body and the model it names. The pool picks an upstream and a key, its
provider (``gptrelay.upstream.providers``) addresses the request and adds the
key, and that upstream's transport (``gptrelay.upstream.transport``) sends it.

Choice: the model, after ``[aliases]``, picks the upstreams whose ``models``
match it (a request with no model goes to the first upstream); among them,
by weight, those not resting first; within one, its keys in turn.

Failover before the first byte: a connection that fails or times out before
the reply's headers, or a reply of ``429``, ``5xx``, ``401`` or ``403``, and the
pool tries the next key, then the next upstream, as long as the body can be
sent again (bytes; a streamed body is read whole first when it is within the
body limit and there is anywhere else to go). A reply is handed to the route
only once its headers are good or nothing else is left: nothing has reached
the client by then, and from there on nothing is retried. The last failure
is what the client gets, as with one upstream.

A key answering ``429`` rests for its ``Retry-After`` (``REST`` when none); one
answering ``401``, or ``429`` with code ``insufficient_quota``, is set aside until the
relay restarts or its file is read again. An upstream that cannot be reached,
times out or answers ``5xx`` rests for ``UPSTREAM_REST``. Each is logged, keys masked.
Resting keys and upstreams are tried last; keys set aside only when nothing else is left.

With one upstream and one key there is nothing to choose: ``request`` is then
the direct path, as cheap as the relay was with one upstream.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Iterable
from typing import Any

import orjson

from gptrelay.errors import NotFound, RelayError, ShuttingDown, UpstreamError
from gptrelay.settings import Settings, mask
from gptrelay.upstream.config import PoolConfig, UpstreamConfig, masked_url
from gptrelay.upstream.providers import Azure, OpenAI
from gptrelay.upstream.transport import KEY_REFUSED, Transport, UpstreamResponse, proxy_for
from gptrelay.watchdog import OnWait, Sweeper
from gptrelay.wire.completions import error_code

REST = 30.0  # seconds a key rests after a 429 that gives no Retry-After
UPSTREAM_REST = 10.0  # seconds an upstream rests after it could not be reached, timed out or answered 5xx
MAX_REST = 3600.0
SET_ASIDE_CODES = frozenset({"insufficient_quota"})
_MODEL = re.compile(rb'("model"\s*:\s*")([^"\\]{1,200})(")')
_CACHED_MODELS = 1024

log = logging.getLogger("gptrelay")

Provider = OpenAI | Azure


class Key:
    """One key of one upstream (or none, for a server that wants none), and how it fares."""

    __slots__ = ("credentials", "failures", "masked", "resting_until", "set_aside")

    def __init__(self, provider: Provider, secret: str | None) -> None:
        self.credentials = provider.credentials(secret)
        self.masked = mask(secret) if secret is not None else "(no key)"
        self.resting_until = 0.0
        self.set_aside: str | None = None  # why, once set aside
        self.failures = 0

    def state(self, now: float) -> dict[str, Any]:
        resting = max(0.0, self.resting_until - now)
        return {"key": self.masked, "state": "set_aside" if self.set_aside else "resting" if resting else "ready",
                "resting_seconds": round(resting, 1), "set_aside_because": self.set_aside,
                "failures": self.failures}


class Member:
    """One configured upstream: its provider, its transport, its keys and its health."""

    def __init__(self, name: str, provider: Provider, transport: Transport, secrets: Iterable[str | None], *,
                 kind: str = "openai", weight: float = 1.0, served: tuple[str, ...] | None = None) -> None:
        self.name = name
        self.kind = kind
        self.provider = provider
        self.transport = transport
        self.weight = weight
        self.keys = [Key(provider, secret) for secret in secrets] or [Key(provider, None)]
        self.models = served
        self._serves = None if served is None else \
            re.compile("|".join(fnmatch.translate(pattern) for pattern in served)).match
        self.resting_until = 0.0
        self._turn = 0

    def serves(self, model: str) -> bool:
        return self._serves is None or self._serves(model) is not None

    def in_turn(self) -> list[Key]:
        """The keys, starting from the next one in turn."""
        keys = self.keys
        if len(keys) == 1:
            return keys
        turn = self._turn % len(keys)
        self._turn = turn + 1
        return keys[turn:] + keys[:turn]

    def state(self, now: float) -> dict[str, Any]:
        resting = max(0.0, self.resting_until - now)
        return {"name": self.name, "kind": self.kind, "base_url": self.provider.base_url,
                "models": list(self.models) if self.models is not None else None, "weight": self.weight,
                "proxy": masked_url(self.transport.proxy) if self.transport.proxy else None,
                "state": "resting" if resting else "ready", "resting_seconds": round(resting, 1),
                "failures": self.transport.failures,  # one count: the metrics' (every attempt, one key or many)
                "keys": [key.state(now) for key in self.keys]}


def _env_member(settings: Settings, sweeper: Sweeper, base_url: str | None) -> Member:
    """The one upstream of ``OPENAI_API_KEY`` and ``OPENAI_BASE_URL`` (or the demo's)."""
    provider = OpenAI(base_url or settings.openai_base_url, settings.openai_organization, settings.openai_project)
    transport = Transport(settings, sweeper, provider.base_url, proxy_for(provider.base_url))
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key is not None else None
    return Member("openai", provider, transport, [key])


def _member(settings: Settings, sweeper: Sweeper, config: UpstreamConfig) -> Member:
    provider: Provider = (Azure(config.base_url, config.api_version, config.deployments) if config.kind == "azure"
                          else OpenAI(config.base_url, config.organization, config.project))
    proxy = config.proxy.get_secret_value() if config.proxy is not None else proxy_for(provider.base_url)
    transport = Transport(settings, sweeper, provider.base_url, proxy)
    return Member(config.name, provider, transport, [key.get_secret_value() for key in config.keys],
                  kind=config.kind, weight=config.weight, served=config.served)


class Pool:
    """The configured upstreams (``gptrelay.upstream.config``), or the one of ``OPENAI_API_KEY``."""

    def __init__(self, settings: Settings, sweeper: Sweeper, config: PoolConfig | None = None,
                 base_url: str | None = None) -> None:
        self._settings = settings
        self._sweeper = sweeper
        self.max_body_size = settings.max_body_size
        self._retiring: dict[Transport, asyncio.Task[None]] = {}  # replaced, closed once idle
        self._use(*self._members(config, base_url))

    def _members(self, config: PoolConfig | None, base_url: str | None = None) -> tuple[list[Member], dict[str, str]]:
        if config is None:
            return [_env_member(self._settings, self._sweeper, base_url)], {}
        return [_member(self._settings, self._sweeper, upstream) for upstream in config.upstreams], \
            dict(config.aliases)

    def _use(self, members: list[Member], aliases: dict[str, str]) -> None:
        self.members = members
        self.aliases = aliases
        self._partial = any(isinstance(member.provider, Azure) for member in members)
        self._serving: dict[str, list[Member]] = {}
        first = members[0]
        if len(members) == 1 and len(first.keys) == 1 and not aliases:
            self._provider = first.provider
            self._credentials = first.keys[0].credentials
            self._transport = first.transport
            self.request = self._direct  # type: ignore[method-assign]  # (the same signature)
        else:
            self.__dict__.pop("request", None)

    async def start(self) -> None:
        for member in self.members:
            await member.transport.start()

    async def close(self) -> None:
        for transport, task in list(self._retiring.items()):
            task.cancel()
            await transport.close()
        for member in self.members:
            await member.transport.close()

    async def reload(self, config: PoolConfig | None) -> None:
        """Serve ``config`` from now on (keys set aside are tried again). The upstreams it replaces
        are closed once the replies they are streaming have ended: nothing in progress is cut."""
        members, aliases = self._members(config)
        for member in members:
            await member.transport.start()
        old = self.members
        self._use(members, aliases)
        for member in old:
            self._retiring[member.transport] = asyncio.get_running_loop().create_task(self._retire(member.transport))

    async def _retire(self, transport: Transport) -> None:
        try:
            await transport.retire()
        finally:
            self._retiring.pop(transport, None)

    def state(self) -> list[dict[str, Any]]:
        """Each upstream, its keys (masked) and how they fare, for the admin API."""
        now = time.monotonic()
        return [member.state(now) for member in self.members]

    def _direct(
        self,
        method: str,
        path: str,
        *,
        headers: Iterable[tuple[str, str]],
        data: Any = None,
        query: str = "",
        on_wait: OnWait | None = None,
        model: str | None = None,
    ) -> Awaitable[UpstreamResponse]:
        """The one upstream with its one key: nothing to choose, nothing to fail over to."""
        return self._transport.request(method, self._provider.url(path, query, model),
                                       [*headers, *self._credentials], data, on_wait)

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Iterable[tuple[str, str]],
        data: Any = None,
        query: str = "",
        on_wait: OnWait | None = None,
        model: str | None = None,
    ) -> Awaitable[UpstreamResponse]:
        """Send a request with the relay's own credentials to the upstream that serves ``model``
        (failing over, see the module's docstring); await it for the reply, once its headers arrive."""
        return self._send(method, path, headers, data, query, on_wait, model)

    async def _send(self, method: str, path: str, headers: Iterable[tuple[str, str]], data: Any, query: str,
                    on_wait: OnWait | None, model: str | None) -> UpstreamResponse:
        asked = self.resolve(model) if model else None
        if asked is not None and asked != model and isinstance(data, bytes):
            data = _with_model(data, asked)
        attempts = self.attempts(asked, path)
        if len(attempts) > 1 and data is not None and not isinstance(data, bytes):
            data, whole = await _buffered(data, self.max_body_size)
            if not whole:
                attempts = attempts[:1]  # too large to hold: sent once, as it comes
        headers = list(headers)
        last = len(attempts) - 1
        for n, (member, key) in enumerate(attempts):
            url = member.provider.url(path, query, asked)
            try:
                response = await member.transport.request(method, url, [*headers, *key.credentials], data, on_wait)
            except ShuttingDown:
                raise  # the relay's own doing: no upstream is at fault, none is tried next
            except UpstreamError as error:
                self._unreachable(member, error)
                if n == last:
                    raise
                continue
            status = response.status
            if (status < 429 and status not in KEY_REFUSED) or 429 < status < 500:
                return response
            code = await _error_code(response) if n < last else None
            self._failed(member, key, status, response.headers.get("Retry-After"), code)
            if n == last:
                return response
        raise AssertionError("a pool always has an upstream to try")  # pragma: no cover

    def resolve(self, model: str) -> str:
        aliases = self.aliases
        while model in aliases:
            model = aliases[model]
        return model

    def serving(self, model: str | None, path: str = "chat/completions") -> list[Member]:
        """The upstreams that serve ``model`` (with no model, the first one that offers ``path``)."""
        if model is None:
            for member in self.members:
                if member.provider.offers(path):
                    return [member]
            return self.members[:1]  # (whose provider says why not)
        found = self._serving.get(model)
        if found is None:
            found = [member for member in self.members if member.serves(model)]
            if not found:
                error = NotFound(f"no upstream of this relay serves the model {model[:200]!r}")
                error.code = "model_not_found"
                raise error
            if len(self._serving) >= _CACHED_MODELS:
                self._serving.clear()
            self._serving[model] = found
        return found

    def attempts(self, model: str | None, path: str = "chat/completions") -> list[tuple[Member, Key]]:
        """Where to send a request for ``model`` to ``path``, in order: the upstreams by weight, their
        keys in turn; resting ones after the rest; keys set aside only when there is nothing else."""
        now = time.monotonic()
        members = self.serving(model, path)
        if self._partial:  # an upstream that offers only some paths (Azure)
            members = [member for member in members if member.provider.offers(path)] or members
        ready = [member for member in members if member.resting_until <= now]
        if len(ready) < len(members):
            ready = [*_by_weight(ready), *sorted((member for member in members if member.resting_until > now),
                                                 key=lambda member: member.resting_until)]
        else:
            ready = _by_weight(ready)
        first: list[tuple[Member, Key]] = []
        later: list[tuple[float, Member, Key]] = []
        aside: list[tuple[Member, Key]] = []
        for member in ready:
            for key in member.in_turn():
                if key.set_aside is not None:
                    aside.append((member, key))
                elif key.resting_until > now:
                    later.append((key.resting_until, member, key))
                else:
                    first.append((member, key))
        if not later:
            return first or aside
        later.sort(key=lambda item: item[0])
        return [*first, *((member, key) for _, member, key in later)] or aside

    def _unreachable(self, member: Member, error: UpstreamError) -> None:
        member.resting_until = time.monotonic() + UPSTREAM_REST
        log.warning("upstream %s rests for %g s: %s", member.name, UPSTREAM_REST, error.message)

    def _failed(self, member: Member, key: Key, status: int, retry_after: str | None, code: str | None) -> None:
        key.failures += 1
        if status == 401 or (status == 429 and code in SET_ASIDE_CODES):
            key.set_aside = f"{status} {code}" if code else str(status)
            log.warning("upstream %s: key %s set aside (%s) until the relay restarts or reads its file again",
                        member.name, key.masked, key.set_aside)
        elif status == 429:
            rest = _seconds(retry_after)
            key.resting_until = time.monotonic() + rest
            log.warning("upstream %s: key %s rests for %g s (429)", member.name, key.masked, rest)
        elif status >= 500:
            member.resting_until = time.monotonic() + UPSTREAM_REST
            log.warning("upstream %s rests for %g s: it answered %d", member.name, UPSTREAM_REST, status)
        else:
            log.warning("upstream %s: key %s was refused (%d)", member.name, key.masked, status)


async def _error_code(response: UpstreamResponse) -> str | None:
    """The code of an error reply left for another upstream (``insufficient_quota``?); its body read
    and the connection given back."""
    try:
        async with response:
            body = await response.read()
    except RelayError:
        return None
    try:
        return error_code(orjson.loads(body))
    except orjson.JSONDecodeError:
        return None


def _by_weight(members: list[Member]) -> list[Member]:
    """``members`` in a random order in which each comes first in proportion to its weight."""
    if len(members) < 2:
        return members
    left = list(members)
    order = []
    while len(left) > 1:
        point = random.random() * sum(member.weight for member in left)
        chosen = len(left) - 1  # (where rounding leaves the point)
        for index, member in enumerate(left):
            point -= member.weight
            if point < 0:
                chosen = index
                break
        order.append(left.pop(chosen))
    return [*order, *left]


def _seconds(retry_after: str | None) -> float:
    """``Retry-After`` in seconds (``REST`` when absent or a date), within reason."""
    try:
        seconds = float(retry_after) if retry_after is not None else REST
    except ValueError:
        seconds = REST
    return min(max(seconds, 1.0), MAX_REST)


def _with_model(data: bytes, model: str) -> bytes:
    """The JSON body with its (first) ``"model"`` naming ``model``: an alias, as asked upstream."""
    name = orjson.dumps(model)[1:-1]
    return _MODEL.sub(lambda found: found.group(1) + name + found.group(3), data, count=1)


async def _buffered(data: AsyncIterator[bytes], limit: int) -> tuple[bytes | AsyncIterator[bytes], bool]:
    """A streamed body read whole, if it is at most ``limit`` bytes (``True``); else what was read
    and the rest, as one stream again (``False``)."""
    parts: list[bytes] = []
    size = 0
    async for chunk in data:
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            return _chained(parts, data), False
    return b"".join(parts), True


async def _chained(parts: list[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part
    async for chunk in rest:
        yield chunk
