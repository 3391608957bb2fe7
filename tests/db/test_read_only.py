"""A database the relay cannot write, at start: ``gptrelay serve`` refuses to start, with one
line on standard error that names the database and says it is read-only, a non-zero status and no
traceback. (A relay that could only read would take requests it cannot record, and changes to keys
made with the CLI would fail.)

The database is put on a tmpfs mounted for the test, then made read-only in the ways it happens:
the file system remounted read-only (clean, or with the ``-wal`` and ``-shm`` files a killed relay
leaves), or the file alone made immutable (``chattr +i``; root writes through file modes). And a
PostgreSQL database that takes no writes.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import UPSTREAM_KEY
from tests.helpers import remount, tmpfs


def env_for(database: Path) -> dict[str, str]:
    return {**os.environ, "OPENAI_API_KEY": UPSTREAM_KEY, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
            "AUTHORIZATION_KEY": "owner", "DATABASE_URL": f"sqlite:///{database}"}


def make_database(database: Path, cwd: Path) -> str:
    """A migrated SQLite database with one key in it, made by the CLI; the key."""
    return make_database_at(f"sqlite:///{database}", cwd)


def make_database_at(url: str, cwd: Path) -> str:
    made = subprocess.run([sys.executable, "-m", "gptrelay", "keys", "create", "alice"],
                          env={**env_for(cwd / "unused.db"), "DATABASE_URL": url}, cwd=cwd, capture_output=True,
                          text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    return made.stdout.splitlines()[-1]


def refused_start(database: Path, cwd: Path) -> str:
    """Start ``gptrelay serve`` on ``database``; the one line it says as it refuses."""
    process = subprocess.Popen([sys.executable, "-m", "gptrelay", "serve", "--port", "0"], env=env_for(database),
                               cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = process.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate(timeout=10)
        raise AssertionError(f"it started on a read-only database: {stdout}{stderr}") from None
    assert process.returncode != 0, f"it started on a read-only database: {stdout}{stderr}"
    assert "Traceback" not in stderr
    assert stderr.count("\n") == 1 and stderr.startswith("gptrelay: "), stderr
    return stderr.strip()


def check_line(line: str, database: Path) -> None:
    assert f"database sqlite:///{database}" in line, line
    assert "read-only" in line, line


def test_a_file_system_mounted_read_only(tmp_path: Path) -> None:
    with tmpfs() as folder:
        database = folder / "relay.db"
        make_database(database, tmp_path)
        assert sorted(p.name for p in folder.iterdir()) == ["relay.db"]  # closed cleanly: no -wal, no -shm
        remount(folder, "ro")
        check_line(refused_start(database, tmp_path), database)


def test_a_file_system_mounted_read_only_with_the_wal_left_behind(tmp_path: Path) -> None:
    make_database(tmp_path / "relay.db", tmp_path)
    holder = sqlite3.connect(tmp_path / "relay.db")  # an open connection keeps -wal and -shm, as kill -9 would
    try:
        holder.execute("UPDATE changes SET counter = counter + 1")
        holder.commit()
        with tmpfs() as folder:
            for name in ("relay.db", "relay.db-wal", "relay.db-shm"):
                shutil.copy(tmp_path / name, folder / name)
            remount(folder, "ro")
            check_line(refused_start(folder / "relay.db", tmp_path), folder / "relay.db")
    finally:
        holder.close()


def test_a_database_file_made_immutable(tmp_path: Path) -> None:
    with tmpfs() as folder:
        database = folder / "relay.db"
        key = make_database(database, tmp_path)
        immutable = subprocess.run(["chattr", "+i", str(database)], capture_output=True, text=True, timeout=10)
        if immutable.returncode != 0:
            pytest.skip(f"chattr +i does not work here: {immutable.stderr.strip()}")
        line = refused_start(database, tmp_path)
        check_line(line, database)
        assert key[3:] not in line


def test_a_postgresql_database_that_is_read_only(tmp_path: Path, postgres_url: str) -> None:
    """As a standby server, or a database set so: refused in one line, like a read-only file."""
    import asyncpg

    from tests.helpers import run_async

    make_database_at(postgres_url, tmp_path)
    name = postgres_url.rsplit("/", 1)[1]

    async def read_only() -> None:
        connection = await asyncpg.connect(postgres_url, timeout=5)
        try:
            await connection.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        finally:
            await connection.close()

    run_async(read_only())
    process = subprocess.run([sys.executable, "-m", "gptrelay", "serve", "--port", "0"],
                             env={**env_for(tmp_path / "unused.db"), "DATABASE_URL": postgres_url}, cwd=tmp_path,
                             capture_output=True, text=True, timeout=30)
    assert process.returncode == 2 and "Traceback" not in process.stderr, process.stderr
    assert process.stderr.count("\n") == 1, process.stderr
    assert "read-only transaction" in process.stderr and name in process.stderr, process.stderr
