"""The usage the relay asks for itself, taken out of an OpenAI event stream again.

To record what a streamed reply used, the relay adds ``"stream_options":
{"include_usage": true}`` to a request whose client did not ask for it. The
upstream then ends the stream with one more chunk, ``"choices":[]`` and a
``usage``, and adds ``"usage":null`` to every other chunk; a client that did
not ask gets neither. This module does the byte work, without parsing JSON:

- ``body_asking_for_usage(body)``: the JSON body with the option added at its start, or
  None when it already names ``stream_options`` (its client chose) or is no
  JSON object;
- ``WholeEvents``: an incremental splitter: bytes in, whole events out (the
  bytes of an event not yet complete wait for the next read, which a client
  could not have used anyway), so a chunk or a ``"usage":null`` cut by a
  network read is still found whole;
- ``without_usage(events)``: whole events without the usage chunk and the
  ``"usage":null`` fields.
"""

from __future__ import annotations

from gptrelay.wire.tokens import MARK

OPTION = b'"stream_options":{"include_usage":true},'
USAGE_ONLY = (b'"choices":[]', b'"choices": []')  # the chunk asked for: no choices, a usage
NULL_USAGE = b',"usage":null'
_ENDS = (b"\n\n", b"\r\n\r\n", b"\r\r")
_LF_END = (b"\n\n",)  # events without a \r (OpenAI's) end so; one scan instead of three
HOLD_AT_MOST = 64 * 1024  # bytes without a blank line: not events as expected, so they go on as they are


def body_asking_for_usage(body: bytes) -> bytes | None:
    """``body`` (a JSON object) asking for the usage chunk, or None if it already says what it wants."""
    if b'"stream_options"' in body:
        return None
    start = body.find(b"{")
    if start < 0 or body[:start].strip():
        return None
    if body[start + 1:].lstrip().startswith(b"}"):  # an empty object: the option alone, no comma after it
        return body[:start + 1] + OPTION[:-1] + body[start + 1:]
    return body[:start + 1] + OPTION + body[start + 1:]


def is_usage_only(event: bytes) -> bool:
    """Whether ``event`` holds a chunk with no choices and a usage (Azure's first chunk has no
    choices either, and no usage: it stays)."""
    return (USAGE_ONLY[0] in event or USAGE_ONLY[1] in event) and MARK in event


def without_usage(events: bytes, holds_usage: bool | None = None) -> bytes:
    """Whole events without the usage-only chunk and without ``"usage":null``. Only the event around
    a ``"choices":[]`` is looked at: a read of many events costs a few scans, not a split.
    ``holds_usage``: whether ``MARK`` is in ``events``, when the caller has looked already."""
    if not (MARK in events if holds_usage is None else holds_usage):  # only the nulls to take out
        return events.replace(NULL_USAGE, b"")
    ends = _ENDS if b"\r" in events else _LF_END
    for marker in USAGE_ONLY:
        at = events.find(marker)
        while at >= 0:
            begin, end = _event_around(events, at, ends)
            if MARK in events[begin:end]:
                events = events[:begin] + events[end:]
                at = events.find(marker, begin)
            else:
                at = events.find(marker, end)
    return events.replace(NULL_USAGE, b"")


def _event_around(events: bytes, at: int, ends: tuple[bytes, ...]) -> tuple[int, int]:
    """Where the whole event holding position ``at`` begins and ends (its blank line included)."""
    begin = 0
    for blank in ends:
        found = events.rfind(blank, 0, at)
        if found >= 0:
            begin = max(begin, found + len(blank))
    end = len(events)
    for blank in ends:
        found = events.find(blank, at)
        if found >= 0:
            end = min(end, found + len(blank))
    return begin, end


class WholeEvents:
    """Bytes in, whole events out; what follows the last blank line waits for the next read (up to
    ``HOLD_AT_MOST`` bytes: a stream that never ends its events is passed on as it comes)."""

    __slots__ = ("rest",)

    def __init__(self) -> None:
        self.rest = b""

    def feed(self, chunk: bytes) -> bytes:
        if not self.rest and chunk.endswith(b"\n\n"):  # the usual read: whole events (a blank line ends it)
            return chunk
        data = self.rest + chunk if self.rest else chunk
        end = 0
        for blank in _ENDS if b"\r" in data else _LF_END:
            at = data.rfind(blank)
            if at >= 0 and at + len(blank) > end:
                end = at + len(blank)
        if end == 0 and len(data) <= HOLD_AT_MOST:
            self.rest = data
            return b""
        if end == 0:
            end = len(data)
        self.rest = data[end:]
        return data[:end]
