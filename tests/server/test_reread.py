"""SIGHUP reads the upstreams' file again, in one process or in every worker, and cuts none of the
replies streaming meanwhile."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest

from tests.conftest import ACCESS_KEY, UPSTREAM_KEY, RunningFake
from tests.helpers import user
from tests.server.conftest import AUTH, ROUTES, Serve, eventually, exits, streaming
from tests.server.test_drain import assert_whole

LONGER = "/scenario long cut=100 interval_ms=100"


def upstreams(name: str, fake: RunningFake) -> str:
    return f'[[upstreams]]\nname = "{name}"\nbase_url = "{fake.url}"\nkeys = ["env:FAKE_UPSTREAM_KEY"]\n'


@pytest.mark.parametrize("workers", [1, 2])
def test_sighup_rereads_the_upstreams_and_every_stream_goes_on(serve: Serve, fake_upstream: RunningFake,
                                                                tmp_path: Path, workers: int) -> None:
    config = tmp_path / "gptrelay.toml"
    config.write_text(upstreams("first", fake_upstream))
    env = {**os.environ, "AUTHORIZATION_KEY": ACCESS_KEY, "FAKE_UPSTREAM_KEY": UPSTREAM_KEY,
           "DATABASE_URL": f"sqlite:///{tmp_path}/relay.db"}
    relay = serve(env, "--workers", str(workers))
    # Replies of about ten seconds (100 pieces, 100 ms apart): still streaming once every process has read
    # the file again, however loaded the machine.
    replies = streaming(relay, fake_upstream, LONGER, ROUTES * workers)
    config.write_text(upstreams("second", fake_upstream))
    relay.process.send_signal(signal.SIGHUP)
    assert eventually(lambda: relay.stderr.count("upstreams read again") == workers), relay.stderr
    assert relay.stderr.count(f"SIGHUP: upstreams read again from {config}: second") == workers
    assert not any(reply.done.is_set() for reply in replies)  # read again while they stream
    answer = httpx.post(f"{relay.url}/chat", json=user("hello"), headers=AUTH, timeout=30)  # the new upstreams
    assert answer.status_code == 200 and b'"error":true' not in answer.content
    for reply in replies:
        assert_whole(reply.wait())
    assert all(r.disconnected is None for r in fake_upstream.fake.log)  # nothing was cut upstream either
    relay.process.send_signal(signal.SIGTERM)
    assert exits(relay, 30) == 0
    assert "Traceback" not in relay.stderr


def test_a_sighup_while_the_workers_start_is_read_once_they_have(fake_upstream: RunningFake, tmp_path: Path) -> None:
    """``systemctl reload`` just after a start: the workers are still importing, and SIGHUP's default
    action would end them (and the parent with them). They start with it ignored, and a worker that
    hears it while starting reads the file once it has started."""
    import subprocess
    import sys
    import time

    import psutil

    from tests.helpers import free_port

    config = tmp_path / "gptrelay.toml"
    config.write_text(upstreams("first", fake_upstream))
    env = {**os.environ, "AUTHORIZATION_KEY": ACCESS_KEY, "FAKE_UPSTREAM_KEY": UPSTREAM_KEY,
           "DATABASE_URL": f"sqlite:///{tmp_path}/relay.db"}
    port = free_port()
    stderr_path = tmp_path / "relay.stderr"
    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "gptrelay", "serve", "--port", str(port), "--workers", "2"],
                                   env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        parent = psutil.Process(process.pid)
        assert eventually(lambda: sum("spawn_main" in " ".join(child.cmdline()) for child in parent.children()) == 2,
                          every=0.001)
        config.write_text(upstreams("second", fake_upstream))
        process.send_signal(signal.SIGHUP)  # the workers are starting: nothing listens yet
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and stderr_path.read_text().count("upstreams read again") < 2:
            assert process.poll() is None, stderr_path.read_text()
            time.sleep(0.05)
        log = stderr_path.read_text()
        assert log.count(f"upstreams read again from {config}: second") == 2, log
        answer = httpx.post(f"http://127.0.0.1:{port}/chat", json=user("hello"), headers=AUTH, timeout=30)
        assert answer.status_code == 200 and b'"error":true' not in answer.content
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            for child in psutil.Process(process.pid).children(recursive=True):
                child.kill()
            process.kill()
            process.wait(5)
