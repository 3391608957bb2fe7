"""Two relays behind real nginx (the README's site), restarted one after the other while clients keep
asking: every reply arrives whole, the ones streaming through a draining relay included."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningFake
from tests.helpers import free_port, user, wait_until_serving
from tests.readme import examples
from tests.server.conftest import AUTH, eventually, relay_env
from tests.test_nginx import write_conf

pytestmark = pytest.mark.nginx

CLIENTS = 4


def start_relay(env: dict[str, str], port: int, folder: Path, n: int) -> subprocess.Popen[bytes]:
    with open(folder / f"relay-{port}-{n}.stderr", "wb") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "gptrelay", "serve", "--port", str(port)], env=env,
                                   cwd=folder, stdout=subprocess.DEVNULL, stderr=stderr)
    wait_until_serving(f"http://127.0.0.1:{port}", process)
    return process


@pytest.fixture
def nginx_binary() -> str:
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if binary is None:
        pytest.skip("nginx not installed: apt-get install nginx-light")
    return binary


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:  # SIGTERM: nginx's master stops its workers (a SIGKILL left them running)
        if process.poll() is None:
            process.terminate()
    for process in started:
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def test_a_rolling_restart_behind_nginx_loses_no_reply(fake_upstream: RunningFake, tmp_path: Path,
                                                       nginx_binary: str,
                                                       processes: list[subprocess.Popen[bytes]]) -> None:
    env = relay_env(fake_upstream, f"sqlite:///{tmp_path}/relay.db", DRAIN_TIMEOUT="60", ACCESS_LOG="true")
    ports = [free_port(), free_port()]
    relays = [start_relay(env, port, tmp_path, 0) for port in ports]
    processes.extend(relays)
    front_port = free_port()
    site = (examples()["nginx-several"].replace("listen 80;", f"listen 127.0.0.1:{front_port};")
            .replace("127.0.0.1:3666", f"127.0.0.1:{ports[0]}").replace("127.0.0.1:3667", f"127.0.0.1:{ports[1]}"))
    write_conf(tmp_path, site)
    nginx = subprocess.Popen([nginx_binary, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                             stderr=subprocess.DEVNULL)
    processes.append(nginx)
    front = f"http://127.0.0.1:{front_port}"
    wait_until_serving(front, nginx)

    stop = threading.Event()
    failures: list[str] = []
    done = [0] * CLIENTS

    def client(n: int) -> None:
        # Replies of 20 pieces 20 ms apart (0.4 s): many are streaming whenever a relay is told to stop.
        body = {**user("/scenario long cut=20 interval_ms=20"), "stream": True}
        with httpx.Client(timeout=60) as http:
            while not stop.is_set():
                try:
                    reply = http.post(f"{front}/chat", json=body, headers=AUTH)
                except httpx.HTTPError as error:
                    failures.append(type(error).__name__)
                    continue
                if reply.status_code != 200 or not reply.content.endswith(b'"finish_reason":"length"}\n') \
                        or b'"error":true' in reply.content:
                    failures.append(f"{reply.status_code} {reply.content[-200:]!r}")
                done[n] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        for n, port in enumerate(ports):
            before = sum(done)
            relays[n].send_signal(signal.SIGTERM)
            assert exits_with(relays[n]) == 0
            relays[n] = start_relay(env, port, tmp_path, 1)
            processes.append(relays[n])
            after = sum(done)
            assert after > before  # requests went on while it drained and started again
            # nginx sends nothing to a server it found down for its fail_timeout (10 s), and counts it
            # live again only once a request to it has ended well: the next relay stops only once
            # this one has answered a few (the README's restart loop waits as long).
            log = tmp_path / f"relay-{port}-1.stderr"
            assert eventually(lambda: answered(log) >= 3, within=60)  # noqa: B023 (called at once)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    nginx_said = (tmp_path / "error.log").read_text(errors="replace")[-2000:]
    assert failures == [], f"{len(failures)} failed, the first: {failures[:3]}; nginx said: {nginx_said}"
    assert sum(done) > 20
    for relay in relays:
        relay.send_signal(signal.SIGTERM)
        assert exits_with(relay) == 0


def answered(stderr: Path) -> int:
    """How many requests to /chat the relay logged (ACCESS_LOG)."""
    return stderr.read_text(errors="replace").count("/chat")


def exits_with(process: subprocess.Popen[bytes], within: float = 60) -> int:
    try:
        return process.wait(within)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the relay did not exit within {within} s") from None

