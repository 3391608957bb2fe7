"""What one request used, filled in as it goes, and committed once, before its response ends.

The front door gives every request that passed the key check a ``Meter``.
The route tells it the model, the status, the tokens the upstream reported
(or the text it saw, for an estimate) and when the first byte went out, and
calls ``commit()`` just before the end of its response (the done frame,
``data: [DONE]``, the last bytes of a body); the door commits what is left
(refusals, errors, clients gone) before its own answer. So once a client has
seen its response end, its record is in the database.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from gptrelay.auth.caller import ANONYMOUS, OWNER, Caller
from gptrelay.usage.accounting import Accounting
from gptrelay.usage.records import Outcome, UsageRecord
from gptrelay.wire.tokens import count, estimate, reported


class Meter:
    __slots__ = ("_accounting", "_clock", "caller", "committed", "completion", "first_byte", "model", "outcome",
                 "prompt", "prompt_size", "record", "reply_size", "route", "started", "status")

    def __init__(self, accounting: Accounting, caller: Caller, route: str) -> None:
        self._accounting = accounting
        self._clock = asyncio.get_running_loop().time
        self.caller = caller
        self.route = route
        self.started = self._clock()
        self.first_byte = 0.0
        self.model: str | None = None
        self.status = 200
        self.prompt: int | None = None  # as reported by the upstream; None: estimate
        self.completion = 0
        self.prompt_size = 0  # bytes of the request, for an estimate
        self.reply_size = 0  # pieces or bytes of reply text, for an estimate
        self.outcome: Outcome = "ok"
        self.committed = False
        self.record: UsageRecord | None = None  # once committed (the metrics and the access log read it)
        accounting.running += 1

    def sent_first_byte(self) -> None:
        if not self.first_byte:
            self.first_byte = self._clock()

    def count(self, usage: dict[str, Any] | None, pieces: int) -> None:
        """The upstream's ``usage`` object if it sent one, else ``pieces`` of reply for an estimate."""
        if usage:
            prompt, completion = count(usage.get("prompt_tokens")), count(usage.get("completion_tokens"))
            if prompt is not None and completion is not None:
                self.prompt, self.completion = prompt, completion
                return
        self.reply_size = pieces

    def read_usage(self, data: bytes) -> None:
        """Take the token counts ``data`` reports (the last ones, if several)."""
        found = reported(data)
        if found is not None:
            self.prompt, self.completion = found

    def failed(self, status: int, outcome: Outcome = "error") -> None:
        self.status = status
        self.outcome = outcome

    async def commit(self) -> None:
        """Record this request (once): returns when the record is committed."""
        if self.committed:
            return
        self.committed = True
        self._accounting.running -= 1
        now = self._clock()
        estimated = self.prompt is None
        caller = self.caller
        record = UsageRecord(
            time=datetime.now(UTC), key=None if caller is OWNER or caller is ANONYMOUS else caller.name,
            route=self.route, model=self.model, status=self.status,
            prompt_tokens=estimate(self.prompt_size) if self.prompt is None else self.prompt,
            completion_tokens=self.reply_size if estimated else self.completion, estimated=estimated,
            outcome=self.outcome, ttfb_ms=round((self.first_byte - self.started) * 1000) if self.first_byte else None,
            duration_ms=round((now - self.started) * 1000))
        self.record = record
        await self._accounting.record(record, caller)
