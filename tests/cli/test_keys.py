"""``gptrelay keys``, run as a user runs it: real processes on a SQLite file, and on PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

KEY = re.compile(r"gr-[A-Za-z0-9_-]{43}")
FIELDS = {"name", "created_at", "expires_at", "revoked", "rpm", "tpm", "daily_tokens", "monthly_tokens",
          "models", "origins"}


class Keys:
    """``keys("create", "alice")`` runs ``python -m gptrelay keys create alice`` in ``cwd``."""

    def __init__(self, cwd: Path, database_url: str) -> None:
        self.cwd = cwd
        self.env = {**os.environ, "DATABASE_URL": database_url}

    def __call__(self, *args: str, ok: bool = True, env: dict[str, str] | None = None
                 ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "gptrelay", "keys", *args], cwd=self.cwd,
                                capture_output=True, text=True, timeout=60, env={**self.env, **(env or {})})
        if ok:
            assert result.returncode == 0, result.stderr
            assert result.stderr == ""
        return result

    def json(self, *args: str, env: dict[str, str] | None = None) -> Any:
        return orjson.loads(self(*args, "--json", env=env).stdout)

    def fails(self, *args: str, env: dict[str, str] | None = None) -> str:
        """The one line a mistake prints; checks there is no traceback and the status is non-zero."""
        result = self(*args, ok=False, env=env)
        assert result.returncode != 0
        assert result.stdout == ""
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("gptrelay: "), result.stderr
        assert "Traceback" not in result.stderr
        return result.stderr.removeprefix("gptrelay: ").strip()


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return Keys(tmp_path, f"sqlite:///{tmp_path}/relay.db")


def check_lifecycle(keys: Keys) -> None:
    made = keys("create", "alice", "--rpm", "60", "--models", "gpt-4o*,o3-mini", "--ttl", "7d")
    lines = made.stdout.splitlines()
    key = lines[-1]
    assert KEY.fullmatch(key)
    assert "alice" in lines[0] and "rpm 60" in lines[0]

    bob = keys.json("create", "bob", "--origins", "https://app.example.com", "--daily-tokens", "1000")
    assert set(bob) == FIELDS | {"key", "revoked_at"}
    assert KEY.fullmatch(bob["key"]) and bob["key"] != key
    assert (bob["daily_tokens"], bob["origins"], bob["models"], bob["rpm"], bob["revoked"], bob["expires_at"]) == (
        1000, ["https://app.example.com"], [], None, False, None)

    listed = keys("list")
    assert re.search(r"^alice\s+active\s", listed.stdout, re.M) and re.search(r"^bob\s+active\s", listed.stdout, re.M)
    as_json = keys.json("list")
    assert [k["name"] for k in as_json] == ["alice", "bob"]
    assert all(set(k) >= FIELDS for k in as_json)
    alice = as_json[0]
    assert (alice["rpm"], alice["models"], alice["tpm"], alice["origins"]) == (60, ["gpt-4o*", "o3-mini"], None, [])
    assert alice["expires_at"] is not None and alice["expires_at"].endswith("Z")

    shown = keys("show", "alice")
    assert re.search(r"^rpm\s+60$", shown.stdout, re.M)
    assert keys.json("show", "alice") == alice

    for output in (listed.stdout, keys("list", "--json").stdout, shown.stdout, keys("show", "bob", "--json").stdout):
        for secret in (key, bob["key"], hashlib.sha256(key.encode()).hexdigest()):
            assert secret not in output

    updated = keys.json("update", "alice", "--rpm", "0", "--tpm", "5000", "--models", "", "--expires", "")
    assert (updated["rpm"], updated["tpm"], updated["models"], updated["expires_at"]) == (None, 5000, [], None)
    assert "key" not in updated
    assert keys.json("show", "alice") == updated
    assert keys("update", "alice", "--rpm", "7").stdout.startswith("Updated key alice")

    assert keys("revoke", "alice").stdout == "Revoked key alice.\n"
    assert keys.json("show", "alice")["revoked"] is True
    assert re.search(r"^alice\s+revoked\s", keys("list").stdout, re.M)


def test_create_list_show_update_revoke(keys: Keys) -> None:
    assert keys("list").stdout.startswith("No keys yet")
    assert keys.json("list") == []
    check_lifecycle(keys)


def test_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    check_lifecycle(Keys(tmp_path, postgres_url))


def test_the_key_is_the_last_line_and_only_its_hash_is_stored(keys: Keys, tmp_path: Path) -> None:
    script = f'KEY=$("{sys.executable}" -m gptrelay keys create alice | tail -n 1); printf %s "$KEY"'
    key = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=keys.env, capture_output=True, text=True,
                         timeout=60).stdout
    assert KEY.fullmatch(key), key
    with sqlite3.connect(tmp_path / "relay.db") as db:
        assert db.execute("SELECT name, key_hash FROM access_keys").fetchall() == [
            ("alice", hashlib.sha256(key.encode()).hexdigest())]
    for path in tmp_path.glob("relay.db*"):  # the WAL too
        assert key.encode() not in path.read_bytes()


def test_mistakes_are_one_line(keys: Keys) -> None:
    keys("create", "alice")
    assert keys.fails("create", "alice") == "a key named 'alice' already exists"
    assert keys.fails("create", "no spaces").startswith("bad key name 'no spaces'")
    assert keys.fails("create", "x" * 65).startswith("bad key name")
    assert keys.fails("create", "bob", "--ttl", "7w").startswith("bad duration '7w'")
    assert keys.fails("create", "bob", "--expires", "soon").startswith("bad date 'soon'")
    assert keys.fails("create", "bob", "--expires", "9999-12-31T23:59-14:00").startswith("bad date '9999-12-31")
    assert keys.fails("create", "bob", "--expires", "2020-01-01").startswith("the expiry 2020-01-01T00:00:00Z is")
    assert keys.fails("create", "bob", "--expires", "2030-01-01", "--ttl", "1d") == "give --expires or --ttl, not both"
    assert keys.fails("create", "bob", "--rpm", "lots").startswith("bad --rpm 'lots'")
    assert keys.fails("create", "bob", "--rpm", "²").startswith("bad --rpm '²'")  # a digit to isdigit()
    assert keys.fails("create", "bob", "--tpm", "9" * 30).startswith(f"bad tpm {'9' * 30}: at most ")
    assert keys.fails("create", "bob", "--origins", "example.com").startswith("bad origin 'example.com'")
    assert keys.fails("show", "bob") == "no key named 'bob'"
    assert keys.fails("update", "bob", "--rpm", "1") == "no key named 'bob'"
    assert keys.fails("update", "alice").startswith("nothing to change")
    assert keys.fails("revoke", "bob") == "no key named 'bob'"
    assert [k["name"] for k in keys.json("list")] == ["alice"]


def test_a_database_it_cannot_reach_is_one_line_with_the_password_masked(keys: Keys) -> None:
    message = keys.fails("list", env={"DATABASE_URL": "postgresql://relay:s3cret@127.0.0.1:1/relay"})
    assert message.startswith("database postgresql://relay:***@127.0.0.1:1/relay: ")
    assert "s3cret" not in message


def test_reads_settings_like_serve_and_needs_no_upstream_key(tmp_path: Path) -> None:
    keys = Keys(tmp_path, "")
    del keys.env["DATABASE_URL"]
    (tmp_path / ".env").write_text("DATABASE_URL=sqlite:///from-dotenv.db\nHOST=0.0.0.0\n")
    keys("create", "alice")
    assert (tmp_path / "from-dotenv.db").is_file()
    (tmp_path / "other.env").write_text("DATABASE_URL=sqlite:///other.db\n")
    assert keys.json("--env-file", "other.env", "list") == []
    assert [k["name"] for k in keys.json("list")] == ["alice"]
    keys("create", "bob", env={"DATABASE_URL": "sqlite:///from-env.db"})  # the environment over .env
    assert [k["name"] for k in keys.json("list", env={"DATABASE_URL": "sqlite:///from-env.db"})] == ["bob"]


def test_help_has_examples(keys: Keys) -> None:
    assert "gptrelay keys create alice" in keys("--help").stdout
    for command in ("create", "list", "show", "update", "revoke"):
        assert "Example" in keys(command, "--help").stdout
    main = subprocess.run([sys.executable, "-m", "gptrelay", "--help"], capture_output=True, text=True, timeout=60)
    assert re.search(r"^\s+keys\s", main.stdout, re.M)


def test_the_cli_names_the_limits_the_store_knows() -> None:
    from gptrelay.auth import keys as store
    from gptrelay.cli import keys as cli

    assert cli.LIMITS == store.LIMITS
