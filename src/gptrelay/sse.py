"""An incremental server-sent-events decoder: bytes in, events out, no I/O.

It knows the SSE format (https://html.spec.whatwg.org/#event-stream-interpretation)
and nothing of OpenAI. Feed it network reads as they come; it keeps what is
incomplete for the next read:

- lines end in ``\\n``, ``\\r\\n`` or ``\\r``; a ``\\r`` at the end of a read is
  held back until the next read shows whether ``\\n`` follows;
- lines are decoded only once complete, so a UTF-8 character cut across
  reads is reassembled (no line terminator byte occurs inside a character);
- ``data:`` lines of one event are joined with ``\\n``; comment lines
  (``: keep-alive``) and blank blocks without data dispatch nothing.

Each event also carries ``raw``: the exact bytes it arrived as, including
any comment blocks just before it, so a relay can forward events unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

_BOM = b"\xef\xbb\xbf"


@dataclass(slots=True)
class Event:
    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None
    raw: bytes = b""


class SSEDecoder:
    __slots__ = ("_buffer", "_data", "_event", "_id", "_retry", "_scan", "_started")

    def __init__(self) -> None:
        self._buffer = b""  # bytes since the last dispatched event
        self._scan = 0  # where the next unread line starts in _buffer
        self._data: list[bytes] | None = None
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None
        self._started = False

    def feed(self, chunk: bytes) -> list[Event]:
        """Take one network read; return the events it completes, in order."""
        buffer = self._buffer + chunk if self._buffer else chunk
        if not self._started:
            if len(buffer) < 3 and _BOM.startswith(buffer):
                self._buffer = buffer
                return []
            if buffer.startswith(_BOM):
                buffer = buffer[3:]
            self._started = True
        if self._buffer or b"\r" in buffer:
            return self._lines(buffer, final=False)
        # The common case, one or more whole `data: …` events: no line-by-line parsing.
        events: list[Event] = []
        pos = 0
        while True:
            end = buffer.find(b"\n\n", pos)
            if end == -1 or not buffer.startswith(b"data: ", pos) or buffer.find(b"\n", pos, end) != -1:
                break
            events.append(Event(buffer[pos + 6:end].decode("utf-8", "replace"), raw=buffer[pos:end + 2]))
            pos = end + 2
        if pos == len(buffer):
            return events
        return events + self._lines(buffer[pos:] if pos else buffer, final=False)

    def flush(self) -> list[Event]:
        """The stream has ended: a last event without its blank line still counts."""
        events = self._lines(self._buffer, final=True)
        if self._data is not None:
            events.append(self._dispatch(self._buffer))
            self._buffer = b""
            self._scan = 0
        return events

    @property
    def rest(self) -> bytes:
        """Bytes received after the last event (comments, a partial event)."""
        return self._buffer

    def _lines(self, buffer: bytes, *, final: bool) -> list[Event]:
        events: list[Event] = []
        pos = self._scan
        end_of_buffer = len(buffer)
        has_cr = b"\r" in buffer
        while True:
            newline = buffer.find(b"\n", pos)
            if has_cr:
                cr = buffer.find(b"\r", pos)
                if cr != -1 and (newline == -1 or cr < newline):
                    if cr == end_of_buffer - 1 and not final:
                        break  # maybe the first half of \r\n
                    line_end = cr
                    newline = cr + 1 if buffer[cr + 1:cr + 2] == b"\n" else cr
                else:
                    line_end = newline
            else:
                line_end = newline
            if newline == -1:
                if not final or pos >= end_of_buffer:
                    break
                # The stream ended inside a line: take it as if terminated.
                line_end, newline = end_of_buffer, end_of_buffer - 1
            line = buffer[pos:line_end]
            pos = newline + 1
            if line:
                self._field(line)
            elif self._data is not None:
                events.append(self._dispatch(buffer[:pos]))
                buffer = buffer[pos:]
                end_of_buffer = len(buffer)
                pos = 0
            else:
                self._event = ""
        self._buffer = buffer
        self._scan = pos
        return events

    def _field(self, line: bytes) -> None:
        if line[0] == 58:  # ":" starts a comment
            return
        colon = line.find(b":")
        if colon == -1:
            name, value = line, b""
        else:
            name = line[:colon]
            value = line[colon + 2:] if line[colon + 1:colon + 2] == b" " else line[colon + 1:]
        if name == b"data":
            if self._data is None:
                self._data = [value]
            else:
                self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id":
            if b"\0" not in value:
                self._id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():
            self._retry = int(value)

    def _dispatch(self, raw: bytes) -> Event:
        data = self._data or []
        text = (data[0] if len(data) == 1 else b"\n".join(data)).decode("utf-8", "replace")
        event = Event(text, self._event or "message", self._id, self._retry, raw)
        self._data = None
        self._event = ""
        self._retry = None
        return event
