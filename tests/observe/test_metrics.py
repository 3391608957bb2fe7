"""The metrics after real requests through the relay and the fake upstream: what each request
counts, with labels no client can multiply."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from gptrelay.observe import metrics
from gptrelay.observe.metrics import route_pattern, v1_route
from gptrelay.upstream import pool
from tests.conftest import RunningRelay, Store
from tests.helpers import chat, eventually, user
from tests.observe.conftest import ADMIN_KEY, scrape, value
from tests.upstream.conftest import Fakes
from tests.upstream.test_pool import upstream
from tests.usage.test_recording import records

Relay = Callable[..., RunningRelay]
MODEL = "gpt-4o-mini"


def completion(model: str = MODEL, text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"model": model, **user(text), **extra}


def requests_total(url: str, route: str, status: int) -> float:
    return value(scrape(url), "gptrelay_requests_total", route=route, status=str(status))


def test_labels_are_route_patterns() -> None:
    assert route_pattern("/static/{name:.+}") == "/static/{name}"
    assert route_pattern("/admin/api/keys/{name}") == "/admin/api/keys/{name}"
    assert route_pattern("/chat") == "/chat"
    assert v1_route("/v1/chat/completions") == "/v1/chat/completions"
    assert v1_route("/v1/files/file-abc123/content") == "/v1/{path}"


def test_each_request_is_counted_once_with_its_tokens_and_times(observed: Relay, store: Store) -> None:
    r = observed(database_url=store.url)
    assert chat(r.url, user("hello"), r.auth).status == 200
    with httpx.stream("POST", f"{r.url}/chatgpt", json=user("hello"), headers=r.auth) as streamed:
        assert streamed.status_code == 200 and streamed.read().endswith(b"data: [DONE]\n\n")
    v1 = f"{r.url}/v1/chat/completions"
    assert httpx.post(v1, json=completion(), headers=r.auth).status_code == 200
    with httpx.stream("POST", v1, json=completion(stream=True), headers=r.auth) as streamed:
        assert streamed.status_code == 200 and streamed.read().endswith(b"data: [DONE]\n\n")
    assert httpx.post(v1, json=completion(text="/scenario error status=500"), headers=r.auth).status_code == 500
    assert httpx.post(f"{r.url}/chat", json=user("hi")).status_code == 401
    assert httpx.get(f"{r.url}/healthz").status_code == 200
    assert httpx.get(f"{r.url}/static/nothing-here.js").status_code == 404

    assert eventually(lambda: requests_total(r.url, "/v1/chat/completions", 500) == 1)
    samples = scrape(r.url)
    counted = {(dict(labels)["route"], dict(labels)["status"]): v for (name, labels), v in samples.items()
               if name == "gptrelay_requests_total" and dict(labels)["route"] != "/metrics"}
    assert counted == {("/chat", "200"): 1, ("/chatgpt", "200"): 1, ("/v1/chat/completions", "200"): 2,
                       ("/v1/chat/completions", "500"): 1, ("/chat", "401"): 1, ("/healthz", "200"): 1,
                       ("/static/{name}", "404"): 1}
    # (the scrape itself is counted once it has been answered)
    assert value(scrape(r.url), "gptrelay_requests_total", route="/metrics", status="200") >= 1
    # The tokens are those of the usage records, model by model.
    rows = records(store.url)
    assert len(rows) == 5
    for kind in ("prompt", "completion"):
        recorded = sum(row[f"{kind}_tokens"] for row in rows if row["model"] == MODEL)
        assert recorded > 0
        assert value(samples, "gptrelay_tokens_total", kind=kind, model=MODEL) == recorded
    # A time to first byte for each relayed reply; a duration for every request.
    assert value(samples, "gptrelay_time_to_first_byte_seconds_count", route="/v1/chat/completions") == 3
    assert value(samples, "gptrelay_time_to_first_byte_seconds_count", route="/chat") == 1
    assert value(samples, "gptrelay_request_duration_seconds_count", route="/chat") == 2
    assert value(samples, "gptrelay_request_duration_seconds_count", route="/healthz") == 1
    assert value(samples, "gptrelay_open_streams") == 0
    # The usage writer: every record committed, nothing waiting.
    assert value(samples, "gptrelay_usage_records_total", result="committed") == 5
    assert value(samples, "gptrelay_usage_records_total", result="spooled") == 0
    assert value(samples, "gptrelay_usage_commit_seconds_count") >= 1
    assert value(samples, "gptrelay_usage_queue_length") == 0


def test_a_client_gone_midway_is_a_499_and_its_stream_closes(observed: Relay) -> None:
    r = observed()
    with httpx.stream("POST", f"{r.url}/chat", json=user("/scenario bench chunks=200 interval_ms=20"),
                      headers=r.auth) as response:
        for _ in response.iter_lines():
            assert value(scrape(r.url), "gptrelay_open_streams") == 1
            break
    assert eventually(lambda: requests_total(r.url, "/chat", 499) == 1)
    samples = scrape(r.url)
    assert value(samples, "gptrelay_open_streams") == 0
    assert value(samples, "gptrelay_requests_total", route="/chat", status="200") == 0
    assert value(samples, "gptrelay_tokens_total", kind="prompt") > 0  # estimated, as its record


def test_a_stream_cut_by_the_upstream_counts_as_its_record_says(observed: Relay) -> None:
    r = observed()
    reply = chat(r.url, user("/scenario cut cut=3"), r.auth)
    assert reply.status == 200 and reply.errors
    assert eventually(lambda: requests_total(r.url, "/chat", 502) == 1)


def test_connections_are_counted_while_open(observed: Relay) -> None:
    r = observed()
    with httpx.Client() as client:
        assert client.get(f"{r.url}/healthz").status_code == 200
        assert value(scrape(r.url), "gptrelay_open_connections") >= 1  # (this process's relays)


def test_paths_and_models_sent_by_clients_make_a_bounded_set_of_labels(
        observed: Relay, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "MAX_MODELS", 3)
    r = observed()
    for n in range(5):
        assert httpx.get(f"{r.url}/v1/files/file-{n}", headers=r.auth).status_code in (200, 404)
        assert httpx.get(f"{r.url}/no/such/{n}").status_code == 401  # (unknown paths need a key too)
    # A model that failed upstream never gets a label of its own.
    assert httpx.post(f"{r.url}/v1/chat/completions", json=completion("failing", "/scenario error status=500"),
                      headers=r.auth).status_code == 500
    for n in range(6):
        assert httpx.post(f"{r.url}/v1/chat/completions", json=completion(f"model-{n}"),
                          headers=r.auth).status_code == 200
    samples = scrape(r.url)
    routes = {dict(labels)["route"] for (name, labels) in samples if name == "gptrelay_requests_total"}
    assert routes == {"/v1/{path}", "/{tail}", "/v1/chat/completions"}
    models = {dict(labels)["model"] for (name, labels) in samples if name == "gptrelay_tokens_total"}
    assert models == {MODEL, "model-0", "model-1", "other"}  # DEFAULT_MODEL, then the first two served
    assert value(samples, "gptrelay_tokens_total", model="other", kind="completion") > 0


def test_limiter_refusals_by_reason(observed: Relay, store: Store) -> None:
    limited = store.create("limited", rpm=1)
    elsewhere = store.create("elsewhere", origins=["https://app.example.com"])
    picky = store.create("picky", models=["gpt-4o*"])
    r = observed(database_url=store.url)
    headers = {"Authorization": f"Bearer {limited}"}
    assert httpx.post(f"{r.url}/chat", json=user("hi"), headers=headers).status_code == 200
    assert httpx.post(f"{r.url}/chat", json=user("hi"), headers=headers).status_code == 429
    assert httpx.post(f"{r.url}/chat", json=user("hi"), headers={"Authorization": f"Bearer {elsewhere}"}
                      ).status_code == 403
    assert httpx.post(f"{r.url}/v1/chat/completions", json=completion("o1"),
                      headers={"Authorization": f"Bearer {picky}"}).status_code == 403
    samples = scrape(r.url)
    refusals = {dict(labels)["reason"]: v for (name, labels), v in samples.items()
                if name == "gptrelay_limiter_refusals_total"}
    assert refusals == {"rate_limit_exceeded": 1, "origin_not_allowed": 1, "model_not_allowed": 1}


@pytest.fixture
def in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool, "_by_weight", lambda members: members)


@pytest.mark.usefixtures("in_order")
def test_upstream_failures_and_rests_by_upstream(fakes: Fakes, relay: Relay, tmp_path: Any) -> None:
    failing = fakes(scenario="error status=503")
    limited = fakes(scenario="error status=429 retry_after=60")
    good = fakes()
    path = tmp_path / "gptrelay.toml"
    path.write_text(upstream("failing", failing.url, keys=["sk-obs-aaaa-0123456789"])
                    + upstream("limited", limited.url, keys=["sk-obs-bbbb-0123456789", "sk-obs-cccc-0123456789"])
                    + upstream("good", good.url, keys=["sk-obs-dddd-0123456789"]), encoding="utf-8")
    r = relay(config_file=str(path), admin_key="test-admin-key-0f9e8d7c")
    assert chat(r.url, user("hello"), r.auth).status == 200
    samples = scrape(r.url)
    failures = {dict(labels)["upstream"]: v for (name, labels), v in samples.items()
                if name == "gptrelay_upstream_failures_total"}
    assert failures == {"failing": 1, "limited": 2}  # each of its keys answered 429
    assert value(samples, "gptrelay_upstream_resting", upstream="failing") == 1
    assert value(samples, "gptrelay_upstream_resting", upstream="good") == 0
    assert value(samples, "gptrelay_upstream_keys_unavailable", upstream="limited", state="resting") == 2


def test_the_one_upstream_counts_its_failures_too(observed: Relay) -> None:
    r = observed()
    for status in (500, 429, 400):
        assert httpx.post(f"{r.url}/v1/chat/completions", json=completion(text=f"/scenario error status={status}"),
                          headers=r.auth).status_code == status
    assert chat(r.url, user("/scenario error status=503"), r.auth).status == 503
    assert value(scrape(r.url), "gptrelay_upstream_failures_total", upstream="openai") == 3  # not the 400
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    (listed,) = httpx.get(f"{r.url}/admin/api/upstreams", headers=admin).json()["data"]
    assert listed["failures"] == 3  # the admin API counts as the metrics do, with one upstream too


def test_only_observe_knows_prometheus_client() -> None:
    from tests.test_architecture import imports, modules

    for path in modules():
        if path.parent.name != "observe":
            assert not any(name.startswith("prometheus_client") for name in imports(path)), path.name
