"""Cross-origin access: preflights answered before any key check, allow-origin on every response.

An allowed origin is echoed back (never ``*``), with credentials allowed, so
pages that fetch with ``credentials: "include"`` work.
"""

from __future__ import annotations

from aiohttp import web

ALLOW_HEADERS = "Authorization, Content-Type, api-key"
ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
EXPOSE_HEADERS = ", ".join((
    "x-request-id", "openai-processing-ms", "openai-organization", "openai-version",
    "retry-after", "x-ratelimit-limit-requests", "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens",
))


class Cors:
    def __init__(self, origins: tuple[str, ...]) -> None:
        self.any_origin = "*" in origins
        self.origins = frozenset(origins)

    def allows(self, origin: str) -> bool:
        return self.any_origin or origin.rstrip("/") in self.origins

    def install(self, app: web.Application) -> None:
        app.on_response_prepare.append(self.decorate)

    def preflight(self, request: web.Request) -> web.Response:
        """The answer to an ``OPTIONS`` request, whatever its path."""
        response = web.Response(status=204, headers={"Vary": "Origin"})
        origin = request.headers.get("Origin")
        if origin and self.allows(origin):
            headers = response.headers
            asked = request.headers.get("Access-Control-Request-Headers")
            headers["Access-Control-Allow-Origin"] = origin
            headers["Access-Control-Allow-Credentials"] = "true"
            headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
            headers["Access-Control-Allow-Headers"] = f"{ALLOW_HEADERS}, {asked}" if asked else ALLOW_HEADERS
            headers["Access-Control-Max-Age"] = "86400"
            if request.headers.get("Access-Control-Request-Private-Network") == "true":
                headers["Access-Control-Allow-Private-Network"] = "true"
        return response

    async def decorate(self, request: web.Request, response: web.StreamResponse) -> None:
        origin = request.headers.get("Origin")
        if origin and request.method != "OPTIONS" and self.allows(origin):
            headers = response.headers
            headers["Access-Control-Allow-Origin"] = origin
            headers["Access-Control-Allow-Credentials"] = "true"
            headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
            headers.add("Vary", "Origin")
