"""Real ``gptrelay serve`` processes in front of the fake upstream, and streams held open across signals."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gptrelay.db.engine import create_engine
from gptrelay.usage.queries import usage_rows
from tests.conftest import ACCESS_KEY, UPSTREAM_KEY, RunningFake
from tests.helpers import RelayProcess, eventually, run_async, serve_process, user

AUTH = {"Authorization": f"Bearer {ACCESS_KEY}"}
# A reply of 40 pieces, 100 ms apart: about four seconds, long enough to signal the relay mid-reply.
SLOW = "/scenario long cut=40 interval_ms=100"
# Three pieces, then silence: a reply that only a cut ends.
STALLED = "/scenario stall cut=3"
ROUTES = ("/chat", "/chatgpt", "/v1/chat/completions")
Serve = Callable[..., RelayProcess]  # the ``serve`` fixture: a relay process started with these env and args


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path}/relay.db"


def relay_env(fake: RunningFake, database_url: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "OPENAI_API_KEY": UPSTREAM_KEY, "OPENAI_BASE_URL": fake.url, "AUTHORIZATION_KEY": ACCESS_KEY,
            "DATABASE_URL": database_url, **extra}


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., RelayProcess]]:
    """A factory: ``serve(env, *args)`` starts ``gptrelay serve``; every one is stopped (SIGKILL) at the end."""
    started: list[RelayProcess] = []

    def make(env: dict[str, str], *args: str) -> RelayProcess:
        relay = serve_process(env, tmp_path, args=args)
        started.append(relay)
        return relay

    yield make
    for relay in started:
        if relay.process.poll() is None:
            for child in _children(relay.process.pid):
                os.kill(child, signal.SIGKILL)
            relay.process.kill()
            relay.process.wait(5)


def _children(pid: int) -> list[int]:
    import psutil

    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


@dataclass
class Reply:
    """One streamed reply, read in a thread of its own: its status, its body, and whether it ended
    properly (the body's framing complete) or how it broke off."""

    route: str
    status: int = 0
    body: bytes = b""
    broke: str | None = None
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def frames(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.body.splitlines()]

    @property
    def events(self) -> list[bytes]:
        return [event for event in self.body.split(b"\n\n") if event.startswith(b"data: ")]

    @property
    def text(self) -> str:
        if self.route == "/chat":
            return "".join(f["content"] for f in self.frames if not f["done"] and not f["error"])
        pieces = []
        for event in self.events:
            if event != b"data: [DONE]":
                choices = orjson.loads(event[6:]).get("choices") or [{}]
                pieces.append(choices[0].get("delta", {}).get("content") or "")
        return "".join(pieces)

    def wait(self, within: float = 60) -> Reply:
        assert self.done.wait(within), f"{self.route}: the reply did not end within {within} s"
        return self


def stream(url: str, route: str, scenario: str) -> Reply:
    """Start a streamed request to ``route`` in a thread; the ``Reply`` fills in as it ends."""
    reply = Reply(route)
    body = {**user(scenario), "stream": True}

    def go() -> None:
        try:
            with httpx.stream("POST", f"{url}{route}", json=body, headers=AUTH, timeout=120) as response:
                reply.status = response.status_code
                for chunk in response.iter_raw():
                    reply.body += chunk
        except httpx.HTTPError as error:
            reply.broke = type(error).__name__
        finally:
            reply.done.set()

    threading.Thread(target=go, daemon=True).start()
    return reply


def streaming(relay: RelayProcess, fake: RunningFake, scenario: str, routes: tuple[str, ...] = ROUTES) -> list[Reply]:
    """A stream to each of ``routes`` (in turn) through ``relay``, once every one is under way upstream."""
    replies = [stream(relay.url, route, scenario) for route in routes]
    upstream_streaming(fake, len(replies))
    return replies


def upstream_streaming(fake: RunningFake, count: int, within: float = 30) -> None:
    """Wait until the fake upstream is sending ``count`` replies (some bytes sent, not finished)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        live = [r for r in list(fake.fake.log) if r.sent and r.finished is None and r.disconnected is None]
        if len(live) >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"the upstream is not streaming {count} replies: {fake.fake.log}")


def usage_records(database_url: str) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        engine = create_engine(database_url)
        try:
            return await usage_rows(engine, by="request")
        finally:
            await engine.dispose()

    return run_async(go())


def exits(relay: RelayProcess, within: float) -> int:
    """The relay's exit status, once it has exited (it must within ``within`` seconds)."""
    try:
        return relay.process.wait(within)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the relay did not exit within {within} s; it said: {relay.stderr[-3000:]}") from None


def refused(url: str) -> bool:
    """Whether a new connection to ``url`` is refused (nothing listens). A connection reset is
    not an answer yet: it is one the kernel had queued for the listening socket as it closed,
    and the next one tells."""
    import socket

    host, port = url.removeprefix("http://").split(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:
        return False
    return False


__all__ = ["AUTH", "ROUTES", "SLOW", "STALLED", "Reply", "Serve", "eventually", "exits", "refused", "relay_env",
           "stream", "streaming", "upstream_streaming", "usage_records"]
