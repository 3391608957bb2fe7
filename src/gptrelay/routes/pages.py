"""``GET /`` (the chat page), ``/static/…`` (the pages' files) and ``GET /healthz``."""

from __future__ import annotations

import html
from pathlib import Path

from aiohttp import web

from gptrelay.state import PAGE

STATIC = Path(__file__).resolve().parent.parent / "static"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)

# A page's headers: its policy allows nothing from another host (gptrelay.admin.page's too).
PAGE_HEADERS = {"Content-Security-Policy": CSP, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer"}

PLACEHOLDER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gptrelay</title></head>
<body><h1>gptrelay</h1>
<p>The relay is running. The chat page was not built into this installation
(it needs Node.js and npm when the package is installed).</p>
<p>Endpoints: <code>POST /chat</code>, <code>POST /chatgpt</code>, <code>/v1/…</code>.</p>
</body></html>
"""


def page_html(default_model: str) -> str:
    index = STATIC / "index.html"
    text = index.read_text("utf-8") if index.is_file() else PLACEHOLDER
    return text.replace("__GPTRELAY_DEFAULT_MODEL__", html.escape(default_model, quote=True))


async def index(request: web.Request) -> web.Response:
    return web.Response(text=request.app[PAGE], content_type="text/html", charset="utf-8", headers=PAGE_HEADERS)


async def static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if len(name) > 255 or "\x00" in name or name.endswith(".html"):  # no file of the pages' is named so;
        raise web.HTTPNotFound()  # a page itself is served at its own path, with its policy
    try:
        path = (STATIC / name).resolve()
        found = path.is_relative_to(STATIC) and path.is_file()
    except (OSError, ValueError):
        found = False
    if not found:
        raise web.HTTPNotFound()
    hashed = name.startswith("assets/")  # Vite's content-hashed files never change
    cache = "public, max-age=31536000, immutable" if hashed else "no-cache"
    return web.FileResponse(path, headers={"Cache-Control": cache, "X-Content-Type-Options": "nosniff"})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})

