"""Real nginx in front of the relay, configured with the README's snippet: tokens still stream."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.conftest import RunningRelay
from tests.helpers import free_port, user, wait_until_serving
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
