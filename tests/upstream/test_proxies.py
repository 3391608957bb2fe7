"""Upstreams reached through a real proxy server (pproxy, HTTP and SOCKS5), whose log shows the
relayed connection; a proxy that fails is a 502 naming it, its password masked."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningRelay
from tests.helpers import assert_well_formed, chat, free_port, user
from tests.upstream.conftest import Fakes, served

Pooled = Callable[..., RunningRelay]
Proxy = Callable[[str], tuple[int, Path]]
# pproxy asks uvloop for a loop in a way uvloop no longer allows: run it on asyncio's own.
PPROXY = "import sys; sys.modules['uvloop'] = None; from pproxy.server import main; sys.argv[0] = 'pproxy'; main()"


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Proxy]:
    """A factory: ``proxy("socks5://127.0.0.1:{port}#user:pass")`` starts pproxy; its port and log file."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(listen: str) -> tuple[int, Path]:
        port = free_port()
        log = tmp_path / f"pproxy-{port}.log"
        with log.open("wb") as out:
            process = subprocess.Popen([sys.executable, "-c", PPROXY, "-l", listen.format(port=port), "-v"],
                                       stdout=out, stderr=subprocess.STDOUT)
        processes.append(process)
        deadline = time.monotonic() + 10
        while b"Serving on" not in log.read_bytes():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        return port, log

    yield start
    for process in processes:
        process.terminate()
        process.wait(5)


def through(name: str, url: str, proxy_url: str) -> str:
    return f'[[upstreams]]\nname = "{name}"\nbase_url = "{url}"\nproxy = "{proxy_url}"\n'


@pytest.mark.parametrize(("listen", "proxy_url", "reached"), [
    ("http://127.0.0.1:{port}", "http://127.0.0.1:{port}", "localhost"),
    # socks5h: the proxy resolves the name; socks5: the relay does
    ("socks5://127.0.0.1:{port}#alice:s3cret-pass", "socks5h://alice:s3cret-pass@127.0.0.1:{port}", "localhost"),
    ("socks5://127.0.0.1:{port}", "socks5://127.0.0.1:{port}", "127.0.0.1"),
])
def test_the_upstream_through_a_proxy(fakes: Fakes, pooled: Pooled, proxy: Proxy, listen: str,
                                      proxy_url: str, reached: str) -> None:
    fake = fakes()
    port, log = proxy(listen)
    relay = pooled(through("proxied", fake.url.replace("127.0.0.1", "localhost"), proxy_url.format(port=port)))
    reply = chat(relay.url, user("hello"), relay.auth)
    assert reply.status == 200 and reply.text, reply.frames
    assert_well_formed(reply)
    r = httpx.get(f"{relay.url}/v1/models", headers=relay.auth)
    assert r.status_code == 200
    assert served(fake) == 1 and served(fake, "/v1/models") == 1
    relayed = log.read_text()
    assert f"-> {reached}:{fake.port}" in relayed, relayed


@pytest.mark.parametrize("proxy_url", ["socks5h://alice:s3cret-pass@127.0.0.1:{port}",
                                       "http://alice:s3cret-pass@127.0.0.1:{port}"])
def test_a_proxy_that_cannot_be_reached_is_a_502_naming_it(fakes: Fakes, pooled: Pooled, proxy_url: str) -> None:
    fake = fakes()
    shown = proxy_url.replace("s3cret-pass", "****").format(port=free_port())
    relay = pooled(through("proxied", fake.url, shown.replace("****", "s3cret-pass")))
    reply = chat(relay.url, user("hello"), relay.auth)
    assert reply.status == 502
    assert reply.errors[0].startswith(f"the upstream at 127.0.0.1 cannot be reached through the proxy {shown}: ")
    r = httpx.post(f"{relay.url}/v1/chat/completions", json={"model": "gpt-4o-mini", **user("hi")},
                   headers=relay.auth)
    assert r.status_code == 502 and shown in r.json()["error"]["message"]
    assert "s3cret" not in r.text and served(fake) == 0


def test_another_upstream_serves_while_a_proxy_is_down(fakes: Fakes, pooled: Pooled) -> None:
    behind, direct = fakes(), fakes()
    relay = pooled(through("behind", behind.url, f"socks5h://127.0.0.1:{free_port()}")
                   + f'[[upstreams]]\nname = "direct"\nbase_url = "{direct.url}"\n')
    for _ in range(3):
        assert chat(relay.url, user("hello"), relay.auth).status == 200
    assert served(direct) == 3 and served(behind) == 0
