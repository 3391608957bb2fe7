"""``GET /admin``: the admin page, served like the chat page, and only when ADMIN_KEY is set."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx

from gptrelay.routes.pages import STATIC
from tests.conftest import RunningRelay


def test_the_page_is_served_with_the_chat_pages_policy(admin_relay: RunningRelay) -> None:
    response = httpx.get(f"{admin_relay.url}/admin")  # no key: the page holds nothing, it asks for one
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert httpx.head(f"{admin_relay.url}/admin").status_code == 200


def test_the_page_loads_its_files_from_the_relay_alone(admin_relay: RunningRelay) -> None:
    page = httpx.get(f"{admin_relay.url}/admin").text
    files = [name for name in re.findall(r'(?:src|href)="([^"]+)"', page) if not name.startswith("#")]
    assert files and all(name.startswith("/static/") for name in files), files
    for name in files:
        assert httpx.get(f"{admin_relay.url}{name}").status_code == 200, name


def test_without_admin_key_there_is_no_admin_page(relay: Callable[..., RunningRelay], tmp_path: Path) -> None:
    r = relay(database_url=f"sqlite:///{tmp_path}/relay.db")
    response = httpx.get(f"{r.url}/admin", headers=r.auth)
    assert response.status_code == 404 and response.json()["error"]["message"] == "Not Found: GET /admin"


def test_pages_are_not_served_as_files_without_their_policy(admin_relay: RunningRelay) -> None:
    """``/static/admin.html`` would be the page without its Content-Security-Policy header."""
    for name in ("admin.html", "index.html"):
        assert httpx.get(f"{admin_relay.url}/static/{name}").status_code == 404


def test_the_page_was_built_into_the_package() -> None:
    assert (STATIC / "admin.html").is_file(), "frontend/admin.html was not built: npm --prefix frontend run build"
