"""Relays with an admin key, and their /metrics read back as numbers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import RunningRelay
from tests.upstream.conftest import fakes  # noqa: F401  (several fake upstreams, for the pool's metrics)

ADMIN_KEY = "test-admin-key-0f9e8d7c"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape: (name, labels) → value."""
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def scrape(url: str) -> Samples:
    response = httpx.get(f"{url}/metrics", headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 when there are none)."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= have)


@pytest.fixture
def observed(relay: Callable[..., RunningRelay]) -> Callable[..., RunningRelay]:
    """A factory: a relay in front of the fake upstream with an admin key."""

    def make(**overrides: Any) -> RunningRelay:
        return relay(admin_key=ADMIN_KEY, **overrides)

    return make
