"""Access keys: who may use the relay.

A key may come as ``Authorization: <key>``, ``Authorization: Bearer <key>``
or ``api-key: <key>``, and is compared in constant time. The page, static
files, health checks and preflights need none.

A relay without keys serves only on loopback, and there only requests whose
``Host`` names a loopback address: a web page that points its own host name at
127.0.0.1 (DNS rebinding) gets 421, not the relay.
"""

from __future__ import annotations

import hmac
import time

from aiohttp import web

from gptrelay.auth.addresses import Addresses, FailedKeys
from gptrelay.auth.caller import ANONYMOUS, OWNER, Caller
from gptrelay.auth.keycache import KeyCache
from gptrelay.auth.keys import PREFIX as KEY_PREFIX
from gptrelay.errors import MisdirectedRequest, RateLimited, Unauthorized
from gptrelay.settings import is_loopback


def presented_key(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header:
        scheme, _, rest = header.partition(" ")
        return rest.strip() if rest and scheme.lower() == "bearer" else header.strip()
    return request.headers.get("api-key")


def names_loopback(host: str | None) -> bool:
    """Whether a ``Host`` header names a loopback address or ``localhost`` (any port)."""
    if not host:
        return False
    name = host[1:].partition("]")[0] if host.startswith("[") else host.partition(":")[0]
    return is_loopback(name.rstrip(".").lower())


class AccessKeys:
    """The owner's key (``AUTHORIZATION_KEY``, compared in constant time) and the database's
    named keys (``named``, a cache attached at start, looked up by hash)."""

    def __init__(self, keys: tuple[str, ...], loopback_hosts_only: bool = False,
                 addresses: Addresses | None = None) -> None:
        self._keys = tuple(key.encode() for key in keys)
        self._loopback_hosts_only = loopback_hosts_only
        self.named: KeyCache | None = None
        self.addresses = addresses or Addresses(())
        self.failures = FailedKeys()

    @property
    def required(self) -> bool:
        """Whether requests need a key: there is the owner's, or any in the database."""
        return bool(self._keys) or (self.named is not None and not self.named.empty)

    def allows(self, key: str | None) -> bool:
        """Whether ``key`` is the owner's."""
        if key is None:
            return False
        presented = key.encode("utf-8", "surrogateescape")  # (aiohttp keeps undecodable bytes so)
        found = False
        for known in self._keys:  # no early exit: every key is compared
            found |= hmac.compare_digest(presented, known)
        return found

    def check_host(self, request: web.Request) -> None:
        """On a relay without keys, raise ``MisdirectedRequest`` unless ``Host`` names a loopback host."""
        if self._loopback_hosts_only and not self.required and not names_loopback(request.headers.get("Host")):
            raise MisdirectedRequest("this relay has no access key, so it answers only requests "
                                     "addressed to a loopback host (localhost, 127.0.0.1, [::1])")

    def identify(self, request: web.Request) -> Caller:
        """Who is calling; raise ``Unauthorized`` for a missing, wrong, revoked or expired key
        (alike: the answer does not tell which)."""
        if not self.required:
            return ANONYMOUS
        failures = self.failures
        if failures.refusing:
            wait = failures.refused(self.addresses.of(request))
            if wait is not None:
                raise RateLimited(f"too many wrong access keys from this address: try again in {wait} s", wait)
        key = presented_key(request)
        if key is None:
            raise Unauthorized("missing access key: send it as 'Authorization: Bearer <key>'")
        if self.allows(key):
            return OWNER
        named = self.named
        if named is not None and key.startswith(KEY_PREFIX):
            caller = named.find(key)
            if caller is not None and caller.usable(time.time()):
                return caller
        failures.failed(self.addresses.of(request))
        raise Unauthorized("wrong access key")
