"""Limits and allowlists at the front door, over real relays: refused before anything goes upstream,
in each endpoint's error shape, with Retry-After; exact under concurrency, alone and across
two relay processes sharing Redis."""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest
from redis import Redis

from gptrelay.limits.redis import LEASE_MAX, LEASE_SHARE
from tests.conftest import UPSTREAM_KEY, RunningFake, RunningRelay, Store
from tests.helpers import free_port, user, wait_until_serving
from tests.limits.test_redis import URL as REDIS_URL
from tests.limits.test_redis import needs_redis

Relay = Callable[..., RunningRelay]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def completion(model: str = "gpt-4o-mini") -> dict[str, object]:
    return {"model": model, **user("hi")}


def test_rpm_refuses_with_429_and_retry_after_before_the_upstream(relay: Relay, store: Store,
                                                                   fake_upstream: RunningFake) -> None:
    key = store.create("rpm3", rpm=3)
    r = relay(database_url=store.url)
    for _ in range(3):
        assert httpx.post(f"{r.url}/chat", json=user("hi"), headers=bearer(key)).status_code == 200
    fake_upstream.fake.log.clear()
    refused = httpx.post(f"{r.url}/chat", json=user("hi"), headers={**bearer(key), "Origin": "https://a.example"})
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["access-control-allow-origin"] == "https://a.example"
    frames = [orjson.loads(line) for line in refused.text.splitlines()]
    assert frames[0]["error"] and "rate limit" in frames[0]["content"] and frames[-1]["done"]
    v1 = httpx.post(f"{r.url}/v1/chat/completions", json=completion(), headers=bearer(key))
    assert v1.status_code == 429 and v1.json()["error"]["code"] == "rate_limit_exceeded"
    assert fake_upstream.fake.log == []  # refusals cost no upstream call
    assert httpx.post(f"{r.url}/chat", json=user("hi"), headers=bearer(r.key)).status_code == 200  # owner: no limits


def test_200_at_once_against_rpm_50_admit_exactly_50(relay: Relay, store: Store) -> None:
    key = store.create("rpm50", rpm=50)
    r = relay(database_url=store.url)
    with httpx.Client(limits=httpx.Limits(max_connections=200)) as client, \
            concurrent.futures.ThreadPoolExecutor(50) as pool:
        statuses = list(pool.map(lambda _: client.get(f"{r.url}/v1/models", headers=bearer(key)).status_code,
                                 range(200)))
    assert statuses.count(200) == 50 and statuses.count(429) == 150


def test_models_allowlist(relay: Relay, store: Store, fake_upstream: RunningFake) -> None:
    key = store.create("mini-only", models=["gpt-4o*", "o3-mini"])
    r = relay(database_url=store.url)
    assert httpx.post(f"{r.url}/chat", json=completion("gpt-4o-mini"), headers=bearer(key)).status_code == 200
    fake_upstream.fake.log.clear()
    chat = httpx.post(f"{r.url}/chat", json=completion("o3"), headers=bearer(key))
    assert chat.status_code == 403 and "o3" in chat.text
    v1 = httpx.post(f"{r.url}/v1/chat/completions", json=completion("gpt-4.1"), headers=bearer(key))
    assert v1.status_code == 403 and v1.json()["error"]["code"] == "model_not_allowed"
    assert fake_upstream.fake.log == []
    # The default model of /chat is checked too (gpt-4o-mini here: allowed).
    assert httpx.post(f"{r.url}/chatgpt", json=user("hi"), headers=bearer(key)).status_code == 200
    listed = httpx.get(f"{r.url}/v1/models", headers=bearer(key)).json()
    assert [model["id"] for model in listed["data"]] == ["gpt-4o-mini", "gpt-4o"]
    everything = httpx.get(f"{r.url}/v1/models", headers=bearer(r.key)).json()
    assert len(everything["data"]) == 4


def test_origin_bound_key(relay: Relay, store: Store) -> None:
    key = store.create("page", origins=["https://app.example.com"])
    r = relay(database_url=store.url)
    bare = httpx.post(f"{r.url}/chat", json=user("hi"), headers=bearer(key))
    assert bare.status_code == 403 and "app.example.com" in bare.text
    other = httpx.post(f"{r.url}/v1/models", headers={**bearer(key), "Origin": "https://evil.example"})
    assert other.status_code == 403 and other.json()["error"]["code"] == "origin_not_allowed"
    ok = httpx.post(f"{r.url}/chat", json=user("hi"), headers={**bearer(key), "Origin": "https://app.example.com"})
    assert ok.status_code == 200


def test_an_origin_matches_whatever_case_it_was_given_in(relay: Relay, store: Store) -> None:
    key = store.create("shouty", origins=["HTTPS://App.Example.COM/"])  # browsers send it in lower case
    r = relay(database_url=store.url)
    for sent in ("https://app.example.com", "https://App.example.com"):
        assert httpx.get(f"{r.url}/v1/models", headers={**bearer(key), "Origin": sent}).status_code == 200


@pytest.mark.parametrize(("policy", "wanted"), [("open", 200), ("closed", 503)])
def test_redis_down_is_the_configured_policy_never_a_hang(relay: Relay, store: Store, policy: str,
                                                         wanted: int) -> None:
    key = store.create("redis-down", rpm=10)
    r = relay(database_url=store.url, redis_url="redis://127.0.0.1:1/0", redis_failure_policy=policy)
    response = httpx.post(f"{r.url}/v1/chat/completions", json=completion(), headers=bearer(key), timeout=5)
    assert response.status_code == wanted
    if wanted == 503:
        assert response.json()["error"]["code"] == "limiter_unavailable"


@needs_redis
@pytest.mark.parametrize(("rpm", "asked"), [(50, 200), (1000, 1400)], ids=["rpm-50", "rpm-1000-leased"])
def test_two_relays_sharing_redis_admit_exactly_rpm(fake_upstream: RunningFake, postgres_url: str,
                                                    tmp_path: Path, rpm: int, asked: int) -> None:
    """An rpm of 50 is too small for leases: every admission asks Redis. With 1,000, each relay
    admits from leases most of the time; never more than the rpm, and fewer only by what a lease
    held when the requests stopped."""
    name = f"shared-{uuid.uuid4().hex[:8]}"  # the counters in Redis are by key name
    env = {**os.environ, "OPENAI_API_KEY": UPSTREAM_KEY, "OPENAI_BASE_URL": fake_upstream.url,
           "DATABASE_URL": postgres_url, "REDIS_URL": REDIS_URL, "AUTHORIZATION_KEY": "owner"}
    made = subprocess.run([sys.executable, "-m", "gptrelay", "keys", "create", name, "--rpm", str(rpm)],
                          env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    key = made.stdout.splitlines()[-1]
    ports = [free_port(), free_port()]
    scripts_run = evalsha_calls()
    processes = [subprocess.Popen([sys.executable, "-m", "gptrelay", "serve", "--port", str(port)], env=env,
                                  cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for port in ports]
    try:
        for port, process in zip(ports, processes, strict=True):
            wait_until_serving(f"http://127.0.0.1:{port}", process)
        with httpx.Client(limits=httpx.Limits(max_connections=200)) as client, \
                concurrent.futures.ThreadPoolExecutor(50) as pool:
            statuses = list(pool.map(
                lambda n: client.get(f"http://127.0.0.1:{ports[n % 2]}/v1/models", headers=bearer(key)).status_code,
                range(asked)))
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)
    slack = 0 if rpm < 2 * LEASE_SHARE else 2 * min(LEASE_MAX, rpm // LEASE_SHARE)  # a lease's most, per relay
    assert rpm - slack <= statuses.count(200) <= rpm
    assert statuses.count(200) + statuses.count(429) == asked
    if slack:  # most admissions came from leases: each refusal asks Redis, two admissions did not
        # (the count also holds the calls of tokens spent and of given back leases)
        calls = evalsha_calls() - scripts_run
        assert calls < statuses.count(429) + statuses.count(200) / 2, (calls, statuses.count(429))


def evalsha_calls() -> int:
    with Redis.from_url(REDIS_URL) as client:
        return int(client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


def test_a_filtered_model_list_is_recorded_as_the_success_it_is(relay: Relay, store: Store) -> None:
    from tests.usage.test_recording import records

    key = store.create("lister", models=["gpt-4o*"])
    r = relay(database_url=store.url)
    assert httpx.get(f"{r.url}/v1/models", headers=bearer(key)).status_code == 200
    [row] = records(store.url)
    assert (row["route"], row["status"], row["outcome"]) == ("/v1/models", 200, "ok")
