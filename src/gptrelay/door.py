"""The front door: one pipeline per route, built once at start::

    preflight → check the request → authenticate → admit → handler → account

Each route declares whether it is public (no key: the page, its files, the
health check) and how its errors are told (``/chat``'s frames, or OpenAI's
envelope). The door answers CORS preflights before any key check, refuses
what no client should send (HTTP/0.9, header bytes that are not ASCII),
finds who is calling (a ``Caller``, kept on the request as ``CALLER``),
watches that the client takes its reply (``CLIENT_WRITE_TIMEOUT``), and is
the one place a ``RelayError`` becomes a response. A caller with limits is
admitted (origins, quotas, RPM and TPM: ``gptrelay.limits.admission``) before
its handler runs. A request to a recorded route gets a ``Meter``
(``gptrelay.usage``): the route commits its record just before its response
ends; the door commits the record of a request that ends here (refused,
failed, or left by its client) before its own answer.

Every request gets its id first (``gptrelay.observe.ids``: on the request,
in the logging context, and on its response when prepared), and when it
ends, whatever the way, the door tells it once to the metrics and the access
log (``gptrelay.observe.tally``), with its route's path pattern as its label.

It wraps each handler rather than being an aiohttp middleware: a middleware
chain costs two more coroutine calls per request, on every streamed token's path.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import NamedTuple

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from gptrelay.auth.access import AccessKeys
from gptrelay.errors import BadRequest, RelayError, Unauthorized, UpstreamStatus, log, redact, report
from gptrelay.http.cors import Cors
from gptrelay.limits.admission import Admission
from gptrelay.observe.ids import CURRENT, REQUEST_ID, request_id
from gptrelay.observe.metrics import V1_OTHER, Metrics, route_pattern, v1_route
from gptrelay.observe.tally import Tally
from gptrelay.state import CALLER, METER, SWEEPER
from gptrelay.usage.accounting import Accounting
from gptrelay.usage.meter import Meter
from gptrelay.usage.records import Outcome
from gptrelay.watchdog import ClientWatch
from gptrelay.wire import frames


class Route(NamedTuple):
    path: str
    methods: tuple[str, ...]  # ("*",) for any
    handler: Handler
    public: bool = False  # served without a key
    frames: bool = False  # errors as /chat frames, else in OpenAI's envelope
    recorded: bool = False  # each request leaves a usage record


def front_door(route: Route, cors: Cors, keys: AccessKeys, admission: Admission, accounting: Accounting,
               write_timeout: float, tally: Tally | None = None) -> Handler:
    """``route``'s handler behind the door (telling its requests to ``tally``, or to metrics of its own)."""
    if tally is None:
        tally = Tally(Metrics())
    handler = route.handler
    public = route.public
    as_frames = route.frames
    recorded = route.recorded
    label = route.path if "{" not in route.path else None  # else the request's own path
    pattern = route_pattern(route.path)
    by_path = pattern == V1_OTHER  # the gateway: a label for each of OpenAI's endpoints
    metrics = tally.metrics
    clock = tally.clock

    async def guarded(request: web.Request) -> web.StreamResponse:
        started = clock()
        meter: Meter | None = None
        response: web.StreamResponse | None = None
        made_id = request[REQUEST_ID] = request_id(request.headers.get("X-Request-ID"))
        token = CURRENT.set(made_id)
        try:
            if request.method == "OPTIONS":
                response = cors.preflight(request)  # before any key check
                return response
            check_request(request)
            keys.check_host(request)
            if public:
                response = await handler(request)
                return response
            caller = request[CALLER] = keys.identify(request)
            if recorded:
                meter = request[METER] = Meter(accounting, caller, label or request.path)
            if caller.limited:
                await admission.admit(request, caller)
            watch = ClientWatch(request.app[SWEEPER], request, write_timeout)
            try:
                response = await handler(request)
            finally:
                watch.close()
            if meter is not None and not meter.committed:  # a reply made whole by its handler, not yet sent
                meter.status = response.status
                await meter.commit()
            return response
        except RelayError as error:
            report(error, request.method, request.path)
            if error.code in REFUSALS:
                metrics.refused(error.code)
            await _account(meter, error.status)
            response = render(request, error, as_frames)
            return response
        except web.HTTPException as error:
            if error.status < 400:
                response = error
                raise
            await _account(meter, error.status)
            response = render(request, _http_error(request, error), as_frames)
            return response
        except ConnectionResetError:
            # The client went away while we wrote to it: nothing to answer, nothing to log
            # (aiohttp drops this response quietly when it cannot be sent).
            await _account(meter, 499, "client_gone")
            response = web.Response(status=499)
            return response
        except Exception as error:  # a bug: a 500 in the route's shape, and a log line saying where
            log.error("%s %s: internal error: %s", request.method, request.path, _where(error))
            await _account(meter, 500)
            response = render(request, RelayError("internal error: the relay could not answer this request "
                                                  "(its log says why)"), as_frames)
            return response
        finally:
            try:
                if meter is not None and not meter.committed:  # the client left, or the relay cut it (cancelled)
                    if request.app[SWEEPER].cutting:
                        await _account(meter, 503, "cut")
                    else:
                        await _account(meter, 499, "client_gone")
            finally:
                tally.done(request, v1_route(request.path) if by_path else pattern, started, response, meter)
                CURRENT.reset(token)

    return guarded


# The codes of a key's limits refusing a request (gptrelay.limits.admission), for the metrics.
REFUSALS = frozenset({"rate_limit_exceeded", "insufficient_quota", "origin_not_allowed", "model_not_allowed",
                      "limiter_unavailable"})


async def _account(meter: Meter | None, status: int, outcome: Outcome = "error") -> None:
    """Record a request that ends here (refused, failed or left), before its answer is sent."""
    if meter is not None and not meter.committed:
        meter.failed(status, outcome)
        await meter.commit()


def _where(error: Exception) -> str:
    """The exception's type, its message (anything like a key taken out) and the lines it came from."""
    frames = traceback.extract_tb(error.__traceback__)[-4:]
    path = " < ".join(f"{Path(frame.filename).name}:{frame.lineno} {frame.name}" for frame in reversed(frames))
    return f"{type(error).__name__}: {redact(str(error))} (at {path})"


def check_request(request: web.Request) -> None:
    """Refuse what aiohttp lets through but a relay should not: HTTP/0.9 (no headers, so no key)
    and header values that are not ASCII."""
    if request.version < (1, 0):
        raise BadRequest("HTTP/0.9 is not served: send an HTTP/1.x request")
    for _, value in request.raw_headers:
        if not value.isascii():
            raise BadRequest("a request header holds non-ASCII bytes: send header values as ASCII")


def render(request: web.Request, error: RelayError, as_frames: bool) -> web.Response:
    """An error as the endpoint's clients expect it: frames, or OpenAI's envelope (or the
    upstream's own error body). A body left unread (refused before it was read, or cut short)
    is not waited for: the connection closes after the answer."""
    headers = {"WWW-Authenticate": 'Bearer realm="gptrelay"'} if isinstance(error, Unauthorized) else {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    if as_frames:
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


def _http_error(request: web.Request, error: web.HTTPException) -> RelayError:
    """An HTTP error raised in a handler (404, 405), told in the endpoint's shape."""
    relay_error = RelayError(f"{error.reason}: {request.method} {request.path}")
    relay_error.status = error.status
    relay_error.type = "invalid_request_error"
    return relay_error
