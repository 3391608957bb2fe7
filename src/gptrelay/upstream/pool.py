"""The upstreams a request may go to, and the one it goes to.

Routes call ``Pool.request`` with the API path, the client's headers and
body; the pool picks the upstream, its provider addresses the request and
adds the key, and the upstream's transport sends it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from typing import Any

from gptrelay.settings import Settings
from gptrelay.upstream.providers import OpenAI
from gptrelay.upstream.transport import Transport, UpstreamResponse, proxy_for
from gptrelay.watchdog import OnWait, Sweeper


class Pool:
    """Today one upstream: ``OPENAI_BASE_URL`` with ``OPENAI_API_KEY``."""

    def __init__(self, settings: Settings, sweeper: Sweeper, base_url: str | None = None) -> None:
        self.provider = OpenAI(base_url or settings.openai_base_url, settings.openai_organization,
                               settings.openai_project)
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key is not None else None
        self._credentials = self.provider.credentials(key)
        self.transport = Transport(settings, sweeper, self.provider.base_url, proxy_for(self.provider.base_url))

    async def start(self) -> None:
        await self.transport.start()

    async def close(self) -> None:
        await self.transport.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Iterable[tuple[str, str]],
        data: Any = None,
        query: str = "",
        on_wait: OnWait | None = None,
    ) -> Awaitable[UpstreamResponse]:
        """Send a request with the relay's own credentials; await it for the reply, once its
        headers arrive (``Transport.request``)."""
        return self.transport.request(method, self.provider.url(path, query),
                                      [*headers, *self._credentials], data, on_wait)
