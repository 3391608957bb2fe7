"""Browser fixtures: Debian's chromium, driven by Playwright, against a real relay.

Every page is watched: a request to any host but this machine, an uncaught
JavaScript error or a Content-Security-Policy violation fails the test.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian chromium not installed: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield chromium
        chromium.close()


def is_local(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about", "chrome-error"):
        return True
    return parts.hostname in LOCAL_HOSTS or f"[{parts.hostname}]" in LOCAL_HOSTS


@dataclass
class Watch:
    """What a browser context did that it must not do."""

    foreign: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    csp: list[str] = field(default_factory=list)

    def check(self) -> None:
        assert not self.foreign, f"requests left this machine: {self.foreign}"
        assert not self.errors, f"uncaught errors in the page: {self.errors}"
        assert not self.csp, f"Content-Security-Policy violations: {self.csp}"


@pytest.fixture
def new_context(browser: Any) -> Iterator[Callable[..., Any]]:
    """A factory of watched browser contexts: ``new_context(locale="zh-CN", viewport=…)``."""
    contexts: list[tuple[Any, Watch]] = []

    def make(**options: Any) -> Any:
        options.setdefault("locale", "en-US")
        options.setdefault("viewport", {"width": 1280, "height": 860})
        options.setdefault("accept_downloads", True)
        context = browser.new_context(**options)
        context.set_default_timeout(15_000)
        watch = Watch()

        def refuse(route: Any) -> None:
            watch.foreign.append(route.request.url)
            route.abort("blockedbyclient")

        context.route(lambda url: not is_local(url), refuse)
        context.on("request", lambda request: None if is_local(request.url)
                   else watch.foreign.append(request.url))

        def on_page(page: Any) -> None:
            page.on("pageerror", lambda error: watch.errors.append(str(error)))
            page.on("console", lambda message: watch.csp.append(message.text)
                    if "Content Security Policy" in message.text else None)

        context.on("page", on_page)
        context.watch = watch
        contexts.append((context, watch))
        return context

    yield make
    for context, _ in contexts:
        context.close()
    for _, watch in contexts:
        watch.check()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
