"""The admin API over real HTTP against a real relay: every endpoint, its statuses and its envelope."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.admin.conftest import ADMIN_KEY
from tests.conftest import ACCESS_KEY, RunningRelay
from tests.helpers import closes_soon, connect, read_reply

KEY_FIELDS = {"name", "created_at", "expires_at", "revoked", "revoked_at", "rpm", "tpm", "daily_tokens",
              "monthly_tokens", "models", "origins"}


def envelope(response: httpx.Response, status: int) -> dict[str, Any]:
    """The error in OpenAI's envelope, checked for its status and shape."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "code"} and error["message"], error
    return error


def test_create_list_show_update_revoke(admin: httpx.Client) -> None:
    created = admin.post("/admin/api/keys", json={"name": "alice", "rpm": 5, "models": ["gpt-4o*"],
                                                  "ttl_seconds": 3600})
    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) == KEY_FIELDS | {"key"}
    assert body["key"].startswith("gr-") and len(body["key"]) >= 35
    assert body["name"] == "alice" and body["rpm"] == 5 and body["models"] == ["gpt-4o*"]
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=1)
    assert created.headers["cache-control"] == "no-store"

    listed = admin.get("/admin/api/keys")
    assert listed.status_code == 200
    assert [k["name"] for k in listed.json()["data"]] == ["alice"]
    shown = admin.get("/admin/api/keys/alice")
    assert shown.status_code == 200
    assert shown.json() == listed.json()["data"][0] == {k: v for k, v in body.items() if k != "key"}

    changed = admin.patch("/admin/api/keys/alice", json={"rpm": None, "tpm": 1000, "origins": ["https://a.example"]})
    assert changed.status_code == 200, changed.text
    after = changed.json()
    assert (after["rpm"], after["tpm"], after["origins"]) == (None, 1000, ["https://a.example"])
    assert after["models"] == ["gpt-4o*"] and after["expires_at"] == body["expires_at"]  # untouched
    assert admin.patch("/admin/api/keys/alice", json={"expires_at": None}).json()["expires_at"] is None
    assert admin.patch("/admin/api/keys/alice", json={}).json() == admin.get("/admin/api/keys/alice").json()

    revoked = admin.delete("/admin/api/keys/alice")
    assert revoked.status_code == 204 and revoked.content == b""
    assert admin.get("/admin/api/keys/alice").json()["revoked"] is True
    assert admin.delete("/admin/api/keys/alice").status_code == 204  # again: no change


def test_the_key_is_shown_only_when_made(admin: httpx.Client) -> None:
    key = admin.post("/admin/api/keys", json={"name": "bob"}).json()["key"]
    for response in (admin.get("/admin/api/keys"), admin.get("/admin/api/keys/bob"),
                     admin.patch("/admin/api/keys/bob", json={"rpm": 3})):
        assert response.status_code == 200
        assert key not in response.text and '"key"' not in response.text


def test_expires_at(admin: httpx.Client) -> None:
    made = admin.post("/admin/api/keys", json={"name": "dated", "expires_at": "2099-12-31"})
    assert made.json()["expires_at"] == "2099-12-31T00:00:00Z"
    changed = admin.patch("/admin/api/keys/dated", json={"expires_at": "2099-06-01T12:00:00+02:00"})
    assert changed.json()["expires_at"] == "2099-06-01T10:00:00Z"


def test_a_duplicate_name_is_409(admin: httpx.Client) -> None:
    assert admin.post("/admin/api/keys", json={"name": "carol"}).status_code == 201
    assert envelope(admin.post("/admin/api/keys", json={"name": "carol"}), 409)["code"] == "conflict"


def test_an_unknown_key_is_404(admin: httpx.Client) -> None:
    for method in ("GET", "DELETE"):
        assert envelope(admin.request(method, "/admin/api/keys/nobody"), 404)["code"] == "not_found"
    envelope(admin.patch("/admin/api/keys/nobody", json={"rpm": 1}), 404)
    envelope(admin.get("/admin/api/keys/bad%20name"), 404)


@pytest.mark.parametrize("body", [b"", b"{", b"[]", b'"name"', b"null", b"42", b"\xff\xfe"])
def test_a_body_that_is_not_a_json_object_is_400(admin: httpx.Client, body: bytes) -> None:
    headers = {"Content-Type": "application/json"}
    envelope(admin.post("/admin/api/keys", content=body, headers=headers), 400)
    admin.post("/admin/api/keys", json={"name": "dora"})
    envelope(admin.patch("/admin/api/keys/dora", content=body, headers=headers), 400)


@pytest.mark.parametrize("body", [
    {},  # no name
    {"name": 7},
    {"name": ""},
    {"name": "a b"},
    {"name": "x" * 65},
    {"name": "eve", "colour": "red"},
    {"name": "eve", "key": "gr-mine"},
    {"name": "eve", "rpm": "5"},
    {"name": "eve", "rpm": -1},
    {"name": "eve", "rpm": 1.5},
    {"name": "eve", "rpm": True},
    {"name": "eve", "tpm": 2**63},
    {"name": "eve", "models": "gpt-4o"},
    {"name": "eve", "models": [1]},
    {"name": "eve", "origins": ["not an origin"]},
    {"name": "eve", "expires_at": "soon"},
    {"name": "eve", "expires_at": 1700000000},
    {"name": "eve", "expires_at": "2001-01-01"},
    {"name": "eve", "expires_at": "9999-12-31T23:59:59-14:00"},  # after the last UTC time there is
    {"name": "eve", "expires_at": "0001-01-01T00:00+01:00"},  # before the first
    {"name": "eve", "ttl_seconds": 0},
    {"name": "eve", "ttl_seconds": "1h"},
    {"name": "eve", "ttl_seconds": 60, "expires_at": "2099-01-01"},
])
def test_bad_fields_are_422(admin: httpx.Client, body: dict[str, Any]) -> None:
    envelope(admin.post("/admin/api/keys", json=body), 422)
    assert admin.get("/admin/api/keys").json()["data"] == []


@pytest.mark.parametrize("body", [{"name": "renamed"}, {"rpm": "x"}, {"origins": "https://a.example"},
                                  {"ttl_seconds": -5}, {"expires_at": "9999-12-31T23:59:59-14:00"}])
def test_bad_changes_are_422(admin: httpx.Client, body: dict[str, Any]) -> None:
    before = admin.post("/admin/api/keys", json={"name": "frank", "rpm": 9}).json()
    envelope(admin.patch("/admin/api/keys/frank", json=body), 422)
    after = admin.get("/admin/api/keys/frank").json()
    assert after == {k: v for k, v in before.items() if k != "key"}


def test_a_body_over_64_kib_is_413(admin: httpx.Client) -> None:
    big = {"name": "gina", "models": ["m" * 100] * 700}
    assert envelope(admin.post("/admin/api/keys", json=big), 413)["code"] == "payload_too_large"
    inflated = gzip.compress(b'{"name": "gina", "models": [' + b'"m",' * 30000 + b'"m"]}')
    assert len(inflated) < 64 * 1024
    envelope(admin.post("/admin/api/keys", content=inflated,
                        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}), 413)


def test_a_gzipped_body_is_read(admin: httpx.Client) -> None:
    response = admin.post("/admin/api/keys", content=gzip.compress(b'{"name": "hal"}'),
                          headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert response.status_code == 201


@pytest.mark.parametrize("authorization", [
    None, "", "Bearer", f"Bearer  {ADMIN_KEY}x", f"Bearer {ADMIN_KEY}x", f"Bearer {ADMIN_KEY[:-1]}", ADMIN_KEY,
    f"Basic {ADMIN_KEY}", f"Bearer {ACCESS_KEY}", "Bearer gr-" + "a" * 43,
])
def test_without_the_admin_key_401(admin_relay: RunningRelay, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    requests: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", "/admin/api/keys", None), ("POST", "/admin/api/keys", {"name": "x"}),
        ("GET", "/admin/api/keys/x", None), ("PATCH", "/admin/api/keys/x", {"rpm": 1}),
        ("DELETE", "/admin/api/keys/x", None), ("GET", "/admin/api/openapi.json", None),
    ]
    for method, path, body in requests:
        response = httpx.request(method, admin_relay.url + path, json=body, headers=headers)
        assert envelope(response, 401)["code"] == "invalid_api_key"
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_the_access_key_made_here_is_refused_on_admin(admin: httpx.Client, admin_relay: RunningRelay) -> None:
    key = admin.post("/admin/api/keys", json={"name": "ivy"}).json()["key"]
    for header in ({"Authorization": f"Bearer {key}"}, {"Authorization": key}, {"api-key": key}):
        envelope(httpx.get(admin_relay.url + "/admin/api/keys", headers=header), 401)
    for header in ({"Authorization": ADMIN_KEY}, {"api-key": ADMIN_KEY}):  # other forms of the admin key
        envelope(httpx.get(admin_relay.url + "/admin/api/keys", headers=header), 401)


def test_the_admin_key_is_refused_on_the_relay(admin_relay: RunningRelay) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}]}
    for path in ("/chat", "/chatgpt", "/v1/chat/completions"):
        response = httpx.post(admin_relay.url + path, json=body, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        assert response.status_code == 401, (path, response.text)
    assert httpx.get(admin_relay.url + "/v1/models", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
                     ).status_code == 401
    assert httpx.get(admin_relay.url + "/v1/models", headers=admin_relay.auth).status_code == 200


@pytest.mark.parametrize("authorization", ["Bearer wrong", f"Bearer {ACCESS_KEY}"])
def test_a_refused_request_body_is_not_read(admin_relay: RunningRelay, authorization: str) -> None:
    """401 comes before the body: a body that never comes is not waited for, nor 100-continue sent."""
    head = (f"POST /admin/api/keys HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {authorization}\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n")
    with connect(admin_relay.url, timeout=5) as s:
        s.sendall(head.encode())
        reply = read_reply(s)
        assert reply.status == 401 and b"invalid_api_key" in reply.body
        assert closes_soon(s)


def test_a_body_is_read_once_the_admin_key_passed(admin_relay: RunningRelay) -> None:
    body = b'{"name": "late"}'
    head = (f"POST /admin/api/keys HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ADMIN_KEY}\r\n"
            f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n")
    with connect(admin_relay.url, timeout=5) as s:
        s.sendall(head.encode())
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(body)
        assert read_reply(s).status == 201


@pytest.mark.parametrize("admin_key", [None, ""])
def test_without_admin_key_every_admin_path_is_404(relay: Callable[..., RunningRelay], tmp_path: Path,
                                                   admin_key: str | None) -> None:
    running = relay(admin_key=admin_key, database_url=f"sqlite:///{tmp_path}/relay.db")
    unknown = httpx.get(running.url + "/no/such/path", headers=running.auth)
    for method, path in [("GET", "/admin/api/keys"), ("POST", "/admin/api/keys"), ("GET", "/admin/api/keys/x"),
                         ("PATCH", "/admin/api/keys/x"), ("DELETE", "/admin/api/keys/x"),
                         ("GET", "/admin/api/openapi.json"), ("GET", "/admin/api/usage")]:
        for headers in ({}, running.auth, {"Authorization": "Bearer anything"}):
            response = httpx.request(method, running.url + path, headers=headers, json={"name": "x"})
            assert envelope(response, 404) == {**unknown.json()["error"],
                                               "message": f"Not Found: {method} {path}"}


def test_openapi_document(admin: httpx.Client) -> None:
    response = admin.get("/admin/api/openapi.json")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    document = response.json()
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) == {"/admin/api/keys", "/admin/api/keys/{name}", "/admin/api/usage",
                                      "/admin/api/upstreams", "/admin/api/openapi.json"}
    usage = document["paths"]["/admin/api/usage"]["get"]
    assert [p["name"] for p in usage["parameters"]] == ["by", "key", "owner", "since", "until"]
    owner = next(p for p in usage["parameters"] if p["name"] == "owner")
    assert owner["schema"] == {"type": "boolean", "default": False} and "AUTHORIZATION_KEY" in owner["description"]
    operations = [op for path in document["paths"].values() for m, op in path.items() if m != "parameters"]
    assert all("401" in op["responses"] for op in operations)


def test_limits_up_to_the_database_s_bigint(admin: httpx.Client) -> None:
    big = 2**63 - 1
    made = admin.post("/admin/api/keys", json={"name": "big", "tpm": big, "monthly_tokens": big})
    assert made.status_code == 201, made.text
    assert admin.get("/admin/api/keys/big").json()["tpm"] == big
    assert admin.patch("/admin/api/keys/big", json={"tpm": 0}).json()["tpm"] is None  # 0 removes it too


def test_one_of_two_creates_of_a_name_at_once_wins(admin: httpx.Client) -> None:
    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(lambda _: admin.post("/admin/api/keys", json={"name": "race"}).status_code,
                                   range(8)))
    assert statuses == [201] + [409] * 7


def test_on_postgresql(relay: Callable[..., RunningRelay], postgres_url: str) -> None:
    running = relay(admin_key=ADMIN_KEY, database_url=postgres_url)
    with httpx.Client(base_url=running.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
        made = client.post("/admin/api/keys", json={"name": "pg", "tpm": 2**63 - 1, "ttl_seconds": 60})
        assert made.status_code == 201, made.text
        envelope(client.post("/admin/api/keys", json={"name": "pg"}), 409)
        assert client.patch("/admin/api/keys/pg", json={"models": ["gpt-4o*"]}).json()["models"] == ["gpt-4o*"]
        assert client.delete("/admin/api/keys/pg").status_code == 204
        assert client.get("/admin/api/keys").json()["data"][0]["revoked"] is True


def test_usage_over_http(admin: httpx.Client, admin_relay: RunningRelay) -> None:
    made = admin.post("/admin/api/keys", json={"name": "user-1"}).json()
    for key in (made["key"], made["key"], admin_relay.key):
        assert httpx.post(f"{admin_relay.url}/chat", json={"messages": [{"role": "user", "content": "hi"}]},
                          headers={"Authorization": f"Bearer {key}"}).status_code == 200
    by_key = admin.get("/admin/api/usage").json()["data"]
    assert {row["key"]: row["requests"] for row in by_key} == {"user-1": 2, None: 1}
    rows = admin.get("/admin/api/usage", params={"by": "request", "key": "user-1"}).json()["data"]
    assert [(row["route"], row["status"], row["outcome"]) for row in rows] == [("/chat", 200, "ok")] * 2
    # the owner's key (AUTHORIZATION_KEY) alone: owner=true; false is no filter
    owner = admin.get("/admin/api/usage", params={"owner": "true"}).json()["data"]
    assert [(row["key"], row["requests"]) for row in owner] == [(None, 1)]
    rows = admin.get("/admin/api/usage", params={"by": "request", "owner": "true"}).json()["data"]
    assert [(row["key"], row["route"], row["outcome"]) for row in rows] == [(None, "/chat", "ok")]
    assert admin.get("/admin/api/usage", params={"owner": "false"}).json()["data"] == by_key
    assert admin.get("/admin/api/usage", params={"owner": "false", "key": "user-1"}).json()["data"] == [
        row for row in by_key if row["key"] == "user-1"]
    assert admin.get("/admin/api/usage", params={"since": "2999-01-01"}).json() == {"data": []}
    for params in ({"by": "week"}, {"since": "yesterday"}, {"since": "0001-01-01T00:00+01:00"},
                   {"until": "9999-12-31T23:59-14:00"}, {"owner": "yes"}, {"owner": ""},
                   {"owner": "true", "key": "user-1"}, {"since": "2026-11-02", "until": "2026-11-01"},
                   {"since": "2026-11-01", "until": "2026-11-01T00:00Z"}):
        response = admin.get("/admin/api/usage", params=params)
        assert response.status_code == 422 and response.json()["error"]["type"] == "invalid_request_error"
    assert admin.get("/admin/api/usage", params={"since": "2026-11-02", "until": "2026-11-01"}).json()[
        "error"]["message"] == "since must be before until"  # as the CLI says it
    assert httpx.get(f"{admin_relay.url}/admin/api/usage", headers=admin_relay.auth).status_code == 401


def test_a_key_revoked_mid_stream_through_the_api(admin: httpx.Client, admin_relay: RunningRelay) -> None:
    """The stream under way finishes whole and is recorded as such; the key's next request, sent while
    that stream still runs, is 401 (the change holds on this relay by the time the API answers)."""
    key = admin.post("/admin/api/keys", json={"name": "streamer"}).json()["key"]
    headers = {"Authorization": f"Bearer {key}"}
    body = {"model": "gpt-4o-mini", "stream": True,
            "messages": [{"role": "user", "content": "/scenario bench chunks=40 interval_ms=25"}]}
    with httpx.stream("POST", f"{admin_relay.url}/v1/chat/completions", json=body, headers=headers,
                      timeout=20) as reply:
        lines = reply.iter_lines()
        assert next(lines).startswith("data: {")
        assert admin.delete("/admin/api/keys/streamer").status_code == 204
        refused = httpx.get(f"{admin_relay.url}/v1/models", headers=headers, timeout=5)
        rest = list(lines)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    events = [line for line in rest if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]" and len(events) >= 40, events[-3:]
    rows = admin.get("/admin/api/usage", params={"by": "request", "key": "streamer"}).json()["data"]
    assert [(row["route"], row["status"], row["outcome"]) for row in rows] == [("/v1/chat/completions", 200, "ok")]


def test_a_bug_in_a_handler_is_a_500_in_the_envelope(admin: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    from gptrelay.admin.models import KeyCreate

    def broken(self: KeyCreate) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(KeyCreate, "fields", broken)
    error = envelope(admin.post("/admin/api/keys", json={"name": "bug"}), 500)
    assert error["type"] == "server_error"
