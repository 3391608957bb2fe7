"""The soak's processes and what it reads from them: the storage (SQLite, or PostgreSQL with a private
Redis), the relay (its RSS, its file descriptors by kind, its log) and the upstream's counts."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

import harness as h
import team

PG_DATABASE = "gptrelay_soak"
PG_URL = f"postgresql://postgres@127.0.0.1:5432/{PG_DATABASE}"
PG_PORT = 5432
RECORDS = "SELECT key_name, route, status, outcome, count(*) FROM usage GROUP BY 1, 2, 3, 4"
ARCHIVE_KEY = "soak-archive"  # the records put in before the soak carry this key name, no key's
PREFILL_PG = """INSERT INTO usage (time, key_name, route, model, status, prompt_tokens, completion_tokens, estimated,
outcome, ttfb_ms, duration_ms, record_id) SELECT now() - interval '40 days', '{key}', '/v1/chat/completions',
'gpt-4o-mini', 200, 9, 20, false, 'ok', 5, 20, md5('soak' || g) FROM generate_series(1, {n}) AS g"""


class Storage:
    """``sqlite``: the relay's default database in its working directory, limits in the process.
    ``pg``: a fresh PostgreSQL database (dropped at the end) and Redis for the limits: a private
    ``redis-server`` on a free port, or ``redis_url`` (its database emptied first)."""

    def __init__(self, kind: str, workdir: Path, logs: Path, redis_url: str | None = None) -> None:
        self.kind = kind
        self.workdir = workdir
        self.logs = logs
        self.redis_url = redis_url
        self.redis_port = 0
        self.env: dict[str, str] = {}
        self._made_database = False

    def open(self) -> str | None:
        """Make the storage ready; why it cannot be, or None."""
        if self.kind == "sqlite":
            return None
        why_not = team.fresh_database(PG_DATABASE)
        if why_not is not None:
            return why_not
        self._made_database = True
        why_not = self._private_redis() if self.redis_url is None else self._emptied_redis(self.redis_url)
        if why_not is not None:
            return why_not
        assert self.redis_url is not None
        self.redis_port = int(self.redis_url.split("://", 1)[1].split("/", 1)[0].rpartition(":")[2] or 6379)
        self.env = {"DATABASE_URL": PG_URL, "REDIS_URL": self.redis_url}
        return None

    def _private_redis(self) -> str | None:
        if shutil.which("redis-server") is None:
            return "redis-server is not on the PATH (or pass --redis URL)"
        port = h.free_port()
        proc = h.start(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                        "--appendonly", "no", "--dir", str(self.workdir)], log=self.logs / "soak-redis.log")
        self.redis_url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return f"redis-server exited with {proc.returncode} (see {self.logs / 'soak-redis.log'})"
            with contextlib.suppress(OSError), redis_ping(port):
                return None
            time.sleep(0.1)
        return "the private redis-server did not answer within 10 s"

    @staticmethod
    def _emptied_redis(url: str) -> str | None:
        database = url.rstrip("/").rpartition("/")[2]
        if not database.isdigit() or database == "0":
            return f"--redis {url}: name a spare database number other than 0 (it is emptied)"
        done = subprocess.run(["redis-cli", "-u", url, "flushdb"], capture_output=True, text=True, timeout=10,
                              check=False)
        return None if done.stdout.strip() == "OK" else f"Redis at {url} did not answer"

    def prefill(self, n: int) -> None:
        """Put ``n`` usage records, 40 days old, into the database (made and migrated already): the state of
        a relay in use, whose SQLite page caches are full of an index larger than them."""
        if n <= 0:
            return
        if self.kind == "sqlite":
            when = (datetime.now(UTC) - timedelta(days=40)).strftime("%Y-%m-%d %H:%M:%S.%f")
            rows = [(when, ARCHIVE_KEY, "/v1/chat/completions", "gpt-4o-mini", 200, 9, 20, 0, "ok", 5, 20,
                     uuid.uuid4().hex) for _ in range(n)]
            with contextlib.closing(sqlite3.connect(self.workdir / "gptrelay.db")) as connection:
                connection.executemany(
                    "INSERT INTO usage (time, key_name, route, model, status, prompt_tokens, completion_tokens, "
                    "estimated, outcome, ttfb_ms, duration_ms, record_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows)
                connection.commit()
        else:
            subprocess.run(["psql", PG_URL, "-qtAc", PREFILL_PG.format(key=ARCHIVE_KEY, n=int(n))],
                           capture_output=True, text=True, timeout=300, check=True)

    def records(self) -> list[dict[str, Any]]:
        """The usage records stored, counted by key, route, status and outcome."""
        if self.kind == "sqlite":
            with contextlib.closing(sqlite3.connect(self.workdir / "gptrelay.db")) as connection:
                rows = connection.execute(RECORDS).fetchall()
        else:
            done = subprocess.run(["psql", PG_URL, "-qtA", "-F", "\t", "-c", RECORDS], capture_output=True,
                                  text=True, timeout=120, check=True)
            rows = [line.split("\t") for line in done.stdout.splitlines() if line.strip()]
        return [{"key": key or None, "route": route, "status": int(status), "outcome": outcome, "count": int(n)}
                for key, route, status, outcome, n in rows if key != ARCHIVE_KEY]

    def close(self) -> None:
        if self._made_database:
            team.drop_database(PG_DATABASE)


@contextlib.contextmanager
def redis_ping(port: int):  # type: ignore[no-untyped-def]
    """A connection to 127.0.0.1:``port`` that answers PING (raises OSError until it does)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        sock.sendall(b"PING\r\n")
        if not sock.recv(16).startswith(b"+PONG"):
            raise OSError("no PONG")
        yield sock


class Relay:
    """``gptrelay serve`` under soak, and what it holds."""

    def __init__(self, relay_cmd: list[str], env: dict[str, str], workdir: Path, log: Path, workers: int,
                 upstream_port: int, storage: Storage) -> None:
        self.relay_cmd = relay_cmd
        self.env = env
        self.workdir = workdir
        self.log = log
        self.workers = workers
        self.upstream_port = upstream_port
        self.storage = storage
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.port = h.free_port()
        argv = [*self.relay_cmd, "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        if self.workers > 1:
            argv += ["--workers", str(self.workers)]
        self.proc = h.start(argv, env=self.env, log=self.log, cwd=self.workdir)
        h.wait_healthy(self.port, self.proc)
        deadline = time.monotonic() + 20
        while self.workers > 1 and len(h.tree(self.proc.pid)) < self.workers + 1 and time.monotonic() < deadline:
            time.sleep(0.1)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss(self) -> int:
        return h.rss_bytes(self.pid)

    def held(self) -> dict[str, Any]:
        """The relay's open file descriptors (its whole process tree), and its TCP connections by kind."""
        files = self.descriptors()
        out: dict[str, Any] = {"fds": sum(files.values()), "client": 0, "upstream": 0, "upstream_close_wait": 0,
                               "database": 0, "redis": 0, "other_sockets": 0, "descriptors": files}
        for proc in h.tree(self.pid):
            with contextlib.suppress(psutil.NoSuchProcess):
                for conn in proc.net_connections(kind="tcp"):
                    if conn.status == psutil.CONN_LISTEN:
                        out["other_sockets"] += 1
                    elif conn.laddr and conn.laddr.port == self.port:
                        out["client"] += 1
                    elif conn.raddr and conn.raddr.port == self.upstream_port:
                        out["upstream"] += 1
                        if conn.status == psutil.CONN_CLOSE_WAIT:
                            out["upstream_close_wait"] += 1
                    elif conn.raddr and conn.raddr.port == PG_PORT:
                        out["database"] += 1
                    elif conn.raddr and self.storage.redis_port and conn.raddr.port == self.storage.redis_port:
                        out["redis"] += 1
                    else:
                        out["other_sockets"] += 1
        if self.storage.kind == "sqlite":  # a connection holds the file and its WAL (the shared memory is shared)
            database = str(self.workdir / "gptrelay.db")
            out["database"] = files.get(database, 0)
            out["database_fds"] = sum(n for name, n in files.items() if name.startswith(database))
        else:
            out["database_fds"] = out["database"]
        # What must not grow at all: the rest. Client and upstream connections are counted apart, and the
        # database's, which its connection pools keep up to a bound.
        out["rest"] = out["fds"] - out["client"] - out["upstream"] - out["database_fds"]
        return out

    def descriptors(self) -> dict[str, int]:
        """The relay's open file descriptors by what they are: a file's path, or a socket's, pipe's or
        anonymous inode's kind (``socket``, ``pipe``, ``anon_inode:[eventfd]``)."""
        found: dict[str, int] = {}
        for proc in h.tree(self.pid):
            fd_dir = Path(f"/proc/{proc.pid}/fd")
            with contextlib.suppress(OSError):
                for entry in fd_dir.iterdir():
                    with contextlib.suppress(OSError):
                        target = os.readlink(entry)
                        kind = target.partition(":[")[0] if target.startswith(("socket:", "pipe:")) else target
                        found[kind] = found.get(kind, 0) + 1
        return found

    def upstream_counts(self) -> dict[str, int]:
        url = f"http://127.0.0.1:{self.upstream_port}/_soak/stats"
        with urllib.request.urlopen(url, timeout=5) as response:
            counts: dict[str, int] = json.loads(response.read())
        return counts

    def settle(self, timeout: float, wait_pool: bool, baseline: dict[str, Any] | None = None) -> dict[str, Any]:
        """Wait (up to ``timeout`` s) until no client connection is left, no upstream request is in
        progress, (``wait_pool``) no upstream connection is left, and (``baseline``) the other
        descriptors are back to the baseline's; then what the relay holds."""
        began = time.monotonic()
        previous: dict[str, Any] = {}
        while True:
            state: dict[str, Any] = self.held()
            upstream = self.upstream_counts()
            state["upstream_in_progress"] = upstream["in_progress"]
            state["upstream_requests"] = upstream["requests"]
            state["upstream_gone"] = upstream["gone"]
            state["upstream_side_connections"] = upstream["connections"] - 1  # less this very request's
            steady = all(previous.get(k) == state[k] for k in ("fds", "rest", "upstream"))  # twice alike
            previous = state
            settled = (steady and state["client"] == 0 and state["upstream_in_progress"] == 0
                       and (not wait_pool or state["upstream"] == 0)
                       and (baseline is None or state["rest"] <= baseline["rest"]))
            waited = time.monotonic() - began
            if settled or waited >= timeout:
                state["settled"] = settled
                state["settle_s"] = round(waited, 1)
                state["pool_waited"] = wait_pool
                state["rss"] = self.rss()
                return state
            time.sleep(0.5)

    def log_summary(self) -> dict[str, int]:
        """Lines of the relay's log that say something went wrong inside it."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return {"internal errors": text.count("internal error"), "tracebacks": text.count("Traceback"),
                "lines": text.count("\n")}
