"""The soak's load: a weighted mix of request kinds sent by many concurrent clients, and what each saw.

Every kind says what a correct relay answers it (``Expect``) and whether it leaves a usage record;
``Tally`` counts what the clients saw, the answers that were not what the kind expects, the 5xx
by cause, and the usage records that the relay must have stored, per key and route.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from httpclient import Connection, PieceCounter, Result, request_bytes

PIECES = 20  # content pieces of a complete stream
V1 = "/v1/chat/completions"


class Expect(Enum):
    COMPLETE = "complete"  # 200 and the whole reply
    MAYBE_LIMITED = "complete, or 429 from the relay's limits"
    UPSTREAM_STATUS = "the upstream's error status"
    BROKEN_STREAM = "200, the stream ends with an error"
    WRONG_KEY = "401"
    MODEL_REFUSED = "403 model_not_allowed"
    GONE = "the client leaves mid-stream"


@dataclass(frozen=True)
class Kind:
    name: str
    weight: float
    path: str
    key: str  # a role: owner, open, rpm, tpm, models, wrong
    scenario: str = f"bench chunks={PIECES} size=8 interval_ms=0"
    stream: bool = True
    expect: Expect = Expect.COMPLETE
    status: int = 200  # the upstream's status, for UPSTREAM_STATUS
    model: str = "gpt-4o-mini"
    method: str = "POST"

    def body(self) -> bytes:
        body: dict[str, object] = {"model": self.model,
                                   "messages": [{"role": "user", "content": f"/scenario {self.scenario}"}]}
        if self.stream and self.path == V1:
            body["stream"] = True
        return json.dumps(body, separators=(",", ":")).encode()

    @property
    def recorded(self) -> bool:
        """Whether a request of this kind leaves a usage record: every one past the key check."""
        return self.key != "wrong"


PACED = f"bench chunks={PIECES} size=8 interval_ms=10"
LONG = "bench chunks=400 size=8 interval_ms=5"  # left by its client after a few pieces

MIX: tuple[Kind, ...] = (
    Kind("/v1 stream", 20, V1, "open"),
    Kind("/v1 stream, paced", 5, V1, "owner", PACED),
    Kind("/v1 non-stream", 12, V1, "open", stream=False),
    Kind("/chat stream", 12, "/chat", "open"),
    Kind("/chat stream, paced", 3, "/chat", "owner", PACED),
    Kind("/chatgpt stream", 8, "/chatgpt", "owner"),
    Kind("GET /v1/models", 2, "/v1/models", "open", "", stream=False, method="GET"),
    Kind("/v1 stream, client leaves", 3, V1, "open", LONG, expect=Expect.GONE),
    Kind("/chat stream, client leaves", 2, "/chat", "open", LONG, expect=Expect.GONE),
    Kind("/chatgpt stream, client leaves", 2, "/chatgpt", "owner", LONG, expect=Expect.GONE),
    Kind("/v1 stream, upstream 500", 2, V1, "open", "error status=500", expect=Expect.UPSTREAM_STATUS, status=500),
    Kind("/v1 non-stream, upstream 429", 1, V1, "owner", "error status=429", stream=False,
         expect=Expect.UPSTREAM_STATUS, status=429),
    Kind("/chat, upstream 503", 1, "/chat", "open", "error status=503", expect=Expect.UPSTREAM_STATUS, status=503),
    Kind("/chatgpt, upstream 500", 1, "/chatgpt", "owner", "error status=500", expect=Expect.UPSTREAM_STATUS,
         status=500),
    Kind("/v1 stream, upstream cuts", 2, V1, "open", "cut", expect=Expect.BROKEN_STREAM),
    Kind("/chat stream, upstream cuts", 1, "/chat", "open", "cut", expect=Expect.BROKEN_STREAM),
    Kind("/chatgpt, error event", 1, "/chatgpt", "owner", "error-in-stream", expect=Expect.BROKEN_STREAM),
    Kind("/v1 stream, error event", 1, V1, "open", "error-in-stream", expect=Expect.BROKEN_STREAM),
    Kind("/v1 stream, wrong key", 3, V1, "wrong", expect=Expect.WRONG_KEY),
    Kind("/chat, wrong key", 1, "/chat", "wrong", expect=Expect.WRONG_KEY),
    Kind("/v1 stream, RPM-limited key", 6, V1, "rpm", expect=Expect.MAYBE_LIMITED),
    Kind("/chat stream, TPM-limited key", 3, "/chat", "tpm", expect=Expect.MAYBE_LIMITED),
    Kind("/v1 non-stream, model not allowed", 2, V1, "models", stream=False, model="gpt-3.5-turbo",
         expect=Expect.MODEL_REFUSED),
    Kind("/v1 non-stream, model allowed", 1, V1, "models", stream=False),
)
WRONG_KEY_ADDRESSES = 500  # wrong keys come from this many addresses (X-Forwarded-For), none reaching the ban
GONE_AFTER = 3  # content pieces a leaving client reads first


@dataclass
class Seen:
    """What one request's client saw."""

    status: int = 0
    complete: bool = False  # the whole reply: every piece and the end marker (streams), a body (non-streams)
    body: bytes = b""  # the end of the body
    error: str = ""  # a transport error (not for a client that left on purpose)
    left: bool = False  # the client left mid-stream, as its kind says


@dataclass
class Tally:
    """What the clients saw."""

    sent: int = 0
    by_kind: Counter[tuple[str, int]] = field(default_factory=Counter)  # (kind, status) -> requests
    unexpected: Counter[str] = field(default_factory=Counter)  # kind: what -> requests
    examples: dict[str, str] = field(default_factory=dict)
    server_errors: Counter[str] = field(default_factory=Counter)  # "upstream 500", "relay 502" -> requests
    records: Counter[tuple[str | None, str]] = field(default_factory=Counter)  # (key name, route) -> expected
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)  # (route, status): records at least
    relay_refusals: int = 0  # 429s from the relay's limits
    left: int = 0

    def note(self, kind: Kind, key_name: str | None, seen: Seen) -> None:
        self.sent += 1
        self.by_kind[(kind.name, seen.status)] += 1
        if kind.recorded and not (seen.error and not seen.status):
            self.records[(key_name, kind.path)] += 1
            if kind.expect not in (Expect.GONE, Expect.BROKEN_STREAM) and seen.status:
                self.statuses[(kind.path, seen.status)] += 1
        if seen.status >= 500:
            caused = kind.expect is Expect.UPSTREAM_STATUS and seen.status == kind.status
            self.server_errors[f"{'upstream' if caused else 'relay'} {seen.status}"] += 1
        if seen.left:
            self.left += 1
        what = judge(kind, seen)
        if kind.expect is Expect.MAYBE_LIMITED and seen.status == 429 and not what:
            self.relay_refusals += 1
        if what:
            self.unexpected[f"{kind.name}: {what}"] += 1
            self.examples.setdefault(f"{kind.name}: {what}", seen.body[-300:].decode("utf-8", "replace"))

    @property
    def relay_5xx(self) -> int:
        return sum(n for cause, n in self.server_errors.items() if cause.startswith("relay"))

    @property
    def transport_errors(self) -> int:
        return sum(n for what, n in self.unexpected.items() if "transport error" in what)


def judge(kind: Kind, seen: Seen) -> str:
    """What is wrong with this answer for this kind ("" when nothing)."""
    if seen.error:
        return f"transport error {seen.error}" if not seen.status else f"status {seen.status}, then {seen.error}"
    expect, status, body = kind.expect, seen.status, seen.body
    if expect is Expect.COMPLETE or (expect is Expect.MAYBE_LIMITED and status != 429):
        return "" if status == 200 and seen.complete else f"status {status}, complete={seen.complete}"
    if expect is Expect.MAYBE_LIMITED:
        return "" if b"rate_limit_exceeded" in body or b"rate limit" in body else "a 429 that is not the relay's"
    if expect is Expect.UPSTREAM_STATUS:
        return "" if status == kind.status and b"error" in body else f"status {status}"
    if expect is Expect.BROKEN_STREAM:
        if status != 200:
            return f"status {status}"
        if kind.path == "/chat":
            return "" if b'"error":true' in body and b'"done":true' in body else "no error frame and done frame"
        return "" if b"error" in body else "no error event"
    if expect is Expect.WRONG_KEY:
        return "" if status == 401 else f"status {status}"
    if expect is Expect.MODEL_REFUSED:
        return "" if status == 403 and b"model_not_allowed" in body else f"status {status}"
    if expect is Expect.GONE:
        return "" if seen.left or status != 200 else "the stream ended before the client left"
    return ""


class Load:
    """``requests`` requests from ``clients`` concurrent clients against the relay at ``port``."""

    def __init__(self, port: int, keys: dict[str, str], key_names: dict[str, str | None], requests: int,
                 clients: int, seed: int = 1, on_done: Callable[[int], None] | None = None) -> None:
        self.port = port
        self.keys = keys  # role -> the key sent
        self.key_names = key_names  # role -> the name its usage records carry (None: the owner's key)
        self.requests = requests
        self.clients = clients
        self.rng = random.Random(seed)
        self.tally = Tally()
        self.on_done = on_done
        self.next = 0
        self.done = 0
        self._kinds = list(MIX)
        self._weights = [kind.weight for kind in MIX]
        self._bodies = {kind.name: kind.body() for kind in MIX}

    def raw(self, kind: Kind) -> bytes:
        headers = {"Authorization": f"Bearer {self.keys[kind.key]}"}
        if kind.method == "POST":
            headers["Content-Type"] = "application/json"
        if kind.key == "wrong":
            n = self.rng.randrange(WRONG_KEY_ADDRESSES)
            headers["X-Forwarded-For"] = f"10.77.{n // 256}.{n % 256}"
        body = self._bodies[kind.name] if kind.method == "POST" else b""
        return request_bytes(kind.method, kind.path, f"127.0.0.1:{self.port}", body, headers)

    async def run(self) -> float:
        """Send them all; the seconds it took."""
        began = time.perf_counter()
        await asyncio.gather(*(self._client(n) for n in range(self.clients)))
        return time.perf_counter() - began

    async def _client(self, n: int) -> None:
        conn = Connection("127.0.0.1", self.port)
        try:
            while self.next < self.requests:
                self.next += 1
                kind = self.rng.choices(self._kinds, self._weights)[0]
                seen = await self._one(conn, kind)
                self.tally.note(kind, self.key_names.get(kind.key), seen)
                self.done += 1
                if self.on_done is not None:
                    self.on_done(self.done)
                if self.rng.random() < 0.05:  # some clients open a new connection for the next request
                    conn.close()
        finally:
            conn.close()

    async def _one(self, conn: Connection, kind: Kind) -> Seen:
        raw = self.raw(kind)
        try:
            if kind.expect is Expect.GONE:
                return await asyncio.wait_for(self._leave(conn, raw), 60)
            result: Result = await asyncio.wait_for(conn.send(raw, count=True), 60)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            conn.close()
            return Seen(error=type(exc).__name__)
        complete = result.pieces == PIECES and result.done if kind.stream else result.body_bytes > 0
        return Seen(status=result.status, complete=complete, body=result.ending)

    async def _leave(self, conn: Connection, raw: bytes) -> Seen:
        """Send a long stream's request, read its head and a few pieces, and go (half with a reset)."""
        if conn.writer is None:
            await conn.connect()
        assert conn.reader is not None and conn.writer is not None
        reader, writer = conn.reader, conn.writer
        conn.reader = conn.writer = None  # this connection is not used again
        seen = Seen()
        try:
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            seen.status = int(head.split(b" ", 2)[1])
            counter = PieceCounter()
            while counter.pieces < GONE_AFTER and not counter.done:
                data = await reader.read(65536)
                if not data:
                    break
                counter.feed(data, 0.0)
            seen.left = counter.pieces >= GONE_AFTER and not counter.done
            seen.body = counter.recent
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            seen.error = type(exc).__name__
        finally:
            if self.rng.random() < 0.5:
                writer.transport.abort()  # a reset
            else:
                writer.close()
        return seen
