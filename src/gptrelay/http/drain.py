"""Shutting down without cutting replies: the ``Drain`` of one process (``SIGTERM``).

1. The listening socket closes at once: a load balancer in front sends new
   connections to another relay (a refused connection, never a hung one).
2. Idle connections (between two requests, or still sending headers) close at
   once; a connection busy with a request closes once its response is sent.
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
state (``_request_in_progress``, ``_messages``, ``_task_handler``) is read here,
from aiohttp 3.11 to 3.14 the same.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from gptrelay.state import SWEEPER

CUT_GRACE = 2.0  # seconds a cut reply has to write its end and commit its record

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
        busy = self._close_connections(runner.server)
        log.info("drain: stopped listening; %d response(s) in progress, waiting up to %g s for them",
                 len(busy), self.timeout)
        deadline = loop.time() + self.timeout
        pending = set(busy)
        hurry = loop.create_task(self._hurry.wait())
        while pending and not hurry.done():
            left = deadline - loop.time()
            if left <= 0:
                break
            done, _ = await asyncio.wait(pending | {hurry}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            pending -= done
        hurry.cancel()
        cut = len(pending)
        if cut:
            sweeper = runner.app.get(SWEEPER)
            if sweeper is not None:
                sweeper.cut()
            log.info("drain: %d response(s) still in progress: cut", cut)
            await asyncio.wait(pending, timeout=CUT_GRACE)
        await runner.cleanup()  # what still runs is cancelled; then the usage writer commits
        log.info("drain: done, %d response(s) finished, %d cut", len(busy) - cut, cut)

    @staticmethod
    def _close_connections(server: web.Server | None) -> list[asyncio.Task[None]]:
        """Close the idle connections now, the others after their response; the latter's tasks."""
        busy: list[asyncio.Task[None]] = []
        if server is None:
            return busy
        for connection in server.connections:
            task = connection._task_handler
            if task is not None and not task.done() and (connection._request_in_progress or connection._messages):
                connection.close()
                busy.append(task)
            else:
                connection.force_close()
        return busy
