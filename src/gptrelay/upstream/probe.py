"""``gptrelay check``'s work: ask each upstream, with each of its keys, for its models, and time it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from gptrelay.errors import RelayError, redact
from gptrelay.upstream.pool import Key, Member, Pool
from gptrelay.wire.completions import error_code, error_message

HEADERS = (("Accept", "application/json"), ("Accept-Encoding", "identity"))


@dataclass
class Probe:
    """How one key of one upstream answered. Never the key: ``key`` is masked."""

    upstream: str
    key: str
    ok: bool
    status: int | None
    seconds: float
    models: list[str] = field(default_factory=list)
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


async def probe(member: Member, key: Key) -> Probe:
    started = time.monotonic()
    try:
        response = await member.transport.request("GET", member.provider.models_url(),
                                                  [*HEADERS, *key.credentials])
        async with response:
            body = await response.read()
    except RelayError as error:
        return Probe(member.name, key.masked, False, None, time.monotonic() - started, error=error.message)
    seconds = time.monotonic() - started
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    if response.status >= 400:
        if response.refuses_key:
            code = error_code(parsed)
            reason = f"the upstream refused this key{f' ({code})' if code else ''}"
        else:
            reason = redact(error_message(parsed) or response.reason or "no message")
        return Probe(member.name, key.masked, False, response.status, seconds, error=reason[:300])
    listed = parsed.get("data") if isinstance(parsed, dict) else None
    if not isinstance(listed, list):
        return Probe(member.name, key.masked, False, response.status, seconds,
                     error="the answer is not a list of models")
    models = [str(item.get("id")) for item in listed if isinstance(item, dict) and item.get("id")]
    return Probe(member.name, key.masked, True, response.status, seconds, models)


async def probe_all(pool: Pool) -> list[Probe]:
    """Every key of every upstream, all at once; in the configuration's order."""
    await pool.start()
    try:
        return list(await asyncio.gather(*(probe(member, key) for member in pool.members for key in member.keys)))
    finally:
        await pool.close()
