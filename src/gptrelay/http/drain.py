"""Shutting down without cutting replies: the ``Drain`` of one process (``SIGTERM``).

1. The listening socket closes at once: a load balancer in front sends new
   connections to another relay (a refused connection, never a hung one).
2. Every connection closes after its last response, never under a request.
   A response whose headers are still to go says ``Connection: close``. One
   under way told its client (a proxy, often) that the connection stays
   open, and the proxy may send its next request on it the moment it ends:
   that request, like one sent on a connection idle at the start, is served
   and says ``Connection: close``. A connection idle for ``IDLE_GRACE``
   seconds closes. Closing one as soon as it falls idle would reset a request
   the proxy sent just then, and nginx sends no POST that reached a relay
   elsewhere (a 502).
3. The responses in progress have up to ``DRAIN_TIMEOUT`` seconds to finish.
4. What is left is cut: an upstream reply still being read ends as if the
   upstream had cut it off (``ShuttingDown``: on ``/chat`` an error frame and
   the done frame, on an event stream OpenAI's error event and ``[DONE]``, on
   any other body an incomplete body), its usage record saying ``cut``.
   Whatever still runs ``CUT_GRACE`` seconds later (a response waiting on a
   client that reads nothing) is cancelled; the front door records it as
   ``cut`` as well.
5. ``runner.cleanup()`` closes the application: the usage writer commits what is
   pending (or spools it, the database being down).

``hurry()`` (a second Ctrl-C, ``SIGQUIT``) ends step 3 at once.

aiohttp's own shutdown (``AppRunner(shutdown_timeout=…)``) waits for every
connection and then cancels its handler: idle connections would stay open
until the end and a cut reply would end with nothing said. Its per-connection
state (``_request_in_progress``, ``_messages``, ``_current_request``, ``_request_handler``) is used here,
from aiohttp 3.11 to 3.14 the same.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from gptrelay.state import SWEEPER

CUT_GRACE = 2.0  # seconds a cut reply has to write its end and commit its record
IDLE_GRACE = 1.0  # seconds an idle connection stays open during the drain, for a request on its way
POLL = 0.05  # seconds between two looks at the connections

log = logging.getLogger("gptrelay")


class Drain:
    __slots__ = ("_hurry", "timeout")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._hurry = asyncio.Event()

    def hurry(self) -> None:
        """Cut the replies still in progress now, not at the end of the drain time."""
        self._hurry.set()

    async def run(self, runner: web.AppRunner) -> None:
        """Drain, cut what is left, close the application; returns once all usage is committed."""
        loop = asyncio.get_running_loop()
        for site in list(runner.sites):
            await site.stop()
        await asyncio.sleep(0)  # requests that arrived with the last reads: their handlers start
        server = runner.server

        def open_connections() -> list[RequestHandler]:  # (a closed one leaves once its handler ends)
            return server.connections if server is not None else []

        in_progress = sum(map(_busy, open_connections()))
        requests_before = server.requests_count if server is not None else 0
        for connection in open_connections():
            _close_after_this(connection)
        log.info("drain: stopped listening; %d response(s) in progress, waiting up to %g s for them",
                 in_progress, self.timeout)
        deadline = loop.time() + self.timeout
        idle_since: dict[RequestHandler, float] = {}
        hurry = loop.create_task(self._hurry.wait())
        while (connections := open_connections()) and not hurry.done() and loop.time() < deadline:
            _close_idle(connections, idle_since, loop.time() - IDLE_GRACE)
            await asyncio.wait([hurry], timeout=POLL)
        hurry.cancel()
        _close_idle(open_connections(), idle_since, loop.time())  # hurried, or out of time: idle ones close now
        cut = sum(map(_busy, open_connections()))
        if cut:
            sweeper = runner.app.get(SWEEPER)
            if sweeper is not None:
                sweeper.cut()
            log.info("drain: %d response(s) still in progress: cut", cut)
            grace_over = loop.time() + CUT_GRACE
            while any(map(_busy, open_connections())) and loop.time() < grace_over:
                await asyncio.sleep(POLL)
        served = in_progress + (server.requests_count - requests_before if server is not None else 0)
        await runner.cleanup()  # what still runs is cancelled; then the usage writer commits
        log.info("drain: done, %d response(s) finished, %d cut", served - cut, cut)


def _busy(connection: RequestHandler) -> bool:
    return bool(connection._request_in_progress or connection._messages)


def _close_after_this(connection: RequestHandler) -> None:
    """Have the connection close after the response it is sending, if that can still say
    ``Connection: close``, or else after the next one. Closing it as soon as a kept-alive
    response ends would reset the request a proxy may send on it at that moment (nginx then
    answers a POST with a 502: it sends none that reached a relay to another)."""
    handler = connection._request_handler
    if handler is None:  # lost already, being torn down
        connection.force_close()
        return
    if connection._current_request is not None:
        _last_on_connection(connection._current_request)

    async def last(request: web.BaseRequest) -> web.StreamResponse:
        _last_on_connection(request)
        return await handler(request)

    connection._request_handler = last


def _last_on_connection(request: web.BaseRequest) -> None:
    """The response's headers (unless they went out) say ``Connection: close``, and aiohttp closes
    the connection once it is sent (aiohttp reads the request's wish when it prepares them)."""
    request._message = request._message._replace(should_close=True)


def _close_idle(connections: list[RequestHandler], idle_since: dict[RequestHandler, float], before: float) -> None:
    """Close the connections idle (between requests, or still sending one's head) since ``before``."""
    now = asyncio.get_running_loop().time()
    for connection in list(connections):
        if _busy(connection):
            idle_since.pop(connection, None)
        elif idle_since.setdefault(connection, now) <= before:
            connection.force_close()
