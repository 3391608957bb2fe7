"""Request ids: every response carries ``X-Request-ID``.

The client's own id is kept when it sent one of 1 to 128 visible ASCII
characters; any other (or none) is replaced by a new one: 128 random bits
in hex, drawn from the process's Mersenne Twister (0.8 µs; ``uuid4`` asks the
kernel for its bytes and costs 3.4 µs). An id says nothing of the relay (a
counter would tell clients how many requests it serves).

The front door keeps the id on the request (``REQUEST_ID``) and in
``CURRENT`` for the log lines written while the request is handled
(``gptrelay.observe.logs``). A route that asked the upstream keeps the id
the upstream gave its reply (``UPSTREAM_REQUEST_ID``: the id its support
knows), for the access line, whatever the route. ``stamp`` puts it on the response when it is
prepared, streams included, unless the response already carries one: a
``/v1`` reply keeps the upstream's own ``x-request-id``.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from random import getrandbits

from aiohttp import web

HEADER = "X-Request-ID"
MAX_LENGTH = 128
REQUEST_ID = web.RequestKey("request_id", str)
UPSTREAM_REQUEST_ID = web.RequestKey("upstream_request_id", str)  # the upstream's x-request-id, for the log
CURRENT: ContextVar[str | None] = ContextVar("gptrelay_request_id", default=None)


def new_id() -> str:
    return f"{getrandbits(128):032x}"


def request_id(sent: str | None) -> str:
    """``sent`` if it is a good id (1 to 128 visible ASCII characters), else a new one."""
    if sent and len(sent) <= MAX_LENGTH and sent.isascii() and sent.isprintable() and " " not in sent:
        return sent
    return new_id()


async def stamp(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the request's id on its response, unless it carries one already."""
    headers = response.headers
    if HEADER not in headers:
        headers[HEADER] = request.get(REQUEST_ID) or new_id()


def keep_upstream_id(request: web.Request, headers: Mapping[str, str]) -> None:
    """Keep the id the upstream gave its reply (its ``x-request-id``), if it gave one."""
    upstream_id = headers.get(HEADER)
    if upstream_id:
        request[UPSTREAM_REQUEST_ID] = upstream_id
