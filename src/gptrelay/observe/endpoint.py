"""``GET /metrics``: the metrics in Prometheus's text format, for the admin key only.

As the admin API: 404 without ``ADMIN_KEY``, 401 without ``Authorization:
Bearer <ADMIN_KEY>`` (an access key is not enough). Prometheus sends it with
``authorization: {credentials: …}`` in its scrape configuration.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from gptrelay.admin.api import check_admin
from gptrelay.observe.metrics import Metrics

METRICS = web.AppKey("metrics", Metrics)


async def metrics(request: web.Request) -> web.StreamResponse:
    check_admin(request)
    body = request.app[METRICS].exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})
