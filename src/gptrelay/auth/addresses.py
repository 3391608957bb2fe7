"""Client addresses, and the ones that guess keys.

A client's address is its connection's peer or, only when that peer is one
of ``TRUSTED_PROXIES``, the last address in ``X-Forwarded-For`` that is not
itself a trusted proxy. An address that presented ``LIMIT`` wrong keys within
``WINDOW`` seconds is refused (429) for the next ``BAN`` seconds on every
endpoint that needs a key, whatever key it sends. Kept per process.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import deque
from collections.abc import Callable

from aiohttp import web

LIMIT = 20
WINDOW = 60.0
BAN = 60.0
_KEPT = 10_000  # addresses remembered before old ones are forgotten

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: tuple[str, ...]) -> tuple[Network, ...]:
    """``TRUSTED_PROXIES``' addresses and CIDR ranges; raises ``ValueError`` naming a bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not an address or CIDR range: {value!r}") from None
    return tuple(networks)


class Addresses:
    """Who a request comes from."""

    __slots__ = ("_proxies",)

    def __init__(self, trusted_proxies: tuple[Network, ...]) -> None:
        self._proxies = trusted_proxies

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip().strip("[]"))
        except ValueError:
            return False
        return any(ip in network for network in self._proxies)

    def of(self, request: web.BaseRequest) -> str:
        peer = request.remote or ""
        if not self._proxies or not self._trusted(peer):
            return peer
        forwarded = request.headers.get("X-Forwarded-For")
        if not forwarded:
            return peer
        for address in reversed(forwarded.split(",")):
            address = address.strip()
            if address and not self._trusted(address):
                return address
        return peer


class FailedKeys:
    """Addresses that presented wrong keys, and the ones refused for it."""

    __slots__ = ("_banned", "_clock", "_failures")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._banned: dict[str, float] = {}  # address -> until when

    @property
    def refusing(self) -> bool:
        """Whether any address is refused (else nothing needs looking up)."""
        return bool(self._banned)

    def refused(self, address: str) -> int | None:
        """Seconds the address is still refused for, or None."""
        if not self._banned:
            return None
        until = self._banned.get(address)
        if until is None:
            return None
        left = until - self._clock()
        if left <= 0:
            del self._banned[address]
            return None
        return max(1, math.ceil(left))

    def failed(self, address: str) -> None:
        """The address presented a wrong key."""
        now = self._clock()
        times = self._failures.get(address)
        if times is None:
            if len(self._failures) >= _KEPT:
                self._forget(now)
            times = self._failures[address] = deque()
        times.append(now)
        while times and times[0] <= now - WINDOW:
            times.popleft()
        if len(times) >= LIMIT:
            self._banned[address] = now + BAN
            del self._failures[address]

    def _forget(self, now: float) -> None:
        for address in [a for a, times in self._failures.items() if not times or times[-1] <= now - WINDOW]:
            del self._failures[address]
        if len(self._failures) >= _KEPT:  # all recent: forget the oldest half
            for address in list(self._failures)[: _KEPT // 2]:
                del self._failures[address]
        for address in [a for a, until in self._banned.items() if until <= now]:
            del self._banned[address]
