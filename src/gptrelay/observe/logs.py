"""The relay's log: one handler on standard error, as text or JSON lines (``LOG_FORMAT``).

``configure(settings)`` is called once per process (``gptrelay serve``, and
each worker). Every line written while a request is handled carries its
request id (``RequestIdFilter``, from ``gptrelay.observe.ids.CURRENT``). With
``ACCESS_LOG=true`` the logger ``gptrelay.access`` writes one line per request
(an ``AccessLine``, ``gptrelay.observe.tally``); operators can route or silence
it as any logger, by name.

Text::

    2026-11-26 00:12:03,114 INFO gptrelay.access: POST /v1/chat/completions 200 ok key=alice ...
    2026-11-26 00:12:04,020 WARNING gptrelay: POST /chat: upstream error 500: ... request_id=9f3c...

JSON (one object a line): ``time`` (UTC, ISO 8601), ``level``, ``logger``,
``message``, ``request_id`` when there is one, an access line's fields, and
``exception`` for a traceback.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any

import orjson

from gptrelay.observe.ids import CURRENT
from gptrelay.settings import Settings

ACCESS = "gptrelay.access"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_PLAIN = re.compile(r'[!#-\[\]-~]+').fullmatch  # visible ASCII, no quote or backslash


def plain(value: object) -> str:
    """``value`` as one word of a text line: as it is when it is visible ASCII without quotes, else
    quoted as a JSON string (a client's model or path cannot break the line or forge a field)."""
    if type(value) is int:
        return str(value)
    text = str(value)
    if _PLAIN(text):
        return text
    return orjson.dumps(text).decode()


class AccessLine(dict[str, Any]):
    """One request's access-log fields; as text, ``METHOD PATH STATUS OUTCOME key=… …``."""

    __slots__ = ()

    def __str__(self) -> str:
        head = f"{self['method']} {plain(self['path'])} {self['status']} {self['outcome']}"
        rest = " ".join(f"{name}={'-' if value is None else plain(value)}" for name, value in self.items()
                        if name not in _HEAD)
        return f"{head} {rest}"


_HEAD = frozenset({"method", "path", "status", "outcome"})


class RequestIdFilter(logging.Filter):
    """Gives each record the id of the request being handled (``request_id``, None outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = CURRENT.get()
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        if request_id is not None and not isinstance(record.msg, AccessLine):
            line += f" request_id={request_id}"
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        seconds = record.created
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds % 1 * 1000):03d}Z"
        out: dict[str, Any] = {"time": stamp, "level": record.levelname, "logger": record.name}
        if isinstance(record.msg, AccessLine):
            out["message"] = "request"
            out.update(record.msg)
        else:
            out["message"] = record.getMessage()
            request_id = getattr(record, "request_id", None)
            if request_id is not None:
                out["request_id"] = request_id
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def handler(log_format: str, stream: Any = None) -> logging.Handler:
    """A handler writing ``log_format`` (``text`` or ``json``) lines to ``stream`` (standard error)."""
    made = logging.StreamHandler(stream if stream is not None else sys.stderr)
    made.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    made.addFilter(RequestIdFilter())
    return made


def configure(settings: Settings) -> None:
    """This process's logging: INFO and above to standard error, in ``LOG_FORMAT``; the access log on
    with ``ACCESS_LOG``. Replaces any handler set before."""
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler(settings.log_format))
    root.setLevel(logging.INFO)
    logging.getLogger(ACCESS).setLevel(logging.INFO if settings.access_log else logging.WARNING)
