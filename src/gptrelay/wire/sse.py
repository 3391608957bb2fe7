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
``feed_data`` gives only each event's data, as undecoded bytes, for readers
of JSON events (no ``Event`` built, no text decoded on the common path).
"""

from __future__ import annotations

from dataclasses import dataclass

_BOM = b"\xef\xbb\xbf"
_LINE_ENDS = (b"\r\n", b"\n", b"\r")


def ends_an_event(data: bytes) -> bool:
    """Whether ``data`` ends with a blank line (or is empty): what follows it is read as new lines of a
    new event, not as the rest of an open line or event."""
    for end in _LINE_ENDS:
        if data.endswith(end):
            head = data[:-len(end)]
            return not head or head.endswith(_LINE_ENDS[1:])
    return not data


def terminated(data: bytes) -> bytes:
    """``data`` with its last line and event ended, if a stream stopped inside them: so that an event
    written after it (the relay's own ``[DONE]`` or error) is not glued to a half line."""
    if ends_an_event(data):
        return data
    return data + (b"\n" if data.endswith(b"\n") else b"\n\n")


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
        simple, rest = self._split(chunk)
        last_id = self._id  # the last event ID carries over to later events
        events = [Event(part[6:].decode("utf-8", "replace"), "message", last_id, None, part + b"\n\n")
                  for part in simple]
        if rest is not None:
            events += self._lines(rest, final=False)
        return events

    def feed_data(self, chunk: bytes) -> list[bytes]:
        """Like ``feed``, but only each event's data, as the bytes it arrived as (UTF-8, not
        decoded): for readers of JSON events, which need no more and parse bytes directly."""
        simple, rest = self._split(chunk)
        data = [part[6:] for part in simple]
        if rest is not None:
            data += [event.data.encode() for event in self._lines(rest, final=False)]
        return data

    def _split(self, chunk: bytes) -> tuple[list[bytes], bytes | None]:
        """The events ``chunk`` completes that are one ``data: …`` line each (as that line,
        found without parsing), and what is left to parse line by line, if anything."""
        buffer = self._buffer + chunk if self._buffer else chunk
        if not self._started:
            if len(buffer) < 3 and _BOM.startswith(buffer):
                self._buffer = buffer
                return [], None
            if buffer.startswith(_BOM):
                buffer = buffer[3:]
            self._started = True
        if self._scan or self._data is not None or self._retry is not None or b"\r" in buffer:
            return [], buffer
        # The common case: whole `data: …` events, and maybe the start of the next one
        # (kept as it came, unparsed).
        parts = buffer.split(b"\n\n")
        rest = parts.pop()
        for part in parts:
            if not part.startswith(b"data: ") or b"\n" in part:
                # Something else (a comment, more fields, several lines): parse from here on.
                n = parts.index(part)  # the first such part (no simple part equals it)
                return parts[:n], b"\n\n".join(parts[n:]) + b"\n\n" + rest
        self._buffer = rest
        return parts, None

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
