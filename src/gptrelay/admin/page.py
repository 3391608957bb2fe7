"""``GET /admin``: the admin page (keys and usage, with charts), served like the chat page.

The page is the same for everyone and holds nothing: it asks for the admin key
and sends it with each call to the admin API (``gptrelay.admin.api``), which
checks it. Without ``ADMIN_KEY`` the page, like the API, answers 404.
"""

from __future__ import annotations

from functools import cache

from aiohttp import web

from gptrelay.routes.pages import PAGE_HEADERS, STATIC
from gptrelay.state import SETTINGS

PLACEHOLDER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gptrelay admin</title></head>
<body><h1>gptrelay admin</h1>
<p>The admin page was not built into this installation (it needs Node.js and npm when the
package is installed). The admin API works: its description is at
<code>/admin/api/openapi.json</code>.</p>
</body></html>
"""


@cache
def admin_html() -> str:
    """The built page, read once."""
    page = STATIC / "admin.html"
    return page.read_text("utf-8") if page.is_file() else PLACEHOLDER


async def admin_page(request: web.Request) -> web.Response:
    if request.app[SETTINGS].admin_key is None:
        raise web.HTTPNotFound()
    return web.Response(text=admin_html(), content_type="text/html", charset="utf-8", headers=PAGE_HEADERS)
