"""The README's worked example of two relays behind nginx sharing PostgreSQL and Redis."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import orjson
import pytest

from tests.conftest import UPSTREAM_KEY, RunningFake
from tests.helpers import free_port, user, wait_until_serving
from tests.limits.test_redis import URL as REDIS_URL
from tests.readme import examples
from tests.test_nginx import write_conf

pytestmark = pytest.mark.nginx


def test_two_relays_behind_nginx_sharing_postgresql_and_redis_act_as_one(
        fake_upstream: RunningFake, postgres_url: str, tmp_path: Path) -> None:
    """The README's worked example, run: one key's RPM counted across both relays, a revoke on one
    refused through both, every request recorded in the one database, the client's address passed on."""
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if binary is None:
        pytest.skip("nginx not installed: apt-get install nginx-light")
    env = {**os.environ, "OPENAI_API_KEY": UPSTREAM_KEY, "OPENAI_BASE_URL": fake_upstream.url,
           "AUTHORIZATION_KEY": "owner-key", "DATABASE_URL": postgres_url, "REDIS_URL": REDIS_URL,
           "TRUSTED_PROXIES": "127.0.0.1"}

    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "gptrelay", *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    name = f"team-{uuid.uuid4().hex[:6]}"
    key = cli("keys", "create", name, "--rpm", "10").splitlines()[-1]
    ports = [free_port(), free_port()]
    relays = [subprocess.Popen([sys.executable, "-m", "gptrelay", "serve", "--port", str(port)], env=env,
                               cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for port in ports]
    front_port = free_port()
    site = (examples()["nginx-several"].replace("listen 80;", f"listen 127.0.0.1:{front_port};")
            .replace("127.0.0.1:3666", f"127.0.0.1:{ports[0]}").replace("127.0.0.1:3667", f"127.0.0.1:{ports[1]}"))
    write_conf(tmp_path, site)
    nginx = subprocess.Popen([binary, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                             stderr=subprocess.PIPE)
    front = f"http://127.0.0.1:{front_port}"
    try:
        for port, process in zip(ports, relays, strict=True):
            wait_until_serving(f"http://127.0.0.1:{port}", process)
        wait_until_serving(front, nginx)
        headers = {"Authorization": f"Bearer {key}"}
        statuses = [httpx.post(f"{front}/chat", json=user("hi"), headers=headers).status_code for _ in range(30)]
        assert statuses.count(200) == 10 and statuses.count(429) == 20  # one RPM across both relays
        cli("keys", "revoke", name)
        deadline = time.monotonic() + 1.0
        while httpx.get(f"{front}/v1/models", headers=headers).status_code != 401 or \
                httpx.get(f"{front}/v1/models", headers=headers).status_code != 401:  # both relays, round robin
            assert time.monotonic() < deadline, "the revoke did not reach both relays within a second"
            time.sleep(0.02)
        rows = orjson.loads(cli("usage", "--by", "request", "--json"))
        assert len([row for row in rows if row["route"] == "/chat"]) == 30
    finally:
        nginx.terminate()
        nginx.wait(10)
        for process in relays:
            process.terminate()
            process.wait(10)

