"""The time limits of every request, watched by one timer for the whole process.

Each request has a ``Watchdog``:

- the reply's first byte must come within ``first_byte`` seconds of sending;
- until it does, ``on_wait`` may run every ``interval`` seconds (the route's keep-alive);
- after it, no single wait for data may last ``idle`` seconds.

The reader only stamps ``since`` when it starts waiting and clears it when it
stops (to write to its client, whose slowness never counts). No request has a
timer of its own: a ``Sweeper`` looks at every open watchdog each ``resolution``
seconds, so a request costs a set insertion and removal, not a timer armed and
cancelled. A limit is therefore noticed up to ``resolution`` late, which is
why the upstream picks it as a small fraction of the shortest limit. On expiry
the watchdog cancels the reading task; ``timed_out`` then tells that
cancellation from any other. A request body being read has a ``Watchdog`` too
(its only limit: the gap between two reads).

When the relay shuts down and its drain time is over, ``Sweeper.cut`` ends
every upstream reply still being read (an ``UpstreamWatchdog``'s) the same
way: its watchdog cancels the reading task the next time it waits for the
upstream (never in the middle of a write to its client or of a usage commit),
and ``was_cut`` tells it from a timeout. Nothing of it costs a request anything.

A ``ClientWatch`` looks at the client's side of a response: a client that
takes nothing of it for ``limit`` seconds while the relay has data waiting
for it is disconnected (which cancels its handler, and so closes its upstream
request). It costs nothing per write: the sweeper compares what was written to the
connection with what still waits for the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import sys
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from aiohttp import web

if sys.platform == "linux":
    import fcntl
    import termios

    _OUTQ: int | None = termios.TIOCOUTQ  # (SIOCOUTQ on a socket)
else:  # pragma: no cover
    _OUTQ = None

OnWait = Callable[[], Coroutine[Any, Any, None]]

_SLACK = 0.001  # a timer may fire this much early

log = logging.getLogger("gptrelay")


class Watched(Protocol):
    def check(self, now: float) -> None: ...


class Sweeper:
    """One timer for all of a loop's watchdogs; it runs only while some are open."""

    __slots__ = ("_handle", "_watched", "cutting", "loop", "resolution")

    def __init__(self, resolution: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.resolution = resolution
        self._watched: set[Watched] = set()
        self._handle: asyncio.TimerHandle | None = None
        self.cutting = False  # the relay is shutting down and cuts what still runs

    @classmethod
    def for_limits(cls, *limits: float) -> Sweeper:
        """A sweeper that notices each limit within a quarter of the shortest one, and within a second."""
        return cls(resolution=min(max(min(limits) / 4, 0.005), 1.0))

    def watch(self, watchdog: Watched) -> None:
        self._watched.add(watchdog)
        if self._handle is None:
            self._handle = self.loop.call_later(self.resolution, self._sweep)

    def forget(self, watchdog: Watched) -> None:
        self._watched.discard(watchdog)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def cut(self) -> int:
        """Cut every upstream reply still being read (the relay is shutting down); how many."""
        self.cutting = True
        cut = 0
        for watchdog in tuple(self._watched):
            if isinstance(watchdog, UpstreamWatchdog):
                watchdog.cut()
                cut += 1
        return cut

    def _sweep(self) -> None:
        now = self.loop.time()
        for watchdog in tuple(self._watched):
            watchdog.check(now)
        self._handle = self.loop.call_later(self.resolution, self._sweep) if self._watched else None


class Watchdog:
    __slots__ = ("_idle", "_interval", "_next_tick", "_on_wait", "_sweeper", "_task", "_tick",
                 "expired", "limit", "sent_at", "since")

    def __init__(self, sweeper: Sweeper, first_byte: float, idle: float, on_wait: OnWait | None = None,
                 interval: float = 15.0) -> None:
        self._sweeper = sweeper
        self._task = asyncio.current_task()
        self._idle = idle
        self._interval = interval
        self._on_wait = on_wait
        self._tick: asyncio.Task[None] | None = None
        self.expired = False
        self.limit = first_byte  # the wait now measured may last this long
        self.since = self.sent_at = sweeper.loop.time()  # when the current wait began; 0 while not waiting
        self._next_tick = self.since + interval if on_wait is not None else float("inf")
        sweeper.watch(self)

    def keep_alive(self, on_wait: OnWait) -> None:
        """Call ``on_wait`` every ``interval`` seconds from now until ``stop_ticking``."""
        self._on_wait = on_wait
        self._next_tick = self._sweeper.loop.time() + self._interval

    def first_byte_wait(self) -> None:
        """The reader waits for the first byte again (the deadline still counts from sending)."""
        self.since = self.sent_at

    def idle_wait(self) -> None:
        """From now on each wait for data is limited to ``idle`` seconds; one starts now."""
        self.limit = self._idle
        self.since = self._sweeper.loop.time()

    @property
    def ticking(self) -> bool:
        return self._on_wait is not None

    async def stop_ticking(self) -> None:
        """No more keep-alives; the one being written, if any, is finished first, so that
        the caller's own writes never interleave with it."""
        self._on_wait = None
        tick, self._tick = self._tick, None
        if tick is not None and not tick.done():
            with contextlib.suppress(Exception):  # a failed keep-alive: the caller's own write sees it
                await tick

    def close(self) -> None:
        self._sweeper.forget(self)

    def timed_out(self, error: BaseException) -> bool:
        """Whether ``error`` is this watchdog's doing (call once, where the error is caught)."""
        return (isinstance(error, asyncio.CancelledError) and self.expired and self._task is not None
                and self._task.uncancel() == 0)

    def check(self, now: float) -> None:
        """The sweeper's look: expire, or send a keep-alive when one is due."""
        task = self._task
        if task is None or task.done():  # its request is over (and was not closed): nothing to watch
            self.close()
            return
        since = self.since
        if since and now - since >= self.limit - _SLACK:
            self.expired = True
            self.close()
            task.cancel()
            return
        if self._on_wait is not None and now >= self._next_tick - _SLACK:
            if self._tick is None or self._tick.done():  # the last one is written: send another
                self._tick = self._sweeper.loop.create_task(self._on_wait())
            self._next_tick = now + self._interval


class UpstreamWatchdog(Watchdog):
    """The watchdog of an upstream reply, which the relay cuts when it shuts down (``Sweeper.cut``)."""

    __slots__ = ()

    def cut(self) -> None:
        """End the wait for the upstream now, or when the next one begins (``check``)."""
        self.limit = self._idle = 0.0
        if self.since:
            self.check(self._sweeper.loop.time())

    @property
    def was_cut(self) -> bool:
        """Whether its expiry (``timed_out``) is ``cut``'s doing: the relay is cutting what runs."""
        return self._sweeper.cutting


class ClientWatch:
    """Disconnects a client that takes nothing of its response for ``limit`` seconds while the
    relay holds data for it.

    What the client has taken is what was written to its connection, less what
    still waits in the relay's buffer and in the kernel's send queue (acknowledged
    bytes only leave that queue). Looked at only while the relay's buffer holds
    something: otherwise the relay holds nothing of the client's.
    """

    __slots__ = ("_fd", "_limit", "_since", "_sweeper", "_taken", "_transport", "_writer")

    def __init__(self, sweeper: Sweeper, request: web.BaseRequest, limit: float) -> None:
        self._sweeper = sweeper
        transport = request.transport
        self._transport = transport if isinstance(transport, asyncio.WriteTransport) else None
        self._writer = request.writer
        self._limit = limit
        self._taken = 0  # bytes the client had taken at the last look
        self._since = 0.0  # since when it has taken nothing while data waited; 0: nothing waits
        if self._transport is not None:
            sock = self._transport.get_extra_info("socket")
            self._fd = sock.fileno() if sock is not None else -1
            sweeper.watch(self)

    def close(self) -> None:
        self._sweeper.forget(self)

    def check(self, now: float) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            self.close()
            return
        buffered = transport.get_write_buffer_size()
        if buffered == 0:
            self._since = 0.0
            return
        taken = self._writer.output_size - buffered - _unsent(self._fd)
        if not self._since or taken > self._taken:  # data waits anew, or the client took some
            self._since = now
            self._taken = taken
        elif now - self._since >= self._limit - _SLACK:
            self.close()
            peer = transport.get_extra_info("peername")
            log.info("client %s took nothing of its reply for %g s: disconnected", peer[0] if peer else "?",
                     self._limit)
            transport.abort()  # drops what waits for it; its handler is cancelled, its upstream closed


def _unsent(fd: int) -> int:
    """Bytes in a socket's kernel send queue, not yet acknowledged by the peer (0 where unknown)."""
    if _OUTQ is None or fd < 0:
        return 0
    try:
        return int(struct.unpack("i", fcntl.ioctl(fd, _OUTQ, b"\0\0\0\0"))[0])
    except OSError:
        return 0
