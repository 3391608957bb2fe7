"""The shipped nginx site (deploy/nginx/gptrelay.conf) with real nginx, over TLS, in front of two relay
processes sharing PostgreSQL and Redis: they act as one, streams pass token by token, the client's
address gets through X-Forwarded-For, a stopped relay is skipped and a POST that reached one is never
sent to the other."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import ssl
import time
from typing import Any

import httpx
import orjson
import psutil
import pytest

from tests.conftest import RunningFake
from tests.deploy.conftest import Cluster
from tests.helpers import user

pytestmark = pytest.mark.nginx


def client(cluster: Cluster, *, http2: bool = False, source: str | None = None, **options: Any) -> httpx.Client:
    """An HTTPS client of the front that trusts the test CA; ``source``: the loopback address it connects
    from (all of 127.0.0.0/8 is the machine itself), so nginx sees a client that is not itself."""
    context = ssl.create_default_context(cafile=str(cluster.front.ca))
    transport = httpx.HTTPTransport(verify=context, http2=http2, local_address=source)
    return httpx.Client(base_url=cluster.front.https, transport=transport, timeout=20, **options)


def test_two_relays_behind_the_shipped_site_act_as_one(cluster: Cluster) -> None:
    """One key's RPM counted across both relays, a revoke on one refused through both within a second,
    every request recorded in the one database."""
    name, key = cluster.team
    with client(cluster, headers={"Authorization": f"Bearer {key}"}) as front:
        statuses = [front.post("/chat", json=user("hi")).status_code for _ in range(30)]
        assert statuses.count(200) == 10 and statuses.count(429) == 20  # one RPM across both relays
        cluster.cli("keys", "revoke", name)
        deadline = time.monotonic() + 1.0
        while front.get("/v1/models").status_code != 401 or front.get("/v1/models").status_code != 401:
            assert time.monotonic() < deadline, "the revoke did not reach both relays within a second"
            time.sleep(0.02)
    rows = orjson.loads(cluster.cli("usage", "--by", "request", "--json"))
    assert len([row for row in rows if row["route"] == "/chat"]) == 30


def test_streams_pass_tls_nginx_while_the_upstream_is_still_streaming(cluster: Cluster) -> None:
    """The upstream sends a few pieces, then stalls for 30 s: a proxy that buffers (or gzips, which
    the test's nginx.conf turns on for every type, as operators do) would show nothing before then.
    Over HTTP/1.1 and HTTP/2, on /chat and /v1."""
    for http2 in (False, True):
        stream_both_routes(cluster, http2)


def stream_both_routes(cluster: Cluster, http2: bool) -> None:
    with client(cluster, http2=http2, headers={**cluster.auth, "Accept-Encoding": "gzip"}) as front:
        seen: list[str] = []
        with front.stream("POST", "/chat", json=user("/scenario stall seconds=30 cut=3")) as response:
            assert response.status_code == 200
            assert response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
            assert "content-encoding" not in response.headers
            for line in response.iter_lines():
                seen.append(orjson.loads(line)["content"])
                if len(seen) == 3:
                    break
        assert "".join(seen) == "Hello! This"

        events: list[dict[str, Any]] = []
        body = {"model": "gpt-4o-mini", "stream": True,
                "messages": [{"role": "user", "content": "/scenario stall seconds=30 cut=3"}]}
        with front.stream("POST", "/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert "content-encoding" not in response.headers
            for line in response.iter_lines():
                if line.startswith("data: "):
                    events.append(orjson.loads(line[6:]))
                if sum(1 for e in events if e["choices"] and e["choices"][0]["delta"].get("content")) == 3:
                    break
        assert "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"]) == "Hello! This"


def test_the_sdk_streams_through_the_site(cluster: Cluster) -> None:
    from openai import DefaultHttpxClient, OpenAI

    context = ssl.create_default_context(cafile=str(cluster.front.ca))
    sdk = OpenAI(base_url=f"{cluster.front.https}/v1", api_key=cluster.auth["Authorization"][7:], max_retries=0,
                 http_client=DefaultHttpxClient(verify=context))
    stream = sdk.chat.completions.create(model="gpt-4o-mini", stream=True,
                                         messages=[{"role": "user", "content": "/scenario chinese"}])
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    sdk.close()
    assert text == "你好，世界！这是一个测试：流式输出中文、表情😀和标点。"


def test_the_client_address_reaches_the_relays_through_x_forwarded_for(cluster: Cluster) -> None:
    """TRUSTED_PROXIES=127.0.0.1 as the site says: the relays see the address nginx saw, not nginx's
    and not one the client wrote into X-Forwarded-For itself. 127.0.0.2 guesses keys until both relays
    (each keeps its own count) refuse it; 127.0.0.3, claiming to be 127.0.0.2, is still served."""
    wrong = {"Authorization": "Bearer wrong-key", "X-Forwarded-For": "203.0.113.7"}
    with client(cluster, source="127.0.0.2") as guesser, client(cluster, source="127.0.0.3") as other:
        in_a_row = 0
        for _ in range(100):
            status = guesser.get("/v1/models", headers=wrong).status_code
            assert status in (401, 429)
            in_a_row = in_a_row + 1 if status == 429 else 0
            if in_a_row == 4:
                break
        assert in_a_row == 4, "the guessing address was never refused on both relays"
        for _ in range(4):  # both relays, round robin
            refused = guesser.get("/v1/models", headers={**cluster.auth, "X-Forwarded-For": "198.51.100.1"})
            assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
            served = other.get("/v1/models", headers={**cluster.auth, "X-Forwarded-For": "127.0.0.2"})
            assert served.status_code == 200
        assert httpx.get(f"{cluster.relays[0].url}/v1/models", headers=cluster.auth).status_code == 200


def test_a_stopped_relay_is_skipped(cluster: Cluster) -> None:
    """One relay killed: every request, POSTs included, goes to the other (its connection is refused,
    so nothing was sent), and nginx's error log says it tried."""
    dead = cluster.relays[0]
    dead.process.kill()
    dead.process.wait(10)
    with client(cluster, headers=cluster.auth) as front:
        for _ in range(6):
            assert front.post("/chat", json=user("hi")).status_code == 200
            assert front.get("/v1/models").status_code == 200
            assert front.get("/healthz").status_code == 200
    assert "connect() failed (111: Connection refused) while connecting to upstream" in cluster.front.error_log
    assert dead.url.removeprefix("http://") in cluster.front.error_log


@pytest.mark.parametrize("path", ["/chat", "/v1/chat/completions"])
def test_a_post_that_reached_a_relay_is_never_sent_to_the_other(cluster: Cluster, fake_upstream: RunningFake,
                                                                 path: str) -> None:
    """The relay holding a POST dies before any reply: the client gets 502 and the upstream saw the
    request once (nginx would need `non_idempotent` to send it again, and the site leaves it out).
    On both routes (a small body is read whole even where proxy_request_buffering is off) this fails
    with `non_idempotent` added: the second relay is sent the request and the upstream sees it twice."""
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "/scenario slow-headers seconds=30"}]}
    asked = len([r for r in fake_upstream.fake.log if r.path == "/v1/chat/completions"])
    with client(cluster, headers=cluster.auth) as front, concurrent.futures.ThreadPoolExecutor(1) as pool:
        reply = pool.submit(front.post, path, json=body)
        deadline = time.monotonic() + 10
        while len([r for r in fake_upstream.fake.log if r.path == "/v1/chat/completions"]) == asked:
            assert time.monotonic() < deadline, "the request never reached the upstream"
            time.sleep(0.02)
        holder = next(r for r in cluster.relays if connected_to(r.process.pid, fake_upstream.port))
        os.kill(holder.process.pid, signal.SIGKILL)
        failed = reply.result(30)
        assert failed.status_code == 502 and failed.json()["error"]["code"] == "relay_unavailable"
    assert len([r for r in fake_upstream.fake.log if r.path == "/v1/chat/completions"]) == asked + 1


def connected_to(pid: int, port: int) -> bool:
    """Whether process ``pid`` has a connection open to 127.0.0.1:``port``."""
    return any(c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
               for c in psutil.Process(pid).net_connections("tcp"))


def test_health_acme_redirect_and_body_limits(cluster: Cluster) -> None:
    """/healthz over TLS; port 80 serves the ACME challenge from its webroot and sends everything else
    to HTTPS; a /chat body over MAX_BODY_SIZE is refused by nginx."""
    challenge = cluster.front.webroot / ".well-known" / "acme-challenge"
    challenge.mkdir(parents=True)
    (challenge / "token-123").write_text("token-123.thumbprint")
    for folder in (challenge.parent, challenge):
        folder.chmod(0o755)
    (challenge / "token-123").chmod(0o644)
    plain = httpx.get(f"{cluster.front.http}/.well-known/acme-challenge/token-123")
    assert plain.status_code == 200 and plain.text == "token-123.thumbprint"
    moved = httpx.get(f"{cluster.front.http}/v1/models?x=1")
    assert moved.status_code == 301 and moved.headers["location"] == "https://127.0.0.1/v1/models?x=1"
    with client(cluster) as front:
        health = front.get("/healthz")
        assert health.status_code == 200
        assert "strict-transport-security" in health.headers
        too_big = front.post("/chat", headers={**cluster.auth, "Content-Type": "application/json"},
                             content=b" " * (20 * 1024 * 1024 + 1))
        assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "payload_too_large"
