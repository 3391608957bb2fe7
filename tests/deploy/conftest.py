"""Two real relay processes sharing PostgreSQL and Redis, behind real nginx running the shipped site."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import UPSTREAM_KEY, RunningFake
from tests.deploy.image import Build
from tests.deploy.site import NGINX, Front, start_front
from tests.helpers import RelayProcess, serve_process
from tests.limits.test_redis import URL as REDIS_URL
from tests.limits.test_redis import reachable

OWNER_KEY = "owner-key-for-the-deploy-tests"


@dataclass
class Cluster:
    front: Front
    relays: list[RelayProcess]
    env: dict[str, str]
    cwd: Path
    team: tuple[str, str]  # a key's name and the key, RPM 10, made before the relays started

    def cli(self, *args: str) -> str:
        return cli(self.env, self.cwd, *args)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {OWNER_KEY}"}



def cli(env: dict[str, str], cwd: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "gptrelay", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def cluster(fake_upstream: RunningFake, postgres_url: str, tmp_path: Path) -> Iterator[Cluster]:
    if NGINX is None:
        pytest.skip("nginx not installed: apt-get install nginx-light")
    if not reachable():
        pytest.skip(f"needs a Redis server at {REDIS_URL} (set TEST_REDIS_URL)")
    env = {**os.environ, "OPENAI_API_KEY": UPSTREAM_KEY, "OPENAI_BASE_URL": fake_upstream.url,
           "AUTHORIZATION_KEY": OWNER_KEY, "DATABASE_URL": postgres_url, "REDIS_URL": REDIS_URL,
           "TRUSTED_PROXIES": "127.0.0.1"}  # as the site's header says: nginx connects from 127.0.0.1
    relays: list[RelayProcess] = []
    front: Front | None = None
    nginx_folder = tmp_path / "nginx"
    nginx_folder.mkdir()
    name = f"team-{uuid.uuid4().hex[:6]}"
    team = (name, cli(env, tmp_path, "keys", "create", name, "--rpm", "10").splitlines()[-1])
    try:
        relays = [serve_process(env, tmp_path) for _ in range(2)]
        front = start_front(nginx_folder, [relay.url.removeprefix("http://") for relay in relays])
        yield Cluster(front, relays, env, tmp_path, team)
    finally:
        if front is not None:
            front.stop()
        for relay in relays:
            relay.stop()


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> Build:
    """deploy/Dockerfile built without an engine (tests/deploy/image.py says how), once per session."""
    if os.geteuid() != 0:
        pytest.skip("building the Dockerfile without an engine needs root (mount namespaces, overlayfs, chroot)")
    for tool in ("unshare", "mount", "npm"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")
    build = Build(tmp_path_factory.mktemp("image"))
    build.run_all()
    return build
