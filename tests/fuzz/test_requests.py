"""The request readers against anything a client sends: bodies, headers and content encodings
raise only the relay's own errors (``RelayError``), and, over a real socket, any request gets an
answer that is no 5xx of the relay's own, without a hang, and the relay goes on serving."""

from __future__ import annotations

import contextlib
import gzip
import logging
import socket
import zlib
from collections.abc import Callable
from typing import Any

import h11
import httpx
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gptrelay.errors import RelayError
from gptrelay.http.bodies import decode
from gptrelay.routes.chat_request import ask_for_usage, check_chat, parse_json_object
from gptrelay.routes.gateway import check_path
from tests.conftest import RunningRelay
from tests.fuzz.profiles import budget
from tests.fuzz.test_completions import json_values
from tests.helpers import connect, run_async

Relay = Callable[..., RunningRelay]

messages = st.lists(st.fixed_dictionaries({"role": st.one_of(st.sampled_from(["user", "system"]), json_values)},
                                          optional={"content": st.one_of(st.text(), json_values)}), max_size=3)
chat_values = st.one_of(json_values, st.fixed_dictionaries({"messages": st.one_of(messages, json_values)}, optional={
    "model": st.one_of(st.text(max_size=10), json_values), "stream": json_values,
    "stream_options": st.one_of(st.fixed_dictionaries({}, optional={"include_usage": json_values}), json_values),
    "temperature": json_values}))


def as_json(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return repr(value).encode()


json_bodies = st.one_of(chat_values.map(as_json), st.binary(max_size=60),
                        st.integers(1, 3000).map(lambda n: b'{"messages":' + b"[" * n + b"]" * n + b"}"),
                        st.just(b'{"messages":[{"role":"user","content":"\\ud800"}]}'),
                        st.just(b'{"messages":[{"role":"user","content":"a"}],"model":"m\\u0000"}'))


@st.composite
def encoded(draw: st.DrawFn) -> tuple[bytes, str | None]:
    """A body, and its Content-Encoding: right, wrong, cut short, unknown or odd."""
    body = draw(json_bodies)
    encoding = draw(st.sampled_from([None, "identity", "gzip", "x-gzip", "deflate", "GZIP ", "br", "gzip, gzip",
                                     "", "zstd", "compress", "ДЕФ"]))
    name = (encoding or "").strip().lower()
    if name in ("gzip", "x-gzip"):
        body = gzip.compress(body)
    elif name == "deflate":
        body = zlib.compress(body)
    how = draw(st.sampled_from(["as is", "cut", "flipped", "trailing"]))
    if how == "cut" and body:
        body = body[:draw(st.integers(0, len(body) - 1))]
    elif how == "flipped" and body:
        at = draw(st.integers(0, len(body) - 1))
        body = body[:at] + bytes([body[at] ^ 0xFF]) + body[at + 1:]
    elif how == "trailing":
        body += draw(st.binary(min_size=1, max_size=8))
    return body, encoding


@budget()
@given(encoded(), st.integers(1, 200))
def test_any_encoded_body_gives_json_checked_or_a_relay_error(sent: tuple[bytes, str | None], limit: int) -> None:
    raw, encoding = sent
    try:
        body = run_async(decode(raw, encoding, limit)) if encoding is not None else raw
        assert len(body) <= max(limit, len(raw))  # (the raw body was held to the limit as it was read)
        parsed = parse_json_object(body)
        wants_usage = ask_for_usage(parsed)
        payload = check_chat(parsed, "gpt-4o-mini")
    except RelayError:
        return
    assert isinstance(wants_usage, bool)
    sent_upstream = orjson.loads(payload)
    assert sent_upstream["stream"] is True and isinstance(sent_upstream["model"], str)
    assert isinstance(sent_upstream["messages"], list) and sent_upstream["messages"]


@budget()
@given(st.text(st.sampled_from("/.%2eEfF\\abc?"), max_size=20))
def test_any_v1_path_is_checked_or_refused(path: str) -> None:
    try:
        check_path("/v1/" + path)
    except RelayError:
        return


# Raw HTTP requests, over a socket.
KEY = "fuzz-access-key"
METHODS = st.one_of(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]),
                    st.text(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ-"), min_size=1, max_size=8))
PATHS = st.tuples(st.sampled_from(["/chat", "/chatgpt", "/v1/chat/completions", "/v1/models", "/v1/files",
                                   "/v1/echo/x", "/v1/embeddings", "/healthz", "/", "/admin/api/keys", "/metrics",
                                   "/assets/x.js", "*", ""]),
                  st.text(st.sampled_from("/.%2e0aZ?&=#;:@!$'()~\\"), max_size=12)).map("".join)
VERSIONS = st.sampled_from(["HTTP/1.1"] * 6 + ["HTTP/1.0", "HTTP/2.0", "HTTP/1.1 x", "", "HTTP/9.9", "http/1.1"])
AUTH = st.sampled_from([f"Authorization: Bearer {KEY}", f"Authorization: {KEY}", f"api-key: {KEY}",
                        "Authorization: Bearer wrong", "", f"Authorization: Basic {KEY}"])
HEADER_NAMES = st.one_of(st.sampled_from(["Content-Type", "Content-Encoding", "Expect", "Connection", "Origin",
                                          "X-Request-ID", "Accept-Encoding", "Upgrade", "Transfer-Encoding",
                                          "Content-Length", "Host", "Cookie", "Range", "TE", "Trailer"]),
                         st.text(st.sampled_from("abcXYZ-_"), min_size=1, max_size=6))
HEADER_VALUES = st.one_of(st.sampled_from(["application/json", "gzip", "deflate", "br", "100-continue", "close",
                                           "keep-alive, Upgrade", "websocket", "chunked", "-1", "0", "99999999999",
                                           "null", "https://evil.example", "x" * 200, " ", "text/event-stream"]),
                          st.binary(max_size=20).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")
                                                     .decode("latin-1")))


@st.composite
def raw_requests(draw: st.DrawFn) -> bytes:
    body, encoding = draw(encoded())
    lines = [f"{draw(METHODS)} {draw(PATHS)} {draw(VERSIONS)}".rstrip(), "Host: 127.0.0.1"]
    if auth := draw(AUTH):
        lines.append(auth)
    if encoding is not None:
        lines.append(f"Content-Encoding: {encoding}")
    if draw(st.booleans()):
        lines.append("Content-Type: application/json")
    lines += [f"{name}: {value}" for name, value in draw(st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES),
                                                                  max_size=4))]
    framing = draw(st.sampled_from(["length", "length", "none", "short", "long", "chunked", "bad chunked", "both"]))
    if framing in ("length", "both"):
        lines.append(f"Content-Length: {len(body)}")
    elif framing == "short":
        lines.append(f"Content-Length: {max(0, len(body) - draw(st.integers(1, 5)))}")
    elif framing == "long":
        lines.append(f"Content-Length: {len(body) + draw(st.integers(1, 5))}")
    if framing in ("chunked", "bad chunked", "both"):
        lines.append("Transfer-Encoding: chunked")
        size = f"{len(body):x}" if framing != "bad chunked" else draw(st.sampled_from(["zz", "-1", "", "1;x"]))
        body = f"{size}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    if draw(st.booleans()):
        lines.append("Connection: close")
    head = "\r\n".join(lines).encode("latin-1", "replace") + b"\r\n\r\n"
    return head + body


def exchange(url: str, request: bytes) -> tuple[int, bytes]:
    """Send ``request`` on a new connection; the final answer's status and body (0 when the relay
    closed the connection without one). h11 reads the answer as a client that sent a request with
    this method would: no body after a 204, a 304 or an answer to HEAD, interim 1xx answers skipped."""
    method = request.split(b" ", 1)[0]
    reader = h11.Connection(h11.CLIENT)
    reader.send(h11.Request(method=method if method.isalpha() else b"GET", target=b"/", headers=[("Host", "x")]))
    reader.send(h11.EndOfMessage())
    status, body = 0, b""
    with connect(url, timeout=15) as s:
        # (Answered and closed before the body was all sent: the answer is still read.)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(request)
        while True:
            try:
                event = reader.next_event()
            except h11.RemoteProtocolError as error:  # closed inside an answer, or no HTTP at all
                raise AssertionError(f"a broken answer ({error}) to {request[:300]!r}") from None
            if event is h11.NEED_DATA:
                try:
                    reader.receive_data(s.recv(65536))
                except TimeoutError:
                    raise AssertionError(f"no answer within 15 s to {request[:300]!r}") from None
                except ConnectionResetError:
                    reader.receive_data(b"")
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                return status, body


def test_raw_requests_get_no_5xx_and_no_hang(relay: Relay, caplog: pytest.LogCaptureFixture) -> None:
    r = relay(authorization_key=KEY, client_body_timeout=0.5, max_body_size=4096, keepalive_interval=0.2)
    caplog.set_level(logging.WARNING)
    closed: list[bytes] = []

    @budget(4)
    @given(raw_requests())
    def check(request: bytes) -> None:
        caplog.clear()
        status, body = exchange(r.url, request)
        if status == 0:
            closed.append(request)
        assert status < 500, (status, body[:300], request[:300])
        # The relay's own errors (an exception it did not expect is logged as an internal error);
        # aiohttp.server's are the fake upstream's, which refuses what it cannot decode (br, zstd).
        problems = [rec.getMessage() for rec in caplog.records
                    if rec.levelno >= logging.ERROR and rec.name.startswith("gptrelay")]
        assert not problems, (problems, request[:300])
        assert KEY.encode() not in body

    check()
    assert httpx.get(f"{r.url}/healthz").status_code == 200
    assert not closed or len(closed) < 5, closed[:5]


def test_the_relay_serves_on_after_every_raw_request(relay: Relay) -> None:
    r = relay(authorization_key=KEY, client_body_timeout=0.5, max_body_size=4096)

    @budget(10)
    @given(st.lists(raw_requests(), min_size=1, max_size=5))
    def check(requests: list[bytes]) -> None:
        with connect(r.url, timeout=15) as s:  # several on one connection, pipelined
            try:
                s.sendall(b"".join(requests))
                s.shutdown(socket.SHUT_WR)
                while s.recv(65536):
                    pass
            except (BrokenPipeError, ConnectionResetError):
                pass
        reply = httpx.post(f"{r.url}/chat", json={"messages": [{"role": "user", "content": "hi"}]},
                           headers={"Authorization": f"Bearer {KEY}"}, timeout=15)
        assert reply.status_code == 200
        assert orjson.loads(reply.text.splitlines()[-1])["content"] == "[DONE]"

    check()


@pytest.mark.parametrize("path", ["/admin/api/keys/known", "/v1/models", "/chat"])
def test_a_malformed_request_is_refused_in_openais_envelope(relay: Relay, path: str) -> None:
    """Found by schemathesis on the admin API (an invalid Content-Length): the answer is the error
    shape the admin API documents, JSON, like every error the relay answers with."""
    r = relay(authorization_key=KEY, admin_key="fuzz-admin-key-0123456789")
    status, body = exchange(r.url, f"DELETE {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
                                   "Content-Length: V\r\n\r\n".encode())
    assert status == 400
    assert orjson.loads(body)["error"]["type"] == "invalid_request_error"
    assert KEY.encode() not in body
