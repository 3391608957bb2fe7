"""Running out of file descriptors: streams wait for one instead of failing."""

from __future__ import annotations

import http.client
import math
import os
import subprocess
import sys
import threading
import time
from typing import Any

import orjson
import psutil
import pytest

from gptrelay.fake.app import Record
from tests.conftest import UPSTREAM_KEY, RunningFake
from tests.helpers import free_port, wait_until_serving

STREAMS = 12
PIECES = 10
# UPSTREAM_CONNECT_TIMEOUT, how long a stream may wait for a descriptor: the waiting ones need about
# one stream's length (PIECES x 50 ms), so a slow machine never runs out of it.
WAIT = 60


def settled_descriptors(relay: psutil.Process, port: int) -> int:
    """The relay's open descriptors once its sockets are its listening ones and the STREAMS client
    connections, all accepted (and the health check's connection gone), so the count stays put."""
    deadline = time.monotonic() + 30
    sockets: list[Any] = []
    while time.monotonic() < deadline:
        count = relay.num_fds()
        sockets = relay.net_connections(kind="tcp")
        clients = [s for s in sockets if s.status == psutil.CONN_ESTABLISHED and s.laddr.port == port]
        others = [s for s in sockets if s.status != psutil.CONN_LISTEN and s not in clients]
        if len(clients) == STREAMS and not others and relay.num_fds() == count:
            return count
        time.sleep(0.05)
    raise AssertionError(f"the relay did not settle with {STREAMS} client connections: {sockets}")


def most_at_once(records: list[Record]) -> int:
    """The most requests the upstream was answering at one time."""
    return max(sum(1 for other in records if other.started <= record.started < (other.finished or math.inf))
               for record in records)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sets another process's RLIMIT_NOFILE (Linux)")
def test_streams_wait_for_a_free_descriptor(fake_upstream: RunningFake, tmp_path: object) -> None:
    port = free_port()
    env = {**os.environ, "OPENAI_API_KEY": UPSTREAM_KEY, "OPENAI_BASE_URL": fake_upstream.url,
           "AUTHORIZATION_KEY": "fd-key", "UPSTREAM_CONNECT_TIMEOUT": str(WAIT)}
    process = subprocess.Popen([sys.executable, "-m", "gptrelay", "serve", "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=str(tmp_path))
    try:
        wait_until_serving(f"http://127.0.0.1:{port}", process)
        relay = psutil.Process(process.pid)
        # Every client connects first, while descriptors are plenty...
        connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT + 30) for _ in range(STREAMS)]
        for connection in connections:
            connection.connect()
        # ...then, once the relay has accepted them all, only half of them can have an upstream
        # connection at a time.
        limit = settled_descriptors(relay, port) + STREAMS // 2
        relay.rlimit(psutil.RLIMIT_NOFILE, (limit, limit))

        body = orjson.dumps({"messages": [{"role": "user", "content":
                            f"/scenario bench chunks={PIECES} size=4 interval_ms=50"}]})
        replies: list[bytes | Exception] = [b""] * STREAMS
        start = threading.Barrier(STREAMS)

        def stream(n: int) -> None:
            try:
                start.wait()
                connections[n].request("POST", "/chat", body, {"Authorization": "Bearer fd-key",
                                                               "Content-Type": "application/json"})
                response = connections[n].getresponse()
                replies[n] = response.read() if response.status == 200 else RuntimeError(response.read())
            except Exception as error:  # reported below
                replies[n] = error

        threads = [threading.Thread(target=stream, args=(n,)) for n in range(STREAMS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT + 30)
        assert relay.rlimit(psutil.RLIMIT_NOFILE)[0] == limit
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=10)

    for reply in replies:
        assert isinstance(reply, bytes), reply
        frames = [orjson.loads(line) for line in reply.splitlines()]
        assert [f["content"] for f in frames if not f["done"]] == ["xxx "] * PIECES, frames
        assert frames[-1] == {"done": True, "error": False, "content": "[DONE]", "finish_reason": "stop"}
    assert b"Too many open files" not in errors
    records = [r for r in fake_upstream.fake.log if r.path == "/v1/chat/completions"]
    assert len(records) == STREAMS
    assert most_at_once(records) <= STREAMS // 2  # the others waited for a descriptor
