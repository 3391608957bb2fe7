"""The bench's Python: the project's virtualenv, with the bench-only tools and the ``gptrelay`` command.

Imports nothing outside the standard library, so a bench command can call ``use_project_venv()``
before anything else and be re-run by the venv's interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def use_project_venv() -> None:
    """Outside a virtualenv, re-run with the project's .venv (where gptrelay is installed)."""
    venv_python = BENCH.parent / ".venv" / "bin" / "python"
    if sys.prefix == sys.base_prefix and venv_python.exists() and Path(sys.executable) != venv_python:
        os.execv(str(venv_python), [str(venv_python), *sys.argv])


def ensure_requirements() -> None:
    """Install bench-only tools into this interpreter's environment (quietly, once)."""
    try:
        import psutil  # noqa: F401
        import uvloop  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r",
                        str(BENCH / "requirements.txt")], check=True)


def gptrelay_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "gptrelay"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", str(BENCH.parent)], check=True)
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "gptrelay"]
