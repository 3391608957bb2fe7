"""A minimal HTTP/1.1 client on raw asyncio streams, for measuring without client overhead.

It sends one request on a kept-alive connection and decodes the response (chunked or
Content-Length) incrementally, noting when the first body byte arrived, when the body ended
and when each streamed piece of content arrived.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field

# A content piece in the bench scenario ("size=8"), the same bytes in SSE and NDJSON.
PIECE = b'"content":"xxxxxxx "'
DONE_MARKERS = (b"data: [DONE]", b'"done":true')


@dataclass
class Result:
    status: int = 0
    ttfb: float = 0.0  # seconds from sending the request to the first body byte
    total: float = 0.0  # seconds from sending the request to the end of the body
    pieces: int = 0  # content pieces seen
    done: bool = False  # a [DONE] / done frame seen
    max_gap: float = 0.0  # the largest pause between two content pieces
    body_bytes: int = 0
    error: str = ""
    ending: bytes = b""  # the body's last bytes (streams only)
    keep_alive: bool = True
    arrivals: list[float] = field(default_factory=list)


def request_bytes(method: str, path: str, host: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class PieceCounter:
    """Counts content pieces and the done marker across arbitrary splits of the body."""

    __slots__ = ("done", "last", "max_gap", "pieces", "recent", "tail")

    def __init__(self) -> None:
        self.recent = b""  # the body's last bytes, to show what an incomplete stream ended with
        self.tail = b""
        self.pieces = 0
        self.done = False
        self.last = 0.0
        self.max_gap = 0.0

    def feed(self, data: bytes, now: float) -> None:
        window = self.tail + data
        self.recent = (self.recent + data)[-400:]
        found = window.count(PIECE)
        done = not self.done and any(m in window for m in DONE_MARKERS)
        if found:
            if self.last:
                self.max_gap = max(self.max_gap, now - self.last)
            self.last = now
            self.pieces += found
        self.done = self.done or done
        # A match needs len(PIECE) bytes, so a kept tail shorter than that is never recounted.
        self.tail = window[-(len(PIECE) - 1):]


async def read_response(reader: asyncio.StreamReader, sent: float, count: bool) -> Result:
    """Read one response; ``sent`` is the perf_counter() when the request went out."""
    result = Result()
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    result.status = int(status_line.split(" ", 2)[1])
    headers = {}
    for line in header_lines:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    result.keep_alive = headers.get("connection", "").lower() != "close"
    counter = PieceCounter() if count else None
    first = True

    def got(data: bytes) -> None:
        nonlocal first
        now = time.perf_counter()
        if first and data:
            result.ttfb = now - sent
            first = False
        result.body_bytes += len(data)
        if counter is not None:
            counter.feed(data, now)

    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # the (empty) trailer
                break
            remaining = size
            while remaining:
                data = await reader.read(remaining)
                if not data:
                    raise ConnectionError("connection closed mid-chunk")
                remaining -= len(data)
                got(data)
            await reader.readexactly(2)
    elif "content-length" in headers:
        remaining = int(headers["content-length"])
        while remaining:
            data = await reader.read(min(remaining, 65536))
            if not data:
                raise ConnectionError("connection closed mid-body")
            remaining -= len(data)
            got(data)
    else:
        result.keep_alive = False
        while data := await reader.read(65536):
            got(data)
    result.total = time.perf_counter() - sent
    if counter is not None:
        result.pieces, result.done, result.max_gap = counter.pieces, counter.done, counter.max_gap
        result.ending = counter.recent
    return result


class Connection:
    """One kept-alive connection that reconnects when the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)

    async def send(self, raw: bytes, count: bool = False) -> Result:
        if self.writer is None:
            await self.connect()
        assert self.reader is not None and self.writer is not None
        sent = time.perf_counter()
        self.writer.write(raw)
        result = await read_response(self.reader, sent, count)
        if not result.keep_alive:
            self.close()
        return result

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), nearest-rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]
