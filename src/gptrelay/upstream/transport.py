"""The one place that talks to the upstream API.

A ``Transport`` owns one pooled HTTP client to one upstream (opened at start,
closed at shutdown). The pool (``gptrelay.upstream.pool``) calls
``Transport.request`` with a URL and headers its provider made
(``gptrelay.upstream.providers``); routes read ``UpstreamResponse``. Neither
sees the HTTP client's types or exceptions, which ``fail`` turns into
``gptrelay.errors`` at this one boundary.

Timeouts: connecting (``connect_timeout``), the first byte of the reply
(``first_byte_timeout``, headers and first body bytes) and silence between
reads after that (``read_timeout``). None limits a reply's total length.
While waiting for the first byte, ``on_wait`` is called every
``keepalive_interval`` seconds so a route can keep its client's connection alive.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import aiohttp
import orjson
from aiohttp_socks import ProxyConnectionError, ProxyConnector, ProxyError, ProxyTimeoutError, ProxyType
from multidict import CIMultiDictProxy
from yarl import URL

from gptrelay.errors import (
    RelayError,
    ShuttingDown,
    StreamCut,
    UpstreamError,
    UpstreamKeyRefused,
    UpstreamStatus,
    UpstreamTimeout,
    redact,
)
from gptrelay.settings import Settings
from gptrelay.upstream.config import masked_url
from gptrelay.watchdog import OnWait, Sweeper, UpstreamWatchdog
from gptrelay.wire.completions import error_code, error_message

ERROR_BODY_LIMIT = 1024 * 1024
READ_BUFFER = 64 * 1024
# The upstream's answers to a key it does not take (OpenAI: 401 invalid_api_key, 403 for a
# project, a model or a region the key may not use).
KEY_REFUSED = frozenset({401, 403})
# "Too many open files", for the process or the system: wait and try again, this often.
OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE})
DESCRIPTOR_WAIT = 0.05
PROXY_ERRORS = (aiohttp.ClientProxyConnectionError, aiohttp.ClientHttpProxyError, ProxyConnectionError, ProxyError,
                ProxyTimeoutError)

log = logging.getLogger("gptrelay")


class Transport:
    """The way to one upstream host: one connection pool, its timeouts and its proxy."""

    def __init__(self, settings: Settings, sweeper: Sweeper, base_url: str, proxy: str | None = None) -> None:
        self.host = URL(base_url).host or base_url
        self.connect_timeout = settings.connect_timeout
        self.first_byte_timeout = settings.first_byte_timeout
        self.read_timeout = settings.read_timeout
        self.keepalive_interval = settings.keepalive_interval
        self.proxy = proxy  # as configured; told masked (``shown_proxy``)
        self.shown_proxy = masked_url(proxy) if proxy is not None else None
        socks = proxy is not None and proxy.startswith("socks")
        self._socks = proxy if socks else None  # a connector of its own
        self._proxy = None if socks else proxy  # aiohttp's own, per request (http:// and https://)
        self._session: aiohttp.ClientSession | None = None
        self._sweeper = sweeper
        # Attempts that failed: unreachable, timed out, cut off, or answered 401, 403, 429 or 5xx (for the
        # metrics: gptrelay.observe.gauges).
        self.failures = 0

    async def start(self) -> None:
        options: dict[str, Any] = {"limit": 0, "ttl_dns_cache": 300, "keepalive_timeout": 60}
        connector = socks_connector(self._socks, options) if self._socks else aiohttp.TCPConnector(**options)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, connect=None, sock_connect=self.connect_timeout,
                                          sock_read=None),
            auto_decompress=False,  # bytes pass through as sent; /chat asks for identity
            # What is read ahead of a client that stopped reading stays bounded (aiohttp pauses
            # the upstream at twice this; its default of 256 KiB held ~0.8 MiB per stalled stream).
            read_bufsize=READ_BUFFER,
            cookie_jar=aiohttp.DummyCookieJar(),  # no state from one user's request to the next
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def retire(self, poll: float = 1.0) -> None:
        """Close once no reply is being read through this pool any more (the configuration was
        read again: what streams now must not be cut). Closing at once would abort them."""
        session = self._session
        while session is not None and getattr(session.connector, "_acquired", None):
            await asyncio.sleep(poll)
        await self.close()

    async def request(
        self,
        method: str,
        url: URL,
        headers: list[tuple[str, str]],
        data: Any = None,
        on_wait: OnWait | None = None,
    ) -> UpstreamResponse:
        """Send a request (its headers carrying the relay's credentials); return once headers arrive.

        Until the first byte of the body arrives, ``on_wait`` is called every
        ``keepalive_interval`` seconds (the returned response goes on ticking).
        """
        assert self._session is not None, "Transport.start() was not called"
        watchdog = UpstreamWatchdog(self._sweeper, self.first_byte_timeout, self.read_timeout, on_wait,
                                    self.keepalive_interval)
        try:
            try:
                response = await self._session.request(method, url, headers=headers, data=data,
                                                       allow_redirects=False, proxy=self._proxy)
            except aiohttp.ClientConnectorError as error:
                if not _out_of_descriptors(error) or not isinstance(data, bytes | None):
                    raise  # (a streamed body cannot be sent twice)
                response = await self._send_when_free(method, url, headers, data)
        except BaseException as error:
            watchdog.close()
            await watchdog.stop_ticking()
            self.fail(error, watchdog)
        watchdog.since = 0.0  # the route's own work until it reads the body does not count
        return UpstreamResponse(self, response, watchdog)

    async def _send_when_free(self, method: str, url: URL, headers: list[tuple[str, str]],
                              data: bytes | None) -> aiohttp.ClientResponse:
        """Send again and again while the process is out of file descriptors (every one holding
        a stream), for at most the connect timeout, rather than fail at once."""
        assert self._session is not None
        give_up = asyncio.get_running_loop().time() + self.connect_timeout
        while True:
            await asyncio.sleep(DESCRIPTOR_WAIT)
            try:
                return await self._session.request(method, url, headers=headers, data=data,
                                                   allow_redirects=False, proxy=self._proxy)
            except aiohttp.ClientConnectorError as error:
                if not _out_of_descriptors(error) or asyncio.get_running_loop().time() >= give_up:
                    raise

    def fail(self, error: BaseException, watchdog: UpstreamWatchdog, started: bool = False) -> NoReturn:
        """Raise ``error`` (being handled) as the relay's error, or as it is if it is not the
        HTTP client's (a cancellation, say)."""
        failure = self._translate(error, watchdog, started)
        if isinstance(failure, UpstreamError):
            self.failures += 1
        if failure is error:
            raise  # (called in an except clause: the error goes on as it was)
        raise failure from None

    def _translate(self, error: BaseException, watchdog: UpstreamWatchdog, started: bool) -> BaseException:
        """The HTTP client's exceptions, as the relay's errors (others as they are). Never mentions a key."""
        if isinstance(error, ConnectionResetError):  # a write to our own client, who has gone
            return error
        if isinstance(error, aiohttp.ClientError) and isinstance(error.__cause__, RelayError):
            return error.__cause__  # the client's body failed while it was sent: the client's error
        if isinstance(error, TimeoutError):  # the HTTP client's own: connecting took too long
            return UpstreamTimeout(f"the upstream at {self.host} did not answer in time "
                                   f"(no connection within {self.connect_timeout:g} s)")
        if watchdog.timed_out(error):
            if watchdog.was_cut:
                return ShuttingDown("the relay is shutting down: this reply was cut off before it was complete")
            if started:
                return UpstreamTimeout(f"the upstream sent nothing for {self.read_timeout:g} s")
            return UpstreamTimeout(f"the upstream at {self.host} did not answer in time "
                                   f"(no reply within {self.first_byte_timeout:g} s)")
        if self.shown_proxy is not None and isinstance(error, PROXY_ERRORS):
            return self._proxy_failed(error)
        if isinstance(error, aiohttp.ClientConnectorError):
            cause = _os_error(error)
            reason = cause.strerror if cause is not None and cause.strerror else str(error)
            return UpstreamError(f"cannot connect to the upstream at {self.host}: {reason}")
        if isinstance(error, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
            if started:
                return StreamCut("the upstream stream was cut off before the reply was complete")
            return UpstreamError(f"the upstream at {self.host} closed the connection")
        if isinstance(error, aiohttp.ClientError):
            return UpstreamError(f"the request to the upstream at {self.host} failed: {type(error).__name__}")
        return error


    def _proxy_failed(self, error: BaseException) -> UpstreamError:
        """The proxy could not be reached, refused the relay, or could not reach the upstream:
        said with the proxy named (its password masked)."""
        if isinstance(error, aiohttp.ClientProxyConnectionError):
            cause = _os_error(error)
            reason = cause.strerror if cause is not None and cause.strerror else type(error).__name__
            because = f"cannot connect to the proxy: {reason}"
        elif isinstance(error, aiohttp.ClientHttpProxyError):
            because = f"the proxy answered {error.status} {error.message}".rstrip()
        else:
            because = redact(str(error)) or type(error).__name__
        message = f"the upstream at {self.host} cannot be reached through the proxy {self.shown_proxy}: {because}"
        return UpstreamTimeout(message) if isinstance(error, ProxyTimeoutError) else UpstreamError(message)


def socks_connector(url: str, options: dict[str, Any]) -> aiohttp.TCPConnector:
    """A connector through the SOCKS proxy at ``url``: ``socks5h://`` leaves names to the proxy to
    resolve, ``socks5://`` and ``socks4://`` resolve them here."""
    parts = URL(url)
    kind = ProxyType.SOCKS4 if parts.scheme == "socks4" else ProxyType.SOCKS5
    return ProxyConnector(proxy_type=kind, host=parts.host or "", port=parts.port or 1080, username=parts.user,
                          password=parts.password, rdns=parts.scheme == "socks5h", **options)


def _os_error(error: aiohttp.ClientConnectorError) -> OSError | None:
    """Why connecting failed; certificate errors are connector errors without an OSError inside."""
    cause = getattr(error, "_os_error", None)
    return cause if isinstance(cause, OSError) else None


def _out_of_descriptors(error: aiohttp.ClientConnectorError) -> bool:
    cause = _os_error(error)
    return cause is not None and cause.errno in OUT_OF_DESCRIPTORS


def proxy_for(url: str) -> str | None:
    """The proxy from HTTPS_PROXY / HTTP_PROXY / NO_PROXY for the upstream, looked up once at start
    (aiohttp's ``trust_env`` would read the environment again on every request)."""
    parts = URL(url)
    if parts.host is None or urllib.request.proxy_bypass(parts.host):
        return None
    return urllib.request.getproxies().get(parts.scheme)


class UpstreamResponse:
    """An upstream reply whose headers have arrived; its body is read with ``pump()`` or ``read()``."""

    __slots__ = ("_response", "_transport", "_watchdog", "headers", "reason", "status")

    def __init__(self, transport: Transport, response: aiohttp.ClientResponse, watchdog: UpstreamWatchdog) -> None:
        self._transport = transport
        self._response = response
        self._watchdog = watchdog
        status = self.status = response.status
        self.reason = response.reason
        if status >= 500 or status == 429 or status in KEY_REFUSED:
            transport.failures += 1
        self.headers: CIMultiDictProxy[str] = response.headers

    async def __aenter__(self) -> UpstreamResponse:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._watchdog.close()
        if self._watchdog.ticking:
            await self._watchdog.stop_ticking()
        self.close()

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
        self._watchdog.keep_alive(on_wait)

    async def read(self, limit: int = ERROR_BODY_LIMIT) -> bytes:
        """The whole body, up to ``limit`` bytes (for error bodies and small replies)."""
        watchdog = self._watchdog
        try:
            await watchdog.stop_ticking()
            watchdog.idle_wait()
            return await self._response.content.read(limit)
        except BaseException as error:
            self._transport.fail(error, watchdog, started=True)

    @property
    def refuses_key(self) -> bool:
        """Whether the upstream refused the relay's own key (its 401 or 403)."""
        return self.status in KEY_REFUSED

    async def error(self) -> UpstreamStatus:
        """This error reply as an ``UpstreamStatus`` carrying the upstream's own message, or, when
        it refused the relay's key, an ``UpstreamKeyRefused`` that carries none of it."""
        body = await self.read()
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None
        message = error_message(parsed)
        if message is None:
            text = body.decode("utf-8", "replace").strip()
            message = " ".join(text.split())[:300] or (self.reason or "no message")
        if self.refuses_key:
            log.warning("the upstream at %s refused the relay's key (%d): %s", self._transport.host, self.status,
                        redact(message))
            return UpstreamKeyRefused(self.status, error_code(parsed))
        return UpstreamStatus(self.status, f"upstream error {self.status}: {redact(message)}", body,
                              self.headers.get("Content-Type", "application/json"))

    async def pump(self, sink: Callable[[bytes], Awaitable[object] | None]) -> None:
        """Hand the body to ``sink`` as it arrives, one network read at a time; await what it
        returns (a write), if anything.

        The loop is the byte pipe's own (read, then write): no generator or
        wrapper per read, since every token passes through here.
        """
        watchdog = self._watchdog
        content = self._response.content
        read = content.readany
        clock = asyncio.get_running_loop().time
        started = False
        try:
            watchdog.first_byte_wait()
            chunk = await _read(content)
            if watchdog.ticking:
                await watchdog.stop_ticking()
            started = True
            watchdog.idle_wait()
            while chunk:
                watchdog.since = 0.0
                writing = sink(chunk)
                if writing is not None:
                    await writing
                watchdog.since = clock()
                try:
                    chunk = await read()
                except aiohttp.ClientPayloadError:
                    chunk = _unread(content)
        except (TimeoutError, aiohttp.ClientError, asyncio.CancelledError) as error:
            self._transport.fail(error, watchdog, started)
        watchdog.since = 0.0


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
