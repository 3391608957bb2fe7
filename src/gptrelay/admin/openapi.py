"""The admin API's OpenAPI 3.1 document, built once: every path, parameter, body and answer.

Errors are OpenAI's envelope (``ERROR``). The document is what ``GET
/admin/api/openapi.json`` serves and what the tests hand to schemathesis, so a
status or field the handlers can answer with and this document does not name
is a failing test.
"""

from __future__ import annotations

from typing import Any

from gptrelay import __version__
from gptrelay.auth.keys import MAX_LIMIT, MAX_TTL

MAX_INT = MAX_LIMIT
NAME_PATTERN = "^[A-Za-z0-9._-]{1,64}$"
MODEL_PATTERN = r"^\S{1,200}$"
ORIGIN_PATTERN = r"^[A-Za-z][A-Za-z0-9+.-]*://[^/\s?#]+/?$"

Schema = dict[str, Any]

ERROR: Schema = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["message", "type", "code"],
        "properties": {
            "message": {"type": "string"},
            "type": {"type": "string"},
            "code": {"type": ["string", "null"]},
        },
    }},
}

_LIMIT_IN: Schema = {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_INT,
                     "description": "0 or null: no limit"}
_LIMIT_OUT: Schema = {"type": ["integer", "null"], "minimum": 1}
_TIME: Schema = {"type": "string", "format": "date-time"}

KEY: Schema = {
    "type": "object",
    "required": ["name", "created_at", "expires_at", "revoked", "revoked_at", "rpm", "tpm", "daily_tokens",
                 "monthly_tokens", "models", "origins"],
    "properties": {
        "name": {"type": "string", "pattern": NAME_PATTERN},
        "created_at": _TIME,
        "expires_at": {"type": ["string", "null"], "format": "date-time"},
        "revoked": {"type": "boolean"},
        "revoked_at": {"type": ["string", "null"], "format": "date-time"},
        "rpm": _LIMIT_OUT, "tpm": _LIMIT_OUT, "daily_tokens": _LIMIT_OUT, "monthly_tokens": _LIMIT_OUT,
        "models": {"type": "array", "items": {"type": "string"}},
        "origins": {"type": "array", "items": {"type": "string"}},
    },
}

NEW_KEY: Schema = {
    "allOf": [KEY, {"type": "object", "required": ["key"],
                    "properties": {"key": {"type": "string", "pattern": "^gr-[A-Za-z0-9_-]{32,}$"}}}],
}

_CHANGES: dict[str, Schema] = {
    "rpm": {**_LIMIT_IN, "description": "requests admitted in any 60 seconds; 0 or null: no limit"},
    "tpm": {**_LIMIT_IN, "description": "tokens in any 60 seconds; 0 or null: no limit"},
    "daily_tokens": {**_LIMIT_IN, "description": "tokens per UTC day; 0 or null: no limit"},
    "monthly_tokens": {**_LIMIT_IN, "description": "tokens per UTC month; 0 or null: no limit"},
    "models": {"type": ["array", "null"], "items": {"type": "string", "pattern": MODEL_PATTERN},
               "description": "model names or * patterns (gpt-4o*); empty or null: any model"},
    "origins": {"type": ["array", "null"], "items": {"type": "string", "pattern": ORIGIN_PATTERN},
                "description": "browser origins (https://app.example.com); empty or null: any origin"},
    "expires_at": {"type": ["string", "null"],
                   "description": "an ISO 8601 date or time in the future (UTC when no zone); null: never"},
    "ttl_seconds": {"type": ["integer", "null"], "minimum": 1, "maximum": int(MAX_TTL.total_seconds()),
                    "description": "expires this many seconds from now (instead of expires_at); null: never"},
}

CREATE: Schema = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {"name": {"type": "string", "pattern": NAME_PATTERN}, **_CHANGES},
}

UPDATE: Schema = {
    "type": "object",
    "additionalProperties": False,
    "description": "only the fields given change; null (or 0, or []) removes a limit",
    "properties": _CHANGES,
}

_TOKENS: dict[str, Schema] = {
    "prompt_tokens": {"type": "integer", "minimum": 0},
    "completion_tokens": {"type": "integer", "minimum": 0},
}
_GROUP_COUNTS: dict[str, Schema] = {
    "requests": {"type": "integer", "minimum": 0}, **_TOKENS, "total_tokens": {"type": "integer", "minimum": 0},
}


def _group_row(field: str, schema: Schema) -> Schema:
    return {"type": "object", "required": [field, *_GROUP_COUNTS],
            "properties": {field: schema, **_GROUP_COUNTS}}


USAGE_ROW: Schema = {
    "oneOf": [
        _group_row("key", {"type": ["string", "null"], "description": "null: the owner's AUTHORIZATION_KEY"}),
        _group_row("model", {"type": ["string", "null"]}),
        _group_row("day", {"type": "string", "format": "date"}),
        {
            "type": "object",
            "required": ["time", "key", "route", "model", "status", *_TOKENS, "estimated", "outcome"],
            "properties": {
                "time": _TIME,
                "key": {"type": ["string", "null"]},
                "route": {"type": "string"},
                "model": {"type": ["string", "null"]},
                "status": {"type": "integer"},
                **_TOKENS,
                "estimated": {"type": "boolean"},
                "outcome": {"type": "string", "enum": ["ok", "error", "client_gone", "cut"]},
            },
        },
    ],
}

_COUNT: Schema = {"type": "integer", "minimum": 0}
_REST: Schema = {"type": "number", "minimum": 0, "description": "seconds until it is tried first again"}

UPSTREAM_KEY: Schema = {
    "type": "object",
    "required": ["key", "state", "resting_seconds", "set_aside_because", "failures"],
    "properties": {
        "key": {"type": "string", "description": "masked (sk-…wxyz), or (no key)"},
        "state": {"type": "string", "enum": ["ready", "resting", "set_aside"]},
        "resting_seconds": _REST,
        "set_aside_because": {"type": ["string", "null"], "description": "the status (and code) that set it aside"},
        "failures": _COUNT,
    },
}

UPSTREAM: Schema = {
    "type": "object",
    "required": ["name", "kind", "base_url", "models", "weight", "proxy", "state", "resting_seconds", "failures",
                 "keys"],
    "properties": {
        "name": {"type": "string"},
        "kind": {"type": "string", "enum": ["openai", "azure"]},
        "base_url": {"type": "string"},
        "models": {"type": ["array", "null"], "items": {"type": "string"}, "description": "null: any model"},
        "weight": {"type": "number"},
        "proxy": {"type": ["string", "null"], "description": "its password masked"},
        "state": {"type": "string", "enum": ["ready", "resting"]},
        "resting_seconds": _REST,
        "failures": _COUNT,
        "keys": {"type": "array", "items": UPSTREAM_KEY},
    },
}

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


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _answers(ok: dict[str, Schema], *errors: int) -> dict[str, Schema]:
    statuses = sorted({400, 401, 404, 503, *errors})
    return {**ok, **{str(s): {"$ref": f"#/components/responses/E{s}"} for s in statuses}}


def _body(schema: Schema) -> Schema:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_WITH_BODY = (408, 413, 415, 422)


def _date_query(name: str, description: str) -> Schema:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": {"type": "string"}}


DOCUMENT: Schema = {
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
                "responses": _answers({"200": _json({"type": "object", "required": ["data"],
                                                     "properties": {"data": {"type": "array", "items": KEY}}},
                                                    "the keys")}),
            },
            "post": {
                "operationId": "createKey", "summary": "make a key; the key itself is in this answer only",
                "requestBody": _body(CREATE),
                "responses": _answers({"201": _json(NEW_KEY, "the key object and the key")}, 409, *_WITH_BODY),
            },
        },
        "/admin/api/keys/{name}": {
            "parameters": [_NAME],
            "get": {
                "operationId": "getKey", "summary": "one key",
                "responses": _answers({"200": _json(KEY, "the key object")}),
            },
            "patch": {
                "operationId": "updateKey", "summary": "change the fields given",
                "requestBody": _body(UPDATE),
                "responses": _answers({"200": _json(KEY, "the key object, changed")}, *_WITH_BODY),
            },
            "delete": {
                "operationId": "revokeKey", "summary": "revoke the key for good (again: no change)",
                "responses": _answers({"204": {"description": "revoked"}}),
            },
        },
        "/admin/api/usage": {
            "get": {
                "operationId": "usage", "summary": "usage records, grouped or one row per request",
                "parameters": [
                    {"name": "by", "in": "query", "required": False,
                     "schema": {"type": "string", "enum": ["key", "model", "day", "request"], "default": "key"}},
                    {"name": "key", "in": "query", "required": False, "description": "only this key's records",
                     "schema": {"type": "string"}},
                    {"name": "owner", "in": "query", "required": False,
                     "description": "true: only the owner key's records (AUTHORIZATION_KEY's, whose key is null); "
                                    "not with key",
                     "schema": {"type": "boolean", "default": False}},
                    _date_query("since", "an ISO 8601 date or time, inclusive"),
                    _date_query("until", "an ISO 8601 date or time, exclusive"),
                ],
                "responses": _answers({"200": _json({"type": "object", "required": ["data"],
                                                     "properties": {"data": {"type": "array", "items": USAGE_ROW}}},
                                                    "the rows")}, 422),
            },
        },
        "/admin/api/upstreams": {
            "get": {
                "operationId": "upstreams",
                "summary": "each upstream and its keys (masked): resting, set aside, failures since the start",
                "responses": _answers({"200": _json({"type": "object", "required": ["data"],
                                                     "properties": {"data": {"type": "array", "items": UPSTREAM}}},
                                                    "the upstreams, in the configuration's order")}),
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
        "schemas": {"Error": ERROR, "Key": KEY, "NewKey": NEW_KEY, "UsageRow": USAGE_ROW,
                    "Upstream": UPSTREAM},
        "responses": {f"E{s}": _json({"$ref": "#/components/schemas/Error"}, text) for s, text in _ERROR_TEXT.items()},
    },
}
