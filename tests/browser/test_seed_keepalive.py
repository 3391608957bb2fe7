"""The seed blog page (seeds/001) and ``/chatgpt``'s keep-alive, in Chromium.

The page parses each network read on its own: it splits the read's text on ``"data: "``,
``JSON.parse``-s every piece and asks for the next read only from inside a piece that parsed as a
chunk (``return readChunk()``). A read that holds only ``: ping`` has no such piece, so the page
stops reading for good. ``/chatgpt``'s keep-alive is therefore a comment line that carries, after
``data: ``, an empty chunk: every SSE parser (EventSource, the SDKs) skips the comment; the seed
page finds an empty delta in it and reads on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web

from gptrelay.fake import replies
from gptrelay.routes import chatgpt
from tests.browser.test_clients import SEED_BLOG, SEED_CHAT, page_host  # noqa: F401  (a fixture)
from tests.conftest import LoopThread, RunningRelay

Relay = Callable[..., RunningRelay]
SLOW = "/scenario slow-first seconds=1.2 interval_ms=10"  # six keep-alives 0.2 s apart before the first token


def open_seed_page(relay: RunningRelay, host: Callable[[str], str], new_context: Any) -> tuple[Any, Any]:
    """The seed page as written, against ``relay``; the page and its /chatgpt response, once read."""
    page = new_context().new_page()
    with page.expect_event("requestfinished", lambda request: request.url.endswith("/chatgpt"),
                           timeout=15_000) as finished:
        page.goto(host(SEED_BLOG.replace("RELAY", relay.url).replace("PROMPT", SLOW)))
    return page, finished.value


def test_the_seed_page_reads_on_through_keepalives(relay: Relay, page_host: Callable[[str], str],  # noqa: F811
                                                   new_context: Any) -> None:
    r = relay(authorization_key=None, keepalive_interval=0.2)
    page, request = open_seed_page(r, page_host, new_context)
    body = request.response().body()
    assert body.startswith(chatgpt.KEEPALIVE * 2)  # the upstream's silence was bridged
    expected = replies.text_for("demo", {"messages": [{"role": "user", "content": SLOW}]})
    page.wait_for_function(f"document.getElementById('output').textContent === {expected!r}")


def test_a_bare_ping_comment_stops_the_seed_page(relay: Relay, page_host: Callable[[str], str],  # noqa: F811
                                                 new_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The failure the keep-alive avoids: with ``: ping`` alone, the page never shows a word."""
    monkeypatch.setattr(chatgpt, "KEEPALIVE", b": ping\n\n")
    r = relay(authorization_key=None, keepalive_interval=0.2)
    page, request = open_seed_page(r, page_host, new_context)
    assert request.response().body().startswith(b": ping\n\n: ping\n\n")
    assert request.response().body().endswith(b"data: [DONE]\n\n")  # the whole reply reached the browser
    page.evaluate("new Promise(resolve => setTimeout(resolve, 0))")  # every read the page asked for is in
    assert page.evaluate("document.getElementById('output').textContent") == ""


def test_the_seed_readme_client_reads_on_through_chat_keepalives(
        relay: Relay, page_host: Callable[[str], str], new_context: Any) -> None:  # noqa: F811
    """The other seed's client, on ``/chat``: its keep-alive, an empty content frame, is a frame like any."""
    r = relay(authorization_key=None, keepalive_interval=0.2)
    page = new_context().new_page()
    page.goto(page_host(SEED_CHAT.replace("RELAY", r.url).replace("/scenario chinese", SLOW)))
    page.evaluate("window.finished")
    expected = replies.text_for("demo", {"messages": [{"role": "user", "content": SLOW}]})
    assert page.evaluate("document.body.innerText") == expected


def test_eventsource_skips_the_keepalive(loop_thread: LoopThread, new_context: Any) -> None:
    """Chromium's own SSE parser (EventSource) takes the keep-alive for the comment it is."""
    app = web.Application()

    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Access-Control-Allow-Origin": "*"})
        await response.prepare(request)
        await response.write(chatgpt.KEEPALIVE)
        await response.write(chatgpt.KEEPALIVE + b'data: {"n":1}\n\n')
        await response.write(b"data: [DONE]\n\n")
        return response

    async def index(request: web.Request) -> web.Response:
        return web.Response(text="<!doctype html>", content_type="text/html")

    app.router.add_get("/events", events)
    app.router.add_get("/", index)
    runner, port = loop_thread.serve_app(app)
    try:
        page = new_context().new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        got = page.evaluate("""() => new Promise(resolve => {
            const seen = [];
            const source = new EventSource("/events");
            source.onmessage = (event) => {
                seen.push(event.data);
                if (event.data === "[DONE]") { source.close(); resolve(seen); }
            };
        })""")
        assert got == ['{"n":1}', "[DONE]"]
    finally:
        loop_thread.run(runner.cleanup())
