"""``Gauges``: the relay's own counters copied into the metrics (counters by their differences)."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from prometheus_client import generate_latest

from gptrelay.observe.gauges import Gauges
from gptrelay.observe.metrics import Metrics
from tests.observe.conftest import parse, value


class Transport:
    def __init__(self, failures: int) -> None:
        self.failures = failures


def member(name: str, failures: int = 0, resting: bool = False, keys: tuple[str, ...] = ()) -> Any:
    now = time.monotonic()
    return SimpleNamespace(
        name=name, transport=Transport(failures), resting_until=now + 60 if resting else 0.0,
        keys=[SimpleNamespace(set_aside="401" if key == "aside" else None,
                              resting_until=now + 60 if key == "resting" else 0.0) for key in keys])


def test_counters_grow_by_differences_and_gone_upstreams_drop_to_zero() -> None:
    metrics = Metrics()
    writer = SimpleNamespace(queue_length=3, committed=10, spooled=0, lost=0)
    accounting = SimpleNamespace(running=2, writer=writer)
    pool = SimpleNamespace(members=[member("a", failures=2, resting=True, keys=("aside", "resting", "ready"))])
    gauges = Gauges(metrics, accounting, pool, lambda: 5)  # type: ignore[arg-type]

    def scraped() -> dict[Any, float]:
        return parse(generate_latest(metrics.registry).decode())  # type: ignore[arg-type]

    gauges.sample()
    gauges.sample()  # nothing new: nothing added
    samples = scraped()
    assert value(samples, "gptrelay_open_streams") == 2 and value(samples, "gptrelay_open_connections") == 5
    assert value(samples, "gptrelay_usage_queue_length") == 3
    assert value(samples, "gptrelay_usage_records_total", result="committed") == 10
    assert value(samples, "gptrelay_upstream_failures_total", upstream="a") == 2
    assert value(samples, "gptrelay_upstream_resting", upstream="a") == 1
    assert value(samples, "gptrelay_upstream_keys_unavailable", upstream="a", state="set_aside") == 1
    assert value(samples, "gptrelay_upstream_keys_unavailable", upstream="a", state="resting") == 1

    writer.committed, writer.spooled = 15, 4
    pool.members = [member("b", failures=1)]  # the upstreams' file read again: "a" is gone
    gauges.sample()
    samples = scraped()
    assert value(samples, "gptrelay_usage_records_total", result="committed") == 15
    assert value(samples, "gptrelay_usage_records_total", result="spooled") == 4
    assert value(samples, "gptrelay_upstream_failures_total", upstream="a") == 2  # a counter keeps its count
    assert value(samples, "gptrelay_upstream_failures_total", upstream="b") == 1
    assert value(samples, "gptrelay_upstream_resting", upstream="a") == 0
    assert value(samples, "gptrelay_upstream_keys_unavailable", upstream="a") == 0
