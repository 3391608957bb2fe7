"""Access keys: who may use the relay.

A key may come as ``Authorization: <key>``, ``Authorization: Bearer <key>``
or ``api-key: <key>``, and is compared in constant time. The page, static
files, health checks and preflights need none.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from gptrelay.errors import Unauthorized

OPEN_PATHS = frozenset({"/", "/healthz", "/favicon.ico"})


def presented_key(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header:
        scheme, _, rest = header.partition(" ")
        return rest.strip() if rest and scheme.lower() == "bearer" else header.strip()
    return request.headers.get("api-key")


class AccessKeys:
    def __init__(self, keys: tuple[str, ...]) -> None:
        self._keys = tuple(key.encode() for key in keys)

    @property
    def required(self) -> bool:
        return bool(self._keys)

    def allows(self, key: str | None) -> bool:
        if key is None:
            return False
        presented = key.encode()
        found = False
        for known in self._keys:  # no early exit: every key is compared
            found |= hmac.compare_digest(presented, known)
        return found

    def check(self, request: web.Request) -> None:
        """Raise ``Unauthorized`` unless the request may pass."""
        if not self._keys:
            return
        path = request.path
        if path in OPEN_PATHS or path.startswith("/static/"):
            return
        key = presented_key(request)
        if key is None:
            raise Unauthorized("missing access key: send it as 'Authorization: Bearer <key>'")
        if not self.allows(key):
            raise Unauthorized("wrong access key")
