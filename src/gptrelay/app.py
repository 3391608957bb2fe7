"""``create_app(settings)``: the relay as an aiohttp application.

Every route's handler is behind the front door: it answers CORS preflights,
checks the access key, and is the one place a ``RelayError`` becomes a response.
(It wraps each handler rather than being an aiohttp middleware: a middleware
chain costs two more coroutine calls per request, on every streamed token's path.)
Paths and methods with no route get 404 and 405 through the same door.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from gptrelay import frames
from gptrelay.access import AccessKeys
from gptrelay.cors import Cors
from gptrelay.errors import RelayError, Unauthorized, UpstreamStatus, report
from gptrelay.routes import pages
from gptrelay.routes.chat import chat
from gptrelay.routes.chatgpt import chatgpt
from gptrelay.routes.gateway import gateway
from gptrelay.settings import Settings
from gptrelay.state import PAGE, SETTINGS, UPSTREAM
from gptrelay.upstream import Upstream


def render(request: web.Request, error: RelayError) -> web.Response:
    """An error as the endpoint's clients expect it: frames on /chat, OpenAI's envelope elsewhere."""
    headers = {"WWW-Authenticate": 'Bearer realm="gptrelay"'} if isinstance(error, Unauthorized) else {}
    if request.path == "/chat":
        headers["Content-Type"] = frames.CONTENT_TYPE
        return web.Response(status=error.status, body=frames.error(error.message) + frames.DONE,
                            headers=headers)
    if isinstance(error, UpstreamStatus) and error.body:
        return web.Response(status=error.status, body=error.body,
                            headers={"Content-Type": error.content_type})
    headers["Content-Type"] = "application/json"
    return web.Response(status=error.status, body=orjson.dumps(error.envelope()), headers=headers)


def front_door(cors: Cors, keys: AccessKeys, handler: Handler) -> Handler:
    """``handler`` behind the preflight answer, the key check and the error rendering."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            if request.method == "OPTIONS":
                return cors.preflight(request)  # before any key check
            keys.check(request)
            return await handler(request)
        except RelayError as error:
            report(error, request.method, request.path)
            return render(request, error)
        except web.HTTPException as error:
            if error.status < 400:
                raise
            return render(request, _http_error(request, error))
        except ConnectionResetError:
            # The client went away while we wrote to it: nothing to answer, nothing to log
            # (aiohttp drops this response quietly when it cannot be sent).
            return web.Response(status=499)

    return guarded


def _http_error(request: web.Request, error: web.HTTPException) -> RelayError:
    """An HTTP error raised in a handler (404, 405), told in the endpoint's shape."""
    relay_error = RelayError(f"{error.reason}: {request.method} {request.path}")
    relay_error.status = error.status
    relay_error.type = "invalid_request_error"
    return relay_error


async def _not_found(request: web.Request) -> web.StreamResponse:
    raise web.HTTPNotFound()


async def _method_not_allowed(request: web.Request) -> web.StreamResponse:
    raise web.HTTPMethodNotAllowed(request.method, [])


async def _upstream(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    base_url = None
    demo_runner = None
    if settings.demo:
        from gptrelay.fake import FakeUpstream

        demo_runner = web.AppRunner(FakeUpstream(pace_ms=30, log=False).app(), handler_cancellation=True,
                                    access_log=None)
        await demo_runner.setup()
        site = web.TCPSite(demo_runner, "127.0.0.1", 0)
        await site.start()
        base_url = f"http://127.0.0.1:{demo_runner.addresses[0][1]}/v1"
    upstream = Upstream(settings, base_url)
    await upstream.start()
    app[UPSTREAM] = upstream
    yield
    await upstream.close()
    if demo_runner is not None:
        await demo_runner.cleanup()


def create_app(settings: Settings) -> web.Application:
    cors = Cors(settings.cors_origins)
    keys = AccessKeys(settings.access_keys)
    app = web.Application(client_max_size=settings.max_body_size)
    cors.install(app)
    app[SETTINGS] = settings
    app[PAGE] = pages.page_html(settings.default_model)
    app.cleanup_ctx.append(_upstream)

    def route(method: str, path: str, handler: Handler) -> None:
        app.router.add_route(method, path, front_door(cors, keys, handler))

    for path, methods, handler in (
        ("/", ("GET", "HEAD"), pages.index),
        ("/healthz", ("GET", "HEAD"), pages.healthz),
        ("/static/{name:.+}", ("GET", "HEAD"), pages.static),
        ("/chat", ("POST",), chat),
        ("/chatgpt", ("POST",), chatgpt),
    ):
        for method in methods:
            route(method, path, handler)
        route("*", path, _method_not_allowed)  # any other method, OPTIONS included (a preflight)
    route("*", "/v1/{path:.*}", gateway)
    route("*", "/{tail:.*}", _not_found)
    return app
