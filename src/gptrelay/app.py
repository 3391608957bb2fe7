"""``create_app(settings)``: the relay as an aiohttp application.

One middleware is the front door: it answers CORS preflights, checks the
access key, and is the one place a ``RelayError`` becomes a response.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

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


def front_door(cors: Cors, keys: AccessKeys) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
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

    return middleware


def _http_error(request: web.Request, error: web.HTTPException) -> RelayError:
    """aiohttp's own 404 and 405, told in the endpoint's shape."""
    relay_error = RelayError(f"{error.reason}: {request.method} {request.path}")
    relay_error.status = error.status
    relay_error.type = "invalid_request_error"
    return relay_error


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
    app = web.Application(client_max_size=settings.max_body_size,
                          middlewares=[front_door(cors, AccessKeys(settings.access_keys))])
    cors.install(app)
    app[SETTINGS] = settings
    app[PAGE] = pages.page_html(settings.default_model)
    app.cleanup_ctx.append(_upstream)
    app.router.add_get("/", pages.index)
    app.router.add_get("/healthz", pages.healthz)
    app.router.add_get("/static/{name:.+}", pages.static)
    app.router.add_post("/chat", chat)
    app.router.add_post("/chatgpt", chatgpt)
    app.router.add_route("*", "/v1/{path:.*}", gateway)
    return app
