"""Clients that stop reading their stream (SPEC, Hostile input: CLIENT_WRITE_TIMEOUT).

A client that takes nothing of its reply is disconnected after
``CLIENT_WRITE_TIMEOUT`` seconds and its upstream request closed; while it
stalls, the relay holds at most a bounded part of its stream in memory.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator

import httpx
import orjson
import pytest

from tests.conftest import RunningFake, RunningRelay
from tests.helpers import address, free_port, user

Relay = Callable[..., RunningRelay]
MiB = 1024 * 1024
# 40 MB of events, written as fast as the relay takes them.
FLOOD = "/scenario bench chunks=40000 size=1000 interval_ms=0"


def stalled(url: str, key: str, path: str = "/chat") -> socket.socket:
    """A client that sends a request for a long, fast reply and then reads nothing."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(address(url))
    if path.startswith("/v1"):
        body = orjson.dumps({"model": "m", "stream": True, **user(FLOOD)})
    else:
        body = orjson.dumps(user(FLOOD))
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
              f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    return s


def closed_by_peer(s: socket.socket, within: float) -> bool:
    """Drain what the relay had sent; whether the connection then ends within ``within`` seconds."""
    s.settimeout(0.2)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if not s.recv(1 << 20):
                return True
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True
    return False


@pytest.mark.parametrize("path", ["/chat", "/chatgpt", "/v1/chat/completions"])
def test_a_stalled_reader_is_disconnected(relay: Relay, fake_upstream: RunningFake, path: str) -> None:
    r = relay(client_write_timeout=1)
    with stalled(r.url, r.key, path) as s:
        time.sleep(3)  # well past the timeout, reading nothing
        assert closed_by_peer(s, within=5)
    upstream = fake_upstream.fake.last()
    assert upstream.disconnected is not None and upstream.finished is None  # the upstream was closed too


def test_a_slow_reader_is_not_disconnected(relay: Relay) -> None:
    """A client that reads, however slowly, keeps its stream."""
    r = relay(client_write_timeout=0.5)
    received = 0
    tail = b""
    with stalled(r.url, r.key) as s:
        s.settimeout(5)
        while not tail.endswith(b'"content":"[DONE]","finish_reason":"stop"}\n\r\n0\r\n\r\n'):
            time.sleep(0.002)
            piece = s.recv(16384)
            assert piece, "the relay closed the connection"
            received += len(piece)
            tail = (tail + piece)[-100:]
    assert received > 40_000 * 1000


STALLED = 30


@pytest.fixture
def fake_process() -> Iterator[str]:
    """The fake upstream in a process of its own, so that only the relay's memory is measured here."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "gptrelay.fake", "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(f"{url}/_fake/log")
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, "the fake upstream did not start"
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def test_stalled_readers_hold_a_bounded_amount(relay: Relay, fake_process: str) -> None:
    """Each stalled stream holds well under 1 MiB of the relay's memory, and the relay stops
    reading the upstream: what the upstream could write comes to a halt.

    Measured with tracemalloc (the Python objects alive in this process, where the relay runs;
    the fake upstream runs in its own), not RSS, which also counts what the allocator keeps
    after it was freed."""
    r = relay(client_write_timeout=600, openai_base_url=f"{fake_process}/v1")
    for _ in range(2):  # warm up: pools, code paths
        with stalled(r.url, r.key):
            time.sleep(0.2)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        clients = [stalled(r.url, r.key, path) for path in ("/chat", "/chatgpt", "/v1/chat/completions")
                   for _ in range(STALLED // 3)]
        try:
            sent = settled(fake_process, STALLED)
            grown = tracemalloc.take_snapshot().compare_to(before, "filename")
        finally:
            for client in clients:
                client.close()
    finally:
        tracemalloc.stop()
    held = sum(stat.size_diff for stat in grown)
    print(f"{held / STALLED / 1024:.0f} KiB held per stalled stream; the upstream wrote {max(sent):,} bytes at most")
    assert held / STALLED < MiB, (f"{held / STALLED / 1024:.0f} KiB per stalled stream: "
                                  + "; ".join(f"{stat.traceback[0].filename} {stat.size_diff >> 10} KiB"
                                              for stat in grown[:4]))
    # The kernel's socket buffers on both sides of the upstream connection take some
    # megabytes too (loopback autotuning), but no stream got near the end of its 40 MB.
    assert max(sent) < 30_000_000, sent


def settled(fake: str, count: int) -> list[int]:
    """What the upstream managed to write of each of the ``count`` streams, once that stopped growing."""
    deadline = time.monotonic() + 30
    last: list[int] = []
    while time.monotonic() < deadline:
        time.sleep(1)
        streams = [record for record in httpx.get(f"{fake}/_fake/log").json()
                   if record["path"] == "/v1/chat/completions"]
        sent = [record["sent"] for record in streams[-count:]]  # (after the warm-up's)
        if len(sent) == count and sent == last:
            return sent
        last = sent
    raise AssertionError(f"the upstream never stopped writing: {last}")
