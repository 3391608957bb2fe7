"""The directory where ``--workers N`` keep their metrics, so that any of them can sum them all.

prometheus-client's multiprocess mode is chosen when it is first imported,
from ``PROMETHEUS_MULTIPROC_DIR``: the parent sets it, to a fresh directory,
before it starts its workers (each imports the relay anew), and removes it
when it exits. A directory left from an earlier run would add its counts.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def share_metrics() -> str:
    """Make the workers' metrics directory and name it in the environment they inherit; return it."""
    path = tempfile.mkdtemp(prefix="gptrelay-metrics-")
    os.environ[VARIABLE] = path
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path
