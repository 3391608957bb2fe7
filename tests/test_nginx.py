"""Real nginx in front of the relay, configured with the README's snippet: tokens still stream."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.conftest import UPSTREAM_KEY, RunningFake, RunningRelay
from tests.helpers import free_port, user, wait_until_serving
from tests.limits.test_redis import URL as REDIS_URL
from tests.readme import examples

Relay = Callable[..., RunningRelay]

pytestmark = pytest.mark.nginx


def write_conf(folder: Path, http: str) -> None:
    """``folder``/nginx.conf: one worker in the foreground, everything it writes in ``folder``, and
    ``http`` (servers, upstreams) in its http block."""
    (folder / "nginx.conf").write_text(f"""
worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    {http}
}}
""")


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if binary is None:
        pytest.skip("nginx not installed: apt-get install nginx-light")
    processes: list[subprocess.Popen[bytes]] = []

    def start(relay_url: str) -> str:
        port = free_port()
        location = examples()["nginx"].replace("http://127.0.0.1:3666", relay_url)
        write_conf(tmp_path, f"server {{ listen 127.0.0.1:{port}; {location} }}")
        process = subprocess.Popen([binary, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                                   stderr=subprocess.PIPE)
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_until_serving(url, process)
        return url

    yield start
    for process in processes:
        process.terminate()
        process.wait(10)


def test_frames_pass_nginx_while_the_upstream_is_still_streaming(relay: Relay, nginx: Callable[[str], str]
                                                                  ) -> None:
    r = relay()
    front = nginx(r.url)
    # The upstream sends three pieces, then stalls for 30 s: a buffering proxy would show nothing.
    body = user("/scenario stall seconds=30 cut=3")
    seen = []
    with httpx.stream("POST", f"{front}/chat", json=body, headers=r.auth, timeout=10) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            seen.append(orjson.loads(line)["content"])
            if len(seen) == 3:
                break
    assert "".join(seen) == "Hello! This"


def test_sdk_streams_through_nginx(relay: Relay, nginx: Callable[[str], str]) -> None:
    from openai import OpenAI

    r = relay()
    client = OpenAI(base_url=f"{nginx(r.url)}/v1", api_key=r.key, max_retries=0)
    stream = client.chat.completions.create(model="gpt-4o-mini", stream=True,
                                            messages=[{"role": "user", "content": "/scenario chinese"}])
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    client.close()
    assert text == "你好，世界！这是一个测试：流式输出中文、表情😀和标点。"


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

