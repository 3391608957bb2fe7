"""The README's examples, as the tests read them: ``<!-- example: NAME -->`` then a code block."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_EXAMPLE = re.compile(r"<!-- example: (\S+) -->\s*```\w*\n(.*?)```", re.S)


def examples(name: str = "README.md") -> dict[str, str]:
    return dict(_EXAMPLE.findall((ROOT / name).read_text("utf-8")))


def localise(code: str, url: str, key: str) -> str:
    """Point an example at a test relay instead of the default address and key."""
    return code.replace("http://127.0.0.1:3666", url).replace("your-access-key", key)
