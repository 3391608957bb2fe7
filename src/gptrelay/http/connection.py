"""The server's side of a client connection: aiohttp's, answering malformed requests quietly.

aiohttp answers a request it cannot parse (bare-LF line endings, a NUL in a
header, HTTP/0.9, a line too long) with 400, but logs the raw request (access
key included) with a traceback and echoes it in the body. Here it is one log
line naming the kind of mistake, and a body that repeats nothing of the request,
in OpenAI's error envelope like every other error the relay answers with.
"""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_request import BaseRequest

from gptrelay.errors import BadRequest
from gptrelay.observe.ids import HEADER, new_id

log = logging.getLogger("gptrelay")


_open = 0  # client connections open in this process (a module's, not the class's: assigning a class
# attribute would empty the interpreter's method cache for the class at every connection)


def open_connections() -> int:
    """Client connections open in this process (the metrics)."""
    return _open


class RequestHandler(web.RequestHandler):
    __slots__ = ()  # aiohttp's are slots: no __dict__ per connection here either

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        global _open
        super().connection_made(transport)
        _open += 1

    def connection_lost(self, exc: BaseException | None) -> None:
        global _open
        _open -= 1
        super().connection_lost(exc)

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError):  # the relay's own failure: aiohttp's full report
            return super().handle_error(request, status, exc, message)
        log.info("malformed request from %s: %s (%d)", request.remote, type(exc).__name__, status)
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
        error = BadRequest(f"{status} {phrase}: malformed HTTP request")
        response = web.Response(status=status, body=orjson.dumps(error.envelope()), content_type="application/json",
                                headers={HEADER: new_id()})  # (no route, so no id from the door)
        response.force_close()
        return response


class Server(web.Server):
    def __call__(self) -> web.RequestHandler:
        return RequestHandler(self, loop=self._loop, **self._kwargs)


class AppRunner(web.AppRunner):
    """``web.AppRunner`` whose connections are ``RequestHandler``'s."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = Server  # the application builds the server; only its connections change
        return server
