"""Hostile request bodies (SPEC, Hostile input): compressed, unfinished, oversized, expected.

Each test sends what an attacker would, over a real socket, and checks the
relay's answer and that everyone else is still served.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterator

import httpx
import orjson
import pytest

from tests.conftest import RunningFake, RunningRelay
from tests.helpers import closes_soon, connect, raw_exchange, read_reply, user

Relay = Callable[..., RunningRelay]
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """About 1 MB of gzip that inflates to 1 GiB."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"a" * MiB
    return b"".join([*(packer.compress(block) for _ in range(1024)), packer.flush()])


def post(relay: RunningRelay, path: str, body: bytes = b"", headers: dict[str, str] | None = None, *,
         key: bool = True, length: int | None = None, content_type: str = "application/json") -> bytes:
    """A POST request as bytes: its headers, then ``body`` (which may be less than ``length``)."""
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body) if length is None else length}",
             f"Content-Type: {content_type}", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    if key:
        lines.append(f"Authorization: Bearer {relay.key}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def test_gzip_bombs_do_not_stall_the_relay(relay: Relay, bomb: bytes) -> None:
    r = relay()
    statuses: list[int] = []

    def send(path: str, key: bool) -> None:
        reply = raw_exchange(r.url, post(r, path, bomb, {"Content-Encoding": "gzip"}, key=key), timeout=60)
        statuses.append(reply.status)

    # (Not /v1 with a key: the relay would pass the bomb on as sent, and the fake upstream,
    # which shares this test's event loop, would inflate it.)
    sends = [("/chat", False), ("/chatgpt", False), ("/v1/files", False), ("/chat", True), ("/chatgpt", True)]
    senders = [threading.Thread(target=send, args=args) for args in sends for _ in range(2)]
    slowest = 0.0
    for sender in senders:
        sender.start()
    while any(sender.is_alive() for sender in senders):
        started = time.monotonic()
        assert httpx.get(f"{r.url}/healthz", timeout=30).status_code == 200
        slowest = max(slowest, time.monotonic() - started)
        time.sleep(0.01)
    for sender in senders:
        sender.join()
    assert slowest < 0.5, f"/healthz took {slowest:.2f} s while the bombs were sent"
    # Without a key: 401, nothing decompressed. With one: inflated up to the body limit, then 413.
    assert sorted(statuses) == [401] * 6 + [413] * 4, statuses


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
@pytest.mark.parametrize("path", ["/chat", "/chatgpt"])
def test_compressed_chat_bodies_are_decompressed_after_the_key(relay: Relay, path: str, encoding: str) -> None:
    r = relay()
    body = orjson.dumps(user("你好"))
    packed = gzip.compress(body) if encoding == "gzip" else zlib.compress(body)
    response = httpx.post(f"{r.url}{path}", content=packed,
                          headers={**r.auth, "Content-Encoding": encoding, "Content-Type": "application/json"})
    assert response.status_code == 200
    assert "[DONE]" in response.text


def test_the_body_limit_applies_to_the_decompressed_size(relay: Relay) -> None:
    r = relay(max_body_size=10_000)
    packed = gzip.compress(orjson.dumps(user("x" * 20_000)))
    assert len(packed) < 1000
    response = httpx.post(f"{r.url}/chat", content=packed, headers={**r.auth, "Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert "10000 bytes" in response.text


@pytest.mark.parametrize("path", ["/chat", "/chatgpt"])
def test_malformed_gzip_is_400(relay: Relay, path: str) -> None:
    r = relay()
    response = httpx.post(f"{r.url}{path}", content=b"\x1f\x8bnot gzip at all",
                          headers={**r.auth, "Content-Encoding": "gzip"})
    assert response.status_code == 400
    assert "gzip" in response.text


def test_an_unknown_content_encoding_is_415(relay: Relay) -> None:
    r = relay()
    response = httpx.post(f"{r.url}/chat", content=b"xx", headers={**r.auth, "Content-Encoding": "zstd-ish"})
    assert response.status_code == 415
    assert_well_formed_frames(response.content)


def assert_well_formed_frames(raw: bytes) -> None:
    frames = [orjson.loads(line) for line in raw.splitlines()]
    assert frames[-1] == {"done": True, "error": False, "content": "[DONE]"} and frames[0]["error"]


@pytest.mark.parametrize("size", [10_000, 3 * MiB])
def test_compressed_uploads_reach_the_upstream_as_sent(relay: Relay, fake_upstream: RunningFake,
                                                       size: int) -> None:
    """Bytes and Content-Encoding go together, with a Content-Length that matches them."""
    r = relay()
    plain = hashlib.sha256(b"seed").digest() * (size // 32)
    packed = gzip.compress(plain, 1)
    response = httpx.post(f"{r.url}/v1/echo/upload", content=packed,
                          headers={**r.auth, "Content-Encoding": "gzip", "Content-Type": "application/json"})
    seen = response.json()
    assert response.status_code == 200
    # The fake upstream (aiohttp) decompresses what it received: the client's very body.
    assert seen["body_size"] == len(plain) and seen["body_sha256"] == hashlib.sha256(plain).hexdigest()
    headers = {k.lower(): v for k, v in seen["headers"].items()}
    assert headers["content-encoding"] == "gzip" and headers["content-length"] == str(len(packed))


def test_an_early_answer_never_swallows_the_next_request(relay: Relay, fake_upstream: RunningFake) -> None:
    """The upstream refuses a large compressed upload before reading it; the connection the
    relay then reuses must carry the next client's request intact."""
    r = relay()
    plain = b'{"input": "' + os.urandom(3 * MiB).hex().encode() + b'"}'
    packed = gzip.compress(plain, 1)
    assert len(packed) > MiB  # sent upstream as it comes, not read whole first
    for attempt in range(4):
        refused = httpx.post(f"{r.url}/v1/embeddings", content=packed, timeout=30, headers={
            **r.auth, "Content-Encoding": "gzip", "Content-Type": "application/json",
            "X-Fake-Scenario": "error status=400"})
        assert refused.status_code == 400
        fake_upstream.fake.log.clear()
        nxt = httpx.post(f"{r.url}/v1/echo/next-{attempt}", content=b'{"n": 1}', timeout=10,
                         headers={**r.auth, "Content-Type": "application/json"})
        assert nxt.status_code == 200, nxt.text
        assert nxt.json()["path"] == f"/v1/echo/next-{attempt}" and nxt.json()["body_size"] == 8
        assert [record.path for record in fake_upstream.fake.log] == [f"/v1/echo/next-{attempt}"]


@pytest.mark.parametrize("path", ["/chat", "/v1/echo/slow"])
def test_a_body_that_stops_arriving_gets_408(relay: Relay, fake_upstream: RunningFake, path: str) -> None:
    r = relay(client_body_timeout=0.5)
    with connect(r.url) as s:
        started = time.monotonic()
        s.sendall(post(r, path, b"{", length=1000))
        reply = read_reply(s)
        assert reply.status == 408
        assert closes_soon(s)
        assert time.monotonic() - started < 5
    assert fake_upstream.fake.log == []


def test_a_large_streamed_body_that_stops_gets_408(relay: Relay, fake_upstream: RunningFake) -> None:
    """Over 1 MiB the body streams upstream as it comes; a stop is still the client's 408."""
    r = relay(client_body_timeout=0.5)
    with connect(r.url) as s:
        s.sendall(post(r, "/v1/echo/big", length=4 * MiB, content_type="application/octet-stream"))
        s.sendall(b"z" * (2 * MiB))  # and then nothing
        reply = read_reply(s)
        assert reply.status == 408, reply
        assert b"CLIENT_BODY_TIMEOUT" not in reply.body and b"0.5" in reply.body
    assert all(record.body_size < 4 * MiB for record in fake_upstream.fake.log)


def test_a_slow_but_steady_body_is_not_cut(relay: Relay) -> None:
    r = relay(client_body_timeout=0.5)
    body = orjson.dumps(user("slow and steady"))

    def trickle() -> Iterator[bytes]:
        for n in range(0, len(body), 10):
            time.sleep(0.1)
            yield body[n:n + 10]

    response = httpx.post(f"{r.url}/chat", content=trickle(), headers={**r.auth, "Content-Length": str(len(body))})
    assert response.status_code == 200 and "[DONE]" in response.text


def test_a_chunked_upload_over_the_limit_is_413(relay: Relay, fake_upstream: RunningFake) -> None:
    r = relay(max_upload_size=2 * MiB)

    def chunks() -> Iterator[bytes]:
        for _ in range(3):
            yield b"x" * MiB

    response = httpx.post(f"{r.url}/v1/echo/up", content=chunks(), timeout=30,
                          headers={**r.auth, "Content-Type": "application/octet-stream"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_a_body_shorter_than_its_length_never_reaches_the_upstream_whole(relay: Relay,
                                                                        fake_upstream: RunningFake) -> None:
    """A client that promises 3 MiB and leaves after 2: the upstream connection is dropped,
    and the next request still arrives intact."""
    r = relay()
    with connect(r.url) as s:
        s.sendall(post(r, "/v1/echo/short", length=3 * MiB, content_type="application/octet-stream"))
        s.sendall(b"z" * (2 * MiB))
    time.sleep(0.3)
    nxt = httpx.post(f"{r.url}/v1/echo/after", content=b"{}", headers={**r.auth, "Content-Type": "application/json"})
    assert nxt.status_code == 200 and nxt.json()["body_size"] == 2
    assert all(record.body_size in (0, 2) for record in fake_upstream.fake.log)


def test_expect_100_continue_is_answered_after_the_key(relay: Relay, fake_upstream: RunningFake) -> None:
    r = relay()
    body = orjson.dumps(user("hi"))
    with connect(r.url) as s:
        s.sendall(post(r, "/chat", headers={"Expect": "100-continue"}, length=len(body)))
        assert s.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(body)
        reply = read_reply(s)
    assert reply.status == 200 and reply.body.endswith(b'"content":"[DONE]","finish_reason":"stop"}\n')
    assert "expect" not in {k.lower() for k in fake_upstream.fake.last().headers}


def test_expect_100_continue_is_not_forwarded_on_v1(relay: Relay, fake_upstream: RunningFake) -> None:
    r = relay()
    with connect(r.url) as s:
        s.sendall(post(r, "/v1/echo/expect", headers={"Expect": "100-continue"}, length=2))
        assert s.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"{}")
        reply = read_reply(s)
    assert reply.status == 200
    assert "expect" not in {k.lower() for k in orjson.loads(reply.body)["headers"]}


def test_no_100_continue_without_a_key(relay: Relay) -> None:
    r = relay()
    with connect(r.url) as s:
        s.sendall(post(r, "/chat", headers={"Expect": "100-continue"}, key=False, length=5000))
        reply = read_reply(s)
        assert reply.status == 401
        assert closes_soon(s)  # the unread body is not waited for
