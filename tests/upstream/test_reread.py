"""SIGHUP: the upstreams' file read again; a reply streaming meanwhile is not cut."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests.helpers import free_port, user, wait_until_serving
from tests.upstream.conftest import Fakes, served

ACCESS = {"Authorization": "Bearer reread-access-key"}


def upstream(name: str, url: str) -> str:
    return f'[[upstreams]]\nname = "{name}"\nbase_url = "{url}"\nkeys = ["sk-reread-0123456789-{name}"]\n'


def test_sighup_rereads_the_file_without_cutting_a_stream(fakes: Fakes, tmp_path: Path) -> None:
    before, after = fakes(pace_ms=40), fakes()
    config = tmp_path / "gptrelay.toml"
    config.write_text(upstream("before", before.url))
    port = free_port()
    log = tmp_path / "relay.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "gptrelay", "serve", "--port", str(port)], cwd=tmp_path,
                                   stdout=out, stderr=subprocess.STDOUT,
                                   env={**os.environ, "AUTHORIZATION_KEY": "reread-access-key"})
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_serving(url, process)
        streamed: list[bytes] = []

        def stream() -> None:  # about two seconds of reply from the first upstream
            with httpx.stream("POST", f"{url}/chat", json=user("hello"), headers=ACCESS, timeout=30) as r:
                streamed.extend(r.iter_bytes())

        reader = threading.Thread(target=stream)
        reader.start()
        deadline = time.monotonic() + 10
        while not served(before) and time.monotonic() < deadline:
            time.sleep(0.02)
        config.write_text("not = [valid")  # a broken file is not used
        os.kill(process.pid, signal.SIGHUP)
        time.sleep(0.3)
        config.write_text(upstream("after", after.url))
        os.kill(process.pid, signal.SIGHUP)
        time.sleep(0.3)
        assert reader.is_alive()  # the first reply still streams
        assert httpx.post(f"{url}/chat", json=user("hi"), headers=ACCESS, timeout=10).status_code == 200
        reader.join(30)
        reply = b"".join(streamed)
        assert reply.endswith(b'{"done":true,"error":false,"content":"[DONE]","finish_reason":"stop"}\n'), reply[-200:]
        assert b'"error":true' not in reply
        assert before.fake.log[0].finished is not None and before.fake.log[0].disconnected is None
        assert (served(before), served(after)) == (1, 1)
    finally:
        process.terminate()
        process.wait(10)
    text = log.read_text()
    assert "is not used, the upstreams stay as they were" in text and "not valid TOML" in text
    assert f"SIGHUP: upstreams read again from {config}: after" in text
    assert "sk-reread" not in text
