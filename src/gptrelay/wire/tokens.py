"""Token counts in the upstream's bytes: what it reported, or an estimate where it reported none.

``reported`` finds the last ``usage`` an OpenAI-shaped body or stream holds
(Chat Completions' ``prompt_tokens``/``completion_tokens``, the Responses
API's ``input_tokens``/``output_tokens``, embeddings' ``prompt_tokens``)
without parsing the JSON around it, so a stream is searched only in the read
that carries it (``MARK`` is the cheap test). ``estimate`` guesses tokens from
text the way OpenAI's rule of thumb does: about four characters a token.
"""

from __future__ import annotations

import re

MARK = b'_tokens"'  # in every usage object; a read without it holds none
MOST = 10**15 - 1
"""The largest count taken as one: a number past it (a hostile or broken upstream's) is no count, so it
can neither fail a usage batch in the database (BIGINT) nor cost a conversion of thousands of digits."""
_PROMPT = re.compile(rb'"(?:prompt|input)_tokens"\s*:\s*(\d{1,15})(?!\d)')
_COMPLETION = re.compile(rb'"(?:completion|output)_tokens"\s*:\s*(\d{1,15})(?!\d)')


def reported(data: bytes) -> tuple[int, int] | None:
    """The last (prompt, completion) tokens ``data`` reports, or None. The last ``"usage"`` key is
    looked at first: a whole stream in one read is then not searched from its start."""
    last = data.rfind(b'"usage"')
    if last > 0:
        found = reported(data[last:])
        if found is not None:
            return found
    prompts = _PROMPT.findall(data)
    if not prompts:
        return None
    completions = _COMPLETION.findall(data)
    return int(prompts[-1]), int(completions[-1]) if completions else 0


def count(value: object) -> int | None:
    """``value`` if it is a token count (a whole number from 0 to ``MOST``, not a boolean), else None."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MOST:
        return value
    return None


def estimate(size: int) -> int:
    """Tokens in ``size`` bytes (or characters) of text: about four a token, at least one for any text."""
    return (size + 3) // 4
