"""Small clients for the tests: read /chat frames and /chatgpt events over real HTTP."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson

T = TypeVar("T")


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


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def connect(url: str, timeout: float = 10) -> socket.socket:
    """A raw TCP connection to a relay, for requests no HTTP client would send."""
    s = socket.create_connection(address(url))
    s.settimeout(timeout)
    return s


@dataclass
class RawReply:
    status: int
    head: bytes  # status line and headers
    body: bytes
    closed: bool  # the connection closed while the body was read

    def header(self, name: str) -> str | None:
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name.lower().encode():
                return value.strip().decode("latin-1")
        return None


def read_reply(s: socket.socket) -> RawReply:
    """One HTTP/1.1 reply (Content-Length or chunked, or until close) from a raw connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = s.recv(65536)
        if not piece:
            raise AssertionError(f"the connection closed before a reply's headers: {data!r}")
        data += piece
    head, _, rest = data.partition(b"\r\n\r\n")
    reply = RawReply(int(head.split(b" ", 2)[1]), head, b"", False)
    length = reply.header("Content-Length")
    chunked = (reply.header("Transfer-Encoding") or "").lower() == "chunked"
    while True:
        if length is not None and len(rest) >= int(length):
            break
        if chunked and rest.endswith(b"0\r\n\r\n"):
            break
        piece = s.recv(65536)
        if not piece:
            reply.closed = True
            break
        rest += piece
    reply.body = _unchunk(rest) if chunked else rest
    return reply


def closes_soon(s: socket.socket, within: float = 2.0) -> bool:
    """Whether the other side closes the connection within ``within`` seconds (and sends nothing)."""
    s.settimeout(within)
    try:
        return s.recv(1) == b""
    except (TimeoutError, ConnectionResetError):
        return False
    finally:
        s.settimeout(10)


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2:]
    return out


def raw_exchange(url: str, request: bytes, timeout: float = 10) -> RawReply:
    """Send ``request`` as bytes on a new connection; the reply."""
    with connect(url, timeout) as s:
        s.sendall(request)
        return read_reply(s)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)`` in a thread of its own: the browser tests' Playwright (sync API) keeps
    an event loop running in the main thread, where ``asyncio.run`` refuses to start."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@dataclass
class RelayProcess:
    """``gptrelay serve`` in a process of its own, its standard error kept in a file."""

    process: subprocess.Popen[bytes]
    url: str
    stderr_path: Path

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> str:
        """Stop it (SIGTERM, then SIGKILL after 10 s); everything it wrote to standard error."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.stderr


def serve_process(env: dict[str, str], cwd: Path, within: float = 20, logs: Path | None = None,
                  args: tuple[str, ...] = ()) -> RelayProcess:
    """Start ``gptrelay serve`` (with ``args``) on a free loopback port with ``env`` in ``cwd``; wait until it
    answers. Its standard error goes to a file in ``logs`` (``cwd`` unless given)."""
    port = free_port()
    stderr_path = (logs or cwd) / f"relay-{port}.stderr"
    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "gptrelay", "serve", "--port", str(port), *args],
                                   env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=stderr)
    relay = RelayProcess(process, f"http://127.0.0.1:{port}", stderr_path)
    try:
        wait_until_serving(relay.url, process, within)
    except AssertionError as error:
        relay.stop()
        raise AssertionError(f"{error}; it said: {relay.stderr[-2000:]}") from None
    return relay


@contextlib.contextmanager
def tmpfs(size: str = "8m") -> Iterator[Path]:
    """A tmpfs of ``size`` on a fresh folder, unmounted afterwards; the test is skipped where mounting is not
    permitted (it needs root, or CAP_SYS_ADMIN). Root writes through file modes, so a file system mounted
    read-only (``remount(where, "ro")``) or full is how tests make storage fail."""
    import pytest

    where = Path(tempfile.mkdtemp(prefix="gptrelay-tmpfs-"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "gptrelay-test", str(where)],
                             capture_output=True, text=True, timeout=10)
    if mounted.returncode != 0:
        where.rmdir()
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["chattr", "-R", "-i", str(where)], capture_output=True, timeout=10)
        if subprocess.run(["umount", str(where)], capture_output=True, timeout=10).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=10)  # still open somewhere
        where.rmdir()


def remount(where: Path, options: str) -> None:
    """``mount -o remount,OPTIONS`` the tmpfs at ``where`` (``ro``, ``rw``, ``size=16m``)."""
    done = subprocess.run(["mount", "-o", f"remount,{options}", str(where)], capture_output=True, text=True,
                          timeout=10)
    assert done.returncode == 0, done.stderr


def eventually(check: Callable[[], T], within: float = 20, every: float = 0.02) -> T:
    """``check()``'s result once it is true, or its last one after ``within`` seconds (what a relay
    tells of a request, its metrics, records and log lines, comes just after the request ends)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    return check()


class Link:
    """A TCP link on loopback to ``port`` that can stop passing bytes, both ways, while its connections
    stay open: a network that has begun dropping packets (``freeze``), and recovers (``thaw``). Run it
    on a loop that keeps running (``LoopThread``): ``port = loop_thread.run(link.start())``."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.port = 0
        self._open: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._loop = asyncio.get_running_loop()
        self._open = asyncio.Event()
        self._open.set()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def freeze(self) -> None:
        assert self._loop is not None and self._open is not None
        self._loop.call_soon_threadsafe(self._open.clear)

    def thaw(self) -> None:
        assert self._loop is not None and self._open is not None
        self._loop.call_soon_threadsafe(self._open.set)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            far_reader, far_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, far_writer), self._pipe(far_reader, writer),
                             return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._open is not None
        try:
            while data := await reader.read(65536):
                await self._open.wait()  # frozen: what arrived waits here, and nothing answers
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()
