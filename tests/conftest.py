"""Shared fixtures: a fake upstream and real relays, served on loopback from a background loop.

Tests talk to them over real sockets with real clients (httpx, the openai
SDK, a browser). ``GPTRELAY_FAIL_ON_SKIP=1`` (set by ``.ci/run``) turns
every skip into a failure, so CI always runs the tests that need a browser
or a service.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import tempfile
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web

from gptrelay.auth.keys import KeyFields, KeyStore
from gptrelay.db.engine import create_engine
from gptrelay.db.schema import migrate
from gptrelay.fake import FakeUpstream
from gptrelay.server import start
from gptrelay.settings import Settings
from tests.helpers import run_async

T = TypeVar("T")

ACCESS_KEY = "test-access-key"
UPSTREAM_KEY = "sk-test-upstream-7f3a"

# Settings read from the environment must not leak into tests from the machine's.
SETTING_NAMES = (
    "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORGANIZATION", "OPENAI_ORG_ID",
    "OPENAI_API_ORGANIZATION", "OPENAI_PROJECT", "OPENAI_PROJECT_ID", "AUTHORIZATION_KEY", "HOST",
    "SERVER_PORT", "PORT", "DEFAULT_MODEL", "CORS_ORIGINS", "WORKERS", "ACCESS_LOG", "ALLOW_NO_AUTH",
    "GPTRELAY_DEMO", "MAX_BODY_SIZE", "MAX_UPLOAD_SIZE", "KEEPALIVE_INTERVAL",
    "UPSTREAM_CONNECT_TIMEOUT", "UPSTREAM_FIRST_BYTE_TIMEOUT", "UPSTREAM_READ_TIMEOUT", "CLIENT_IDLE_TIMEOUT",
    "CLIENT_BODY_TIMEOUT", "CLIENT_WRITE_TIMEOUT", "DATABASE_URL", "REDIS_URL", "ADMIN_KEY",
    "REDIS_FAILURE_POLICY", "TRUSTED_PROXIES", "GPTRELAY_CONFIG", "CHAT_MAX_CONTINUATIONS", "LOG_FORMAT",
)
for _name in SETTING_NAMES:
    os.environ.pop(_name, None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped and os.environ.get("GPTRELAY_FAIL_ON_SKIP") == "1" and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = f"skipped in CI, which must run every test: {reason}"


class LoopThread:
    """An event loop in a daemon thread; servers live there, tests call into it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="servers", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def serve_app(self, app: web.Application, ssl_context: ssl.SSLContext | None = None,
                  ) -> tuple[web.AppRunner, int]:
        async def go() -> tuple[web.AppRunner, int]:
            runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
            await site.start()
            return runner, runner.addresses[0][1]

        return self.run(go())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture(scope="session")
def loop_thread() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@dataclass
class RunningFake:
    fake: FakeUpstream
    url: str  # the base URL, ending in /v1
    port: int


@pytest.fixture(scope="session")
def _fake_server(loop_thread: LoopThread) -> Iterator[RunningFake]:
    fake = FakeUpstream(api_key=UPSTREAM_KEY)
    runner, port = loop_thread.serve_app(fake.app())
    yield RunningFake(fake, f"http://127.0.0.1:{port}/v1", port)
    loop_thread.run(runner.cleanup())


@pytest.fixture
def fake_upstream(_fake_server: RunningFake) -> RunningFake:
    """The fake OpenAI upstream, its log emptied for this test."""
    _fake_server.fake.log.clear()
    return _fake_server


@dataclass
class RunningRelay:
    url: str  # http://127.0.0.1:PORT, no trailing slash
    key: str
    settings: Settings

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def relay_settings(fake: RunningFake | None, **overrides: Any) -> Settings:
    """Settings for a test relay: in front of ``fake``, with a database of its own."""
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{tempfile.mkdtemp(prefix='gptrelay-test-')}/relay.db",
        "openai_api_key": UPSTREAM_KEY,
        "openai_base_url": fake.url if fake else "http://127.0.0.1:9/v1",
        "authorization_key": ACCESS_KEY,
        "host": "127.0.0.1",
        "port": 0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def relay(loop_thread: LoopThread, fake_upstream: RunningFake) -> Iterator[Callable[..., RunningRelay]]:
    """A factory: ``relay(**settings)`` starts a real relay in front of the fake upstream."""
    runners: list[web.AppRunner] = []

    def make(**overrides: Any) -> RunningRelay:
        settings = relay_settings(fake_upstream, **overrides)
        runner, port = loop_thread.run(start(settings))
        runners.append(runner)
        return RunningRelay(f"http://127.0.0.1:{port}", settings.authorization_key.get_secret_value()
                            if settings.authorization_key else "", settings)

    yield make
    for runner in runners:
        loop_thread.run(runner.cleanup())


# PostgreSQL for the storage tests: TEST_POSTGRES_URL names a database to connect to for creating
# and dropping one database per test (.ci/run starts the server; without one these tests skip).
POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def _postgres_admin() -> str:
    import asyncpg

    async def check() -> None:
        connection = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
        await connection.close()

    try:
        run_async(check())
    except (TimeoutError, OSError, asyncpg.PostgresError) as error:
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL} ({error}); "
                    "start it, or set TEST_POSTGRES_URL")
    return POSTGRES_ADMIN_URL


@pytest.fixture
def postgres_url(_postgres_admin: str) -> Iterator[str]:
    """``postgresql://…/gptrelay_test_…``: an empty database made for this test, dropped after it."""
    import asyncpg

    name = f"gptrelay_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"

    async def admin(sql: str) -> None:
        connection = await asyncpg.connect(_postgres_admin, timeout=5)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    run_async(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield _postgres_admin.rsplit("/", 1)[0] + "/" + name
    finally:
        run_async(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class Store:
    """A relay's key store (its database at ``url``), changed from the test's thread as the CLI would."""

    def __init__(self, loop_thread: LoopThread, url: str) -> None:
        self.loop_thread = loop_thread
        self.url = url
        self.engine = loop_thread.run(self._engine())
        self.store = KeyStore(self.engine)

    async def _engine(self) -> Any:
        await migrate(self.url)
        return create_engine(self.url)

    def create(self, name: str, **fields: Any) -> str:
        return self.loop_thread.run(self.store.create(name, KeyFields(**fields)))[1]  # type: ignore[typeddict-item]

    def revoke(self, name: str) -> None:
        self.loop_thread.run(self.store.revoke(name))

    def close(self) -> None:
        self.loop_thread.run(self.engine.dispose())


@pytest.fixture
def store(loop_thread: LoopThread, tmp_path: Path) -> Iterator[Store]:
    """A migrated SQLite database of the test's own, to start relays on (``database_url=store.url``)."""
    made = Store(loop_thread, f"sqlite:///{tmp_path}/relay.db")
    yield made
    made.close()
