"""The chat page at GET /, in Debian's chromium, against a real relay and the fake upstream."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from gptrelay.fake import replies
from tests.browser.chat_page import ChatPage, chat_requests, init_storage, wait_for
from tests.conftest import RunningFake, RunningRelay

Relay = Callable[..., RunningRelay]
Context = Callable[..., Any]
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshot.png"


def test_reply_grows_piece_by_piece_and_ends_as_the_upstream_wrote_it(
        relay: Relay, new_context: Context) -> None:
    chat = ChatPage.open(new_context(), relay())
    chat.record_states()
    chat.send("/scenario chinese interval_ms=40")

    states = chat.states()
    assert len(states) >= 5, states  # a typewriter, not one final paint
    assert states[-1] == replies.CHINESE
    assert all(replies.CHINESE.startswith(state) for state in states), states
    assert chat.reply_text() == replies.CHINESE
    stored = chat.stored_conversations()[0]["messages"]
    assert [m["content"] for m in stored] == ["/scenario chinese interval_ms=40", replies.CHINESE]


def test_markdown_renders_code_tables_and_math(relay: Relay, new_context: Context) -> None:
    chat = ChatPage.open(new_context(), relay())
    # While the reply streams: blocks already shown are updated in place, never rebuilt
    # (no flicker), and no half-written formula is ever handed to KaTeX.
    chat.page.evaluate("""() => {
      window.__rebuilt = []; window.__katexErrors = 0;
      new MutationObserver((mutations) => {
        for (const m of mutations) for (const node of m.removedNodes)
          if (node.nodeType === 1 && /^(H1|PRE|UL)$/.test(node.tagName)) window.__rebuilt.push(node.tagName);
        window.__katexErrors += document.querySelectorAll('#messages .katex-error').length;
      }).observe(document.getElementById('messages'), {subtree: true, childList: true, characterData: true});
    }""")
    chat.send("/scenario markdown interval_ms=15")
    assert chat.page.evaluate("() => window.__rebuilt") == []
    assert chat.page.evaluate("() => window.__katexErrors") == 0
    reply = chat.last_reply

    expect(reply.get_by_role("heading", name="A heading")).to_be_visible()
    code = reply.locator("pre code.hljs.language-python")
    expect(code).to_contain_text('def greet(name: str) -> str:')
    expect(code.locator(".hljs-keyword").first).to_have_text("def")
    expect(reply.get_by_role("button", name="Copy code")).to_be_visible()
    table = reply.get_by_role("table")
    expect(table.get_by_role("columnheader")).to_have_text(["name", "value"])
    expect(table.get_by_role("row")).to_have_count(3)
    expect(reply.get_by_role("listitem")).to_have_text(["one", "two"])
    expect(reply.locator(".math-inline .katex")).to_have_count(1)
    expect(reply.locator(".math-block .katex-display")).to_have_count(1)
    assert "$" not in chat.reply_text()
    # KaTeX's fonts come from the relay.
    fonts = chat.page.evaluate("""() => performance.getEntriesByType('resource')
        .map(e => e.name).filter(n => /KaTeX_.*\\.woff2$/.test(n))""")
    assert fonts and all(f.startswith(chat.relay.url + "/static/") for f in fonts), fonts


def test_html_and_javascript_in_a_reply_stay_inert(relay: Relay, new_context: Context) -> None:
    chat = ChatPage.open(new_context(), relay())
    chat.send("/scenario xss")
    reply = chat.last_reply
    expect(reply).to_contain_text("done.")

    assert chat.page.evaluate("() => window.__xss") is None
    markdown = reply.locator(".markdown")
    for selector in ("script", "img", "svg", "iframe", "[onerror]", "[onload]", "a[href^='javascript']"):
        expect(markdown.locator(selector)).to_have_count(0)
    expect(markdown).to_contain_text("<script>window.__xss=2</script>")  # shown as text
    for link in markdown.get_by_role("link").all():
        href = link.get_attribute("href")
        assert href is None or not href.lower().startswith("javascript"), href
    # Clicking what looks like a link does nothing either.
    markdown.get_by_text("a link").click()
    assert chat.page.evaluate("() => window.__xss") is None


def test_stop_aborts_and_the_upstream_connection_closes_within_a_second(
        relay: Relay, fake_upstream: RunningFake, new_context: Context) -> None:
    chat = ChatPage.open(new_context(), relay())
    chat.send("/scenario demo interval_ms=200", wait=False)
    expect(chat.status).to_have_text("The assistant started replying.")
    expect(chat.last_reply.locator(".markdown")).not_to_be_empty()

    stop = chat.button("Stop")
    expect(stop).to_be_visible()
    expect(chat.button("Send")).to_be_hidden()
    clicked = time.monotonic()
    stop.click()

    record = chat_requests(fake_upstream)[-1]
    assert wait_for(lambda: record.disconnected is not None, timeout=3), "the upstream never saw a disconnect"
    assert record.disconnected is not None and record.disconnected - clicked < 1.0
    assert record.finished is None
    expect(chat.status).to_have_text("The reply was stopped.")
    expect(chat.button("Send")).to_be_visible()
    expect(chat.last_reply).to_contain_text("Stopped.")
    partial = chat.stored_conversations()[0]["messages"][1]
    assert partial["stopped"] is True and partial["content"]


def test_a_reply_cut_for_length_is_continued_into_one_reply(
        relay: Relay, fake_upstream: RunningFake, new_context: Context) -> None:
    chat = ChatPage.open(new_context(), relay())
    chat.send("/scenario long cut=100")

    expect(chat.articles).to_have_count(2)  # one question, one reply
    assert chat.reply_text() == replies.LONG
    requests = chat_requests(fake_upstream)
    assert len(requests) == 3
    continued = requests[-1].body["messages"]
    assert [m["role"] for m in continued] == ["user", "assistant", "user"]
    assert replies.LONG.startswith(continued[1]["content"])
    stored = chat.stored_conversations()[0]["messages"]
    assert [m["role"] for m in stored] == ["user", "assistant"]  # the "continue" turns stay hidden
    assert stored[1]["content"] == replies.LONG and stored[1]["finish"] == "stop"


def test_a_reply_still_cut_after_the_allowed_rounds_offers_continue(
        relay: Relay, fake_upstream: RunningFake, new_context: Context) -> None:
    context = new_context()
    init_storage(context, "localStorage.setItem('gptrelay:settings', JSON.stringify({continueRounds: 1}))")
    chat = ChatPage.open(context, relay())
    chat.send("/scenario long cut=60")
    assert len(chat_requests(fake_upstream)) == 2
    expect(chat.last_reply).to_contain_text("length limit")

    chat.last_reply.get_by_role("button", name="Continue").click()
    chat.wait_reply()
    assert len(chat_requests(fake_upstream)) == 4
    expect(chat.articles).to_have_count(2)
    stored = chat.stored_conversations()[0]["messages"][1]
    assert replies.LONG.startswith(stored["content"]) and len(stored["content"]) > 200


def test_history_survives_a_reload_and_export_then_import_gives_it_back(
        relay: Relay, new_context: Context, tmp_path: Path) -> None:
    chat = ChatPage.open(new_context(), relay())
    chat.send("/scenario chinese")
    chat.send("/scenario markdown")
    chat.page.get_by_role("button", name="System prompt").click()
    chat.page.get_by_role("textbox", name="System prompt").fill("Answer briefly.")
    texts = ["/scenario chinese", replies.CHINESE, "/scenario markdown", "A heading"]
    chat.expect_messages(texts)

    chat.page.reload()
    chat.expect_messages(texts)
    (original,) = chat.stored_conversations()
    assert original["system"] == "Answer briefly."
    nav = chat.page.get_by_role("navigation", name="Conversations")
    expect(nav.get_by_role("button", name="/scenario chinese", exact=True)).to_be_visible()

    exported: dict[str, Path] = {}
    for kind, label in (("json", "Export as JSON"), ("md", "Export as Markdown")):
        chat.page.get_by_role("button", name="Export", exact=True).click()
        with chat.page.expect_download() as download:
            chat.page.get_by_role("button", name=label).click()
        exported[kind] = tmp_path / download.value.suggested_filename
        download.value.save_as(exported[kind])
    assert json.loads(exported["json"].read_text("utf-8"))["conversation"]["messages"] == original["messages"]
    assert replies.CHINESE in exported["md"].read_text("utf-8")

    # Delete it, then import each export: the same conversation comes back.
    chat.page.get_by_role("button", name="Delete “/scenario chinese”").click()
    chat.page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(chat.articles).to_have_count(0)
    assert chat.stored_conversations() == []
    for kind in ("json", "md"):
        chat.page.set_input_files("#import-file", str(exported[kind]))
        chat.expect_messages(texts)
    imported = chat.stored_conversations()
    assert len(imported) == 2
    for conversation in imported:
        assert [(m["role"], m["content"]) for m in conversation["messages"]] == \
            [(m["role"], m["content"]) for m in original["messages"]]
        assert conversation["system"] == "Answer briefly."
    by_json = next(c for c in imported if c["id"] == original["id"])
    assert by_json == original


def test_conversations_switch_rename_and_start_anew(relay: Relay, new_context: Context) -> None:
    chat = ChatPage.open(new_context(), relay())
    chat.send("/scenario chinese")
    chat.button("New chat").click()
    expect(chat.articles).to_have_count(0)
    chat.send("/scenario demo")
    nav = chat.page.get_by_role("navigation", name="Conversations")
    nav.get_by_role("button", name="/scenario chinese", exact=True).click()
    chat.expect_messages(["/scenario chinese", replies.CHINESE])

    nav.get_by_role("button", name="Rename “/scenario chinese”").click()
    title = nav.get_by_role("textbox", name="Conversation title")
    title.fill("Greetings 你好")
    title.press("Enter")
    expect(nav.get_by_role("button", name="Greetings 你好", exact=True)).to_be_visible()
    expect(chat.page.get_by_role("heading", level=1)).to_have_text("Greetings 你好")
    chat.page.reload()
    expect(nav.get_by_role("button", name="Greetings 你好", exact=True)).to_have_attribute("aria-current", "page")


def test_a_wrong_access_key_gets_a_clear_message(relay: Relay, new_context: Context) -> None:
    running = relay()
    chat = ChatPage.open(new_context(), running, key=None)
    dialog = chat.page.get_by_role("dialog", name="Access key")
    expect(dialog).to_be_visible()
    key_box = dialog.get_by_role("textbox", name="Access key")
    key_box.fill("not-the-key")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.get_by_role("alert")).to_contain_text("rejected this access key")
    key_box.fill(running.key)
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    expect(chat.page.get_by_role("combobox", name="Model").get_by_role("option")).to_contain_text(["gpt-4.1", "gpt-4o"])

    # A key that goes bad later: the reply says so, with a way to fix it.
    chat.page.evaluate("() => localStorage.setItem('gptrelay:key', 'stale-key')")
    chat.page.reload()
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("alert")).to_contain_text("saved access key was rejected")
    dialog.get_by_role("button", name="Cancel").click()
    chat.send("hello")
    reply = chat.last_reply
    expect(reply).to_contain_text("rejected the access key (401)")
    expect(reply).to_contain_text("wrong access key")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Cancel").click()
    expect(reply.get_by_role("button", name="Enter access key")).to_be_visible()
    expect(reply.get_by_role("button", name="Retry")).to_be_visible()


def test_the_upstream_refusing_the_relays_own_key_is_not_blamed_on_the_access_key(
        relay: Relay, new_context: Context) -> None:
    chat = ChatPage.open(new_context(), relay(openai_api_key="sk-not-the-upstream-key"))
    chat.send("hello")
    reply = chat.last_reply
    expect(reply).to_contain_text("the upstream refused the relay's own API key")
    expect(reply).not_to_contain_text("sk-not")
    expect(chat.page.get_by_role("dialog", name="Access key")).to_be_hidden()
    expect(reply.get_by_role("button", name="Enter access key")).to_have_count(0)
    expect(reply.get_by_role("button", name="Retry")).to_be_visible()


def test_errors_show_in_the_conversation_with_a_retry(
        relay: Relay, fake_upstream: RunningFake, new_context: Context) -> None:
    chat = ChatPage.open(new_context(), relay())
    chat.send("/scenario error status=429")
    reply = chat.last_reply
    expect(reply).to_contain_text("Rate limit reached")
    expect(chat.status).to_contain_text("The reply failed")

    chat.send("/scenario error-in-stream")
    reply = chat.last_reply
    expect(reply.locator(".message-error")).to_be_visible()
    before = len(chat_requests(fake_upstream))
    reply.get_by_role("button", name="Retry").click()
    chat.wait_reply()
    assert len(chat_requests(fake_upstream)) == before + 1
    expect(chat.articles).to_have_count(4)


def test_regenerate_asks_the_last_question_again(
        relay: Relay, fake_upstream: RunningFake, new_context: Context) -> None:
    chat = ChatPage.open(new_context(), relay())
    chat.send("/scenario chinese")
    expect(chat.button("Regenerate")).to_have_count(1)
    chat.button("Regenerate").click()
    chat.wait_reply()
    requests = chat_requests(fake_upstream)
    assert len(requests) == 2
    assert requests[0].body["messages"] == requests[1].body["messages"]
    chat.expect_messages(["/scenario chinese", replies.CHINESE])


def test_model_picker_lists_the_relays_models_and_defaults_to_its_model(
        relay: Relay, fake_upstream: RunningFake, new_context: Context) -> None:
    chat = ChatPage.open(new_context(), relay(default_model="gpt-4.1"))
    picker = chat.page.get_by_role("combobox", name="Model")
    expect(picker).to_have_value("gpt-4.1")
    expect(picker.get_by_role("option")).to_have_text(["gpt-4.1", "gpt-4o", "gpt-4o-mini", "o4-mini"])
    chat.send("/scenario chinese")
    picker.select_option("o4-mini")
    chat.send("/scenario chinese")
    assert [r.body["model"] for r in chat_requests(fake_upstream)] == ["gpt-4.1", "o4-mini"]


def test_controls_are_named_and_reachable_by_keyboard(relay: Relay, new_context: Context) -> None:
    chat = ChatPage.open(new_context(), relay())
    page = chat.page
    for name in ("Send", "New chat"):
        expect(chat.button(name)).to_be_visible()
    expect(chat.message_box).to_be_focused()

    # Enter sends, Shift+Enter starts a new line.
    chat.message_box.press_sequentially("line one")
    chat.message_box.press("Shift+Enter")
    chat.message_box.press_sequentially("/scenario chinese")
    expect(chat.articles).to_have_count(0)
    chat.message_box.press("Enter")
    chat.wait_reply()
    expect(chat.articles).to_have_count(2)
    assert chat.articles.nth(0).locator(".bubble").inner_text() == "line one\n/scenario chinese"
    expect(chat.articles.nth(0)).to_have_attribute("aria-label", "You")
    expect(chat.articles.nth(1)).to_have_attribute("aria-label", "Assistant")
    expect(chat.status).to_have_text("The assistant finished replying.")
    expect(chat.button("Regenerate")).to_be_visible()

    # Every visible control has an accessible name.
    unnamed = page.evaluate("""() => [...document.querySelectorAll('button, input, select, textarea, a[href]')]
        .filter(el => el.offsetParent !== null || el.getClientRects().length)
        .filter(el => !(el.getAttribute('aria-label') || (el.labels && el.labels.length)
                        || el.textContent.trim() || el.title))
        .map(el => el.outerHTML.slice(0, 120))""")
    assert unnamed == []

    # Tab reaches the main controls, in a sensible order.
    page.locator("body").focus()
    reached: set[str] = set()
    for _ in range(40):
        page.keyboard.press("Tab")
        reached.add(page.evaluate("""() => { const el = document.activeElement;
            return el.getAttribute('aria-label') || (el.labels && el.labels[0] && el.labels[0].textContent)
                   || el.textContent.trim(); }"""))
    assert {"New chat", "Model", "Message", "Send", "Regenerate", "Copy", "Settings"} <= reached, reached

    # Esc stops a reply.
    chat.send("/scenario demo interval_ms=200", wait=False)
    expect(chat.button("Stop")).to_be_visible()
    expect(chat.last_reply.locator(".markdown")).not_to_be_empty()
    page.keyboard.press("Escape")
    chat.wait_reply()
    expect(chat.status).to_have_text("The reply was stopped.")


def test_chinese_interface_follows_the_browser_and_can_be_switched(
        relay: Relay, new_context: Context) -> None:
    chat = ChatPage.open(new_context(locale="zh-CN"), relay())
    page = chat.page
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.get_by_role("textbox", name="消息")).to_be_visible()
    expect(page.get_by_role("button", name="发送")).to_be_visible()
    expect(page.get_by_role("button", name="新对话")).to_be_visible()
    page.get_by_role("textbox", name="消息").fill("/scenario chinese")
    page.keyboard.press("Enter")
    chat.wait_reply()
    expect(page.get_by_role("button", name="重新生成")).to_be_visible()

    page.get_by_role("button", name="Switch to English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(chat.button("Regenerate")).to_be_visible()
    expect(chat.message_box).to_be_visible()
    page.reload()
    expect(chat.button("Send")).to_be_visible()  # the choice is kept


def seed_conversations(context: Any) -> None:
    """A few conversations, as a user of the page would have them."""
    now = int(time.time() * 1000)

    def conversation(n: int, title: str, question: str, answer: str) -> dict[str, Any]:
        return {"id": f"seed{n}", "title": title, "system": "", "model": "gpt-4o-mini",
                "created": now - n * 3_600_000, "updated": now - n * 3_600_000, "messages": [
                    {"id": f"q{n}", "role": "user", "content": question, "created": now},
                    {"id": f"a{n}", "role": "assistant", "content": answer, "created": now,
                     "finish": "stop", "error": None, "stopped": False, "model": "gpt-4o-mini"}]}

    seeds = [
        conversation(0, "A table, some Python and a formula",
                     "Show me a table, a bit of Python and a formula.", replies.MARKDOWN),
        conversation(1, "流式输出中文", "用中文打个招呼", replies.CHINESE),
        conversation(30, "Explain HTTP streaming", "Explain HTTP streaming", "It sends the body in pieces."),
    ]
    script = "".join(f"localStorage.setItem('gptrelay:conversation:{c['id']}', {json.dumps(json.dumps(c))});"
                     for c in seeds)
    init_storage(context, f"if (!localStorage.getItem('gptrelay:current')) {{ {script} "
                          "localStorage.setItem('gptrelay:current', 'seed0'); }")


def test_phone_layout_and_screenshots_in_light_and_dark(
        relay: Relay, new_context: Context, artifacts: Path) -> None:
    context = new_context(viewport={"width": 1280, "height": 900}, color_scheme="light")
    seed_conversations(context)
    chat = ChatPage.open(context, relay())
    page = chat.page
    expect(chat.articles).to_have_count(2)
    expect(chat.last_reply.locator(".katex-display")).to_be_visible()
    page.evaluate("() => document.fonts.ready")
    page.screenshot(path=str(artifacts / "chat-light.png"), animations="disabled")
    if os.environ.get("GPTRELAY_UPDATE_SCREENSHOT") == "1":
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(artifacts / "chat-light.png", DOCS_SCREENSHOT)

    page.get_by_role("button", name="Switch to dark theme").click()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    page.screenshot(path=str(artifacts / "chat-dark.png"), animations="disabled")
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")  # the choice is kept

    page.set_viewport_size({"width": 390, "height": 844})
    expect(page.get_by_role("button", name="Show conversations")).to_be_visible()
    expect(chat.message_box).to_be_visible()
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(artifacts / "chat-phone-dark.png"), animations="disabled")
    page.get_by_role("button", name="Show conversations").click()
    nav = page.get_by_role("navigation", name="Conversations")
    expect(nav).to_be_visible()
    page.screenshot(path=str(artifacts / "chat-phone-drawer.png"), animations="disabled")
    page.keyboard.press("Escape")
    expect(nav).to_be_hidden()
    for name in ("chat-light.png", "chat-dark.png", "chat-phone-dark.png"):
        assert (artifacts / name).stat().st_size > 10_000
