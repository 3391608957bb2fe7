"""``gptrelay`` with its usage records not written (an experiment): what recording costs.

Every request still gets its meter; only the database write is skipped:

    python bench/run.py --relay-cmd "python bench/experiments/no_usage.py"
"""

from __future__ import annotations

import sys

from gptrelay.usage.records import UsageRecord
from gptrelay.usage.writer import UsageWriter


async def _skip(self: UsageWriter, rec: UsageRecord) -> None:
    return None


UsageWriter.record = _skip  # type: ignore[method-assign]

if __name__ == "__main__":
    from gptrelay.cli.main import main

    sys.argv[0] = "gptrelay"
    main()
