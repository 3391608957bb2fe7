"""A relay with ADMIN_KEY and a database of its own, and an httpx client for its admin API."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningRelay

ADMIN_KEY = "test-admin-key-0123456789"


@pytest.fixture
def admin_relay(relay: Callable[..., RunningRelay], tmp_path: Path) -> RunningRelay:
    return relay(admin_key=ADMIN_KEY, database_url=f"sqlite:///{tmp_path}/relay.db")


@pytest.fixture
def admin(admin_relay: RunningRelay) -> Iterator[httpx.Client]:
    """A client of ``admin_relay`` that sends the admin key."""
    with httpx.Client(base_url=admin_relay.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                      timeout=10) as client:
        yield client
