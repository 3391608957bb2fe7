"""Shutting down without cutting replies: the ``Drain`` of one process (``SIGTERM``).

1. The listening socket closes at once: a load balancer in front sends new
   connections to another relay (a refused connection, never a hung one).
2. A connection busy with a request closes once its response is sent. An idle
   one (between two requests, or still sending headers) gets ``IDLE_GRACE``
   seconds: a request on its way is served, and the connection closes after
   it; then what is still idle closes. Closing at once would reset a request
   that a proxy sent on its kept-alive connection just as the relay stopped,
   and nginx sends no POST that reached a relay elsewhere (a 502).
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
state (``_request_in_progress``, ``_messages``, ``_task_handler``, ``_request_handler``) is used here,
from aiohttp 3.11 to 3.14 the same.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from gptrelay.state import SWEEPER

CUT_GRACE = 2.0  # seconds a cut reply has to write its end and commit its record
IDLE_GRACE = 1.0  # seconds an idle connection stays open once the drain starts, for a request on its way

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
        busy = _closing(server)
        log.info("drain: stopped listening; %d response(s) in progress, waiting up to %g s for them",
                 len(busy), self.timeout)
        deadline = loop.time() + self.timeout
        grace_over = loop.time() + IDLE_GRACE
        idle_left = _has_idle(server)
        pending = set(busy)

        def close_idle() -> None:  # the requests that came on idle connections meanwhile are waited for too
            nonlocal idle_left
            late = _close_idle(server, busy)
            busy.extend(late)
            pending.update(late)
            idle_left = False

        hurry = loop.create_task(self._hurry.wait())
        while (pending or idle_left) and not hurry.done():
            now = loop.time()
            if idle_left and now >= grace_over:
                close_idle()
                continue
            left = deadline - now
            if left <= 0:
                break
            done, _ = await asyncio.wait(pending | {hurry}, timeout=min(left, grace_over - now) if idle_left else left,
                                         return_when=asyncio.FIRST_COMPLETED)
            pending -= done
        hurry.cancel()
        if idle_left:  # hurried, or out of time: what is idle closes now
            close_idle()
        pending = {task for task in pending if not task.done()}
        cut = len(pending)
        if cut:
            sweeper = runner.app.get(SWEEPER)
            if sweeper is not None:
                sweeper.cut()
            log.info("drain: %d response(s) still in progress: cut", cut)
            await asyncio.wait(pending, timeout=CUT_GRACE)
        await runner.cleanup()  # what still runs is cancelled; then the usage writer commits
        log.info("drain: done, %d response(s) finished, %d cut", len(busy) - cut, cut)


def _busy(connection: RequestHandler) -> bool:
    return bool(connection._request_in_progress or connection._messages)


def _closing(server: web.Server | None) -> list[asyncio.Task[None]]:
    """Have every connection close after its response: a busy one after the one in progress, an idle
    one after the next (its wait for it goes on: ``close()`` would end it, and it would ignore what
    comes); the tasks of those busy with a request."""
    busy: list[asyncio.Task[None]] = []
    for connection in server.connections if server is not None else ():
        task = connection._task_handler
        if task is not None and not task.done() and _busy(connection):
            connection.close()
            busy.append(task)
        else:
            _close_after_next(connection)
    return busy


def _close_after_next(connection: RequestHandler) -> None:
    handler = connection._request_handler
    if handler is None:  # lost already, being torn down
        connection.force_close()
        return

    async def last(request: web.BaseRequest) -> web.StreamResponse:
        response = await handler(request)
        response.force_close()  # the connection closes once it is sent (close() now would drop the body to come)
        return response

    connection._request_handler = last


def _has_idle(server: web.Server | None) -> bool:
    return server is not None and any(not _busy(connection) for connection in server.connections)


def _close_idle(server: web.Server | None, busy: list[asyncio.Task[None]]) -> list[asyncio.Task[None]]:
    """Close the connections still idle; the tasks of those that took a request during the grace
    (not in ``busy``)."""
    late: list[asyncio.Task[None]] = []
    for connection in list(server.connections) if server is not None else ():
        task = connection._task_handler
        if _busy(connection):
            if task is not None and not task.done() and task not in busy:
                late.append(task)
        else:
            connection.force_close()
    return late
