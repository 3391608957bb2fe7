"""A client that goes away: the relay closes its upstream request within one second."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

import orjson
import pytest

from tests.conftest import RunningFake, RunningRelay
from tests.helpers import user

Relay = Callable[..., RunningRelay]


def post_and_vanish(relay: RunningRelay, path: str, body: dict[str, object], read_first: bool) -> float:
    """Send a request over a raw socket, maybe read a little of the reply, then close. Returns when."""
    payload = orjson.dumps(body)
    host, port = relay.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as s:
        s.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\n"
                  b"Authorization: Bearer " + relay.key.encode() + b"\r\n"
                  b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)
        if read_first:
            s.settimeout(5)
            assert s.recv(65536)
        else:
            time.sleep(0.3)
    return time.monotonic()


def wait_for_disconnect(fake: RunningFake, path: str = "/v1/chat/completions", within: float = 1.0) -> float:
    deadline = time.monotonic() + within + 1
    while time.monotonic() < deadline:
        records = [r for r in fake.fake.log if r.path == path]
        if records and records[-1].disconnected is not None:
            return records[-1].disconnected
        time.sleep(0.01)
    raise AssertionError("the upstream never saw its connection close")


@pytest.mark.parametrize("path", ["/chat", "/chatgpt", "/v1/chat/completions"])
def test_mid_stream(relay: Relay, fake_upstream: RunningFake, path: str, caplog: pytest.LogCaptureFixture) -> None:
    body = {**user("/scenario long cut=1000 interval_ms=100"), "stream": True}
    closed = post_and_vanish(relay(), path, body, read_first=True)
    assert wait_for_disconnect(fake_upstream) - closed < 1.0
    time.sleep(0.3)  # past the next piece, which finds the client gone
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_write_to_a_vanished_client_ends_the_request_quietly() -> None:
    """aiohttp raises ConnectionResetError when a handler writes to a closing transport (a client
    gone between two writes); the front door turns it into a response aiohttp drops silently."""
    import asyncio
    import concurrent.futures

    from aiohttp import web
    from aiohttp.test_utils import make_mocked_request

    from gptrelay.auth.access import AccessKeys
    from gptrelay.door import Route, front_door
    from gptrelay.http.cors import Cors
    from gptrelay.limits.admission import Admission
    from gptrelay.usage.accounting import Accounting

    async def handler(request: web.Request) -> web.StreamResponse:
        raise ConnectionResetError("Cannot write to closing transport")

    async def go() -> web.StreamResponse:
        route = Route("/v1/{path:.*}", ("*",), handler, public=True)
        admission = Admission()
        guarded = front_door(route, Cors(("*",)), AccessKeys(()), admission, Accounting(admission), write_timeout=120)
        return await guarded(make_mocked_request("POST", "/v1/chat/completions"))

    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # Playwright may own this thread's loop
        response = pool.submit(asyncio.run, go()).result(10)
    assert response.status == 499


@pytest.mark.parametrize("path", ["/chat", "/chatgpt", "/v1/chat/completions"])
def test_fast_stream_to_a_vanished_client_logs_nothing(relay: Relay, fake_upstream: RunningFake, path: str,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """Pieces every 2 ms: the relay is mid-write when the client's socket goes."""
    r = relay()
    for _ in range(5):
        post_and_vanish(r, path, {**user("/scenario long cut=1000 interval_ms=2"), "stream": True},
                        read_first=True)
    time.sleep(0.5)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


@pytest.mark.parametrize("path", ["/chat", "/chatgpt"])
def test_while_the_upstream_thinks(relay: Relay, fake_upstream: RunningFake, path: str) -> None:
    closed = post_and_vanish(relay(), path, user("/scenario slow-first seconds=30"), read_first=False)
    assert wait_for_disconnect(fake_upstream) - closed < 1.0


def test_before_the_upstream_answers_headers(relay: Relay, fake_upstream: RunningFake) -> None:
    closed = post_and_vanish(relay(), "/chat", user("/scenario slow-headers seconds=30"), read_first=False)
    # The fake is still sleeping before its headers: it sees the cancellation as a disconnect too.
    records = []
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and not records:
        records = [r for r in fake_upstream.fake.log if r.path == "/v1/chat/completions"]
        time.sleep(0.01)
    assert records
    assert wait_for_disconnect(fake_upstream) - closed < 1.0


def test_a_vanished_client_is_not_blamed_on_the_upstream() -> None:
    """aiohttp's "Cannot write to closing transport" is a ClientError too: it is the client's
    connection, not the upstream's, and goes on as it is (the front door answers 499)."""
    from aiohttp.client_exceptions import ClientConnectionResetError

    from gptrelay.settings import Settings
    from gptrelay.upstream.transport import Transport

    settings = Settings(_env_file=None, openai_api_key="sk-test")  # type: ignore[call-arg]
    transport = Transport(settings, None, "http://127.0.0.1:9/v1")  # type: ignore[arg-type]  # (no timer needed)
    error = ClientConnectionResetError("Cannot write to closing transport")
    assert transport._translate(error, None, started=True) is error  # type: ignore[arg-type]
