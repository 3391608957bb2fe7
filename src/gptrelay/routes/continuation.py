"""``CHAT_MAX_CONTINUATIONS`` for ``/chat``: a reply cut by ``length`` asked for again, as one reply.

Each further round sends the same request with the reply so far appended as
an assistant message, and its text streams on in the same frames. The done
frame says how many rounds there were; the usage recorded is every round's.
"""

from __future__ import annotations

from typing import Any

import orjson


class Rounds:
    """The rounds of one ``/chat`` reply: the payload of each, the text so far and the usage summed."""

    __slots__ = ("_body", "_usage", "count", "limit", "payload", "text")

    def __init__(self, payload: bytes, continuations: int) -> None:
        self.payload = payload
        self.limit = continuations
        self.count = 1
        self.text: list[str] | None = [] if continuations else None  # kept only when it may be needed
        self._body: dict[str, Any] | None = None
        self._usage: list[dict[str, Any] | None] = []

    def finished(self, finish_reason: str | None, usage: dict[str, Any] | None) -> bool:
        """Count one round's end; whether the reply is over (else ``payload`` asks for the next)."""
        self._usage.append(usage)
        if finish_reason != "length" or self.count > self.limit or self.text is None:
            return True
        if self._body is None:
            self._body = orjson.loads(self.payload)
        body = dict(self._body)
        body["messages"] = [*body["messages"], {"role": "assistant", "content": "".join(self.text)}]
        self.payload = orjson.dumps(body)
        self.count += 1
        return False

    @property
    def usage(self) -> dict[str, Any] | None:
        """The usage of every round, added up (None unless every round ended and reported its own)."""
        if len(self._usage) < self.count:
            return None
        if len(self._usage) == 1:
            return self._usage[0]
        total: dict[str, Any] = {}
        for usage in self._usage:
            if not usage:
                return None
            for field in ("prompt_tokens", "completion_tokens", "total_tokens"):
                value = usage.get(field)
                if not isinstance(value, int):
                    return None
                total[field] = total.get(field, 0) + value
        return total
