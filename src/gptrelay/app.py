"""``create_app(settings)``: the relay as an aiohttp application.

Every route's handler is behind the front door: it answers CORS preflights,
refuses header bytes that are not ASCII, checks the access key, watches that
the client takes its reply (``CLIENT_WRITE_TIMEOUT``), and is the one place a
``RelayError`` becomes a response. (It wraps each handler rather than being
an aiohttp middleware: a middleware chain costs two more coroutine calls per
request, on every streamed token's path.) Paths and methods with no route get
404 and 405 through the same door. ``Expect: 100-continue`` is not answered
before the door: the route answers it when it reads the body.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from gptrelay.auth.access import OPEN_PATHS, AccessKeys
from gptrelay.errors import BadRequest, RelayError, Unauthorized, UpstreamStatus, report
from gptrelay.http.bodies import BodyLimits
from gptrelay.http.cors import Cors
from gptrelay.routes import pages
from gptrelay.routes.chat import chat
from gptrelay.routes.chatgpt import chatgpt
from gptrelay.routes.gateway import gateway
from gptrelay.settings import Settings, is_loopback
from gptrelay.state import BODY_LIMITS, PAGE, SETTINGS, SWEEPER, UPSTREAM
from gptrelay.upstream.transport import Upstream
from gptrelay.watchdog import ClientWatch, Sweeper
from gptrelay.wire import frames


def render(request: web.Request, error: RelayError) -> web.Response:
    """An error as the endpoint's clients expect it: frames on /chat, OpenAI's envelope elsewhere.
    A body left unread (refused before it was read, or cut short) is not waited for: the
    connection closes after the answer."""
    headers = {"WWW-Authenticate": 'Bearer realm="gptrelay"'} if isinstance(error, Unauthorized) else {}
    if request.path == "/chat":
        headers["Content-Type"] = frames.CONTENT_TYPE
        response = web.Response(status=error.status, body=frames.error(error.message) + frames.DONE,
                                headers=headers)
    elif isinstance(error, UpstreamStatus) and error.body:
        response = web.Response(status=error.status, body=error.body,
                                headers={"Content-Type": error.content_type})
    else:
        headers["Content-Type"] = "application/json"
        response = web.Response(status=error.status, body=orjson.dumps(error.envelope()), headers=headers)
    if not request.content.is_eof():
        response.force_close()
    return response


def check_request(request: web.Request) -> None:
    """Refuse what aiohttp lets through but a relay should not: HTTP/0.9 (no headers, so no key)
    and header values that are not ASCII."""
    if request.version < (1, 0):
        raise BadRequest("HTTP/0.9 is not served: send an HTTP/1.x request")
    for _, value in request.raw_headers:
        if not value.isascii():
            raise BadRequest("a request header holds non-ASCII bytes: send header values as ASCII")


def front_door(cors: Cors, keys: AccessKeys, handler: Handler, write_timeout: float,
               public: bool = False) -> Handler:
    """``handler`` behind the preflight answer, the header and key checks, the watch on the
    client's reading (for routes that need a key) and the error rendering."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            if request.method == "OPTIONS":
                return cors.preflight(request)  # before any key check
            check_request(request)
            keys.check(request)
            if public:
                return await handler(request)
            watch = ClientWatch(request.app[SWEEPER], request, write_timeout)
            try:
                return await handler(request)
            finally:
                watch.close()
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


async def _no_early_continue(request: web.Request) -> None:
    """aiohttp would answer ``Expect: 100-continue`` before the key check; the routes answer it
    when they read the body (``gptrelay.http.bodies``)."""


async def _resources(app: web.Application) -> AsyncIterator[None]:
    """The process's one timer and its upstream connection pool (and the demo upstream)."""
    settings = app[SETTINGS]
    sweeper = Sweeper.for_limits(settings.first_byte_timeout, settings.read_timeout, settings.keepalive_interval,
                                 settings.client_body_timeout, settings.client_write_timeout)
    app[SWEEPER] = sweeper
    app[BODY_LIMITS] = BodyLimits(sweeper, settings.client_body_timeout)
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
    upstream = Upstream(settings, sweeper, base_url)
    await upstream.start()
    app[UPSTREAM] = upstream
    yield
    await upstream.close()
    sweeper.close()
    if demo_runner is not None:
        await demo_runner.cleanup()


def create_app(settings: Settings) -> web.Application:
    cors = Cors(settings.cors_origins)
    keys = AccessKeys(settings.access_keys, loopback_hosts_only=is_loopback(settings.host))
    app = web.Application(client_max_size=settings.max_body_size)
    cors.install(app)
    app[SETTINGS] = settings
    app[PAGE] = pages.page_html(settings.default_model)
    app.cleanup_ctx.append(_resources)

    def route(method: str, path: str, handler: Handler) -> None:
        public = path in OPEN_PATHS or path.startswith("/static/")
        app.router.add_route(method, path, front_door(cors, keys, handler, settings.client_write_timeout, public),
                             expect_handler=_no_early_continue)

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
