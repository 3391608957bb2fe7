"""The Grafana dashboard in deploy/grafana/ is valid JSON and asks only for metrics and labels that a
relay's /metrics has, once it has served a little of everything."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson

from tests.conftest import RunningRelay, Store
from tests.helpers import chat, user
from tests.observe.conftest import scrape

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "gptrelay.json"
METRIC = re.compile(r"\bgptrelay_[a-z_]+")
BY = re.compile(r"\bby \(([^)]*)\)")
SELECTED = re.compile(r"([a-z_]+)=~?\"")


def expressions() -> list[str]:
    dashboard = orjson.loads(DASHBOARD.read_bytes())
    assert dashboard["uid"] == "gptrelay" and dashboard["panels"]
    found = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert all(panel["datasource"]["uid"] == "${datasource}" for panel in dashboard["panels"])
    return found


def test_every_metric_and_label_the_dashboard_asks_for_exists(relay: Callable[..., RunningRelay],
                                                              store: Store) -> None:
    limited = store.create("limited", rpm=1)
    r = relay(database_url=store.url, admin_key="test-admin-key-0f9e8d7c")
    headers = {"Authorization": f"Bearer {limited}"}
    assert chat(r.url, user("hi"), headers).status == 200
    assert chat(r.url, user("hi"), headers).status == 429  # a limiter refusal
    assert chat(r.url, user("/scenario error status=503"), r.auth).status == 503  # an upstream failure
    assert httpx.post(f"{r.url}/v1/chat/completions", json={"model": "gpt-4o-mini", **user("hi")},
                      headers=r.auth).status_code == 200
    samples = scrape(r.url)
    labels_of: dict[str, set[str]] = {}
    for name, labels in samples:
        labels_of.setdefault(name, set()).update(label for label, _ in labels)
    queried = expressions()
    assert len(queried) >= 15
    for expr in queried:
        metrics = set(METRIC.findall(expr))
        assert metrics, expr
        for metric in metrics:
            assert metric in labels_of, f"{metric} is not in /metrics ({expr})"
        asked = {label.strip() for group in BY.findall(expr) for label in group.split(",")}
        asked |= set(SELECTED.findall(expr))
        have = set.union(*(labels_of[metric] for metric in metrics)) | {"instance"}  # (Prometheus adds it)
        assert asked <= have, f"{expr} asks for labels {asked - have}"
