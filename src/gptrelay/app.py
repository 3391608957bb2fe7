"""``create_app(settings)``: the relay as an aiohttp application.

The route table says, for each path, its methods, its handler, whether it
needs a key and how its errors are told; each route is put behind the front
door (``gptrelay.door``). Paths and methods with no route get 404 and 405
through the same door. ``Expect: 100-continue`` is not answered before the
door: the route answers it when it reads the body.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator

from aiohttp import web

from gptrelay.admin import admin_routes
from gptrelay.auth.access import AccessKeys
from gptrelay.auth.addresses import Addresses, parse_networks
from gptrelay.auth.keycache import KeyCache
from gptrelay.auth.keys import KeyStore
from gptrelay.db.engine import connected
from gptrelay.db.schema import check_writable, migrate
from gptrelay.door import Route, front_door
from gptrelay.errors import RefusedStart
from gptrelay.http.bodies import BodyLimits
from gptrelay.http.connection import open_connections
from gptrelay.http.cors import Cors
from gptrelay.limits import limiter_for
from gptrelay.limits.admission import Admission
from gptrelay.observe import endpoint, ids
from gptrelay.observe.endpoint import METRICS
from gptrelay.observe.gauges import Gauges
from gptrelay.observe.metrics import Metrics
from gptrelay.observe.tally import Tally
from gptrelay.routes import pages
from gptrelay.routes.chat import chat
from gptrelay.routes.chatgpt import chatgpt
from gptrelay.routes.gateway import gateway
from gptrelay.settings import CONFIG_FILE, Settings, is_loopback
from gptrelay.state import ACCESS_KEYS, ACCOUNTING, ADMISSION, BODY_LIMITS, KEY_STORE, PAGE, SETTINGS, SWEEPER, UPSTREAM
from gptrelay.upstream.config import ConfigError, load
from gptrelay.upstream.pool import Pool
from gptrelay.usage.accounting import Accounting
from gptrelay.usage.quotas import QuotaBook
from gptrelay.usage.writer import UsageWriter
from gptrelay.watchdog import Sweeper

log = logging.getLogger("gptrelay")


async def _not_found(request: web.Request) -> web.StreamResponse:
    raise web.HTTPNotFound()


async def _method_not_allowed(request: web.Request) -> web.StreamResponse:
    raise web.HTTPMethodNotAllowed(request.method, [])


async def _no_early_continue(request: web.Request) -> None:
    """aiohttp would answer ``Expect: 100-continue`` before the key check; the routes answer it
    when they read the body (``gptrelay.http.bodies``)."""


async def _storage(app: web.Application) -> AsyncIterator[None]:
    """The database, migrated and taking writes; its access keys cached in memory for the key check; the usage
    writer and the quota book. Whatever was opened is closed, on a failed start too."""
    settings = app[SETTINGS]
    keys = app[ACCESS_KEYS]
    await migrate(settings.database_url)
    async with contextlib.AsyncExitStack() as opened:
        engine = await connected(settings.database_url, serving=True)
        opened.push_async_callback(engine.dispose)
        await check_writable(engine, settings.database_url)
        store = app[KEY_STORE] = KeyStore(engine)
        cache = KeyCache(store)
        await cache.start()
        opened.push_async_callback(cache.close)
        quotas = QuotaBook(engine)
        await quotas.start()
        opened.push_async_callback(quotas.close)
        writer = UsageWriter(engine)  # its own connections (usage.sinks), opened now
        writer.on_commit = app[METRICS].usage_commit.observe
        await writer.start()
        opened.push_async_callback(writer.close)  # first to close: commits what is pending
        keys.named = cache
        app[ACCOUNTING].attach(writer)
        app[ADMISSION].quotas = quotas
        if not keys.required and not is_loopback(settings.host) and not settings.allow_no_auth:
            raise RefusedStart(f"refusing to serve on {settings.host} without an access key: set "
                               "AUTHORIZATION_KEY or make a key with `gptrelay keys create` (or pass "
                               "--allow-no-auth if something else guards this relay)")
        try:
            yield
        finally:
            app[ACCOUNTING].attach(None)
            keys.named = None


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
    config = load(settings.config_file) if settings.config_file is not None and not settings.demo else None
    upstream = Pool(settings, sweeper, config, base_url)
    await upstream.start()
    app[UPSTREAM] = upstream
    admission = app[ADMISSION]
    admission.limiter = limiter_for(settings.redis_url, settings.redis_fail_open)
    gauges = Gauges(app[METRICS], app[ACCOUNTING], upstream, open_connections)
    app[METRICS].sample = gauges.sample
    if app[METRICS].multiprocess:
        gauges.start()  # the other workers' scrapes read this one's values from its files
    yield
    gauges.close()
    await admission.limiter.close()
    await upstream.close()
    sweeper.close()
    if demo_runner is not None:
        await demo_runner.cleanup()


async def reread(app: web.Application) -> None:
    """``SIGHUP``: read the upstreams' file again and serve it, without cutting a reply in progress.
    A file with mistakes is not used: they are logged, one a line, and the upstreams stay as they were."""
    settings = app[SETTINGS]
    path = settings.config_file or (os.path.abspath(CONFIG_FILE) if os.path.isfile(CONFIG_FILE) else None)
    if settings.demo or path is None:
        log.warning("SIGHUP: there is no %s to read again; the upstream stays as it was", CONFIG_FILE)
        return
    try:
        config = load(path)
    except ConfigError as error:
        log.warning("SIGHUP: %s is not used, the upstreams stay as they were:", path)
        for line in error.lines:
            log.warning("  %s", line)
        return
    await app[UPSTREAM].reload(config)
    log.warning("SIGHUP: upstreams read again from %s: %s", path,
                ", ".join(upstream.name for upstream in config.upstreams))


ROUTES = (
    Route("/", ("GET", "HEAD"), pages.index, public=True),
    Route("/healthz", ("GET", "HEAD"), pages.healthz, public=True),
    Route("/static/{name:.+}", ("GET", "HEAD"), pages.static, public=True),
    Route("/favicon.ico", ("GET", "HEAD"), _not_found, public=True),
    Route("/metrics", ("GET", "HEAD"), endpoint.metrics, public=True),  # for the admin key (gptrelay.observe.endpoint)
    Route("/chat", ("POST",), chat, frames=True, recorded=True),
    Route("/chatgpt", ("POST",), chatgpt, recorded=True),
    *admin_routes(),
)
GATEWAY = Route("/v1/{path:.*}", ("*",), gateway, recorded=True)
ANYTHING_ELSE = Route("/{tail:.*}", ("*",), _not_found)


def create_app(settings: Settings) -> web.Application:
    cors = Cors(settings.cors_origins)
    keys = AccessKeys(settings.access_keys, loopback_hosts_only=is_loopback(settings.host),
                      addresses=Addresses(parse_networks(settings.trusted_proxies)))
    app = web.Application(client_max_size=settings.max_body_size)
    cors.install(app)
    app.on_response_prepare.append(ids.stamp)
    app[SETTINGS] = settings
    app[PAGE] = pages.page_html(settings.default_model)
    app[ACCESS_KEYS] = keys
    admission = app[ADMISSION] = Admission()
    accounting = app[ACCOUNTING] = Accounting(admission)
    tally = Tally(Metrics(settings.default_model), settings.access_log)
    app[METRICS] = tally.metrics
    app.cleanup_ctx.append(_storage)
    app.cleanup_ctx.append(_resources)

    def add(route: Route, method: str) -> None:
        door = front_door(route, cors, keys, admission, accounting, settings.client_write_timeout, tally)
        app.router.add_route(method, route.path, door, expect_handler=_no_early_continue)

    for route in ROUTES:
        for method in route.methods:
            add(route, method)
        # any other method, OPTIONS included (a preflight)
        add(route._replace(handler=_method_not_allowed), "*")
    add(GATEWAY, "*")
    add(ANYTHING_ELSE, "*")
    return app
