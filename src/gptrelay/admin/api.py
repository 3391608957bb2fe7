"""The admin API: access keys, usage and the upstreams' state over HTTP, for ``ADMIN_KEY`` only.

Every handler first asks ``admin_store``: without ``ADMIN_KEY`` the path
answers 404 as if it did not exist; a request without ``Authorization: Bearer
<ADMIN_KEY>`` (compared in constant time; access keys are not accepted) gets
401 before anything of its body is read. Bodies are then read up to 64 KiB
(413 beyond) and must be a JSON object (400); unknown fields, wrong types
and bad values are 422. The routes are public at the front door: the door's
access keys have no say here.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import orjson
from aiohttp import web

from gptrelay.admin.openapi import DOCUMENT, MAX_INT
from gptrelay.auth.keys import LIMITS, MAX_TTL, NAME, KeyFields, KeyStore, parse_when
from gptrelay.door import Route
from gptrelay.errors import BadRequest, NotFound, Unauthorized, Unprocessable
from gptrelay.http.bodies import decode, read_raw
from gptrelay.state import ACCESS_KEYS, BODY_LIMITS, KEY_STORE, SETTINGS, UPSTREAM
from gptrelay.usage.queries import BY, parse_date, usage_rows

MAX_BODY = 64 * 1024
CHANGES = frozenset({*LIMITS, "models", "origins", "expires_at", "ttl_seconds"})
_OPENAPI = orjson.dumps(DOCUMENT)


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


def key_fields(body: dict[str, Any]) -> KeyFields:
    """``body``'s changes to a key, checked for names and types (422); ``KeyStore`` checks the values."""
    unknown = sorted(set(body) - CHANGES)
    if unknown:
        raise Unprocessable(f"unknown fields: {', '.join(map(repr, unknown))}; known: {', '.join(sorted(CHANGES))}")
    fields: dict[str, Any] = {}
    for field in LIMITS:
        if field in body:
            value = body[field]
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or not 0 <= value <= MAX_INT):
                raise Unprocessable(f"{field} must be a whole number from 0 to {MAX_INT}, or null for no limit")
            fields[field] = value
    for field in ("models", "origins"):
        if field in body:
            value = body[field]
            # Each item as the document says it: the CLI's lists may hold blanks and spaces, not the API's.
            if value is not None and (not isinstance(value, list) or not all(
                    isinstance(v, str) and v and v == v.strip() for v in value)):
                raise Unprocessable(f"{field} must be an array of non-empty strings without surrounding spaces, "
                                    "or null for none")
            fields[field] = value
    if "expires_at" in body and "ttl_seconds" in body:
        raise Unprocessable("give expires_at or ttl_seconds, not both")
    if "expires_at" in body:
        when = body["expires_at"]
        if when is not None and not isinstance(when, str):
            raise Unprocessable("expires_at must be an ISO 8601 date or time, or null for never")
        fields["expires_at"] = None if when is None else parse_when(when)
    if "ttl_seconds" in body:
        ttl = body["ttl_seconds"]
        limit = int(MAX_TTL.total_seconds())
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= limit):
            raise Unprocessable(f"ttl_seconds must be a whole number from 1 to {limit}, or null for never")
        fields["expires_at"] = None if ttl is None else datetime.now(UTC) + timedelta(seconds=ttl)
    return cast(KeyFields, fields)


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
    body = await read_object(request)
    name = body.pop("name", None)
    if not isinstance(name, str):
        raise Unprocessable("name is required: a string of 1 to 64 of the characters A-Z a-z 0-9 . _ -")
    with unprocessable():
        record, key = await store.create(name, key_fields(body))
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
    body = await read_object(request)
    with unprocessable():
        fields = key_fields(body)
        record = await store.update(name, fields) if fields else await store.get(name)
    await _in_force(request)
    return json_response(record.as_json())


async def _in_force(request: web.Request) -> None:
    """A change made here holds on this relay by the time it is answered (others see it within a second)."""
    named = request.app[ACCESS_KEYS].named
    if named is not None:
        await named.reload()


async def openapi(request: web.Request) -> web.StreamResponse:
    """``GET /admin/api/openapi.json``: this API, described (``gptrelay.admin.openapi``)."""
    admin_store(request)
    return web.Response(body=_OPENAPI, content_type="application/json")


async def usage(request: web.Request) -> web.Response:
    """``GET /admin/api/usage?by=&key=&owner=&since=&until=``: the rows of ``gptrelay usage --json``
    (``owner=true`` as ``--owner``)."""
    store = admin_store(request)
    query = request.query
    unknown = set(query) - USAGE_QUERY
    if unknown:  # a misspelt filter (?keys=alice) must not answer with everyone's usage
        names = ", ".join(sorted(repr(name[:40]) for name in unknown)[:5])
        raise Unprocessable(f"unknown query parameters: {names}; known: {', '.join(sorted(USAGE_QUERY))}")
    by = query.get("by", "key")
    if by not in BY:
        raise Unprocessable(f"'by' must be one of {', '.join(BY)}")
    try:
        since, until = parse_date("since", query.get("since")), parse_date("until", query.get("until"))
    except BadRequest as error:
        raise Unprocessable(error.message) from None
    key = query.get("key") or None
    owner = query.get("owner", "false")
    if owner not in ("true", "false"):
        raise Unprocessable("'owner' must be true (only the owner key's records) or false")
    if key is not None and owner == "true":
        raise Unprocessable("give key=NAME or owner=true, not both")
    rows = await usage_rows(store.engine, by, key, since, until, owner=owner == "true")  # type: ignore[arg-type]
    return web.Response(body=orjson.dumps({"data": rows}), content_type="application/json")


async def upstreams(request: web.Request) -> web.Response:
    """``GET /admin/api/upstreams``: each upstream, its keys (masked), which rest or are set aside,
    and how often each failed."""
    admin_store(request)
    return json_response({"data": request.app[UPSTREAM].state()})


USAGE_QUERY = frozenset({"by", "key", "owner", "since", "until"})


def api_routes() -> tuple[Route, ...]:
    """The admin API's routes, for the app's table. Public at the door: the handlers check ADMIN_KEY."""
    return (
        Route("/admin/api/keys", ("GET", "POST"), keys, public=True),
        Route("/admin/api/keys/{name}", ("GET", "PATCH", "DELETE"), key, public=True),
        Route("/admin/api/usage", ("GET",), usage, public=True),
        Route("/admin/api/upstreams", ("GET",), upstreams, public=True),
        Route("/admin/api/openapi.json", ("GET",), openapi, public=True),
    )
