"""What the metrics read from the relay's own counters instead of being told per event.

Open streams (the relayed requests whose usage is not yet committed), open
client connections, the usage writer's queue, records and spool, and each
upstream's failures and rests are counted where they happen, as plain
integers; a ``Gauges`` copies them into the metrics (counters by the
difference since its last look). It looks just before a scrape, and, with
several workers, every ``EVERY`` seconds in each, so that a scrape answered
by one worker sees the others' values at most that old.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from gptrelay.observe.metrics import Metrics
from gptrelay.upstream.pool import Pool
from gptrelay.upstream.transport import Transport
from gptrelay.usage.accounting import Accounting

EVERY = 1.0


class Gauges:
    def __init__(self, metrics: Metrics, accounting: Accounting, pool: Pool, connections: Callable[[], int]) -> None:
        self.metrics = metrics
        self.accounting = accounting
        self.pool = pool
        self.connections = connections
        self._failures: dict[Transport, int] = {}
        self._upstreams: set[str] = set()
        self._records = {"committed": 0, "spooled": 0, "lost": 0}
        self._handle: asyncio.TimerHandle | None = None

    def start(self, every: float = EVERY) -> None:
        """Look every ``every`` seconds (until ``close``)."""
        loop = asyncio.get_running_loop()

        def tick() -> None:
            self.sample()
            self._handle = loop.call_later(every, tick)

        self._handle = loop.call_later(every, tick)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.sample()

    def sample(self) -> None:
        metrics = self.metrics
        metrics.open_streams.set(self.accounting.running)
        metrics.open_connections.set(self.connections())
        writer = self.accounting.writer
        if writer is not None:
            metrics.usage_queue.set(writer.queue_length)
            records = self._records
            for result, now in (("committed", writer.committed), ("spooled", writer.spooled), ("lost", writer.lost)):
                if now > records[result]:
                    metrics.usage_records.labels(result).inc(now - records[result])
                records[result] = now
        self._upstreams_now()

    def _upstreams_now(self) -> None:
        metrics = self.metrics
        now = time.monotonic()
        failures: dict[Transport, int] = {}
        names = set()
        for member in self.pool.members:
            transport = member.transport
            count = failures[transport] = transport.failures
            seen = self._failures.get(transport, 0)
            if count > seen:
                metrics.upstream_failures.labels(member.name).inc(count - seen)
            names.add(member.name)
            metrics.upstream_resting.labels(member.name).set(1 if member.resting_until > now else 0)
            aside = sum(1 for key in member.keys if key.set_aside is not None)
            resting = sum(1 for key in member.keys if key.set_aside is None and key.resting_until > now)
            metrics.upstream_keys_unavailable.labels(member.name, "set_aside").set(aside)
            metrics.upstream_keys_unavailable.labels(member.name, "resting").set(resting)
        for gone in self._upstreams - names:  # the upstreams' file was read again without it
            metrics.upstream_resting.labels(gone).set(0)
            metrics.upstream_keys_unavailable.labels(gone, "set_aside").set(0)
            metrics.upstream_keys_unavailable.labels(gone, "resting").set(0)
        self._upstreams = names
        self._failures = failures
