"""A lean upstream for the bench: the fake's ``/scenario bench`` bytes, served by a raw asyncio protocol.

``python -m gptrelay.fake`` spends ~1 ms of CPU per 50-chunk stream (aiohttp, one ``write``
per event), so on the bench's single upstream core it saturates before a relay does. This
server sends the very same event bytes (built by ``gptrelay.fake.chunks``; the usage chunk
when the request asks for it, as OpenAI does), still one socket write per event and paced
with ``interval_ms``, at a fraction of the cost. Only the bench
scenario, ``/v1/models`` and ``/healthz`` exist here.

    python bench/fastfake.py --port 9000
"""

from __future__ import annotations

import argparse
import asyncio
from functools import lru_cache

import orjson

from gptrelay.fake import chunks
from gptrelay.fake.app import SSE_HEADERS
from gptrelay.fake.scenarios import find_scenario, message_text

SSE_HEAD = ("HTTP/1.1 200 OK\r\n" + "".join(f"{k}: {v}\r\n" for k, v in SSE_HEADERS.items())
            + "Transfer-Encoding: chunked\r\n\r\n").encode()
END = b"0\r\n\r\n"


def json_response(status: int, body: object) -> bytes:
    data = orjson.dumps(body)
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}.get(status, "Error")
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=utf-8\r\n"
            f"x-request-id: req_fake\r\nContent-Length: {len(data)}\r\n\r\n").encode() + data


@lru_cache(maxsize=64)
def framed_events(model: str, count: int, size: int, usage: bool) -> tuple[bytes, ...]:
    return tuple(b"%x\r\n%s\r\n" % (len(e), e) for e in chunks.bench_events(model, count, size, usage))


class Upstream(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer:
            self.timer.cancel()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.next_request()

    def next_request(self) -> None:
        while not self.busy and self.transport is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4:end + 4 + length]
            self.buffer = self.buffer[end + 4 + length:]
            method, path, _ = head.split(" ", 2)
            self.handle(method, path.split("?", 1)[0], body)

    def handle(self, method: str, path: str, raw: bytes) -> None:
        assert self.transport is not None
        if path in ("/healthz", "/v1/models"):
            self.transport.write(json_response(200, {"status": "ok", "object": "list", "data": []}))
            return
        if not (method == "POST" and path == "/v1/chat/completions"):
            self.transport.write(json_response(404, chunks.error_body(404)))
            return
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.transport.write(json_response(400, chunks.error_body(400)))
            return
        scenario, _ = find_scenario(body, None)
        model = str(body.get("model") or "gpt-4o-mini")
        if not body.get("stream"):
            prompt = sum(len(message_text(m)) for m in body.get("messages") or [])
            self.transport.write(json_response(200, chunks.completion(model, "", "stop", prompt)))
            return
        options = body.get("stream_options")
        usage = isinstance(options, dict) and bool(options.get("include_usage"))  # as OpenAI: only when asked
        events = framed_events(model, scenario.integer("chunks", 50), scenario.integer("size", 8), usage)
        interval = scenario.number("interval_ms", 0) / 1000
        self.transport.write(SSE_HEAD)
        if not interval:
            for event in events:  # one write per event, as the fake does
                self.transport.write(event)
            self.transport.write(END)
            return
        self.busy = True
        self.paced(events, 0, interval)

    def paced(self, events: tuple[bytes, ...], index: int, interval: float) -> None:
        self.timer = None
        if self.transport is None:
            return
        self.transport.write(events[index])
        if index + 1 < len(events):
            loop = asyncio.get_running_loop()
            self.timer = loop.call_later(interval, self.paced, events, index + 1, interval)
            return
        self.transport.write(END)
        self.busy = False
        self.next_request()


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Upstream, host, port, backlog=4096, reuse_address=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    import uvloop

    uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
