"""The admin API's shapes as pydantic models: what a request may carry, and what an answer holds.

The handlers (``gptrelay.admin.api``) validate with the request models (``Checked.check``), and the
OpenAPI document (``gptrelay.admin.openapi``) is generated from every model here, so what is checked
and what is described are one definition. The answer models describe what the handlers send
(``KeyRecord.as_json``, ``usage_rows``, the pool's ``state``); the tests hold the two together.

A refusal is ``Unprocessable`` (422) with one line naming the field, never pydantic's own report;
it echoes at most the one value it is about (never a key, which no request carries). Values that
take the database or the clock to judge (a name already taken, an expiry already past, an origin
whose port is out of range) are the key store's to refuse, after these.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal, Self, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import ErrorDetails

from gptrelay.auth.keys import LIMITS, MAX_LIMIT, MAX_TTL, NAME, KeyFields, check_name, parse_when
from gptrelay.errors import BadRequest, Unprocessable
from gptrelay.usage.queries import BY, By, parse_date
from gptrelay.usage.records import Outcome

NAME_PATTERN = f"^{NAME.pattern}$"
MODEL_PATTERN = r"^\S{1,200}$"
# What the key store takes (it lower-cases, then wants ASCII): the Kelvin sign is the one other character
# that lower-cases into ASCII (k). Trailing slashes are the store's to drop: it keeps https://a.example for
# https://a.example//, and nothing for an item of slashes alone (as for an empty one on the command line).
_SCHEME = "[A-Za-z\u212a][A-Za-z0-9+.\u212a-]*"
ORIGIN_PATTERN = rf"^(?:{_SCHEME}://[^/\s?#]+/*|/+)$"
MAX_TTL_SECONDS = int(MAX_TTL.total_seconds())


# --- requests ---------------------------------------------------------------------------------------------------

def _without_null_defaults(schema: JsonDict) -> None:
    """A null default tells a client nothing (and on PATCH an absent field is not a null one)."""
    properties = cast(dict[str, dict[str, Any]], schema.get("properties", {}))
    for prop in properties.values():
        if "default" in prop and prop["default"] is None:
            del prop["default"]


class Checked(BaseModel):
    """A request's body or query: strict types (no "5" for 5, no true for 1), no unknown names."""

    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra=_without_null_defaults,
                              defer_build=True)  # (built at the first request, not at every start)

    UNKNOWN: ClassVar[str] = "unknown fields"
    TAKES: ClassVar[dict[str, str]] = {}  # what each field takes, said when pydantic refuses it

    @classmethod
    def check(cls, data: dict[str, Any]) -> Self:
        """``data`` validated, or ``Unprocessable`` with one line naming the field."""
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise Unprocessable(cls.problem(error.errors(include_url=False))) from None

    @classmethod
    def problem(cls, errors: list[ErrorDetails]) -> str:
        unknown = sorted({str(error["loc"][0]) for error in errors if error["type"] == "extra_forbidden"})
        if unknown:
            names = ", ".join(repr(name[:40]) for name in unknown[:5])
            return f"{cls.UNKNOWN}: {names}; known: {', '.join(sorted(cls.model_fields))}"
        return cls.told(errors[0])

    @classmethod
    def told(cls, error: ErrorDetails) -> str:
        """One line for ``error``: a validator's own words, else what the field takes."""
        if error["type"] == "value_error":
            return str(error.get("ctx", {}).get("error", error["msg"]))
        field = str(error["loc"][0]) if error["loc"] else ""
        return cls.TAKES.get(field) or f"{field}: {error['msg']}"


def _unpadded(value: str) -> str:
    if value != value.strip():  # Python's spaces, which the patterns' \s (Unicode's) leaves out in part
        raise ValueError("surrounding spaces")
    return value


def _when(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError("expires_at must be an ISO 8601 date or time, or null for never")
    try:
        return parse_when(value)
    except BadRequest as error:
        raise ValueError(error.message) from None


Limit = Annotated[int, Field(ge=0, le=MAX_LIMIT)]
ModelPattern = Annotated[str, StringConstraints(pattern=MODEL_PATTERN), AfterValidator(_unpadded)]
Origin = Annotated[str, StringConstraints(pattern=ORIGIN_PATTERN), AfterValidator(_unpadded)]
When = Annotated[datetime, PlainValidator(_when, json_schema_input_type=str)]


class KeyChanges(Checked):
    """Changes to a key: only the fields given change; null (or 0, or []) removes a limit."""

    rpm: Limit | None = Field(None, description="requests admitted in any 60 seconds; 0 or null: no limit")
    tpm: Limit | None = Field(None, description="tokens in any 60 seconds; 0 or null: no limit")
    daily_tokens: Limit | None = Field(None, description="tokens per UTC day; 0 or null: no limit")
    monthly_tokens: Limit | None = Field(None, description="tokens per UTC month; 0 or null: no limit")
    models: list[ModelPattern] | None = Field(
        None, description="model names or * patterns (gpt-4o*); empty or null: any model")
    origins: list[Origin] | None = Field(
        None, description="browser origins (https://app.example.com); empty or null: any origin")
    expires_at: When | None = Field(
        None, description="an ISO 8601 date or time in the future (UTC when no zone); null: never")
    ttl_seconds: Annotated[int, Field(ge=1, le=MAX_TTL_SECONDS)] | None = Field(
        None, description="expires this many seconds from now (instead of expires_at); null: never")

    TAKES: ClassVar[dict[str, str]] = {
        **{field: f"{field} must be a whole number from 0 to {MAX_LIMIT}, or null for no limit" for field in LIMITS},
        **{field: f"{field} must be an array of non-empty strings without surrounding spaces, or null for none"
           for field in ("models", "origins")},
        "ttl_seconds": f"ttl_seconds must be a whole number from 1 to {MAX_TTL_SECONDS}, or null for never",
    }

    @model_validator(mode="after")
    def _one_expiry(self) -> Self:
        if {"expires_at", "ttl_seconds"} <= self.model_fields_set:
            raise ValueError("give expires_at or ttl_seconds, not both")
        return self

    @classmethod
    def told(cls, error: ErrorDetails) -> str:
        loc, value = error["loc"], error["input"]
        if loc and loc[0] in ("models", "origins"):
            # An item that is a clean string but no model pattern or origin is told as the store tells it;
            # anything else is not the array of clean strings the field takes.
            if len(loc) > 1 and isinstance(value, str) and value and value == value.strip():
                if loc[0] == "models":
                    return f"bad model pattern {value!r}: a model name or * pattern such as gpt-4o*"
                return (f"bad origin {value!r}: use a browser origin such as https://app.example.com "
                        "(a name in another script in its xn-- form)")
            return cls.TAKES[str(loc[0])]
        return super().told(error)

    def fields(self) -> KeyFields:
        """The changes as the key store takes them: only the fields given; ``ttl_seconds`` from now."""
        given = self.model_fields_set
        fields = self.model_dump(include=given & set(KeyFields.__annotations__))
        if "ttl_seconds" in given:
            ttl = self.ttl_seconds
            fields["expires_at"] = None if ttl is None else datetime.now(UTC) + timedelta(seconds=ttl)
        return cast(KeyFields, fields)


class KeyCreate(KeyChanges):
    """A new key: its name, and any of the limits (absent, null or 0: none)."""

    name: str = Field(pattern=NAME_PATTERN, description="unique: 1 to 64 of A-Z a-z 0-9 . _ -")

    @classmethod
    def told(cls, error: ErrorDetails) -> str:
        if error["loc"] == ("name",):
            if error["type"] == "string_pattern_mismatch":
                try:
                    check_name(error["input"])
                except BadRequest as bad:
                    return bad.message
            return "name is required: a string of 1 to 64 of the characters A-Z a-z 0-9 . _ -"
        return super().told(error)


def _owner(value: object) -> bool:
    if value not in ("true", "false"):  # these two only: not the 1, yes or on pydantic's lax bool takes
        raise ValueError("'owner' must be true (only the owner key's records) or false")
    return value == "true"


def _date(value: object, info: ValidationInfo) -> datetime:
    field = str(info.field_name)
    if not isinstance(value, str):
        raise ValueError(f"{field} must be an ISO 8601 date or time")
    try:
        return cast(datetime, parse_date(field, value))  # (a datetime for a string)
    except BadRequest as error:
        raise ValueError(error.message) from None


Owner = Annotated[bool, PlainValidator(_owner, json_schema_input_type=bool)]
Date = Annotated[datetime, PlainValidator(_date, json_schema_input_type=str)]


class UsageQuery(Checked):
    """``GET /admin/api/usage``'s query: the options of ``gptrelay usage``."""

    by: By = Field("key", description="the grouping, or one row per request")
    key: str | SkipJsonSchema[None] = Field(None, description="only this key's records")
    owner: Owner = Field(False, description="true: only the owner key's records (AUTHORIZATION_KEY's, whose key "
                                            "is null); not with key")
    since: Date | SkipJsonSchema[None] = Field(None, description="an ISO 8601 date or time, inclusive")
    until: Date | SkipJsonSchema[None] = Field(None, description="an ISO 8601 date or time, exclusive")

    UNKNOWN: ClassVar[str] = "unknown query parameters"  # a misspelt ?keys=alice must not answer everyone's usage
    TAKES: ClassVar[dict[str, str]] = {"by": f"'by' must be one of {', '.join(BY)}"}

    @field_validator("key")
    @classmethod
    def _no_key(cls, value: str | None) -> str | None:
        return value or None  # key= is no filter

    @model_validator(mode="after")
    def _one_filter(self) -> Self:
        if self.key is not None and self.owner:
            raise ValueError("give key=NAME or owner=true, not both")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError("since must be before until")  # (as gptrelay usage says it)
        return self


# --- answers ----------------------------------------------------------------------------------------------------

class Reply(BaseModel):
    """What the API answers (its fields all there, each with its type: the document's contract)."""

    model_config = ConfigDict(defer_build=True)  # (only the document and the tests build these)


class ErrorDetail(Reply):
    message: str
    type: str
    code: str | None


class Error(Reply):
    """OpenAI's error envelope."""

    error: ErrorDetail


Count = Annotated[int, Field(ge=0)]
SetLimit = Annotated[int, Field(ge=1, le=MAX_LIMIT)]


class Key(Reply):
    """An access key as stored: never the key itself, nor its hash."""

    name: str = Field(pattern=NAME_PATTERN)
    created_at: datetime
    expires_at: datetime | None
    revoked: bool
    revoked_at: datetime | None
    rpm: SetLimit | None
    tpm: SetLimit | None
    daily_tokens: SetLimit | None
    monthly_tokens: SetLimit | None
    models: list[str] = Field(description="empty: any model")
    origins: list[str] = Field(description="empty: any origin")


class NewKey(Key):
    """A key just made, with the key itself: shown this once, never again."""

    key: str = Field(pattern="^gr-[A-Za-z0-9_-]{32,}$")


class KeyList(Reply):
    data: list[Key] = Field(description="every key, revoked and expired ones too, by name")


class Counts(Reply):
    requests: Count
    prompt_tokens: Count
    completion_tokens: Count
    total_tokens: Count


class KeyUsage(Counts):
    key: str | None = Field(description="null: the owner's AUTHORIZATION_KEY")


class ModelUsage(Counts):
    model: str | None


class DayUsage(Counts):
    day: date = Field(description="a UTC day")


class RequestUsage(Reply):
    time: datetime
    key: str | None = Field(description="null: the owner's AUTHORIZATION_KEY")
    route: str
    model: str | None
    status: int
    prompt_tokens: Count
    completion_tokens: Count
    estimated: bool
    outcome: Outcome


class UsageList(Reply):
    data: list[KeyUsage | ModelUsage | DayUsage | RequestUsage] = Field(
        description="a row per key, model or UTC day (by=key, model, day), or per request (by=request)")


Resting = Annotated[float, Field(ge=0, description="seconds until it is tried first again")]


class UpstreamKey(Reply):
    key: str = Field(description="masked (sk-…wxyz), or (no key)")
    state: Literal["ready", "resting", "set_aside"]
    resting_seconds: Resting
    set_aside_because: str | None = Field(description="the status (and code) that set it aside")
    failures: Count


class Upstream(Reply):
    name: str
    kind: Literal["openai", "azure"]
    base_url: str
    models: list[str] | None = Field(description="null: any model")
    weight: float
    proxy: str | None = Field(description="its password masked")
    state: Literal["ready", "resting"]
    resting_seconds: Resting
    failures: Count
    keys: list[UpstreamKey]


class UpstreamList(Reply):
    data: list[Upstream] = Field(description="the upstreams, in the configuration's order")
