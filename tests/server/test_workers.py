"""``--workers N``: SIGTERM to the parent drains every worker; the parent exits 0 once all have, and
not 0 when a worker died on its own."""

from __future__ import annotations

import signal
from pathlib import Path

import psutil

from tests.conftest import RunningFake
from tests.helpers import RelayProcess
from tests.server.conftest import (
    ROUTES,
    SLOW,
    Serve,
    eventually,
    exits,
    refused,
    relay_env,
    streaming,
    usage_records,
)
from tests.server.test_drain import assert_whole


def workers_of(relay: RelayProcess, count: int) -> list[psutil.Process]:
    """The relay's worker processes (not multiprocessing's resource tracker)."""
    parent = psutil.Process(relay.process.pid)

    def workers() -> list[psutil.Process]:
        return [child for child in parent.children() if "spawn_main" in " ".join(child.cmdline())]

    def listening(worker: psutil.Process) -> bool:
        return any(c.status == psutil.CONN_LISTEN for c in worker.net_connections(kind="tcp"))

    assert eventually(lambda: len(workers()) == count and all(listening(worker) for worker in workers()))
    return workers()


def serving_connections(worker: psutil.Process, port: int) -> int:
    return sum(1 for c in worker.net_connections(kind="tcp")
               if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port)


def test_sigterm_drains_every_worker(serve: Serve, fake_upstream: RunningFake, database_url: str) -> None:
    relay = serve(relay_env(fake_upstream, database_url, DRAIN_TIMEOUT="120"), "--workers", "2")
    workers = workers_of(relay, 2)
    port = int(relay.url.rsplit(":", 1)[1])
    # The kernel spreads connections over the workers (SO_REUSEPORT) by a hash of their addresses, so
    # both have replies to finish; with 8 connections all 8 went to one worker once (1 run in 128), with 16
    # that is 1 in 32,768.
    replies = streaming(relay, fake_upstream, SLOW, (ROUTES * 6)[:16])
    assert all(serving_connections(worker, port) for worker in workers), "one worker took every stream"
    relay.process.send_signal(signal.SIGTERM)
    assert eventually(lambda: refused(relay.url))
    for reply in replies:
        assert_whole(reply.wait())
    assert exits(relay, 30) == 0
    assert len(usage_records(database_url)) == len(replies)
    assert relay.stderr.count("drain: done") == 2
    assert relay.stderr.count("0 cut") == 2


def test_a_worker_that_dies_stops_the_rest_and_the_exit_status_says_so(
        serve: Serve, fake_upstream: RunningFake, tmp_path: Path) -> None:
    relay = serve(relay_env(fake_upstream, f"sqlite:///{tmp_path}/relay.db"), "--workers", "2")
    first, second = workers_of(relay, 2)
    first.kill()
    assert exits(relay, 30) != 0
    assert not second.is_running() or second.status() == psutil.STATUS_ZOMBIE
    assert "stopped unexpectedly" in relay.stderr
    assert "drain: done" in relay.stderr  # the other one drained
