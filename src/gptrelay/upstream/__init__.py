"""The upstream API: ``transport.py`` is the one place that talks to it (and knows aiohttp's client)."""
