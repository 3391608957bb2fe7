"""``gptrelay`` with SQLite's page cache held to 64 KiB per connection (an experiment).

SQLite keeps up to 2 MiB of pages per connection by default (``PRAGMA cache_size = -2000``); the usage
writer's connection fills it as the usage table and its indexes outgrow it. This runs the unchanged
relay with a small cache, to see how much of the relay's RSS growth under a soak is that cache:

    python bench/soak.py --relay-cmd "python bench/experiments/small_sqlite_cache.py"
"""

from __future__ import annotations

import sys
from typing import Any

from gptrelay.db import engine
from gptrelay.usage import sinks

_pragmas = engine.sqlite_pragmas


def _small_cache(dbapi_connection: Any, _record: Any = None, **options: Any) -> None:
    _pragmas(dbapi_connection, _record, **options)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA cache_size = -64")
    cursor.close()


engine.sqlite_pragmas = _small_cache  # type: ignore[assignment]
sinks.sqlite_pragmas = _small_cache  # type: ignore[assignment]

if __name__ == "__main__":
    from gptrelay.cli.main import main

    sys.argv[0] = "gptrelay"
    main()
