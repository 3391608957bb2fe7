"""The browser client, /static/gptrelay.js, imported by a page on another origin."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page

from gptrelay.fake import replies
from tests.browser.chat_page import chat_requests, wait_for
from tests.conftest import RunningFake, RunningRelay

# Imports the client and streams one reply, recording every callback.
STREAM = """async ([moduleUrl, options]) => {
  const { streamChat } = await import(moduleUrl);
  const events = [];
  const controller = new AbortController();
  const { abortAfterFirstPiece, ...rest } = options;
  const reply = await streamChat({
    ...rest,
    signal: abortAfterFirstPiece ? controller.signal : undefined,
    onContent: (piece, text) => {
      events.push(["content", piece, text]);
      if (abortAfterFirstPiece) controller.abort();
    },
    onError: (message, status) => events.push(["error", message, status]),
    onContinue: (round) => events.push(["continue", round]),
    onFinish: (reason) => events.push(["finish", reason]),
  });
  return { reply, events };
}"""


@pytest.fixture
def other_site(relay: Callable[..., RunningRelay],
               new_context: Callable[..., Any]) -> Iterator[tuple[Page, RunningRelay]]:
    """A page on another origin (localhost, not 127.0.0.1) and the relay it talks to."""
    running = relay()
    page = new_context().new_page()
    page.goto(running.url.replace("127.0.0.1", "localhost") + "/healthz")
    yield page, running


def stream(site: tuple[Page, RunningRelay], **options: Any) -> dict[str, Any]:
    page, running = site
    options.setdefault("key", running.key)
    result: dict[str, Any] = page.evaluate(STREAM, [running.url + "/static/gptrelay.js", options])
    return result


def pieces(events: list[list[Any]]) -> list[str]:
    return [e[1] for e in events if e[0] == "content"]


def test_pieces_arrive_in_order_and_the_finish_reason_is_reported(other_site: Any) -> None:
    result = stream(other_site, messages=[{"role": "user", "content": "/scenario chinese"}])
    reply, events = result["reply"], result["events"]
    assert pieces(events) == replies.pieces(replies.CHINESE)
    assert events[-2][2] == replies.CHINESE  # onContent also gives the text so far
    assert events[-1] == ["finish", "stop"]
    assert reply == {"text": replies.CHINESE, "finishReason": "stop", "error": None, "status": 200,
                     "aborted": False, "rounds": 1}


def test_length_cut_replies_are_continued_and_joined(other_site: Any, fake_upstream: RunningFake) -> None:
    messages = [{"role": "user", "content": "/scenario long cut=100"}]
    result = stream(other_site, messages=messages, continueRounds=5)
    assert result["reply"]["text"] == replies.LONG
    assert result["reply"]["finishReason"] == "stop"
    assert result["reply"]["rounds"] == 3
    assert [e for e in result["events"] if e[0] == "continue"] == [["continue", 1], ["continue", 2]]
    assert "".join(pieces(result["events"])) == replies.LONG

    fake_upstream.fake.log.clear()
    once = stream(other_site, messages=messages)  # continueRounds defaults to 0
    assert once["reply"]["finishReason"] == "length" and once["reply"]["rounds"] == 1
    assert once["reply"]["text"] == "".join(replies.pieces(replies.LONG)[:100])
    assert len(chat_requests(fake_upstream)) == 1


def test_errors_are_reported_with_their_status(other_site: Any) -> None:
    limited = stream(other_site, messages=[{"role": "user", "content": "/scenario error status=429"}])
    assert limited["reply"]["status"] == 429
    assert "Rate limit reached" in limited["reply"]["error"]
    assert [e[0] for e in limited["events"]] == ["error", "finish"]

    broken = stream(other_site, messages=[{"role": "user", "content": "/scenario error-in-stream"}])
    assert broken["reply"]["text"] and broken["reply"]["error"]

    wrong = stream(other_site, key="wrong", messages=[{"role": "user", "content": "hi"}])
    assert wrong["reply"]["status"] == 401
    assert "wrong access key" in wrong["reply"]["error"]


def test_an_abort_signal_stops_the_reply_and_the_upstream_call(
        other_site: Any, fake_upstream: RunningFake) -> None:
    result = stream(other_site, abortAfterFirstPiece=True,
                    messages=[{"role": "user", "content": "/scenario demo interval_ms=200"}])
    assert result["reply"]["aborted"] is True and result["reply"]["error"] is None
    assert len(pieces(result["events"])) == 1
    assert result["events"][-1] == ["finish", None]
    record = chat_requests(fake_upstream)[-1]
    assert wait_for(lambda: record.disconnected is not None, timeout=3)


# A stream fed one byte at a time: split lines, split UTF-8, CRLF, keep-alives, extra keys,
# and a last line without its newline.
SPLIT = """async ([moduleUrl, body]) => {
  const { streamChat, FrameDecoder } = await import(moduleUrl);
  const bytes = new TextEncoder().encode(body);
  const fakeFetch = async () => new Response(new ReadableStream({
    start(controller) {
      for (const byte of bytes) controller.enqueue(new Uint8Array([byte]));
      controller.close();
    },
  }), { headers: { "Content-Type": "application/x-ndjson" } });
  const got = [];
  const reply = await streamChat({ url: "http://127.0.0.1:9/chat", messages: [], fetch: fakeFetch,
                                   onContent: (piece) => got.push(piece) });
  const decoder = new FrameDecoder();
  const frames = [...bytes].flatMap((b) => decoder.push(new Uint8Array([b]))).concat(decoder.flush());
  return { got, reply, frames: frames.length };
}"""


def test_partial_lines_and_split_utf8_are_reassembled(other_site: Any) -> None:
    page, running = other_site
    body = ('{"done":false,"error":false,"content":""}\r\n'
            '{"done":false,"error":false,"content":"你好"}\n\n'
            '{"done":false,"error":false,"content":"😀 ok","usage":null}\n'
            '{"done":false,"error":false,"content":" \\n\\n"}\n'
            '{"done":true,"error":false,"content":"[DONE]","finish_reason":"stop"}')
    result = page.evaluate(SPLIT, [running.url + "/static/gptrelay.js", body])
    assert result["got"] == ["你好", "😀 ok", " \n\n"]
    assert result["reply"]["text"] == "你好😀 ok \n\n"
    assert result["reply"]["finishReason"] == "stop" and result["reply"]["error"] is None
    assert result["frames"] == 5


def test_a_stream_that_breaks_off_is_an_error(other_site: Any) -> None:
    page, running = other_site
    body = '{"done":false,"error":false,"content":"half"}\n'
    result = page.evaluate(SPLIT, [running.url + "/static/gptrelay.js", body])
    assert result["reply"]["text"] == "half"
    assert "closed before the reply was complete" in result["reply"]["error"]


def test_the_module_is_standalone(relay: Callable[..., RunningRelay]) -> None:
    response = httpx.get(relay().url + "/static/gptrelay.js")
    assert response.status_code == 200
    assert "javascript" in response.headers["content-type"]
    source = response.text
    assert not re.search(r"^\s*import\b|\bimport\s*\(|\brequire\(", source, re.MULTILINE)
    assert re.search(r"^export\s*\{[^}]*\bstreamChat\b", source, re.MULTILINE)
