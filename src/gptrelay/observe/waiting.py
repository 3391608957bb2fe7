"""``SIGUSR1``: where this process's tasks are waiting, told in the log.

For a relay that seems stuck (replies that never end, a drain that never
finishes): each task's chain of awaits is followed down to what it waits on,
and the tasks are counted by their innermost frames, most common first. Only
code locations are told (file, line, function), never a value, so no key or
body reaches the log.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

FRAMES = 4  # innermost frames that name a place
PLACES = 25  # places told at most

log = logging.getLogger("gptrelay")


def tell_waiting() -> None:
    tasks = asyncio.all_tasks()
    places = Counter(where(task) for task in tasks)
    lines = "\n".join(f"  {count:6d}  {place}" for place, count in places.most_common(PLACES))
    log.warning("SIGUSR1: %d task(s), by where they wait (innermost first):\n%s", len(tasks), lines)


def where(task: asyncio.Task[Any]) -> str:
    """The task's innermost frames, ``file:line function`` each, joined by ``<-``."""
    frames: list[FrameType] = []
    awaited: Any = task.get_coro()
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is None:
            break
        frames.append(frame)
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    if not frames:
        return "(done, or not started)"
    return " <- ".join(f"{Path(f.f_code.co_filename).name}:{f.f_lineno} {f.f_code.co_name}"
                       for f in reversed(frames[-FRAMES:]))
