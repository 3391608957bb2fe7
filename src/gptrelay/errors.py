"""The relay's errors: one tree, rendered at one boundary (``gptrelay.app``)::

    RelayError                500  server_error
    ├── BadRequest            400  invalid_request_error
    │   ├── Unprocessable     422  invalid_request_error
    │   └── PayloadTooLarge   413  invalid_request_error
    ├── Unauthorized          401  invalid_request_error / invalid_api_key
    ├── UpstreamStatus        the upstream's own status, message and body
    └── UpstreamError         502  upstream_error (unreachable, connection lost)
        ├── UpstreamTimeout   504  upstream_timeout
        └── StreamCut         502  upstream_error (stream ended before [DONE])

``gptrelay.upstream`` translates the HTTP client's exceptions into this tree;
routes raise these and never see the client's types.
"""

from __future__ import annotations

import logging
import re

log = logging.getLogger("gptrelay")


class RelayError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def envelope(self) -> dict[str, dict[str, str | None]]:
        """OpenAI's error shape: ``{"error": {"message", "type", "code"}}``."""
        return {"error": {"message": self.message, "type": self.type, "code": self.code}}


class BadRequest(RelayError):
    status = 400
    type = "invalid_request_error"


class Unprocessable(BadRequest):
    status = 422


class PayloadTooLarge(BadRequest):
    status = 413
    code = "payload_too_large"

    @classmethod
    def over(cls, limit: int) -> PayloadTooLarge:
        return cls(f"the request body is larger than the limit of {limit} bytes")


class Unauthorized(RelayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class UpstreamStatus(RelayError):
    """The upstream answered with an error status; ``body`` is what it sent."""

    def __init__(self, status: int, message: str, body: bytes = b"", content_type: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.content_type = content_type


class UpstreamError(RelayError):
    status = 502
    type = "upstream_error"


class UpstreamTimeout(UpstreamError):
    status = 504
    type = "upstream_timeout"


class StreamCut(UpstreamError):
    pass


def report(error: RelayError, method: str, path: str) -> None:
    """Log a failure that is the upstream's or the relay's (not the client's). Messages hold no keys."""
    if error.status >= 500:
        log.warning("%s %s: %s", method, path, error.message)


# OpenAI echoes a masked form of a wrong key ("sk-proj-****…5gA"); the relay passes on none of it.
_KEYLIKE = re.compile(r"\b(?:sk|key|org|proj)-[A-Za-z0-9_*\-]{3,}")


def redact(message: str) -> str:
    """The message with anything shaped like a key replaced, for messages the relay writes itself."""
    return _KEYLIKE.sub("[redacted]", message)
