"""How an upstream is addressed and authenticated: OpenAI's way (and every compatible server's), Azure's.

A provider turns the API path a client asked for (``chat/completions``) into
the URL its upstream serves it at, and a key into the headers that carry it.
It knows nothing of the HTTP client (``gptrelay.upstream.transport``) nor of
which upstream a request goes to (``gptrelay.upstream.pool``).
"""

from __future__ import annotations

import functools
from urllib.parse import quote

from yarl import URL

from gptrelay.errors import BadRequest, NotFound

AZURE_PATHS = frozenset({"chat/completions"})


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

    def offers(self, path: str) -> bool:
        return True

    def models_url(self) -> URL:
        """Where the upstream lists its models (``gptrelay check``)."""
        return self._url("models")

    def url(self, path: str, query: str = "", model: str | None = None) -> URL:
        """The upstream URL of the API path ``path`` (after ``/v1/``), with ``query`` as sent."""
        if not query:
            return self._url(path)
        return URL(f"{self.base_url}/{path.lstrip('/')}?{query}", encoded=True)

    @functools.lru_cache(maxsize=256)  # noqa: B019 - providers live as long as the process
    def _url(self, path: str) -> URL:
        return URL(f"{self.base_url}/{path.lstrip('/')}", encoded=True)


class Azure:
    """An Azure OpenAI resource at ``base_url``: chat completions of a deployment, the key in ``api-key``.

    The model a request names picks the deployment (``deployments``, else a deployment of the
    model's own name). Other API paths are not offered through the relay: ``NotFound``.
    """

    kind = "azure"

    def __init__(self, base_url: str, api_version: str, deployments: dict[str, str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.host = URL(self.base_url).host or self.base_url
        self.api_version = api_version
        self.deployments = dict(deployments or {})

    def credentials(self, key: str | None) -> tuple[tuple[str, str], ...]:
        return () if key is None else (("api-key", key),)

    def offers(self, path: str) -> bool:
        return path.strip("/") in AZURE_PATHS

    def models_url(self) -> URL:
        """Where the resource lists the models it can deploy (``gptrelay check``)."""
        return URL(f"{self.base_url}/openai/models", encoded=True).with_query({"api-version": self.api_version})

    def url(self, path: str, query: str = "", model: str | None = None) -> URL:
        """``{base_url}/openai/deployments/{deployment}/chat/completions?api-version=…`` (the
        client's own query does not go to Azure)."""
        if not self.offers(path):
            raise NotFound(f"Azure OpenAI does not offer /v1/{path.strip('/')} through this relay: its "
                           f"upstream {self.host} serves chat completions only (/chat, /chatgpt and "
                           "/v1/chat/completions)")
        if not model:
            raise BadRequest("name the model: it picks the Azure OpenAI deployment that answers")
        return self._url(path.strip("/"), self.deployments.get(model, model))

    @functools.lru_cache(maxsize=256)  # noqa: B019 - providers live as long as the process
    def _url(self, path: str, deployment: str) -> URL:
        return URL(f"{self.base_url}/openai/deployments/{quote(deployment, safe='')}/{path}", encoded=True) \
            .with_query({"api-version": self.api_version})
