"""The relay's metrics, in Prometheus's text format (``GET /metrics``, ``gptrelay.observe.endpoint``).

Per request, once, when it ends (``finished``, called by the front door through
``gptrelay.observe.tally``): ``gptrelay_requests_total`` (route, status),
``gptrelay_request_duration_seconds`` and ``gptrelay_time_to_first_byte_seconds``
(route), ``gptrelay_tokens_total`` (kind, model). Nothing is touched per chunk or
per token. The labelled children are made once and kept (``labels()`` costs a
lock and a lookup), so a request costs a few increments.

Label values are bounded, whatever clients send: ``route`` is the route's path
pattern (``/static/{name}``), a ``/v1`` path one of ``V1_ENDPOINTS`` or
``/v1/{path}``; ``status`` is a status code; ``model`` is one of the first
``MAX_MODELS`` models that an upstream served (status below 400) in this
process, ``other`` beyond them: a client naming a million models makes at
most ``MAX_MODELS`` series.

What is not per request is read from the relay's own counters by
``gptrelay.observe.gauges``: open streams and connections, the usage writer,
the upstreams' failures and rests.

With ``--workers N`` every worker writes its values to files in
``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode, chosen when
prometheus-client is first imported; ``gptrelay.observe.workers`` makes the
directory), and a scrape, answered by any worker, sums them all.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector

from gptrelay.usage.records import UsageRecord

MAX_MODELS = 100
OTHER = "other"
V1_ENDPOINTS = frozenset({
    "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models", "/v1/responses",
    "/v1/moderations", "/v1/images/generations", "/v1/images/edits", "/v1/images/variations",
    "/v1/audio/speech", "/v1/audio/transcriptions", "/v1/audio/translations", "/v1/files", "/v1/uploads",
    "/v1/batches", "/v1/fine_tuning/jobs", "/v1/assistants", "/v1/threads", "/v1/vector_stores",
    "/v1/realtime/sessions",
})
V1_OTHER = "/v1/{path}"
# No ``_created`` series beside each counter: half the scrape, and nothing an operator reads.
disable_created_metrics()  # type: ignore[no-untyped-call]
TTFB_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def multiprocess_dir() -> str | None:
    """The directory the workers' values are written to, when prometheus-client was imported in
    multiprocess mode; else None."""
    if values.ValueClass is values.MutexValue:
        return None
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR")


def route_pattern(path: str) -> str:
    """A route's path as a label: ``/static/{name:.+}`` → ``/static/{name}``."""
    out, rest = [], path
    while "{" in rest:
        head, _, rest = rest.partition("{")
        name, _, rest = rest.partition("}")
        out.append(f"{head}{{{name.partition(':')[0]}}}")
    return "".join(out) + rest


def v1_route(path: str) -> str:
    """A ``/v1`` request's route label: its endpoint when it is one of OpenAI's, else ``/v1/{path}``."""
    return path if path in V1_ENDPOINTS else V1_OTHER


class Metrics:
    """One application's metrics (in a registry of its own, unless in multiprocess mode)."""

    def __init__(self, default_model: str | None = None) -> None:
        self.multiprocess = multiprocess_dir()
        registry = None if self.multiprocess else CollectorRegistry(auto_describe=True)
        self.registry = registry
        self.sample: Callable[[], None] = lambda: None  # the gauges, read just before a scrape
        self.requests = Counter("gptrelay_requests", "Requests answered, by route (its path pattern) and status "
                                "(a usage record's status: 499 for a client gone, 502 for a stream cut)",
                                ["route", "status"], registry=registry)
        self.tokens = Counter("gptrelay_tokens", "Tokens used, as recorded (the upstream's count, or the relay's "
                              "estimate), by kind (prompt, completion) and model", ["kind", "model"],
                              registry=registry)
        self.ttfb = Histogram("gptrelay_time_to_first_byte_seconds", "Seconds from a request's arrival to the "
                              "first byte of its reply (relayed routes)", ["route"], buckets=TTFB_BUCKETS,
                              registry=registry)
        self.duration = Histogram("gptrelay_request_duration_seconds", "Seconds from a request's arrival to the "
                                  "end of its answer", ["route"], buckets=DURATION_BUCKETS, registry=registry)
        self.open_streams = Gauge("gptrelay_open_streams", "Relayed requests in progress (/chat, /chatgpt, /v1)",
                                  registry=registry, multiprocess_mode="livesum")
        self.open_connections = Gauge("gptrelay_open_connections", "Client connections open",
                                      registry=registry, multiprocess_mode="livesum")
        self.upstream_failures = Counter("gptrelay_upstream_failures", "Upstream attempts that failed before the "
                                         "reply: unreachable, timed out, or answered 401, 403, 429 or 5xx",
                                         ["upstream"], registry=registry)
        self.upstream_resting = Gauge("gptrelay_upstream_resting", "1 while an upstream rests after a failure "
                                      "(tried last)", ["upstream"], registry=registry, multiprocess_mode="livemax")
        self.upstream_keys_unavailable = Gauge("gptrelay_upstream_keys_unavailable", "An upstream's keys resting "
                                               "(after a 429) or set aside (refused, out of quota)",
                                               ["upstream", "state"], registry=registry,
                                               multiprocess_mode="livemax")
        self.limiter_refusals = Counter("gptrelay_limiter_refusals", "Requests refused by a key's limits, by "
                                        "reason (the error's code)", ["reason"], registry=registry)
        self.usage_queue = Gauge("gptrelay_usage_queue_length", "Usage records waiting to be committed or being "
                                 "committed", registry=registry, multiprocess_mode="livesum")
        self.usage_commit = Histogram("gptrelay_usage_commit_seconds", "Seconds one usage transaction took",
                                      buckets=COMMIT_BUCKETS, registry=registry)
        self.usage_records = Counter("gptrelay_usage_records", "Usage records by where they went: committed "
                                     "(to the database), spooled (to the spool file) or lost", ["result"],
                                     registry=registry)
        self._routes: dict[tuple[str, int], tuple[Counter, Histogram, Histogram]] = {}
        self._models: dict[str, tuple[Counter, Counter]] = {}
        self._other = (self.tokens.labels("prompt", OTHER), self.tokens.labels("completion", OTHER))
        self._refusals: dict[str, Counter] = {}
        if default_model:
            self._model(default_model, True)

    def finished(self, route: str, status: int, duration: float, record: UsageRecord | None) -> None:
        """A request ended: its route label, status and seconds, and its usage record if it has one."""
        children = self._routes.get((route, status))
        if children is None:
            children = self._routes[route, status] = (self.requests.labels(route, str(status)),
                                                      self.duration.labels(route), self.ttfb.labels(route))
        children[0].inc()
        children[1].observe(duration)
        if record is None:
            return
        if record.ttfb_ms is not None:
            children[2].observe(record.ttfb_ms / 1000)
        prompt, completion = record.prompt_tokens, record.completion_tokens
        if prompt or completion:
            counters = self._model(record.model, record.status < 400)
            if prompt:
                counters[0].inc(prompt)
            if completion:
                counters[1].inc(completion)

    def _model(self, model: str | None, served: bool) -> tuple[Counter, Counter]:
        """The token counters of ``model``'s label: its own once an upstream served it, while fewer than
        ``MAX_MODELS`` have one; ``other`` for the rest."""
        if model is None:
            return self._other
        counters = self._models.get(model)
        if counters is not None:
            return counters
        if not served or len(self._models) >= MAX_MODELS or len(model) > 200 or not model.isprintable():
            return self._other
        counters = self._models[model] = (self.tokens.labels("prompt", model), self.tokens.labels("completion", model))
        return counters

    def refused(self, reason: str) -> None:
        counter = self._refusals.get(reason)
        if counter is None:
            counter = self._refusals[reason] = self.limiter_refusals.labels(reason)
        counter.inc()

    def exposition(self) -> bytes:
        """Every metric in Prometheus's text format: this process's, or all the workers' summed."""
        self.sample()
        if self.multiprocess is None:
            assert self.registry is not None
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, self.multiprocess)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
