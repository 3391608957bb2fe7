"""``UsageWriter``: records committed in batches, before the request that made them ends.

``await writer.record(rec)`` returns once ``rec`` is committed. One task writes:
whatever arrived while it committed goes in its next transaction, as one
INSERT of many rows, so a thousand requests ending together make a handful of
transactions. While other requests are still running (``more_coming``), a batch
waits ``GATHER`` seconds for their records, so that one transaction serves many
under load, and a lone request is committed at once. When the database fails,
the batch is retried with a short backoff for ``retry_for`` seconds (records arriving meanwhile join it); then it
is appended to ``usage-spool.jsonl`` in ``spool_dir``, fsynced, and one warning
is logged; until a batch commits again, each batch is tried once and spooled at
once (so only the first replies of an outage wait), with a warning at most every
``WARN_EVERY`` seconds, and one when the database answers again. ``start()``
imports a spool an earlier run left, then removes it; so does the first commit
that succeeds after this writer spooled, or, when no record comes to show that
the database answers again, a quiet try every ``SPOOL_RETRY`` seconds.
A spool that cannot be written (a full disk) is one error line: ``record()``
never hangs and never raises into the request.

A relay holding thousands of streams can run out of file descriptors, just
when their records are due. So the writer connects at ``start()`` and keeps
that connection through failures, and it holds one descriptor in reserve
(``/dev/null``), given up to open the spool when no other is to be had.

The spool is shared by the processes of one relay: appends and the import
hold ``flock`` on it, and an append that finds the file it opened removed
(imported meanwhile) opens it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from gptrelay.db.engine import describe
from gptrelay.errors import redact
from gptrelay.usage.records import UsageRecord
from gptrelay.usage.sinks import sink_for

log = logging.getLogger("gptrelay.usage")

SPOOL_NAME = "usage-spool.jsonl"
GATHER = 0.005
"""Seconds a batch waits for more records while other requests are still running: a commit then
serves several requests (a record alone would cost its request a transaction and two thread hops),
at the price of that much time before those responses end. 5 ms rather than 2: with LEASE_MAX at 512,
4-6% less CPU per streamed reply on PostgreSQL and Redis (interleaved wrk runs, 12 of 16 pairs)."""
GATHER_UP_TO = 64
WARN_EVERY = 30.0
"""Seconds between two warnings of one database outage (each batch is spooled at once meanwhile)."""
SPOOL_RETRY = 5.0
"""Seconds a spooled writer with nothing to write waits before it tries the database again (the
import of the spool), so spooled records reach the database without a new request to show it answers."""

Pending = tuple[UsageRecord, "asyncio.Future[None]"]


class UsageWriter:
    """Commits ``UsageRecord``s in batches; see the module's docstring.

    Counters for metrics: ``committed`` (records), ``batches`` (transactions),
    ``last_commit_seconds`` (the last transaction's duration), ``last_commit_at``
    (its end, ``time.time()``; 0 before the first), ``queue_length`` (records
    waiting or being written), ``spooled`` and ``lost`` (records written to the
    spool, and records neither committed nor spooled).
    """

    def __init__(self, engine: AsyncEngine, spool_dir: str | Path = ".", *, retry_for: float = 2.0,
                 gather: float = GATHER, spool_retry: float = SPOOL_RETRY) -> None:
        self.engine = engine
        self.gather = gather
        self.more_coming: Callable[[], bool] = lambda: False  # other requests still running (the app's)
        self.on_commit: Callable[[float], None] = lambda seconds: None  # each transaction's time (the metrics)
        self._sink = sink_for(engine)
        self.spool = Path(spool_dir) / SPOOL_NAME
        self.retry_for = retry_for
        self.spool_retry = spool_retry
        self.committed = 0
        self.batches = 0
        self.last_commit_seconds = 0.0
        self.last_commit_at = 0.0
        self._writing = 0
        self.spooled = 0
        self.lost = 0
        self._pending: list[Pending] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._spool_waiting = False  # this writer spooled; import once the database answers again
        self._spool_tried_at = float("-inf")
        self._spool_told = False  # why the spool stays was told (once until it is imported)
        self._reserve: int | None = None  # a descriptor held for the spool, for when none is left
        self._outage_told: float | None = None  # when the database's failure was last told; None: it works
        self._outage_spooled = 0

    @property
    def queue_length(self) -> int:
        return len(self._pending) + self._writing

    async def start(self) -> None:
        """Import a spool left by an earlier run (kept, with a warning, if the database fails: it is
        tried again as below), then start writing."""
        self._spool_waiting = True  # whether a spool is there or not: the import says
        await self._try_spool()
        try:
            await self._sink.open()
        except Exception as error:  # the batches try again
            log.warning("usage: the database does not answer yet (%s); records go to %s until it does",
                        _reason(self.engine, error), self.spool)
            self._outage_told = time.monotonic()
        if self._reserve is None:
            self._reserve = os.open(os.devnull, os.O_RDONLY)
        self._closing = False
        self._task = asyncio.create_task(self._run(), name="usage-writer")

    async def record(self, rec: UsageRecord) -> None:
        """Return once ``rec`` is committed (or, the database failing, spooled). Cancelling the caller
        does not withdraw the record."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._task is None or self._task.done():  # not started, or closed: write it alone
            await self._write([(rec, future)])
            return
        self._pending.append((rec, future))
        self._wake.set()
        await future  # cancelled with the caller, the record stays in its batch

    async def close(self) -> None:
        """Commit (or spool) everything pending, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await asyncio.shield(self._task)
            self._task = None
        await self._sink.close()
        if self._reserve is not None:
            os.close(self._reserve)
            self._reserve = None

    async def _run(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wake.clear()
                if not self._spool_waiting:
                    await self._wake.wait()
                    continue
                with contextlib.suppress(TimeoutError):  # a spool waits: try the database now and then
                    async with asyncio.timeout(self.spool_retry):
                        await self._wake.wait()
                if not self._pending and not self._closing:
                    await self._try_spool()  # (its insert has the retry time as its limit)
                continue
            if self.gather and len(self._pending) < GATHER_UP_TO and self.more_coming():
                await asyncio.sleep(self.gather)  # others end soon: one transaction for them too
            batch, self._pending = self._pending, []
            self._writing = len(batch)
            try:
                committed = await self._write(batch)
            except Exception as error:  # a bug must not leave requests waiting forever
                log.error("usage: %d record(s) lost: %s", len(batch), redact(" ".join(repr(error).split())))
                self.lost += len(batch)
                _resolve(batch)
                committed = False
            finally:
                self._writing = 0
            if committed and self._spool_waiting and time.monotonic() - self._spool_tried_at >= self.spool_retry:
                await self._try_spool()

    async def _write(self, batch: list[Pending]) -> bool:
        """Commit ``batch``, or spool it when the database keeps failing; whether it was committed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.retry_for if self._outage_told is None else 0)  # an outage: one try
        delay = 0.05
        while True:
            started = time.perf_counter()
            try:
                await self._insert([rec for rec, _ in batch], max(deadline - loop.time(), 0.25))
            except Exception as error:
                if loop.time() + delay >= deadline:
                    await self._spool(batch, error)
                    return False
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)
                batch.extend(self._pending)
                self._writing += len(self._pending)
                self._pending = []
                continue
            self.last_commit_seconds = time.perf_counter() - started
            self.on_commit(self.last_commit_seconds)
            self.last_commit_at = time.time()
            self.batches += 1
            self.committed += len(batch)
            _resolve(batch)
            self._recovered()
            return True

    def _recovered(self) -> None:
        """The database committed: an outage told is over."""
        if self._outage_told is not None:
            log.warning("usage: the database answers again; %d record(s) went to the spool meanwhile",
                        self._outage_spooled)
            self._outage_told, self._outage_spooled = None, 0

    async def _try_spool(self) -> None:
        """Import the spool this writer left (at most every ``spool_retry`` seconds: a spool the
        database refuses is not read again at every batch); why it stays is told once, unless an
        outage told already is why."""
        self._spool_tried_at = time.monotonic()
        imported = await self._import_spool(warn=not self._spool_told and self._outage_told is None)
        if imported >= 0:
            self._spool_waiting = self._spool_told = False
            self._recovered()
        else:
            self._spool_told = True

    async def _insert(self, records: list[UsageRecord], timeout: float) -> None:
        """Commit ``records`` within ``timeout`` seconds, or raise. The sink keeps the time limit: a
        cancellation from here is not safe with every driver (``gptrelay.usage.sinks``)."""
        await self._sink.insert(records, timeout)

    async def _spool(self, batch: list[Pending], error: BaseException) -> None:
        reason = _reason(self.engine, error)
        lines = b"".join(orjson.dumps(rec.as_json()) + b"\n" for rec, _ in batch)
        try:
            await self._append_somehow(lines)
        except OSError as failure:
            self.lost += len(batch)
            log.error("usage: %d record(s) lost: the database failed (%s) and the spool %s cannot be written: %s",
                      len(batch), reason, self.spool, failure)
        else:
            self.spooled += len(batch)
            self._outage_spooled += len(batch)
            if not self._spool_waiting:  # a new outage: the first commit after it imports at once
                self._spool_waiting, self._spool_tried_at = True, float("-inf")
            now = time.monotonic()
            if self._outage_told is None or now - self._outage_told >= WARN_EVERY:
                log.warning("usage: the database failed (%s); %d record(s) written to %s (and the next ones, "
                            "until it answers), imported then or at the next start", reason, len(batch), self.spool)
                self._outage_told = now
        if self._outage_told is None:
            self._outage_told = time.monotonic()  # an outage, told by the error line
        _resolve(batch)

    async def _append_somehow(self, lines: bytes) -> None:
        """Append ``lines`` to the spool; out of file descriptors, with the one kept in reserve."""
        try:
            await asyncio.to_thread(self._append, lines)
            return
        except OSError as failure:
            if failure.errno not in (errno.EMFILE, errno.ENFILE) or self._reserve is None:
                raise
        os.close(self._reserve)
        self._reserve = None
        try:
            await asyncio.to_thread(self._append, lines)
        finally:
            with contextlib.suppress(OSError):
                self._reserve = os.open(os.devnull, os.O_RDONLY)

    def _append(self, lines: bytes) -> None:
        while True:
            fd = os.open(self.spool, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    if os.stat(self.spool).st_ino != os.fstat(fd).st_ino:
                        continue  # imported and removed since we opened it
                except FileNotFoundError:
                    continue
                size = os.fstat(fd).st_size
                try:
                    view = memoryview(lines)
                    while view:
                        view = view[os.write(fd, view):]
                    os.fsync(fd)
                except OSError:
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, size)  # no half line for the import to trip on
                    raise
                return
            finally:
                os.close(fd)

    async def import_spool(self) -> int:
        """Commit the records of a spool file, then remove it; how many were imported (0 when it stays)."""
        return max(0, await self._import_spool(warn=True))

    async def _import_spool(self, warn: bool) -> int:
        """How many records of the spool were imported; -1 when it stays (the database failed), told
        in a warning when ``warn``."""
        try:
            fd = await asyncio.to_thread(_open_locked, self.spool)
        except FileNotFoundError:
            return 0
        except OSError as error:
            if warn:
                log.warning("usage: cannot read the spool %s: %s", self.spool, error)
            return -1
        try:
            records, bad = _parse(_read_all(fd))
            if records:
                await self._insert(records, self.retry_for)
            os.unlink(self.spool)
        except Exception as error:
            if warn:
                log.warning("usage: the spool %s stays until the database answers: %s", self.spool,
                            _reason(self.engine, error))
            return -1
        finally:
            os.close(fd)
        if bad:
            log.warning("usage: skipped %d unreadable line(s) of the spool %s", bad, self.spool)
        log.info("usage: imported %d record(s) from %s", len(records), self.spool)
        self.committed += len(records)
        return len(records)


def _resolve(batch: list[Pending]) -> None:
    for _, future in batch:
        if not future.done():
            future.set_result(None)


def _reason(engine: AsyncEngine, error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return f"database {engine.url}: no answer within the retry time"
    return redact(describe(str(engine.url), error).message)


def _open_locked(path: Path) -> int:
    while True:
        fd = os.open(path, os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise OSError(f"{path} is not a regular file")
                return fd
        except OSError:
            os.close(fd)
            raise
        os.close(fd)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(data: bytes) -> tuple[list[UsageRecord], int]:
    records, bad = [], 0
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            records.append(UsageRecord.from_json(orjson.loads(line)))
        except (ValueError, KeyError, TypeError):
            bad += 1
    return records, bad
