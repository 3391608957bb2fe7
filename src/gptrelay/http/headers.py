"""Which headers cross the relay, in each direction."""

from __future__ import annotations

from collections.abc import Mapping

from gptrelay import __version__

# Sent upstream when the client names no agent of its own.
USER_AGENT = f"gptrelay/{__version__}"

# Hop-by-hop headers (RFC 9110 §7.6.1) belong to one connection, never forwarded.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "transfer-encoding", "upgrade",
})

# The client's credentials and identity stay here; the relay sends its own. ``Expect`` is
# answered by the relay itself.
NOT_UPSTREAM = HOP_BY_HOP | frozenset({
    "host", "content-length", "expect", "authorization", "api-key", "cookie", "openai-organization",
    "openai-project", "origin", "referer", "forwarded", "x-forwarded-for", "x-forwarded-host",
    "x-forwarded-proto", "x-real-ip",
})

# The upstream's cookies and connection details are not the client's business.
NOT_DOWNSTREAM = HOP_BY_HOP | frozenset({
    "set-cookie", "server", "date", "alt-svc", "strict-transport-security",
})


def to_upstream(headers: Mapping[str, str], accept_encoding: str | None = None) -> list[tuple[str, str]]:
    """The client's end-to-end headers. ``Accept-Encoding`` is what the client asked for (or
    ``accept_encoding``), never aiohttp's default: bodies pass through undecoded. Without a
    ``User-Agent`` of the client's, the relay's own. Headers that the client's ``Connection``
    names are hop-by-hop too."""
    dropped = NOT_UPSTREAM
    connection = headers.get("Connection")
    if connection is not None:
        # (never Content-Encoding: a body's bytes and its encoding go upstream together)
        dropped = dropped | ({name.strip().lower() for name in connection.split(",")} - {"content-encoding"})
    out = [(name, value) for name, value in headers.items()
           if (lower := name.lower()) not in dropped and lower != "accept-encoding"]
    out.append(("Accept-Encoding", accept_encoding or headers.get("Accept-Encoding", "identity")))
    if "User-Agent" not in headers:
        out.append(("User-Agent", USER_AGENT))
    return out


def to_client(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    return [(name, value) for name, value in headers.items() if name.lower() not in NOT_DOWNSTREAM]
