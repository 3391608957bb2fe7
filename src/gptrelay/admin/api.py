"""The admin API: access keys, usage and the upstreams' state over HTTP, for ``ADMIN_KEY`` only.

Every handler first asks ``admin_store``: without ``ADMIN_KEY`` the path
answers 404 as if it did not exist; a request without ``Authorization: Bearer
<ADMIN_KEY>`` (compared in constant time; access keys are not accepted) gets
401 before anything of its body is read. Bodies are then read up to 64 KiB
(413 beyond) and must be a JSON object (400); bodies and the usage query are
then validated with the models of ``gptrelay.admin.models`` (which the OpenAPI
document is made of): unknown fields, wrong types and bad values are 422. The
routes are public at the front door: the door's access keys have no say here.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import orjson
from aiohttp import web

from gptrelay.admin.models import KeyChanges, KeyCreate, UsageQuery
from gptrelay.admin.openapi import document
from gptrelay.auth.keys import NAME, KeyStore
from gptrelay.door import Route
from gptrelay.errors import BadRequest, NotFound, Unauthorized, Unprocessable
from gptrelay.http.bodies import decode, read_raw
from gptrelay.state import ACCESS_KEYS, BODY_LIMITS, KEY_STORE, SETTINGS, UPSTREAM
from gptrelay.usage.queries import usage_rows

MAX_BODY = 64 * 1024


def admin_store(request: web.Request) -> KeyStore:
    """The key store, once the request has shown the admin key; 404 when the admin API is off."""
    check_admin(request)
    return request.app[KEY_STORE]


def check_admin(request: web.Request) -> None:
    """Raise unless the request shows the admin key (``Unauthorized``); 404 when there is none."""
    admin_key = request.app[SETTINGS].admin_key
    if admin_key is None:
        raise web.HTTPNotFound()
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    expected = admin_key.get_secret_value().encode()
    # compare_digest first, always: the time taken does not tell whether the scheme was right
    if not hmac.compare_digest(token.strip().encode(), expected) or scheme.lower() != "bearer":
        raise Unauthorized("a missing or wrong admin key: send Authorization: Bearer <ADMIN_KEY>")


async def read_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object (400 otherwise), at most ``MAX_BODY`` bytes (413)."""
    raw = await read_raw(request, request.app[BODY_LIMITS], MAX_BODY)
    data = await decode(raw, request.headers.get("Content-Encoding"), MAX_BODY)
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise BadRequest("the body is not JSON: send a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequest(f"the body is a JSON {type(body).__name__}, not an object: send a JSON object")
    return body


@contextmanager
def unprocessable() -> Iterator[None]:
    """A value the store refuses (a bad name, origin or date) is 422 here: the JSON itself was fine."""
    try:
        yield
    except BadRequest as error:
        if type(error) is not BadRequest:
            raise
        raise Unprocessable(error.message) from None


def path_name(request: web.Request) -> str:
    name = request.match_info["name"]
    if not NAME.fullmatch(name):
        raise NotFound(f"no key named {name[:80]!r}")
    return name


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data), content_type="application/json",
                        headers={"Cache-Control": "no-store"})


async def keys(request: web.Request) -> web.StreamResponse:
    """``GET /admin/api/keys``: every key; ``POST``: a new one, shown with its key this once."""
    store = admin_store(request)
    if request.method == "GET":
        return json_response({"data": [record.as_json() for record in await store.list()]})
    new = KeyCreate.check(await read_object(request))
    with unprocessable():
        record, key = await store.create(new.name, new.fields())
    await _in_force(request)
    return json_response({**record.as_json(), "key": key}, status=201)


async def key(request: web.Request) -> web.StreamResponse:
    """``GET``, ``PATCH`` (the fields given) and ``DELETE`` (revoke) ``/admin/api/keys/{name}``."""
    store = admin_store(request)
    name = path_name(request)
    if request.method == "GET":
        return json_response((await store.get(name)).as_json())
    if request.method == "DELETE":
        await store.revoke(name)
        await _in_force(request)
        return web.Response(status=204)
    fields = KeyChanges.check(await read_object(request)).fields()
    with unprocessable():
        record = await store.update(name, fields) if fields else await store.get(name)
    await _in_force(request)
    return json_response(record.as_json())


async def _in_force(request: web.Request) -> None:
    """A change made here holds on this relay by the time it is answered (others see it within a second)."""
    named = request.app[ACCESS_KEYS].named
    if named is not None:
        await named.reload()


async def openapi(request: web.Request) -> web.StreamResponse:
    """``GET /admin/api/openapi.json``: this API, described (``gptrelay.admin.openapi``, made once)."""
    admin_store(request)
    return web.Response(body=_openapi(), content_type="application/json")


@cache
def _openapi() -> bytes:
    return orjson.dumps(document())


async def usage(request: web.Request) -> web.Response:
    """``GET /admin/api/usage?by=&key=&owner=&since=&until=``: the rows of ``gptrelay usage --json``
    (``owner=true`` as ``--owner``)."""
    store = admin_store(request)
    query = UsageQuery.check({name: request.query[name] for name in request.query})  # (a name's first value)
    rows = await usage_rows(store.engine, query.by, query.key, query.since, query.until, owner=query.owner)
    return web.Response(body=orjson.dumps({"data": rows}), content_type="application/json")


async def upstreams(request: web.Request) -> web.Response:
    """``GET /admin/api/upstreams``: each upstream, its keys (masked), which rest or are set aside,
    and how often each failed."""
    admin_store(request)
    return json_response({"data": request.app[UPSTREAM].state()})


def api_routes() -> tuple[Route, ...]:
    """The admin API's routes, for the app's table. Public at the door: the handlers check ADMIN_KEY."""
    return (
        Route("/admin/api/keys", ("GET", "POST"), keys, public=True),
        Route("/admin/api/keys/{name}", ("GET", "PATCH", "DELETE"), key, public=True),
        Route("/admin/api/usage", ("GET",), usage, public=True),
        Route("/admin/api/upstreams", ("GET",), upstreams, public=True),
        Route("/admin/api/openapi.json", ("GET",), openapi, public=True),
    )
