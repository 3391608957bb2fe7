"""How an upstream is addressed and authenticated: OpenAI's way (and every compatible server's).

A provider turns the API path a client asked for (``chat/completions``) into
the URL its upstream serves it at, and a key into the headers that carry it.
It knows nothing of the HTTP client (``gptrelay.upstream.transport``) nor of
which upstream a request goes to (``gptrelay.upstream.pool``).
"""

from __future__ import annotations

import functools

from yarl import URL


class OpenAI:
    """An OpenAI-compatible API at ``base_url`` (…/v1): the path appended, the key as a bearer token."""

    kind = "openai"

    def __init__(self, base_url: str, organization: str | None = None, project: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.host = URL(self.base_url).host or self.base_url
        extra: list[tuple[str, str]] = []
        if organization:
            extra.append(("OpenAI-Organization", organization))
        if project:
            extra.append(("OpenAI-Project", project))
        self._extra = tuple(extra)

    def credentials(self, key: str | None) -> tuple[tuple[str, str], ...]:
        """The headers that carry ``key`` (and the organization and project, if any)."""
        if key is None:
            return self._extra
        return (("Authorization", f"Bearer {key}"), *self._extra)

    def url(self, path: str, query: str = "", model: str | None = None) -> URL:
        """The upstream URL of the API path ``path`` (after ``/v1/``), with ``query`` as sent."""
        if not query:
            return self._url(path)
        return URL(f"{self.base_url}/{path.lstrip('/')}?{query}", encoded=True)

    @functools.lru_cache(maxsize=256)  # noqa: B019 - providers live as long as the process
    def _url(self, path: str) -> URL:
        return URL(f"{self.base_url}/{path.lstrip('/')}", encoded=True)
