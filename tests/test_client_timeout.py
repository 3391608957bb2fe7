"""CLIENT_IDLE_TIMEOUT: a client connection with no request in progress is closed; a slow reply is not."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from gptrelay.fake import replies
from tests.conftest import RunningRelay
from tests.helpers import chat, user

Relay = Callable[..., RunningRelay]


def connect(relay: RunningRelay) -> socket.socket:
    host, port = relay.url.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)))
    s.settimeout(10)
    return s


def seconds_until_closed(s: socket.socket) -> float:
    """Read and drop whatever comes until the relay closes the connection; how long that took."""
    started = time.monotonic()
    while s.recv(65536):
        pass
    return time.monotonic() - started


def test_a_connection_that_never_finishes_its_headers_is_closed(relay: Relay) -> None:
    with connect(relay(client_idle_timeout=0.5)) as s:
        s.sendall(b"POST /chat HTTP/1.1\r\nHost: relay\r\n")  # and nothing more
        assert seconds_until_closed(s) < 5


def test_a_connection_that_sends_nothing_is_closed(relay: Relay) -> None:
    with connect(relay(client_idle_timeout=0.5)) as s:
        assert seconds_until_closed(s) < 5


def test_an_idle_kept_alive_connection_is_closed(relay: Relay) -> None:
    with connect(relay(client_idle_timeout=0.5)) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        assert seconds_until_closed(s) < 5


def test_a_reply_slower_than_the_timeout_is_not_cut(relay: Relay) -> None:
    r = relay(client_idle_timeout=0.3)
    ask = user("/scenario slow-first seconds=1")
    reply = chat(r.url, ask, headers={"Authorization": f"Bearer {r.key}"})
    assert reply.status == 200 and reply.last["done"]
    assert reply.text == replies.text_for("demo", ask)
