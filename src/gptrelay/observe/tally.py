"""What the front door tells of each request when it ends: its metrics, and its access-log line.

A request with a usage record (``/chat``, ``/chatgpt``, ``/v1``) is told as its
record says (status, model, tokens, time to first byte, how it ended); any
other (the page, the health check, the admin API, a refusal before the key
check) by its response's status. The line names the key by its name, never
the key, and holds nothing of the messages.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from gptrelay.errors import redact
from gptrelay.observe.ids import REQUEST_ID, UPSTREAM_REQUEST_ID
from gptrelay.observe.logs import ACCESS, AccessLine
from gptrelay.observe.metrics import Metrics
from gptrelay.state import CALLER
from gptrelay.usage.meter import Meter
from gptrelay.usage.records import UsageRecord

access = logging.getLogger(ACCESS)
_INFO = logging.INFO


class Tally:
    __slots__ = ("access_log", "clock", "metrics")

    def __init__(self, metrics: Metrics, access_log: bool = False) -> None:
        self.metrics = metrics
        self.access_log = access_log  # ACCESS_LOG (and the logger gptrelay.access must let INFO through)
        self.clock = time.perf_counter  # the door's start of a request, in its units

    def done(self, request: web.Request, route: str, started: float, response: web.StreamResponse | None,
             meter: Meter | None) -> None:
        """The request to ``route`` (a label), begun at ``started``, ended with ``response`` (None: its
        handler was cancelled, the client gone)."""
        duration = time.perf_counter() - started
        record = meter.record if meter is not None else None
        status = record.status if record is not None else response.status if response is not None else 499
        self.metrics.finished(route, status, duration, record)
        if self.access_log and access.isEnabledFor(_INFO):
            access.info(line(request, route, status, duration, record, response))


def line(request: web.Request, route: str, status: int, duration: float, record: UsageRecord | None,
         response: web.StreamResponse | None) -> AccessLine:
    request_id = request.get(REQUEST_ID)
    upstream_id = request.get(UPSTREAM_REQUEST_ID)
    caller = request.get(CALLER)
    model: str | None = None
    prompt: int | None = None
    completion: int | None = None
    ttfb: int | None = None
    estimated: bool | None = None
    if record is not None:
        outcome: str = record.outcome
        model, ttfb, estimated = record.model, record.ttfb_ms, record.estimated
        prompt, completion = record.prompt_tokens, record.completion_tokens
    else:
        outcome = "ok" if status < 400 else "client_gone" if status == 499 else "error"
    return AccessLine(
        method=request.method, path=redact(request.path[:200]), status=status, outcome=outcome, route=route,
        key=caller.name if caller is not None else None, model=model[:200] if model else None,
        prompt_tokens=prompt, completion_tokens=completion, estimated=estimated, ttfb_ms=ttfb,
        duration_ms=round(duration * 1000), request_id=request_id,
        upstream_request_id=upstream_id if upstream_id != request_id else None)
