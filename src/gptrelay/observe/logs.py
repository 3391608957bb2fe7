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


def _word(value: object) -> str:
    return "-" if value is None else plain(value)


class AccessLine(dict[str, Any]):
    """One request's access-log fields (``gptrelay.observe.tally.line`` names them all); as text,
    ``METHOD PATH STATUS OUTCOME route=… key=… …``, ``-`` for what a request has not."""

    __slots__ = ()

    def __str__(self) -> str:
        if len(self) != len(FIELDS):  # (not one of the door's)
            return " ".join(f"{name}={_word(value)}" for name, value in self.items())
        # (numbers, the route's label and a key's name are words already; what a client chose may not be)
        key, prompt, completion, estimated, ttfb = (self["key"], self["prompt_tokens"], self["completion_tokens"],
                                                    self["estimated"], self["ttfb_ms"])
        return (f"{self['method']} {plain(self['path'])} {self['status']} {self['outcome']} route={self['route']} "
                f"key={'-' if key is None else key} model={_word(self['model'])} "
                f"prompt_tokens={'-' if prompt is None else prompt} "
                f"completion_tokens={'-' if completion is None else completion} "
                f"estimated={'-' if estimated is None else estimated} ttfb_ms={'-' if ttfb is None else ttfb} "
                f"duration_ms={self['duration_ms']} request_id={_word(self['request_id'])} "
                f"upstream_request_id={_word(self['upstream_request_id'])}")


FIELDS = ("method", "path", "status", "outcome", "route", "key", "model", "prompt_tokens", "completion_tokens",
          "estimated", "ttfb_ms", "duration_ms", "request_id", "upstream_request_id")


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


def lean_records() -> None:
    """Records without what no line of ours shows (the logging HOWTO's "Optimization"): where the call
    was made (a walk up the stack), the thread's and the process's names. A sixth of an access line's cost."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def configure(settings: Settings) -> None:
    """This process's logging: INFO and above to standard error, in ``LOG_FORMAT``; the access log on
    with ``ACCESS_LOG``. Replaces any handler set before."""
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler(settings.log_format))
    root.setLevel(logging.INFO)
    lean_records()
    logging.getLogger(ACCESS).setLevel(logging.INFO if settings.access_log else logging.WARNING)
