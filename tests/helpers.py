"""Small clients for the tests: read /chat frames and /chatgpt events over real HTTP."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson


def user(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


@dataclass
class ChatReply:
    status: int
    headers: httpx.Headers
    frames: list[dict[str, Any]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(f["content"] for f in self.frames if not f["done"] and not f["error"])

    @property
    def errors(self) -> list[str]:
        return [f["content"] for f in self.frames if f["error"]]

    @property
    def last(self) -> dict[str, Any]:
        return self.frames[-1]


def chat(url: str, body: Any, headers: dict[str, str] | None = None, timeout: float = 20) -> ChatReply:
    """POST /chat and collect every frame, checking each is one JSON object on its own line."""
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    with httpx.stream("POST", f"{url}/chat", content=content, headers=headers or {}, timeout=timeout) as r:
        raw = r.read()
        reply = ChatReply(r.status_code, r.headers)
    assert raw.endswith(b"\n"), raw[-100:]
    reply.frames = [orjson.loads(line) for line in raw.split(b"\n")[:-1]]
    return reply


def assert_well_formed(reply: ChatReply) -> None:
    """SPEC: exactly one done frame, and it is last."""
    dones = [f for f in reply.frames if f["done"]]
    assert len(dones) == 1 and reply.last is dones[0]
    assert reply.last["content"] == "[DONE]" and reply.last["error"] is False


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_serving(url: str, process: subprocess.Popen[Any], within: float = 10) -> None:
    """Wait until ``url``/healthz answers; fail at once if ``process`` dies first."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/healthz")
            return
        except httpx.TransportError:
            assert process.poll() is None, f"the server exited with {process.returncode}"
            time.sleep(0.05)
    raise AssertionError(f"nothing answered at {url} within {within} s")
