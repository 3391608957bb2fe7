"""The admin API's OpenAPI 3.1 document, generated from its models (``gptrelay.admin.models``).

Every schema under ``components/schemas`` is a model's ``model_json_schema`` (requests as they are
validated, answers as they are sent), and the usage query's parameters are ``UsageQuery``'s fields:
only the wiring (paths, operations, statuses) is written here. Errors are OpenAI's envelope
(``Error``). The document is what ``GET /admin/api/openapi.json`` serves and what the tests hand to
schemathesis, so a status or field the handlers can answer with and this document does not name is
a failing test.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from gptrelay import __version__
from gptrelay.admin.models import (
    Error,
    Key,
    KeyChanges,
    KeyCreate,
    KeyList,
    NewKey,
    UpstreamList,
    UsageList,
    UsageQuery,
)

Schema = dict[str, Any]
REF = "#/components/schemas/{model}"
# Each model with the mode its schema is made in: what a request may carry, what an answer holds.
MODELS: tuple[tuple[type[BaseModel], Literal["validation", "serialization"]], ...] = (
    (KeyCreate, "validation"), (KeyChanges, "validation"),
    (Error, "serialization"), (Key, "serialization"), (NewKey, "serialization"), (KeyList, "serialization"),
    (UsageList, "serialization"), (UpstreamList, "serialization"),
)

_ERROR_TEXT = {
    400: "the body is not a JSON object, or the request is malformed",
    401: "a missing or wrong admin key",
    404: "no such key, or the admin API is off (no ADMIN_KEY)",
    408: "the body stopped arriving",
    409: "a key with this name already exists",
    413: "the body is larger than 64 KiB",
    415: "a Content-Encoding other than gzip or deflate",
    422: "unknown fields, wrong types or bad values",
    503: "the database is unreachable or failing",
}
_WITH_BODY = (408, 413, 415, 422)


def schemas() -> dict[str, Schema]:
    """``components/schemas``: each model's JSON schema, and the models it holds, by name."""
    found: dict[str, Schema] = {}
    for model, mode in MODELS:
        schema = model.model_json_schema(ref_template=REF, mode=mode)
        for name, held in {**schema.pop("$defs", {}), model.__name__: schema}.items():
            if found.setdefault(name, held) != held:
                raise ValueError(f"two schemas named {name}")  # a model met in both modes, made differently
    return found


def query_parameters(model: type[BaseModel]) -> list[Schema]:
    """``model``'s fields as query parameters: the description on the parameter, the rest its schema."""
    schema = model.model_json_schema(mode="validation")
    required = set(schema.get("required", ()))
    parameters = []
    for name, field in schema["properties"].items():
        parameter = {"name": name, "in": "query", "required": name in required}
        if "description" in field:
            parameter["description"] = field["description"]
        parameter["schema"] = {key: value for key, value in field.items() if key not in ("title", "description")}
        parameters.append(parameter)
    return parameters


def _ref(model: type[BaseModel]) -> Schema:
    return {"$ref": REF.format(model=model.__name__)}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _answers(ok: dict[str, Schema], *errors: int) -> dict[str, Schema]:
    statuses = sorted({400, 401, 404, 503, *errors})
    return {**ok, **{str(s): {"$ref": f"#/components/responses/E{s}"} for s in statuses}}


def _body(model: type[BaseModel]) -> Schema:
    return {"required": True, "content": {"application/json": {"schema": _ref(model)}}}


def document() -> Schema:
    """The document (``gptrelay.admin.api`` makes it once, at the first request for it)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "gptrelay admin API",
            "version": __version__,
            "description": "Access keys, usage records and the upstreams' state. Every request carries "
                           "`Authorization: Bearer <ADMIN_KEY>`; "
                           "without ADMIN_KEY the whole API answers 404.",
        },
        "security": [{"admin": []}],
        "paths": {
            "/admin/api/keys": {
                "get": {
                    "operationId": "listKeys", "summary": "every key, revoked and expired ones too, by name",
                    "responses": _answers({"200": _json(_ref(KeyList), "the keys")}),
                },
                "post": {
                    "operationId": "createKey", "summary": "make a key; the key itself is in this answer only",
                    "requestBody": _body(KeyCreate),
                    "responses": _answers({"201": _json(_ref(NewKey), "the key object and the key")},
                                          409, *_WITH_BODY),
                },
            },
            "/admin/api/keys/{name}": {
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                "get": {
                    "operationId": "getKey", "summary": "one key",
                    "responses": _answers({"200": _json(_ref(Key), "the key object")}),
                },
                "patch": {
                    "operationId": "updateKey", "summary": "change the fields given",
                    "requestBody": _body(KeyChanges),
                    "responses": _answers({"200": _json(_ref(Key), "the key object, changed")}, *_WITH_BODY),
                },
                "delete": {
                    "operationId": "revokeKey", "summary": "revoke the key for good (again: no change)",
                    "responses": _answers({"204": {"description": "revoked"}}),
                },
            },
            "/admin/api/usage": {
                "get": {
                    "operationId": "usage", "summary": "usage records, grouped or one row per request",
                    "parameters": query_parameters(UsageQuery),
                    "responses": _answers({"200": _json(_ref(UsageList), "the rows")}, 422),
                },
            },
            "/admin/api/upstreams": {
                "get": {
                    "operationId": "upstreams",
                    "summary": "each upstream and its keys (masked): resting, set aside, failures since the start",
                    "responses": _answers({"200": _json(_ref(UpstreamList), "the upstreams")}),
                },
            },
            "/admin/api/openapi.json": {
                "get": {
                    "operationId": "openapi", "summary": "this document",
                    "responses": _answers({"200": _json({"type": "object"}, "the OpenAPI document")}),
                },
            },
        },
        "components": {
            "securitySchemes": {"admin": {"type": "http", "scheme": "bearer", "description": "ADMIN_KEY"}},
            "schemas": schemas(),
            "responses": {f"E{s}": _json(_ref(Error), text) for s, text in _ERROR_TEXT.items()},
        },
    }
