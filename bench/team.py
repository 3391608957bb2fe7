"""The team relay in the bench: requests that carry a named ``gr-`` key with limits, and their usage.

Two team targets are measured beside the owner's key and the byte pipe:

- ``team /v1``: the bench relay itself (SQLite in its working directory, limits in process),
  asked with a named key that has an RPM and a TPM limit;
- ``team /v1 pg+redis``: a second relay process on the same core, its keys and usage in
  PostgreSQL and its limits in Redis, asked with a key with the same limits.

The limits are checked on every request but set too high to refuse any (the bench measures
the cost of checking them, not of refusing). Every request leaves a usage record; after a
paced-stream run the records of that run are counted in the database.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

KEY_NAME = "bench-team"
LIMITS = ["--rpm", "100000000", "--tpm", "1000000000000"]
PG_DATABASE = "gptrelay_bench"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_URL = f"postgresql://postgres@127.0.0.1:5432/{PG_DATABASE}"
REDIS_URL = "redis://127.0.0.1:6379/14"


def create_key(relay_cmd: list[str], env: dict[str, str], cwd: Path, name: str = KEY_NAME,
               limits: list[str] = LIMITS) -> str:
    """A named key with ``limits`` (``gptrelay keys create`` options) in the database ``env`` points at;
    the key itself."""
    done = subprocess.run([*relay_cmd, "keys", "create", name, *limits, "--json"], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"gptrelay keys create failed: {done.stderr.strip()}")
    key: str = json.loads(done.stdout)["key"]
    return key


def shared_services() -> str | None:
    """Why PostgreSQL and Redis cannot be used (None when both answer); makes a fresh database and
    empties the Redis database the bench uses."""
    if shutil.which("psql") is None or shutil.which("redis-cli") is None:
        return "psql or redis-cli not on the PATH"
    why_not = fresh_database()
    if why_not is not None:
        return why_not
    done = subprocess.run(["redis-cli", "-u", REDIS_URL, "flushdb"], capture_output=True, text=True, timeout=10,
                          check=False)
    if done.stdout.strip() != "OK":
        return f"Redis at {REDIS_URL} did not answer: {(done.stdout + done.stderr).strip()}"
    return None


def fresh_database(name: str = PG_DATABASE) -> str | None:
    """Make an empty PostgreSQL database ``name`` (dropping any of that name); why not, or None."""
    if shutil.which("psql") is None:
        return "psql is not on the PATH"
    for sql in (f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}"):
        done = subprocess.run(["psql", PG_ADMIN, "-qtAc", sql], capture_output=True, text=True, timeout=30,
                              check=False)
        if done.returncode != 0:
            return f"PostgreSQL at 127.0.0.1:5432 did not answer: {done.stderr.strip()}"
    return None


def drop_database(name: str = PG_DATABASE) -> None:
    subprocess.run(["psql", PG_ADMIN, "-qtAc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"],
                   capture_output=True, timeout=30, check=False)


def records(database: Path | str) -> int:
    """Usage records of the team key so far: ``database`` is a SQLite file or ``PG_URL``."""
    query = f"SELECT count(*) FROM usage WHERE key_name = '{KEY_NAME}'"
    if isinstance(database, Path):
        with sqlite3.connect(database) as connection:
            count: int = connection.execute(query).fetchone()[0]
        return count
    done = subprocess.run(["psql", database, "-qtAc", query], capture_output=True, text=True, timeout=60,
                          check=True)
    return int(done.stdout.strip())
