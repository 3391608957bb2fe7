"""The one place that talks to the upstream API.

``Upstream`` owns the process's pooled HTTP client (opened at start, closed
at shutdown). Routes call ``Upstream.request`` and read ``UpstreamResponse``;
they never see the HTTP client's types or exceptions, which ``_translate``
turns into ``gptrelay.errors`` at this one boundary.

Timeouts: connecting (``connect_timeout``), the first byte of the reply
(``first_byte_timeout``, headers and first body bytes) and silence between
reads after that (``read_timeout``). None limits a reply's total length.
While waiting for the first byte, ``on_wait`` is called every
``keepalive_interval`` seconds so a route can keep its client's connection alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import urllib.request
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDictProxy
from yarl import URL

from gptrelay import __version__
from gptrelay.completions import error_message
from gptrelay.errors import StreamCut, UpstreamError, UpstreamStatus, UpstreamTimeout, redact
from gptrelay.settings import Settings

OnWait = Callable[[], Awaitable[None]]

USER_AGENT = f"gptrelay/{__version__}"
ERROR_BODY_LIMIT = 1024 * 1024


class Upstream:
    """The upstream API: its base URL, its credentials and one connection pool."""

    def __init__(self, settings: Settings, base_url: str | None = None) -> None:
        self.base_url = (base_url or settings.openai_base_url).rstrip("/")
        self.host = URL(self.base_url).host or self.base_url
        self.connect_timeout = settings.connect_timeout
        self.first_byte_timeout = settings.first_byte_timeout
        self.read_timeout = settings.read_timeout
        self.keepalive_interval = settings.keepalive_interval
        credentials: dict[str, str] = {}
        if settings.openai_api_key is not None:
            credentials["Authorization"] = f"Bearer {settings.openai_api_key.get_secret_value()}"
        if settings.openai_organization:
            credentials["OpenAI-Organization"] = settings.openai_organization
        if settings.openai_project:
            credentials["OpenAI-Project"] = settings.openai_project
        self.credentials = credentials
        self.proxy = proxy_for(self.base_url)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, connect=None, sock_connect=self.connect_timeout,
                                          sock_read=None),
            auto_decompress=False,  # bytes pass through as sent; /chat asks for identity
            skip_auto_headers=("User-Agent",),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def url(self, path: str, query: str = "") -> URL:
        if not query:
            return self._url(path)
        return URL(f"{self.base_url}/{path.lstrip('/')}?{query}", encoded=True)

    @functools.lru_cache(maxsize=256)  # noqa: B019 - one Upstream per process, kept for its life
    def _url(self, path: str) -> URL:
        return URL(f"{self.base_url}/{path.lstrip('/')}", encoded=True)

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: Iterable[tuple[str, str]],
        data: Any = None,
        query: str = "",
        on_wait: OnWait | None = None,
    ) -> UpstreamResponse:
        """Send a request with the relay's own credentials; return once headers arrive.

        Until the first byte of the body arrives, ``on_wait`` is called every
        ``keepalive_interval`` seconds (the returned response goes on ticking).
        """
        assert self._session is not None, "Upstream.start() was not called"
        deadline = asyncio.get_running_loop().time() + self.first_byte_timeout
        ticker = Ticker(self.keepalive_interval, on_wait) if on_wait is not None else None
        try:
            with self._translate():
                async with asyncio.timeout_at(deadline):
                    response = await self._session.request(
                        method, self.url(path, query), headers=[*headers, *self.credentials.items()],
                        data=data, allow_redirects=False, proxy=self.proxy)
        except BaseException:
            if ticker is not None and (pending := ticker.stop()) is not None:
                await pending
            raise
        return UpstreamResponse(self, response, deadline, ticker)

    @contextlib.contextmanager
    def _translate(self, started: bool = False) -> Iterator[None]:
        """The HTTP client's exceptions, as the relay's errors. Never mentions a key."""
        try:
            yield
        except TimeoutError:
            raise UpstreamTimeout(f"the upstream at {self.host} did not answer in time") from None
        except aiohttp.ClientConnectorError as error:
            # Certificate errors are connector errors without an OSError inside.
            cause = getattr(error, "_os_error", None)
            reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(error)
            raise UpstreamError(f"cannot connect to the upstream at {self.host}: {reason}") from None
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError):
            if started:
                raise StreamCut("the upstream stream was cut off before the reply was complete") from None
            raise UpstreamError(f"the upstream at {self.host} closed the connection") from None
        except aiohttp.ClientError as error:
            raise UpstreamError(f"the request to the upstream at {self.host} failed: "
                                f"{type(error).__name__}") from None


def proxy_for(url: str) -> str | None:
    """The proxy from HTTPS_PROXY / HTTP_PROXY / NO_PROXY for the upstream, looked up once at start
    (aiohttp's ``trust_env`` would read the environment again on every request)."""
    parts = URL(url)
    if parts.host is None or urllib.request.proxy_bypass(parts.host):
        return None
    return urllib.request.getproxies().get(parts.scheme)


class UpstreamResponse:
    """An upstream reply whose headers have arrived; its body is read with ``chunks()``."""

    __slots__ = ("_deadline", "_response", "_ticker", "_upstream", "headers", "reason", "status")

    def __init__(self, upstream: Upstream, response: aiohttp.ClientResponse, deadline: float,
                 ticker: Ticker | None = None) -> None:
        self._upstream = upstream
        self._response = response
        self._deadline = deadline
        self._ticker = ticker
        self.status = response.status
        self.reason = response.reason
        self.headers: CIMultiDictProxy[str] = response.headers

    async def __aenter__(self) -> UpstreamResponse:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._ticker is not None:
            await self.stop_ticking()
        self.close()

    async def stop_ticking(self) -> None:
        """No more keep-alives from now on (the caller is about to write)."""
        if self._ticker is not None:
            ticker, self._ticker = self._ticker, None
            if (pending := ticker.stop()) is not None:
                await pending

    def close(self) -> None:
        """Give the connection back if the body was read whole, else close it (the upstream stops)."""
        response = self._response
        if response.content.at_eof():
            response.release()
        else:
            response.close()

    @property
    def is_event_stream(self) -> bool:
        return self.headers.get("Content-Type", "").startswith("text/event-stream")

    def keep_alive(self, on_wait: OnWait) -> None:
        """Call ``on_wait`` every ``keepalive_interval`` seconds until the body's first byte."""
        self._ticker = Ticker(self._upstream.keepalive_interval, on_wait)

    async def read(self, limit: int = ERROR_BODY_LIMIT) -> bytes:
        """The whole body, up to ``limit`` bytes (for error bodies and small replies)."""
        await self.stop_ticking()
        with self._upstream._translate(started=True):
            async with asyncio.timeout(self._upstream.read_timeout):
                return await self._response.content.read(limit)

    async def error(self) -> UpstreamStatus:
        """This error reply as an ``UpstreamStatus`` carrying the upstream's own message."""
        body = await self.read()
        try:
            message = error_message(orjson.loads(body))
        except orjson.JSONDecodeError:
            message = None
        if message is None:
            text = body.decode("utf-8", "replace").strip()
            message = " ".join(text.split())[:300] or (self.reason or "no message")
        return UpstreamStatus(self.status, f"upstream error {self.status}: {redact(message)}", body,
                              self.headers.get("Content-Type", "application/json"))

    async def pump(self, sink: Callable[[bytes], Awaitable[object] | None]) -> None:
        """Hand the body to ``sink`` as it arrives, one network read at a time; await what it
        returns (a write), if anything.

        The loop is the byte pipe's own (read, then write): no generator or
        wrapper per read, since every token passes through here.
        """
        upstream = self._upstream
        content = self._response.content
        read = content.readany
        loop = asyncio.get_running_loop()
        started = False
        with upstream._translate(started=True):
            try:
                # Until the first byte the limit is the first-byte deadline; then the idle limit.
                with IdleTimer(max(self._deadline - loop.time(), 0)) as idle:
                    idle.since = loop.time()
                    chunk = await _read(content)
                    if self._ticker is not None:
                        await self.stop_ticking()
                    started = True
                    idle.change(upstream.read_timeout)
                    while chunk:
                        idle.since = 0.0
                        writing = sink(chunk)
                        if writing is not None:
                            await writing
                        idle.since = loop.time()
                        try:
                            chunk = await read()
                        except aiohttp.ClientPayloadError:
                            chunk = _unread(content)
            except TimeoutError:
                if started:
                    raise UpstreamTimeout(f"the upstream sent nothing for {upstream.read_timeout:g} s") from None
                raise UpstreamTimeout(
                    f"the upstream sent no reply within {upstream.first_byte_timeout:g} s") from None


async def _read(content: aiohttp.StreamReader) -> bytes:
    try:
        return await content.readany()
    except aiohttp.ClientPayloadError:
        return _unread(content)


def _unread(content: aiohttp.StreamReader) -> bytes:
    """When the connection breaks, aiohttp raises at once and drops what had already
    arrived: hand that over first (the next read raises again). Call in an ``except``."""
    buffer = getattr(content, "_buffer", None)
    if not buffer:
        raise
    rest = b"".join(buffer)
    buffer.clear()
    return rest


class Ticker:
    """Calls ``on_wait`` every ``interval`` seconds until stopped.

    One timer while nothing happens; a task only when a tick is due, so the
    common request (an answer within the interval) pays for no task.
    """

    __slots__ = ("_handle", "_interval", "_loop", "_on_wait", "_tick")

    def __init__(self, interval: float, on_wait: OnWait) -> None:
        self._loop = asyncio.get_running_loop()
        self._interval = interval
        self._on_wait = on_wait
        self._tick: asyncio.Task[None] | None = None
        self._handle: asyncio.TimerHandle | None = self._loop.call_later(interval, self._fire)

    def _fire(self) -> None:
        self._tick = self._loop.create_task(self._run())

    async def _run(self) -> None:
        await self._on_wait()
        if self._handle is not None:  # not stopped meanwhile
            self._handle = self._loop.call_later(self._interval, self._fire)

    def stop(self) -> Awaitable[None] | None:
        """Stop ticking. Returns the keep-alive still being written, if one is, to await before
        writing anything else (so writes never interleave)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        tick, self._tick = self._tick, None
        return None if tick is None or tick.done() else _finish(tick)


async def _finish(tick: asyncio.Task[None]) -> None:
    with contextlib.suppress(Exception):  # a failed keep-alive: the client is gone, the caller sees it
        await tick


class IdleTimer:
    """Raises ``TimeoutError`` in the current task once one wait for data lasts ``timeout`` seconds.

    One timer per quiet period instead of one per read: the reader only
    stamps when it starts and stops waiting, and the timer re-arms itself.
    Time the reader spends elsewhere (writing to a slow client) never counts.
    """

    __slots__ = ("_handle", "_loop", "_task", "expired", "since", "timeout")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.since = 0.0  # when the current wait began; 0 while not waiting
        self.expired = False
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._handle: asyncio.TimerHandle | None = None

    def __enter__(self) -> IdleTimer:
        self._handle = self._loop.call_later(self.timeout, self._check)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        if self._handle is not None:
            self._handle.cancel()
        expired = self.expired and kind is asyncio.CancelledError and self._task is not None
        if expired and self._task.uncancel() == 0:  # type: ignore[union-attr]
            raise TimeoutError from None

    def change(self, timeout: float) -> None:
        self.timeout = timeout
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._loop.call_later(timeout, self._check)

    def _check(self) -> None:
        now = self._loop.time()
        if self.since and now - self.since >= self.timeout:
            self.expired = True
            if self._task is not None:
                self._task.cancel()
            return
        due = self.since + self.timeout if self.since else now + self.timeout
        self._handle = self._loop.call_at(due, self._check)
