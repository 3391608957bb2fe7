"""SIGTERM drains the relay: it stops listening, lets the replies in progress finish (up to
DRAIN_TIMEOUT, then cuts them, saying so), commits every usage record and exits 0."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import orjson

from gptrelay.usage.writer import SPOOL_NAME
from tests.conftest import RunningFake
from tests.helpers import closes_soon, connect, read_reply, user
from tests.server.conftest import (
    AUTH,
    ROUTES,
    SLOW,
    STALLED,
    Reply,
    Serve,
    eventually,
    exits,
    refused,
    relay_env,
    stream,
    streaming,
    upstream_streaming,
    usage_records,
)


def assert_whole(reply: Reply) -> None:
    """The reply ended as it does with no signal at all: its framing complete, its own end last."""
    assert reply.broke is None and reply.status == 200, (reply.route, reply.broke, reply.body[-300:])
    if reply.route == "/chat":
        frames = reply.frames
        assert not [f for f in frames if f["error"]], frames[-3:]
        assert frames[-1] == {"done": True, "error": False, "content": "[DONE]", "finish_reason": "length"}
    else:
        assert reply.events[-1] == b"data: [DONE]", reply.body[-300:]
        assert b'"error"' not in reply.body
    assert len(reply.text) > 100


def assert_cut(reply: Reply) -> None:
    """A reply the drain cut: what came so far, then the relay's word that it is shutting down, as
    when the upstream cuts a reply off."""
    assert reply.broke is None and reply.status == 200, (reply.route, reply.broke, reply.body[-300:])
    if reply.route == "/chat":
        *_, error, done = reply.frames
        assert error["error"] is True and "shutting down" in error["content"]
        assert done == {"done": True, "error": False, "content": "[DONE]"}
    else:  # OpenAI's error event, which its SDKs raise on (and /chatgpt's [DONE], as after any failure)
        events = reply.events
        if reply.route == "/chatgpt":
            assert events.pop() == b"data: [DONE]"
        assert orjson.loads(events[-1][6:])["error"]["code"] == "shutting_down"
    assert reply.text


def test_sigterm_lets_every_reply_finish_and_commits_its_record(
        serve: Serve, fake_upstream: RunningFake, database_url: str) -> None:
    relay = serve(relay_env(fake_upstream, database_url, DRAIN_TIMEOUT="120"))
    replies = streaming(relay, fake_upstream, SLOW)
    relay.process.send_signal(signal.SIGTERM)
    # The port closes at once, while the replies are still coming: a load balancer's next
    # connection goes to another relay.
    assert eventually(lambda: refused(relay.url))
    assert not any(reply.done.is_set() for reply in replies)
    for reply in replies:
        assert_whole(reply.wait())
    assert exits(relay, 30) == 0
    records = usage_records(database_url)
    assert sorted(r["route"] for r in records) == sorted(ROUTES)
    assert {r["outcome"] for r in records} == {"ok"}
    assert "drain: stopped listening; 3 response(s) in progress" in relay.stderr
    assert "drain: done, 3 response(s) finished, 0 cut" in relay.stderr


def test_past_drain_timeout_replies_are_cut_saying_so_and_still_recorded(
        serve: Serve, fake_upstream: RunningFake, database_url: str) -> None:
    relay = serve(relay_env(fake_upstream, database_url, DRAIN_TIMEOUT="1"))
    replies = streaming(relay, fake_upstream, STALLED)
    relay.process.send_signal(signal.SIGTERM)
    for reply in replies:
        assert_cut(reply.wait())
    # The stalled upstream would keep them an hour: the drain's second is what ends them.
    assert exits(relay, 20) == 0
    records = usage_records(database_url)
    assert sorted(r["route"] for r in records) == sorted(ROUTES)
    assert {r["outcome"] for r in records} == {"cut"}
    assert all(r["completion_tokens"] > 0 for r in records), records  # what was streamed, counted
    assert eventually(lambda: all(r.disconnected is not None for r in fake_upstream.fake.log))
    assert "drain: 3 response(s) still in progress: cut" in relay.stderr
    assert "drain: done, 0 response(s) finished, 3 cut" in relay.stderr


def test_idle_connections_close_within_their_grace_and_never_hold_the_drain(serve: Serve, fake_upstream: RunningFake,
                                                                           tmp_path: Path) -> None:
    relay = serve(relay_env(fake_upstream, f"sqlite:///{tmp_path}/relay.db", DRAIN_TIMEOUT="300"))
    idle = connect(relay.url, 20)  # a keep-alive between two requests
    idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n")
    assert b"200 OK" in idle.recv(65536)
    trickling = connect(relay.url, 20)  # still sending its headers
    trickling.sendall(b"POST /chat HTTP/1.1\r\nHost: relay\r\n")
    reply = stream(relay.url, "/chat", SLOW)
    upstream_streaming(fake_upstream, 1)
    relay.process.send_signal(signal.SIGTERM)
    # Both closed (after IDLE_GRACE) while the one reply in progress still streams.
    assert idle.recv(65536) == b""
    assert trickling.recv(65536) == b""
    assert not reply.done.is_set()
    assert_whole(reply.wait())
    assert exits(relay, 30) == 0
    assert "drain: stopped listening; 1 response(s) in progress" in relay.stderr


def test_a_request_on_a_kept_alive_connection_as_the_drain_starts_is_served(serve: Serve,
                                                                           fake_upstream: RunningFake,
                                                                           tmp_path: Path) -> None:
    """A proxy in front (nginx) sends a request on a connection it kept alive, just as the relay stops:
    closing idle connections at once reset such a request, and nginx answered it with a 502 (it sends
    no POST that reached a relay to another). It is served, and its connection closes after it."""
    relay = serve(relay_env(fake_upstream, f"sqlite:///{tmp_path}/relay.db", DRAIN_TIMEOUT="300"))
    kept = connect(relay.url, 20)
    kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n")
    assert b"200 OK" in kept.recv(65536)
    relay.process.send_signal(signal.SIGTERM)
    assert eventually(lambda: "drain: stopped listening" in relay.stderr)
    body = orjson.dumps(user("hi"))
    kept.sendall(b"POST /chat HTTP/1.1\r\nHost: relay\r\nAuthorization: " + AUTH["Authorization"].encode()
                 + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
    time.sleep(0.2)
    kept.sendall(body)  # the body comes after its head, as a proxy may send it: it is read too
    answer = b""
    while chunk := kept.recv(65536):  # to the end: the relay closes the connection after this response
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 OK") and b'"done":true' in answer, answer[-300:]
    assert exits(relay, 30) == 0
    assert len(usage_records(f"sqlite:///{tmp_path}/relay.db")) == 1


def _post(route: str, body: dict[str, object]) -> bytes:
    data = orjson.dumps(body)
    return (b"POST " + route.encode() + b" HTTP/1.1\r\nHost: relay\r\nAuthorization: "
            + AUTH["Authorization"].encode() + b"\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(data) + data)


def test_a_request_right_after_a_reply_that_was_in_progress_is_served(serve: Serve, fake_upstream: RunningFake,
                                                                      tmp_path: Path) -> None:
    """A reply under way when the drain starts has told its proxy the connection stays open; the
    proxy may send its next request on it the moment the reply ends. Closing the connection then
    reset that request (nginx: "upstream prematurely closed connection", a 502). It is served, and
    the connection closes after it."""
    relay = serve(relay_env(fake_upstream, f"sqlite:///{tmp_path}/relay.db", DRAIN_TIMEOUT="300"))
    with connect(relay.url, 20) as kept:
        kept.sendall(_post("/v1/chat/completions", {**user("/scenario long cut=10 interval_ms=100"), "stream": True}))
        upstream_streaming(fake_upstream, 1)
        relay.process.send_signal(signal.SIGTERM)
        first = read_reply(kept)
        assert first.status == 200 and first.body.endswith(b"data: [DONE]\n\n") and not first.closed
        assert first.header("Connection") is None  # (its headers had gone out: keep-alive)
        kept.sendall(_post("/chat", user("hi")))  # at once, as a proxy's next request
        second = read_reply(kept)
        assert second.status == 200 and b'"done":true' in second.body, second
        assert second.header("Connection") == "close"
        assert closes_soon(kept)
    assert exits(relay, 30) == 0
    assert "drain: done, 2 response(s) finished, 0 cut" in relay.stderr


def test_a_reply_not_started_when_the_drain_starts_says_its_connection_closes(serve: Serve,
                                                                             fake_upstream: RunningFake,
                                                                             tmp_path: Path) -> None:
    """Its headers still to go out, a reply says ``Connection: close``: the proxy sends nothing more on it."""
    relay = serve(relay_env(fake_upstream, f"sqlite:///{tmp_path}/relay.db", DRAIN_TIMEOUT="300"))
    with connect(relay.url, 20) as kept:
        kept.sendall(_post("/v1/chat/completions", user("/scenario slow-headers seconds=1")))
        assert eventually(lambda: len(fake_upstream.fake.log) == 1)
        relay.process.send_signal(signal.SIGTERM)
        reply = read_reply(kept)
        assert reply.status == 200 and reply.header("Connection") == "close"
        assert closes_soon(kept)
    assert exits(relay, 30) == 0


def test_sigterm_with_nothing_in_progress_exits_at_once(serve: Serve, fake_upstream: RunningFake,
                                                       tmp_path: Path) -> None:
    relay = serve(relay_env(fake_upstream, f"sqlite:///{tmp_path}/relay.db", DRAIN_TIMEOUT="300"))
    with connect(relay.url, 20) as idle:
        idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n")
        idle.recv(65536)
        relay.process.send_signal(signal.SIGTERM)
        assert exits(relay, 30) == 0  # far less than DRAIN_TIMEOUT: the idle connection held nothing
    assert "drain: done, 0 response(s) finished, 0 cut" in relay.stderr


def test_a_second_sigterm_changes_nothing_and_sigquit_cuts_at_once(serve: Serve, fake_upstream: RunningFake,
                                                                   tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path}/relay.db"
    relay = serve(relay_env(fake_upstream, database_url, DRAIN_TIMEOUT="300"))
    slow, stalled = stream(relay.url, "/chat", SLOW), stream(relay.url, "/chatgpt", STALLED)
    upstream_streaming(fake_upstream, 2)
    relay.process.send_signal(signal.SIGTERM)
    assert eventually(lambda: refused(relay.url))
    relay.process.send_signal(signal.SIGTERM)  # (systemd sends it to every process; the parent passes it on)
    assert eventually(lambda: "SIGTERM: already draining" in relay.stderr)
    assert_whole(slow.wait())  # the drain went on
    assert relay.process.poll() is None and not stalled.done.is_set()
    relay.process.send_signal(signal.SIGQUIT)
    assert_cut(stalled.wait())
    assert exits(relay, 30) == 0
    assert sorted(r["outcome"] for r in usage_records(database_url)) == ["cut", "ok"]


def test_a_second_ctrl_c_cuts_at_once(serve: Serve, fake_upstream: RunningFake, tmp_path: Path) -> None:
    relay = serve(relay_env(fake_upstream, f"sqlite:///{tmp_path}/relay.db", DRAIN_TIMEOUT="300"))
    reply = stream(relay.url, "/v1/chat/completions", STALLED)
    upstream_streaming(fake_upstream, 1)
    relay.process.send_signal(signal.SIGINT)
    assert eventually(lambda: refused(relay.url))
    assert relay.process.poll() is None
    relay.process.send_signal(signal.SIGINT)
    assert_cut(reply.wait())
    assert exits(relay, 30) == 0
    assert "SIGINT: cutting the replies still in progress now" in relay.stderr


def test_a_reply_its_client_does_not_read_is_cut_too_and_recorded(serve: Serve, fake_upstream: RunningFake,
                                                                   tmp_path: Path) -> None:
    """A reply stuck writing to a client that reads nothing has no upstream wait to cut: it is cancelled
    a moment later, and its record still says ``cut``."""
    database_url = f"sqlite:///{tmp_path}/relay.db"
    relay = serve(relay_env(fake_upstream, database_url, DRAIN_TIMEOUT="1"))
    body = orjson.dumps({**user("/scenario bench chunks=100000 size=400"), "stream": True})
    with connect(relay.url, 20) as reader:
        reader.sendall(b"POST /chatgpt HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\n"
                       b"Authorization: Bearer " + AUTH["Authorization"][7:].encode() + b"\r\n"
                       b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        assert reader.recv(100).startswith(b"HTTP/1.1 200")  # then nothing more is read
        upstream_streaming(fake_upstream, 1)
        relay.process.send_signal(signal.SIGTERM)
        assert exits(relay, 30) == 0
    [record] = usage_records(database_url)
    assert (record["outcome"], record["status"]) == ("cut", 503)
    assert "drain: done, 0 response(s) finished, 1 cut" in relay.stderr


def test_with_the_database_down_the_drain_spools_every_record(serve: Serve, fake_upstream: RunningFake,
                                                              tmp_path: Path) -> None:
    database = tmp_path / "relay.db"
    relay = serve(relay_env(fake_upstream, f"sqlite:///{database}", DRAIN_TIMEOUT="120"))
    replies = streaming(relay, fake_upstream, SLOW)
    holder = sqlite3.connect(database, timeout=10, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")  # an sqlite3 shell, a backup: a write transaction left open
        relay.process.send_signal(signal.SIGTERM)
        for reply in replies:
            assert_whole(reply.wait())
        assert exits(relay, 60) == 0
    finally:
        holder.close()
    spool = tmp_path / SPOOL_NAME
    assert sorted(orjson.loads(line)["route"] for line in spool.read_bytes().splitlines()) == sorted(ROUTES)
    assert "drain: done, 3 response(s) finished, 0 cut" in relay.stderr
