"""What handlers reach through the application: typed keys, set up by ``create_app``."""

from __future__ import annotations

from aiohttp import web

from gptrelay.auth.access import AccessKeys
from gptrelay.auth.caller import Caller
from gptrelay.auth.keys import KeyStore
from gptrelay.http.bodies import BodyLimits
from gptrelay.limits.admission import Admission
from gptrelay.settings import Settings
from gptrelay.upstream.pool import Pool
from gptrelay.usage.accounting import Accounting
from gptrelay.usage.meter import Meter
from gptrelay.watchdog import Sweeper

SETTINGS = web.AppKey("settings", Settings)
UPSTREAM = web.AppKey("upstream", Pool)
PAGE = web.AppKey("page", str)
SWEEPER = web.AppKey("sweeper", Sweeper)
BODY_LIMITS = web.AppKey("body_limits", BodyLimits)
ACCESS_KEYS = web.AppKey("access_keys", AccessKeys)
ADMISSION = web.AppKey("admission", Admission)
ACCOUNTING = web.AppKey("accounting", Accounting)
KEY_STORE = web.AppKey("key_store", KeyStore)
METER = web.RequestKey("meter", Meter)  # set by the front door on recorded routes
CALLER = web.RequestKey("caller", Caller)  # set by the front door once the key is checked
