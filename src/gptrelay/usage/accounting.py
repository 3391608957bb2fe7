"""Where a finished request's usage goes: the database (committed before its response ends),
the quota book (at once, in this process) and the TPM counter."""

from __future__ import annotations

from gptrelay.auth.caller import Caller
from gptrelay.limits.admission import Admission
from gptrelay.usage.records import UsageRecord
from gptrelay.usage.writer import UsageWriter


class Accounting:
    """Built with the app; its writer is attached at start, once the database is open."""

    __slots__ = ("admission", "running", "writer")

    def __init__(self, admission: Admission) -> None:
        self.admission = admission
        self.writer: UsageWriter | None = None
        self.running = 0  # requests with a meter not yet committed

    def attach(self, writer: UsageWriter | None) -> None:
        self.writer = writer
        if writer is not None:
            writer.more_coming = lambda: self.running > 0

    async def record(self, record: UsageRecord, caller: Caller) -> None:
        if self.writer is not None:
            await self.writer.record(record)
        tokens = record.tokens
        if tokens and record.key is not None:
            self.admission.quotas.add(record.key, tokens)
            if caller.tpm is not None:
                await self.admission.limiter.spend(caller.name, tokens)
