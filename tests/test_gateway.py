"""/v1 as a byte pipe: methods, paths, queries, headers both ways, bodies streamed both ways."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

import httpx
import psutil
import pytest

from tests.conftest import UPSTREAM_KEY, RunningFake, RunningRelay
from tests.helpers import free_port, wait_until_serving

Relay = Callable[..., RunningRelay]
MiB = 1024 * 1024


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_method_path_query_and_body_pass(relay: Relay, method: str) -> None:
    r = relay()
    body = b"" if method in ("GET", "DELETE") else b'{"x": 1}'
    response = httpx.request(method, f"{r.url}/v1/echo/a/b%20c?limit=2&order=desc&q=%E4%BD%A0",
                             content=body, headers={**r.auth, "Content-Type": "application/json"})
    assert response.status_code == 200
    seen = response.json()
    assert (seen["method"], seen["path"]) == (method, "/v1/echo/a/b c")
    assert seen["raw_path"] == "/v1/echo/a/b%20c?limit=2&order=desc&q=%E4%BD%A0"
    assert seen["body_size"] == len(body)


def test_request_headers(relay: Relay) -> None:
    r = relay(openai_organization="org-relay", openai_project="proj-relay")
    response = httpx.post(f"{r.url}/v1/echo/h", content=b"{}", headers={
        "Authorization": f"Bearer {r.key}", "Content-Type": "application/json", "Cookie": "session=secret",
        "OpenAI-Organization": "org-client", "X-Forwarded-For": "203.0.113.9", "OpenAI-Beta": "assistants=v2",
        "X-Stainless-Lang": "python", "Idempotency-Key": "abc", "Connection": "keep-alive, X-Hop",
        "Keep-Alive": "timeout=5"})
    seen = {k.lower(): v for k, v in response.json()["headers"].items()}
    assert seen["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert seen["openai-organization"] == "org-relay" and seen["openai-project"] == "proj-relay"
    assert seen["openai-beta"] == "assistants=v2" and seen["x-stainless-lang"] == "python"
    assert seen["idempotency-key"] == "abc"
    for gone in ("cookie", "x-forwarded-for", "keep-alive"):
        assert gone not in seen
    assert r.key not in repr(seen)


def test_api_key_header_is_not_forwarded(relay: Relay) -> None:
    r = relay()
    response = httpx.get(f"{r.url}/v1/echo/k", headers={"api-key": r.key})
    seen = {k.lower(): v for k, v in response.json()["headers"].items()}
    assert "api-key" not in seen and seen["authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_user_agent_is_the_clients_or_the_relays(relay: Relay) -> None:
    r = relay()
    with httpx.Client(headers={**r.auth}) as client:
        client.headers.pop("User-Agent")
        theirs = client.get(f"{r.url}/v1/echo/ua", headers={"User-Agent": "my-script/1.0"}).json()
        none = client.get(f"{r.url}/v1/echo/ua").json()
    assert theirs["headers"]["User-Agent"] == "my-script/1.0"
    assert none["headers"]["User-Agent"].startswith("gptrelay/")  # never the HTTP client's own


def test_upstream_cookies_are_neither_passed_on_nor_kept(relay: Relay, fake_upstream: RunningFake) -> None:
    # By name, not by IP address: a cookie jar would keep cookies from this host.
    r = relay(openai_base_url=f"http://localhost:{fake_upstream.port}/v1")
    first = httpx.get(f"{r.url}/v1/echo/one", headers=r.auth)
    second = httpx.get(f"{r.url}/v1/echo/two", headers=r.auth)
    assert "set-cookie" not in first.headers
    assert "cookie" not in {k.lower() for k in second.json()["headers"]}  # one user's cookie is not another's


def test_response_headers(relay: Relay) -> None:
    r = relay()
    response = httpx.post(f"{r.url}/v1/chat/completions", headers=r.auth, json={
        "model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    assert response.headers["x-request-id"] == "req_fake"
    assert response.headers["openai-organization"] == "org-fake"
    assert "set-cookie" not in response.headers
    assert response.text.endswith("data: [DONE]\n\n")


def test_streamed_request_is_never_compressed(relay: Relay, fake_upstream: RunningFake) -> None:
    r = relay()
    httpx.post(f"{r.url}/v1/chat/completions", headers={**r.auth, "Accept-Encoding": "gzip"}, json={
        "model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    assert fake_upstream.fake.last().headers["Accept-Encoding"] == "identity"


def test_upstream_error_body_is_untouched(relay: Relay) -> None:
    r = relay()
    response = httpx.post(f"{r.url}/v1/chat/completions", headers=r.auth, json={
        "model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


def test_json_body_too_large_is_413_in_openai_shape(relay: Relay) -> None:
    r = relay(max_body_size=1000)
    response = httpx.post(f"{r.url}/v1/chat/completions", headers=r.auth,
                          json={"messages": [{"role": "user", "content": "x" * 5000}]})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_upload_too_large_is_413(relay: Relay) -> None:
    r = relay(max_upload_size=2 * MiB)
    response = httpx.post(f"{r.url}/v1/echo/up", headers={**r.auth, "Content-Type": "application/octet-stream"},
                          content=b"x" * (3 * MiB))
    assert response.status_code == 413


def test_streamed_upload_too_large_is_refused(relay: Relay, fake_upstream: RunningFake) -> None:
    r = relay(max_upload_size=2 * MiB)

    def body() -> Iterator[bytes]:
        for _ in range(6):
            yield b"x" * MiB

    try:
        response = httpx.post(f"{r.url}/v1/echo/up", content=body(),
                              headers={**r.auth, "Content-Type": "application/octet-stream"})
    except httpx.TransportError:
        pass  # the relay may close the connection while the client still sends
    else:
        assert response.status_code in (413, 502)
    assert all(record.body_size <= 2 * MiB for record in fake_upstream.fake.log)


def test_timeout_before_headers_is_504_in_openai_shape(relay: Relay) -> None:
    r = relay(first_byte_timeout=0.3)
    response = httpx.post(f"{r.url}/v1/chat/completions", headers=r.auth, json={
        "model": "m", "messages": [{"role": "user", "content": "/scenario slow-headers seconds=5"}]})
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "upstream_timeout"


def test_stream_cut_midway_ends_with_an_error_event(relay: Relay) -> None:
    r = relay()
    response = httpx.post(f"{r.url}/v1/chat/completions", headers=r.auth, json={
        "model": "m", "stream": True, "messages": [{"role": "user", "content": "/scenario cut"}]})
    assert response.status_code == 200
    assert response.text.endswith('"type":"upstream_error","code":null}}\n\n')


def test_ping_while_a_v1_stream_thinks(relay: Relay) -> None:
    r = relay(keepalive_interval=0.1)
    response = httpx.post(f"{r.url}/v1/chat/completions", headers=r.auth, json={
        "model": "m", "stream": True, "messages": [{"role": "user", "content": "/scenario slow-first seconds=0.35"}]})
    assert response.text.startswith(": ping\n\n: ping\n\n")


@pytest.fixture
def relay_process(fake_upstream: RunningFake, tmp_path: object) -> Iterator[tuple[str, psutil.Process]]:
    """The relay as its own process, so its memory can be watched."""
    port = free_port()
    env = {**os.environ, "OPENAI_API_KEY": UPSTREAM_KEY, "OPENAI_BASE_URL": fake_upstream.url,
           "AUTHORIZATION_KEY": "mem-key", "MAX_UPLOAD_SIZE": str(1024 * MiB)}
    process = subprocess.Popen([sys.executable, "-m", "gptrelay", "serve", "--port", str(port)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=str(tmp_path))
    url = f"http://127.0.0.1:{port}"
    wait_until_serving(url, process)
    yield url, psutil.Process(process.pid)
    process.terminate()
    process.wait(10)


class PeakMemory:
    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self.baseline = process.memory_info().rss
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.baseline) / MiB


def test_large_upload_and_download_keep_memory_flat(relay_process: tuple[str, psutil.Process]) -> None:
    url, process = relay_process
    size = 256 * MiB
    auth = {"Authorization": "Bearer mem-key"}
    block = os.urandom(MiB)
    digest = hashlib.sha256()

    def body() -> Iterator[bytes]:
        for _ in range(size // MiB):
            digest.update(block)
            yield block

    httpx.get(f"{url}/v1/models", headers=auth)  # warm up the pool
    with PeakMemory(process) as upload:
        response = httpx.post(f"{url}/v1/echo/upload", content=body(), timeout=60,
                              headers={**auth, "Content-Type": "application/octet-stream",
                                       "Content-Length": str(size)})
    assert response.json()["body_size"] == size
    assert response.json()["body_sha256"] == digest.hexdigest()

    received = 0
    with PeakMemory(process) as download, httpx.stream(
            "GET", f"{url}/v1/files/file-big/content?size={size}", headers=auth, timeout=60) as r:
        assert r.headers["content-length"] == str(size)
        for chunk in r.iter_raw():
            received += len(chunk)
    assert received == size
    assert upload.growth_mib < 40, upload.growth_mib
    assert download.growth_mib < 40, download.growth_mib
