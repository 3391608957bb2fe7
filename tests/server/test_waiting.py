"""SIGUSR1: a relay tells in its log where its tasks wait (for one that seems stuck), in one process
or in every worker, and goes on serving: the streams under way end whole."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.conftest import ACCESS_KEY, RunningFake
from tests.server.conftest import AUTH, SLOW, Serve, eventually, exits, relay_env, streaming
from tests.server.test_drain import assert_whole


@pytest.mark.parametrize("workers", [1, 2])
def test_sigusr1_tells_where_the_streams_wait_and_changes_nothing(serve: Serve, fake_upstream: RunningFake,
                                                                    tmp_path: Path, workers: int) -> None:
    relay = serve(relay_env(fake_upstream, f"sqlite:///{tmp_path}/relay.db"), "--workers", str(workers))
    replies = streaming(relay, fake_upstream, SLOW, ("/v1/chat/completions",) * 3 * workers)
    relay.process.send_signal(signal.SIGUSR1)
    assert eventually(lambda: relay.stderr.count("SIGUSR1: ") == workers), relay.stderr
    told = relay.stderr[relay.stderr.index("SIGUSR1: "):]
    assert "task(s), by where they wait" in told
    assert "gateway.py:" in told and "transport.py:" in told  # the streams, waiting on the upstream's next read
    assert ACCESS_KEY not in relay.stderr and AUTH["Authorization"] not in relay.stderr
    for reply in replies:
        assert_whole(reply.wait())
    relay.process.send_signal(signal.SIGTERM)
    assert exits(relay, 30) == 0
