"""How a request picks its behaviour: ``/scenario NAME key=value …``.

The last user message that starts with ``/scenario`` (or the
``X-Fake-Scenario`` request header) chooses what the fake upstream does.
Requests without one get the ``demo`` scenario.

=================  ===========================================================
name               behaviour
=================  ===========================================================
demo               a friendly simulated reply, paced like a real model
markdown           a reply with a heading, a table, code and math
chinese            a Chinese reply
xss                a reply full of HTML/JS injection attempts
whitespace         pieces that are only whitespace (" ", "\\n\\n")
split-utf8         bytes written in tiny slices that cut UTF-8 characters
split-events       events cut at random byte positions across writes
coalesced          the whole stream written at once
crlf               ``\\r\\n`` line endings
comments           ``: keep-alive`` comment lines between events
empty-choices      Azure's prompt-filter chunk first (and, as always when the request
                   asks for it, a usage chunk last)
tool-calls         tool-call deltas and no content
length             stops with ``finish_reason: "length"`` after ``cut`` pieces
long               a long text delivered ``cut`` pieces per request; a later
                   request continues after the assistant text it was sent
error              answers ``status=`` (default 500) with an OpenAI error body
                   (``code=`` its code, ``retry_after=`` a 429's header, ``none`` for none)
error-in-stream    some content, then an ``{"error": …}`` event
cut                some content, then the connection is closed, no [DONE]
stall              some content, then silence for ``seconds=`` (default 3600)
slow-first         silence for ``seconds=`` before the first token
slow-headers       silence for ``seconds=`` before even the response headers
bench              ``chunks=`` pieces of ``size=`` bytes, ``interval_ms=`` apart
=================  ===========================================================

Common parameters: ``interval_ms`` (pause between pieces), ``cut`` (pieces
before a cut, length or error), ``status``, ``seconds``, ``text``.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

DIRECTIVE = "/scenario"


@dataclass(frozen=True)
class Scenario:
    name: str = "demo"
    params: dict[str, str] = field(default_factory=dict)

    def number(self, key: str, default: float) -> float:
        try:
            return float(self.params[key])
        except (KeyError, ValueError):
            return default

    def integer(self, key: str, default: int) -> int:
        return int(self.number(key, default))

    @classmethod
    def parse(cls, text: str) -> Scenario:
        """Parse ``/scenario NAME k=v …`` (the directive word is optional)."""
        words = shlex.split(text.strip()) if text.strip() else []
        if words and words[0] == DIRECTIVE:
            words = words[1:]
        if not words:
            return cls()
        params = dict(word.split("=", 1) for word in words[1:] if "=" in word)
        return cls(words[0], params)


def message_text(message: Any) -> str:
    """The text of a chat message whose content is a string or a list of parts."""
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "") for part in content if isinstance(part, dict)
        )
    return ""


def find_scenario(body: Any, header: str | None) -> tuple[Scenario, int]:
    """The scenario a request asks for, and the index of the message naming it."""
    if header:
        return Scenario.parse(header), -1
    messages = body.get("messages") if isinstance(body, dict) else None
    if isinstance(messages, list):
        for index in range(len(messages) - 1, -1, -1):
            message = messages[index]
            if isinstance(message, dict) and message.get("role") == "user":
                text = message_text(message).lstrip()
                if text.startswith(DIRECTIVE):
                    return Scenario.parse(text.splitlines()[0]), index
    return Scenario(), -1
