"""``GET /metrics``: for the admin key only, in Prometheus's text format."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.conftest import RunningRelay
from tests.observe.conftest import ADMIN, parse

Relay = Callable[..., RunningRelay]


def test_metrics_need_the_admin_key(observed: Relay) -> None:
    r = observed()
    assert httpx.get(f"{r.url}/metrics").status_code == 401
    assert httpx.get(f"{r.url}/metrics", headers=r.auth).status_code == 401  # an access key is not enough
    assert httpx.get(f"{r.url}/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    answered = httpx.get(f"{r.url}/metrics", headers=ADMIN)
    assert answered.status_code == 200
    assert answered.headers["content-type"].startswith("text/plain; version=")
    assert answered.headers["cache-control"] == "no-store"
    names = {name for name, _ in parse(answered.text)}
    assert "gptrelay_open_streams" in names and "gptrelay_open_connections" in names


def test_without_an_admin_key_there_are_no_metrics(relay: Relay) -> None:
    r = relay()
    assert httpx.get(f"{r.url}/metrics", headers=r.auth).status_code == 404
    assert httpx.get(f"{r.url}/metrics", headers=ADMIN).status_code == 404
