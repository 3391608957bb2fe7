"""The admin API's models are its document and its checks: the served document's schemas are the models'
own, the answers are what the answer models say, and a refusal is one line naming the field."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from gptrelay.admin import models
from gptrelay.admin.models import (
    DayUsage,
    Error,
    Key,
    KeyChanges,
    KeyCreate,
    KeyList,
    KeyUsage,
    ModelUsage,
    NewKey,
    RequestUsage,
    Upstream,
    UpstreamKey,
    UpstreamList,
    UsageList,
    UsageQuery,
)
from tests.conftest import RunningRelay

REF = "#/components/schemas/{model}"
REQUESTS = (KeyCreate, KeyChanges)
ANSWERS = (Error, Key, NewKey, KeyList, UsageList, UpstreamList)


def refs(node: Any) -> set[str]:
    """Every ``$ref`` under ``node``."""
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(refs(value) for value in node))
    return set()


def test_the_document_s_schemas_are_the_models_own(admin: httpx.Client) -> None:
    document = admin.get("/admin/api/openapi.json").json()
    expected: dict[str, Any] = {}
    for model in (*REQUESTS, *ANSWERS):
        schema = model.model_json_schema(ref_template=REF, mode="validation" if model in REQUESTS else "serialization")
        expected |= {**schema.pop("$defs", {}), model.__name__: schema}
    assert document["components"]["schemas"] == expected
    # every model of the module is in the document (the query as its parameters), and every reference resolves
    described = {name for name in expected} | {UsageQuery.__name__}
    defined = {name for name, value in vars(models).items()
               if isinstance(value, type) and issubclass(value, BaseModel) and value.__module__ == models.__name__
               and name not in ("Checked", "Reply", "Counts")}
    assert defined <= described, defined - described
    targets = {ref.removeprefix("#/components/schemas/") for ref in refs(document) if "/schemas/" in ref}
    assert targets <= set(expected) and {m.__name__ for m in (*REQUESTS, *ANSWERS)} <= targets


def test_the_handlers_bodies_and_query_are_the_document_s(admin: httpx.Client) -> None:
    """What each operation says it takes is the model its handler validates with."""
    paths = admin.get("/admin/api/openapi.json").json()["paths"]
    body = {(path, method): op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            for path, item in paths.items() for method, op in item.items() if "requestBody" in op}
    assert body == {("/admin/api/keys", "post"): REF.format(model="KeyCreate"),
                    ("/admin/api/keys/{name}", "patch"): REF.format(model="KeyChanges")}
    query = UsageQuery.model_json_schema()
    parameters = paths["/admin/api/usage"]["get"]["parameters"]
    assert [p["name"] for p in parameters] == list(query["properties"]) == list(UsageQuery.model_fields)
    for parameter in parameters:
        field = query["properties"][parameter["name"]]
        assert parameter["schema"] == {k: v for k, v in field.items() if k not in ("title", "description")}
        assert parameter["description"] == field["description"] and parameter["in"] == "query"
        assert parameter["required"] is False


def exactly(model: type[BaseModel], data: Any) -> None:
    """``data`` is an answer ``model`` holds, with no field the model does not name."""
    model.model_validate(data)
    assert set(data) == set(model.model_fields), (model.__name__, set(data) ^ set(model.model_fields))


def test_the_answers_are_the_answer_models(admin: httpx.Client, admin_relay: RunningRelay) -> None:
    made = admin.post("/admin/api/keys", json={"name": "alice", "rpm": 5, "models": ["gpt-4o*"], "ttl_seconds": 60})
    exactly(NewKey, made.json())
    assert httpx.post(f"{admin_relay.url}/chat", json={"messages": [{"role": "user", "content": "hi"}]},
                      headers={"Authorization": f"Bearer {made.json()['key']}"}).status_code == 200
    listed = admin.get("/admin/api/keys").json()
    exactly(KeyList, listed)
    for key in [*listed["data"], admin.get("/admin/api/keys/alice").json(),
                admin.patch("/admin/api/keys/alice", json={"rpm": None}).json()]:
        exactly(Key, key)
    for by, row_model in (("key", KeyUsage), ("model", ModelUsage), ("day", DayUsage), ("request", RequestUsage)):
        rows = admin.get("/admin/api/usage", params={"by": by}).json()
        exactly(UsageList, rows)
        assert rows["data"]
        for row in rows["data"]:
            exactly(row_model, row)
    upstreams = admin.get("/admin/api/upstreams").json()
    exactly(UpstreamList, upstreams)
    for upstream in upstreams["data"]:
        exactly(Upstream, upstream)
        for key in upstream["keys"]:
            exactly(UpstreamKey, key)
    for refused in (admin.get("/admin/api/keys/nobody"), admin.post("/admin/api/keys", json={"name": "alice"}),
                    admin.post("/admin/api/keys", json={"rpm": 1}), admin.get("/admin/api/usage?by=week")):
        exactly(Error, refused.json())
        exactly(models.ErrorDetail, refused.json()["error"])


@pytest.mark.parametrize(("path", "body", "message"), [
    ("/admin/api/keys", {"name": "a b"}, "bad key name 'a b': use 1 to 64 of the characters A-Z a-z 0-9 . _ -"),
    ("/admin/api/keys", {}, "name is required: a string of 1 to 64 of the characters A-Z a-z 0-9 . _ -"),
    ("/admin/api/keys", {"name": "eve", "colour": "red", "key": "gr-x"},
     "unknown fields: 'colour', 'key'; known: daily_tokens, expires_at, models, monthly_tokens, name, origins, rpm, "
     "tpm, ttl_seconds"),
    ("/admin/api/keys", {"name": "eve", "rpm": "5"},
     "rpm must be a whole number from 0 to 9223372036854775807, or null for no limit"),
    ("/admin/api/keys", {"name": "eve", "models": "gpt-4o"},
     "models must be an array of non-empty strings without surrounding spaces, or null for none"),
    ("/admin/api/keys", {"name": "eve", "origins": [" https://a.example"]},
     "origins must be an array of non-empty strings without surrounding spaces, or null for none"),
    ("/admin/api/keys", {"name": "eve", "models": ["gpt 4o"]},
     "bad model pattern 'gpt 4o': a model name or * pattern such as gpt-4o*"),
    ("/admin/api/keys", {"name": "eve", "origins": ["app.example"]}, "bad origin 'app.example': use a browser "
     "origin such as https://app.example.com (a name in another script in its xn-- form)"),
    ("/admin/api/keys", {"name": "eve", "expires_at": "soon"},
     "bad date 'soon': use ISO 8601, such as 2026-12-31 or 2026-12-31T18:00:00Z"),
    ("/admin/api/keys", {"name": "eve", "expires_at": 1},
     "expires_at must be an ISO 8601 date or time, or null for never"),
    ("/admin/api/keys", {"name": "eve", "ttl_seconds": 0},
     "ttl_seconds must be a whole number from 1 to 3153600000, or null for never"),
    ("/admin/api/keys", {"name": "eve", "ttl_seconds": 60, "expires_at": None},
     "give expires_at or ttl_seconds, not both"),
    ("/admin/api/keys/frank", {"name": "renamed"}, "unknown fields: 'name'; known: daily_tokens, expires_at, models, "
     "monthly_tokens, origins, rpm, tpm, ttl_seconds"),
    ("/admin/api/usage?by=week", None, "'by' must be one of key, model, day, request"),
    ("/admin/api/usage?since=yesterday", None,
     "bad since 'yesterday': use ISO 8601, such as 2026-11-01 or 2026-11-01T08:00:00Z"),
    ("/admin/api/usage?owner=1", None, "'owner' must be true (only the owner key's records) or false"),
    ("/admin/api/usage?owner=true&key=frank", None, "give key=NAME or owner=true, not both"),
    ("/admin/api/usage?keys=frank", None, "unknown query parameters: 'keys'; known: by, key, owner, since, until"),
])
def test_a_refusal_is_one_line_naming_the_field(admin: httpx.Client, path: str, body: dict[str, Any] | None,
                                                message: str) -> None:
    assert admin.post("/admin/api/keys", json={"name": "frank"}).status_code == 201
    method = "GET" if body is None else "PATCH" if path.endswith("/frank") else "POST"
    response = admin.request(method, path, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == {"message": message, "type": "invalid_request_error", "code": None}
