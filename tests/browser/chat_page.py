"""The chat page as the tests drive it: find things by role and name, as a user would."""

from __future__ import annotations

import json
import time
from typing import Any

from playwright.sync_api import Locator, Page, expect

from gptrelay.fake.app import Record
from tests.conftest import RunningFake, RunningRelay

REPLY_DONE = """() => !document.querySelector('#messages article[aria-busy="true"]')
                 && document.getElementById('stop').hidden"""

# Records every distinct text the last reply shows, mutation by mutation.
RECORD_STATES = """() => {
  window.__states = [];
  const list = document.getElementById('messages');
  const record = () => {
    const replies = list.querySelectorAll('article.assistant .markdown');
    const last = replies[replies.length - 1];
    const text = last ? last.textContent : '';
    if (text && window.__states[window.__states.length - 1] !== text) window.__states.push(text);
  };
  new MutationObserver(record).observe(list, {subtree: true, childList: true, characterData: true});
}"""


class ChatPage:
    def __init__(self, page: Page, relay: RunningRelay) -> None:
        self.page = page
        self.relay = relay

    @classmethod
    def open(cls, context: Any, relay: RunningRelay, key: str | None = "relay") -> ChatPage:
        """Opens the page; with ``key`` (default: the relay's) already kept in the browser."""
        stored = relay.key if key == "relay" else key
        if stored is not None:
            init_storage(context, f"if (!localStorage.getItem('gptrelay:key')) "
                                  f"localStorage.setItem('gptrelay:key', {json.dumps(stored)});")
        page = context.new_page()
        page.goto(relay.url + "/")
        return cls(page, relay)

    # -- things on the page ------------------------------------------------------------

    @property
    def message_box(self) -> Locator:
        return self.page.get_by_role("textbox", name="Message", exact=True)

    def button(self, name: str) -> Locator:
        return self.page.get_by_role("button", name=name, exact=True)

    @property
    def articles(self) -> Locator:
        return self.page.locator("#messages").get_by_role("article")

    @property
    def last_reply(self) -> Locator:
        return self.page.locator("#messages article.assistant").last

    @property
    def status(self) -> Locator:
        return self.page.get_by_role("status")

    def reply_text(self) -> str:
        return self.last_reply.locator(".markdown").inner_text()

    # -- doing things ------------------------------------------------------------------

    def send(self, text: str, wait: bool = True) -> None:
        self.message_box.fill(text)
        self.message_box.press("Enter")
        if wait:
            self.wait_reply()

    def wait_reply(self, timeout: float = 15_000) -> None:
        self.page.wait_for_function(REPLY_DONE, timeout=timeout)

    def record_states(self) -> None:
        self.page.evaluate(RECORD_STATES)

    def states(self) -> list[str]:
        result: list[str] = self.page.evaluate("() => window.__states")
        return result

    def stored_conversations(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.page.evaluate("""() => Object.keys(localStorage)
            .filter(k => k.startsWith('gptrelay:conversation:'))
            .map(k => JSON.parse(localStorage.getItem(k)))""")
        return result

    def expect_messages(self, texts: list[str]) -> None:
        expect(self.articles).to_have_count(len(texts))
        for n, text in enumerate(texts):
            expect(self.articles.nth(n)).to_contain_text(text)


def init_storage(context: Any, script: str) -> None:
    """Runs ``script`` before the page's own scripts, on pages that have a localStorage."""
    context.add_init_script(f"if (location.protocol.startsWith('http')) {{ {script} }}")


def chat_requests(fake: RunningFake) -> list[Record]:
    return [r for r in fake.fake.log if r.path == "/v1/chat/completions"]


def wait_for(predicate: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.01)
