"""The relay's errors: one tree, rendered at one boundary (``gptrelay.app``)::

    RelayError                  500  server_error
    ├── BadRequest              400  invalid_request_error
    │   ├── Unprocessable       422  invalid_request_error
    │   ├── PayloadTooLarge     413  invalid_request_error / payload_too_large
    │   ├── RequestTimeout      408  invalid_request_error / request_timeout (the body stopped coming)
    │   ├── UnsupportedEncoding 415  invalid_request_error / unsupported_content_encoding
    │   ├── ExpectationFailed   417  invalid_request_error
    │   └── MisdirectedRequest  421  invalid_request_error (a Host a keyless relay does not serve)
    ├── Unauthorized            401  invalid_request_error / invalid_api_key
    ├── Forbidden               403  invalid_request_error / model_not_allowed, origin_not_allowed
    ├── RateLimited             429  rate_limit_exceeded, with Retry-After (a key's rpm or tpm)
    ├── QuotaExceeded           429  insufficient_quota, with Retry-After (a key's daily or monthly tokens)
    ├── NotFound                404  invalid_request_error / not_found (an access key no one made, a path
    │                                Azure does not offer), model_not_found (a model no upstream serves)
    ├── Conflict                409  invalid_request_error / conflict (an access key's name already taken)
    ├── StorageError            503  storage_error (the database is missing a driver, unreachable or failing)
    ├── RefusedStart            a configuration the relay will not serve with (told in one line at start)
    │   └── ConfigError         the upstreams' file: one line per mistake (gptrelay.upstream.config)
    ├── LimiterUnavailable      503  server_error / limiter_unavailable (REDIS_FAILURE_POLICY=closed, Redis down)
    ├── UpstreamStatus          the upstream's own status, message and body
    │   └── UpstreamKeyRefused  the upstream's 401/403, in the relay's words (never the upstream's)
    └── UpstreamError           502  upstream_error (unreachable, connection lost)
        ├── UpstreamTimeout     504  upstream_timeout
        └── StreamCut           502  upstream_error (stream ended before [DONE])
            └── ShuttingDown    503  server_error / shutting_down (the relay's drain time ran out)

``gptrelay.db`` turns the database driver's exceptions into ``StorageError``;
its message names the database by its URL with the password masked.

A client error found while the relay sends a request body upstream (the body
stopped coming, or grew past the limit) is the client's: ``gptrelay.upstream.transport``
raises it as it is, not as an upstream failure.

``gptrelay.upstream.transport`` translates the HTTP client's exceptions (and its SOCKS
connector's, a failing proxy named with its password masked) into this tree;
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
    retry_after: int | None = None  # seconds, sent as Retry-After
    reported = True  # each one logged by ``report`` (when the relay's or the upstream's)

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


class RequestTimeout(BadRequest):
    status = 408
    code = "request_timeout"


class UnsupportedEncoding(BadRequest):
    status = 415
    code = "unsupported_content_encoding"


class ExpectationFailed(BadRequest):
    status = 417


class MisdirectedRequest(BadRequest):
    status = 421


class Unauthorized(RelayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class Forbidden(RelayError):
    status = 403
    type = "invalid_request_error"

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class RateLimited(RelayError):
    status = 429
    type = "requests"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class QuotaExceeded(RateLimited):
    type = "insufficient_quota"
    code = "insufficient_quota"


class NotFound(RelayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class Conflict(RelayError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"


class RefusedStart(RelayError):
    """A configuration the relay will not serve with (found at start, told in one line)."""


class StorageError(RelayError):
    status = 503
    type = "storage_error"
class LimiterUnavailable(RelayError):
    """The shared rate-limit counters (Redis) cannot be reached, and the relay is told to refuse then."""

    status = 503
    code = "limiter_unavailable"
    reported = False  # the limiter tells the outage, once every 30 s; a line per refusal would flood the log


class UpstreamStatus(RelayError):
    """The upstream answered with an error status; ``body`` is what it sent."""

    def __init__(self, status: int, message: str, body: bytes = b"", content_type: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.content_type = content_type


class UpstreamKeyRefused(UpstreamStatus):
    """The upstream refused the relay's own key: the operator's problem, told without the
    upstream's message (OpenAI's quotes a masked form of the key)."""

    type = "upstream_auth_error"
    code = "upstream_key_refused"

    def __init__(self, status: int, reason: str | None = None) -> None:
        because = f" ({reason})" if reason else ""
        super().__init__(status, f"the upstream refused the relay's own API key{because}, with status {status}: "
                                 "the relay's operator must check its upstream keys (OPENAI_API_KEY, or the keys "
                                 "in gptrelay.toml). "
                                 "The key you sent to the relay was accepted.")


class UpstreamError(RelayError):
    status = 502
    type = "upstream_error"


class UpstreamTimeout(UpstreamError):
    status = 504
    type = "upstream_timeout"


class StreamCut(UpstreamError):
    pass


class ShuttingDown(StreamCut):
    """A reply the relay cut itself: it is shutting down and its ``DRAIN_TIMEOUT`` is over. A
    client that had nothing yet gets 503, which OpenAI's SDKs retry (on the other relay)."""

    status = 503
    type = "server_error"
    code = "shutting_down"


def report(error: RelayError, method: str, path: str) -> None:
    """Log a failure that is the upstream's or the relay's (not the client's). Messages hold no keys."""
    if error.status >= 500 and error.reported:
        log.warning("%s %s: %s", method, path, error.message)


# OpenAI echoes a masked form of a wrong key ("sk-proj-****…5gA", "sk-abcd...wxyz"); the relay
# passes on none of it, masked tail included.
_KEYLIKE = re.compile(r"\b(?:sk|key|org|proj)-[A-Za-z0-9_*\-]{3,}(?:(?:…|\.\.\.)[A-Za-z0-9_\-]*)?")


def redact(message: str) -> str:
    """The message with anything shaped like a key replaced, for messages the relay writes itself."""
    return _KEYLIKE.sub("[redacted]", message)
