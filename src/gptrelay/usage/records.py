"""One request's usage, as the request path hands it to the ``UsageWriter``."""

from __future__ import annotations

import itertools
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

Outcome = Literal["ok", "error", "client_gone", "cut"]
OUTCOMES: tuple[str, ...] = get_args(Outcome)


class _RecordIds:
    """New records' ids: this process's random prefix (64 bits, new in every process, forked ones
    too) and a serial number. Unique, and rising within a process, so the ``record_id`` index grows
    at its end (a random id per record lands anywhere in it, touching pages all over), and making
    one costs no syscall."""

    __slots__ = ("prefix", "serial")

    def __init__(self) -> None:
        self.renew()

    def renew(self) -> None:
        self.prefix = secrets.token_hex(8)
        self.serial = itertools.count()

    def __call__(self) -> str:
        return f"{self.prefix}{next(self.serial):016x}"


new_record_id = _RecordIds()
os.register_at_fork(after_in_child=new_record_id.renew)


def utc(when: datetime) -> datetime:
    """``when`` in UTC; a time without a zone is taken as UTC (SQLite returns them so)."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def iso_ms(when: datetime) -> str:
    """``2026-11-25T19:12:59.123Z``."""
    return utc(when).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _cut(text: str | None, length: int) -> str | None:
    """``text`` fit for a column of ``length`` characters. A NUL (a client may name a model
    ``"gpt\\u0000"``) becomes U+FFFD: PostgreSQL refuses NUL in text, and would refuse the batch."""
    if text is None:
        return None
    return (text.replace("\0", "\ufffd") if "\0" in text else text)[:length]


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """What one request used and how it ended.

    ``key`` is the access key's name (``None`` for the owner's ``AUTHORIZATION_KEY``
    or a relay without keys); ``route`` is ``/chat``, ``/chatgpt`` or the ``/v1/...``
    path; ``estimated`` says the tokens were counted by the relay, not reported by
    the upstream; ``ttfb_ms`` is ``None`` when no byte came.
    """

    time: datetime
    key: str | None
    route: str
    model: str | None
    status: int
    prompt_tokens: int
    completion_tokens: int
    estimated: bool
    outcome: Outcome
    ttfb_ms: int | None = None
    duration_ms: int | None = None
    record_id: str = field(default_factory=new_record_id)  # stored once, however often written

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def row(self) -> dict[str, Any]:
        """The ``usage`` table's columns (the time in UTC: SQLite keeps no zone). Text is cut to the columns'
        lengths: PostgreSQL refuses longer text, and one refused row would fail its whole batch."""
        return {"time": utc(self.time), "key_name": _cut(self.key, 64), "route": _cut(self.route, 32),
                "model": _cut(self.model, 200),
                "status": self.status, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "estimated": self.estimated,
                "outcome": self.outcome, "ttfb_ms": self.ttfb_ms, "duration_ms": self.duration_ms,
                "record_id": self.record_id}

    def as_json(self) -> dict[str, Any]:
        """A JSON object (the spool's lines); ``from_json`` reads it back."""
        return {"time": utc(self.time).isoformat(), "key": self.key, "route": self.route, "model": self.model,
                "status": self.status, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "estimated": self.estimated,
                "outcome": self.outcome, "ttfb_ms": self.ttfb_ms, "duration_ms": self.duration_ms,
                "record_id": self.record_id}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> UsageRecord:
        outcome = value["outcome"]
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        return cls(time=utc(datetime.fromisoformat(value["time"])), key=value["key"], route=value["route"],
                   model=value["model"], status=int(value["status"]), prompt_tokens=int(value["prompt_tokens"]),
                   completion_tokens=int(value["completion_tokens"]), estimated=bool(value["estimated"]),
                   outcome=outcome, ttfb_ms=value.get("ttfb_ms"), duration_ms=value.get("duration_ms"),
                   **({"record_id": str(value["record_id"])[:32]} if value.get("record_id") else {}))
