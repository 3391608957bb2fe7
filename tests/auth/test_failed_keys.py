"""An address that guesses keys is refused for a while; behind a trusted proxy, the client's own address counts."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from aiohttp.test_utils import make_mocked_request

from gptrelay.auth.addresses import BAN, LIMIT, WINDOW, Addresses, FailedKeys, parse_networks
from tests.conftest import RunningRelay
from tests.helpers import user

Relay = Callable[..., RunningRelay]


def test_twenty_wrong_keys_refuse_the_address_whatever_key_it_sends(relay: Relay) -> None:
    r = relay()
    guess = {"Authorization": "Bearer guess"}
    for _ in range(LIMIT):
        assert httpx.post(f"{r.url}/chat", json=user("hi"), headers=guess).status_code == 401
    refused = httpx.post(f"{r.url}/v1/models", headers=r.auth)  # the right key, from the same address
    assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= BAN
    assert "too many wrong access keys" in refused.json()["error"]["message"]
    assert httpx.get(f"{r.url}/healthz").status_code == 200  # public paths need no key, and stay open


def test_behind_a_trusted_proxy_the_forwarded_address_counts(relay: Relay) -> None:
    r = relay(trusted_proxies=("127.0.0.0/8",))
    guesser = {"X-Forwarded-For": "203.0.113.5", "Authorization": "Bearer guess"}
    for _ in range(LIMIT):
        assert httpx.get(f"{r.url}/v1/models", headers=guesser).status_code == 401
    assert httpx.get(f"{r.url}/v1/models", headers={**guesser, **r.auth}).status_code == 429
    assert httpx.get(f"{r.url}/v1/models", headers={"X-Forwarded-For": "203.0.113.6", **r.auth}).status_code == 200


def test_without_trusted_proxies_a_forwarded_header_changes_nothing(relay: Relay) -> None:
    r = relay()
    for n in range(LIMIT):
        headers = {"X-Forwarded-For": f"198.51.100.{n}", "Authorization": "Bearer guess"}
        assert httpx.get(f"{r.url}/v1/models", headers=headers).status_code == 401
    assert httpx.get(f"{r.url}/v1/models", headers={"X-Forwarded-For": "198.51.100.99", **r.auth}).status_code == 429


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failures_leave_the_window_and_bans_end() -> None:
    clock = Clock()
    failed = FailedKeys(clock)
    for _ in range(LIMIT - 1):
        failed.failed("a")
    clock.now += WINDOW + 1
    failed.failed("a")
    assert failed.refused("a") is None and not failed.refusing
    for _ in range(LIMIT - 1):
        failed.failed("a")
    assert failed.refused("a") == BAN and failed.refused("b") is None
    clock.now += BAN
    assert failed.refused("a") is None


def test_the_last_untrusted_forwarded_address() -> None:
    addresses = Addresses(parse_networks(("127.0.0.1", "10.0.0.0/8")))
    request = make_mocked_request("GET", "/", headers={"X-Forwarded-For": "192.0.2.7, 198.51.100.1, 10.1.2.3"})
    request._transport_peername = ("127.0.0.1", 5555)  # type: ignore[attr-defined]
    assert addresses.of(request) == "198.51.100.1"
