"""Running out of file descriptors: streams wait for one instead of failing."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import threading
import time

import orjson
import psutil
import pytest

from tests.conftest import UPSTREAM_KEY, RunningFake
from tests.helpers import free_port, wait_until_serving

STREAMS = 12
PIECES = 10


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sets another process's RLIMIT_NOFILE (Linux)")
def test_streams_wait_for_a_free_descriptor(fake_upstream: RunningFake, tmp_path: object) -> None:
    port = free_port()
    env = {**os.environ, "OPENAI_API_KEY": UPSTREAM_KEY, "OPENAI_BASE_URL": fake_upstream.url,
           "AUTHORIZATION_KEY": "fd-key"}
    process = subprocess.Popen([sys.executable, "-m", "gptrelay", "serve", "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=str(tmp_path))
    try:
        wait_until_serving(f"http://127.0.0.1:{port}", process)
        relay = psutil.Process(process.pid)
        # Every client connects first, while descriptors are plenty...
        connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(STREAMS)]
        for connection in connections:
            connection.connect()
        deadline = time.monotonic() + 5
        while relay.num_fds() < STREAMS and time.monotonic() < deadline:
            time.sleep(0.05)
        # ...then only half of them can have an upstream connection at a time.
        limit = relay.num_fds() + STREAMS // 2
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
            thread.join(30)
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
