"""The admin page at GET /admin, in Debian's chromium, against a real relay: signing in, keys made,
changed and revoked, and the usage they leave, as the admin API has them."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.conftest import RunningRelay

Relay = Callable[..., RunningRelay]
Context = Callable[..., Any]
ADMIN_KEY = "browser-admin-key-0123456789"
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "admin.png"


def admin_api(relay: RunningRelay) -> httpx.Client:
    return httpx.Client(base_url=relay.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10)


def team_relay(relay: Relay, tmp_path: Path) -> RunningRelay:
    """A relay with the admin key, a key ``alice`` and some usage by it and by the owner's key."""
    r = relay(admin_key=ADMIN_KEY, database_url=f"sqlite:///{tmp_path}/relay.db")
    with admin_api(r) as admin:
        alice = admin.post("/admin/api/keys", json={"name": "alice"}).json()["key"]
    for key in (alice, alice, r.settings.authorization_key.get_secret_value()):  # type: ignore[union-attr]
        reply = httpx.post(f"{r.url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, timeout=10,
                           json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
        assert reply.status_code == 200
    return r


def signed_in(context: Any, relay: RunningRelay) -> Any:
    page = context.new_page()
    page.goto(f"{relay.url}/admin")
    page.fill("#admin-key", ADMIN_KEY)
    page.click("#sign-in")
    expect(page.locator("#keys-table")).to_be_visible()
    return page


def digits(text: str) -> int:
    return int(re.sub(r"\D", "", text))


def test_a_wrong_key_is_told_and_the_right_one_stays_for_the_tab(relay: Relay, new_context: Context,
                                                                  tmp_path: Path) -> None:
    r = team_relay(relay, tmp_path)
    page = new_context().new_page()
    page.goto(f"{r.url}/admin")
    page.fill("#admin-key", "not-the-admin-key")
    page.click("#sign-in")
    expect(page.locator("#sign-in-error")).to_be_visible()
    expect(page.locator("#keys-table")).to_be_hidden()
    page.fill("#admin-key", ADMIN_KEY)
    page.click("#sign-in")
    expect(page.locator('#keys-table tr[data-key="alice"] .key-status')).to_have_text("active")
    page.reload()  # the key is kept for this tab (sessionStorage), not typed again
    expect(page.locator('#keys-table tr[data-key="alice"]')).to_be_visible()
    assert page.evaluate("() => localStorage.getItem('gptrelay-admin-key')") is None
    page.click("#sign-out")
    expect(page.locator("#admin-key")).to_be_visible()
    assert page.evaluate("() => sessionStorage.getItem('gptrelay-admin-key')") is None


def test_a_key_made_changed_and_revoked_on_the_page_is_so_in_the_api(relay: Relay, new_context: Context,
                                                                     tmp_path: Path, artifacts: Path) -> None:
    r = team_relay(relay, tmp_path)
    page = signed_in(new_context(), r)
    page.fill("#new-name", "bob")
    page.fill("#new-rpm", "60")
    page.fill("#new-models", "gpt-4o*")
    page.click("#create-key")
    expect(page.locator("#new-key")).to_contain_text("gr-")
    secret = (page.locator("#new-key").text_content() or page.locator("#new-key").input_value()).strip()
    assert httpx.get(f"{r.url}/v1/models", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    row = page.locator('#keys-table tr[data-key="bob"]')
    expect(row.locator(".key-status")).to_have_text("active")
    with admin_api(r) as admin:
        bob = admin.get("/admin/api/keys/bob").json()
        assert (bob["rpm"], bob["models"]) == (60, ["gpt-4o*"])

        page.fill("#new-name", "bob")  # a name taken: the API's word for it
        page.click("#create-key")
        expect(page.locator("#create-error")).to_have_text("a key named 'bob' already exists")

        row.locator('button[data-action="edit"]').click()
        expect(page.locator("#edit-dialog")).to_be_visible()
        assert page.input_value("#edit-rpm") == "60"
        page.fill("#edit-rpm", "")  # no limit
        page.fill("#edit-tpm", "1000")
        page.click("#edit-save")
        expect(page.locator("#edit-dialog")).to_be_hidden()
        bob = admin.get("/admin/api/keys/bob").json()
        assert (bob["rpm"], bob["tpm"], bob["models"]) == (None, 1000, ["gpt-4o*"])

        row.locator('button[data-action="revoke"]').click()
        page.click("#confirm-ok")
        expect(row.locator(".key-status")).to_have_text("revoked")
        assert admin.get("/admin/api/keys/bob").json()["revoked"] is True
    assert httpx.get(f"{r.url}/v1/models", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    page.screenshot(path=str(artifacts / "admin-keys.png"), full_page=True)


def test_usage_is_charted_and_totalled_as_the_api_counts_it(relay: Relay, new_context: Context,
                                                            tmp_path: Path, artifacts: Path) -> None:
    r = team_relay(relay, tmp_path)
    with admin_api(r) as admin:
        by_key = {row["key"]: row for row in admin.get("/admin/api/usage", params={"by": "key"}).json()["data"]}
        by_model = admin.get("/admin/api/usage", params={"by": "model"}).json()["data"]
    page = signed_in(new_context(), r)
    alice = page.locator('#usage-by-key tr[data-key="alice"]')
    expect(alice).to_be_visible()
    assert digits(alice.locator(".total").text_content() or "") == by_key["alice"]["total_tokens"]
    model = page.locator('#usage-by-model tr[data-model="gpt-4o-mini"]')
    assert digits(model.locator(".total").text_content() or "") == by_model[0]["total_tokens"]
    expect(page.locator("#usage-chart canvas").first).to_be_visible()
    page.screenshot(path=str(artifacts / "admin-light.png"), full_page=True, animations="disabled")
    if os.environ.get("GPTRELAY_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(artifacts / "admin-light.png", DOCS_SCREENSHOT)
    page.select_option("#usage-key", "alice")  # one key: the owner's requests leave the totals
    expect(page.locator('#usage-by-key tr[data-key="alice"]')).to_be_visible()
    expect(page.locator("#usage-by-key tbody tr")).to_have_count(1)
    page.select_option("#usage-key", label="(owner key)")  # the owner's key (AUTHORIZATION_KEY) alone
    expect(page.locator("#usage-by-key tbody tr")).to_have_count(1)
    owner = page.locator("#usage-by-key tr.owner-key")
    expect(owner.locator("th")).to_have_text("(owner key)")
    assert digits(owner.locator(".total").text_content() or "") == by_key[None]["total_tokens"]
    expect(page.locator("#total-requests dd")).to_have_text(str(by_key[None]["requests"]))
    assert digits(page.locator("#total-tokens dd").text_content() or "") == by_key[None]["total_tokens"]
    page.emulate_media(color_scheme="dark")
    page.screenshot(path=str(artifacts / "admin-usage-dark.png"), full_page=True, animations="disabled")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: the tables scroll, not the page
    # (the chart takes its new width when its ResizeObserver next reports, a frame or so later)
    page.wait_for_function("() => document.documentElement.scrollWidth <= 390", timeout=5000)
    page.screenshot(path=str(artifacts / "admin-phone-dark.png"), full_page=True, animations="disabled")


def test_the_page_speaks_chinese_to_a_chinese_browser(relay: Relay, new_context: Context, tmp_path: Path) -> None:
    r = team_relay(relay, tmp_path)
    page = new_context(locale="zh-CN").new_page()
    page.goto(f"{r.url}/admin")
    expect(page.locator("#sign-in")).to_have_text(re.compile(r"[\u4e00-\u9fff]"))
    page.click("#language")
    expect(page.locator("#sign-in")).not_to_have_text(re.compile(r"[\u4e00-\u9fff]"))


def test_the_chinese_page_tells_the_api_s_errors_in_chinese(relay: Relay, new_context: Context,
                                                             tmp_path: Path) -> None:
    r = team_relay(relay, tmp_path)
    page = new_context(locale="zh-CN").new_page()
    page.goto(f"{r.url}/admin")
    page.fill("#admin-key", "not-the-admin-key")
    page.click("#sign-in")
    expect(page.locator("#sign-in-error")).to_have_text("中转服务拒绝了这个管理密钥（401）。")
    page.fill("#admin-key", ADMIN_KEY)
    page.click("#sign-in")
    expect(page.locator("#keys-table")).to_be_visible()
    page.fill("#new-name", "alice")  # a name taken (409): no English
    page.click("#create-key")
    expect(page.locator("#create-error")).to_have_text("已有同名的密钥（409）：请换一个名称。")
    page.fill("#new-name", "a b")  # a malformed name (422): the API's message tells which value
    page.click("#create-key")
    refused = re.compile(r"^中转服务不接受填写的内容（422）：bad key name 'a b'")
    expect(page.locator("#create-error")).to_have_text(refused)
    # the owner's key is offered in the key filter, in Chinese too
    page.select_option("#usage-key", label="（所有者密钥）")
    expect(page.locator("#usage-by-key tbody tr.owner-key")).to_have_count(1)
    expect(page.locator("#usage-by-key tbody tr")).to_have_count(1)
    # the relay out of reach: the browser's own words for it ("Failed to fetch") tell nothing more
    page.route("**/admin/api/**", lambda route: route.abort())
    page.click("#keys-refresh")
    expect(page.locator("#keys-error")).to_have_text("无法连接中转服务：请检查网络，以及中转服务是否正在运行。")
