"""The upstreams' configuration file: ``gptrelay.toml``, or the one ``GPTRELAY_CONFIG`` / ``--config`` names.

Read with the standard library's ``tomllib`` and validated by the pydantic
models below, which refuse every mistake they find at once, one line each
(``describe``): an unknown kind or setting, a URL that is not one, two
upstreams of one name, an ``env:NAME`` whose variable is not set, an alias
that leads back to itself. Without a file, ``OPENAI_API_KEY`` and
``OPENAI_BASE_URL`` make the one upstream, as they always have.

A value ``"env:NAME"`` where a secret goes (a key, a proxy) is read from the
environment variable ``NAME`` when the file is read.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gptrelay.errors import RefusedStart
from gptrelay.settings import CONFIG_FILE, normalise_base_url

ENV = "env:"
NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
PROXY_SCHEMES = ("http", "https", "socks4", "socks5", "socks5h")
AZURE_API_VERSION = "2024-10-21"


class ConfigError(RefusedStart):
    """The file cannot be used: ``lines`` says why, one mistake a line."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def _environ(info: ValidationInfo) -> Mapping[str, str]:
    context = info.context
    return context["environ"] if isinstance(context, dict) and "environ" in context else os.environ


def _from_env(value: Any, info: ValidationInfo) -> Any:
    """``"env:NAME"`` as the value of the variable ``NAME``; anything else as it is."""
    if not isinstance(value, str) or not value.startswith(ENV):
        return value
    name = value[len(ENV):].strip()
    found = _environ(info).get(name, "").strip()
    if not found:
        raise ValueError(f"{value} names the environment variable {name or '(none)'}, which is not set")
    return found


class UpstreamConfig(BaseModel):
    """One ``[[upstreams]]`` table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: Literal["openai", "azure"] = "openai"
    base_url: str
    keys: tuple[SecretStr, ...] = ()
    models: tuple[str, ...] | None = None  # patterns with *; None serves any model
    weight: float = Field(1.0, gt=0, le=1_000_000)
    proxy: SecretStr | None = None  # may carry a password; None: HTTPS_PROXY / NO_PROXY as for any upstream
    api_version: str = Field(AZURE_API_VERSION, min_length=1)
    deployments: dict[str, str] = {}  # model -> Azure deployment
    organization: str | None = None
    project: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.fullmatch(value):
            raise ValueError("must be 1 to 64 of the characters A-Z a-z 0-9 . _ -")
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("kind") != "azure":
            return normalise_base_url(value)
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be the resource's URL, such as https://my-resource.openai.azure.com, "
                             f"got {value!r}")
        return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))

    @field_validator("keys", mode="before")
    @classmethod
    def _keys(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            value = [value]  # one key
        if isinstance(value, list):
            value = [_from_env(item, info) for item in value]
            if any(isinstance(item, str) and not item.strip() for item in value):
                raise ValueError("a key is empty")
        return value

    @field_validator("proxy", mode="before")
    @classmethod
    def _proxy_from_env(cls, value: Any, info: ValidationInfo) -> Any:
        return _from_env(value, info)

    @field_validator("proxy")
    @classmethod
    def _proxy(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        parts = urlsplit(value.get_secret_value())
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise ValueError(f"{masked_url(value.get_secret_value())} has a bad port") from None
        if parts.scheme not in PROXY_SCHEMES or not parts.hostname:
            raise ValueError(f"must be a proxy URL such as http://host:3128 or socks5h://user:pass@host:1080 "
                             f"(schemes: {', '.join(PROXY_SCHEMES)}), got {masked_url(value.get_secret_value())}")
        return value

    @field_validator("models")
    @classmethod
    def _models(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and not value:
            raise ValueError("is empty, so the upstream would serve no model: leave it out to serve any")
        if value is not None and any(not pattern.strip() for pattern in value):
            raise ValueError("a model pattern is empty")
        return value

    @model_validator(mode="after")
    def _azure(self) -> UpstreamConfig:
        if self.kind != "azure" and self.deployments:
            raise ValueError("deployments are for kind = \"azure\" only")
        return self

    @property
    def served(self) -> tuple[str, ...] | None:
        """The model patterns this upstream serves: its ``models``, or an Azure upstream's deployments."""
        if self.models is None and self.kind == "azure" and self.deployments:
            return tuple(self.deployments)
        return self.models


class PoolConfig(BaseModel):
    """The whole file: ``[[upstreams]]`` (at least one) and ``[aliases]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    upstreams: tuple[UpstreamConfig, ...]
    aliases: dict[str, str] = {}

    @field_validator("upstreams")
    @classmethod
    def _some(cls, value: tuple[UpstreamConfig, ...]) -> tuple[UpstreamConfig, ...]:
        if not value:
            raise ValueError("there is no [[upstreams]] table: describe at least one upstream")
        return value

    @model_validator(mode="after")
    def _names(self) -> PoolConfig:
        seen: set[str] = set()
        for upstream in self.upstreams:
            if upstream.name in seen:
                raise ValueError(f"two upstreams are named {upstream.name!r}: each needs a name of its own")
            seen.add(upstream.name)
        for start in self.aliases:
            chain = [start]
            while chain[-1] in self.aliases:
                chain.append(self.aliases[chain[-1]])
                if chain[-1] in chain[:-1]:
                    raise ValueError(f"the aliases loop: {' -> '.join(chain)}")
        return self

    def resolve(self, model: str) -> str:
        """The model asked upstream for ``model`` as a client named it (aliases followed)."""
        aliases = self.aliases
        while model in aliases:
            model = aliases[model]
        return model


def masked_url(url: str) -> str:
    """``socks5h://user:****@host:1080``: the URL with its password hidden."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    netloc = f"{user}:****@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def describe(error: ValidationError, data: Any) -> list[str]:
    """One line per mistake, naming the upstream by its name where it has one. Never a key."""
    lines = []
    for problem in error.errors():
        loc = list(problem["loc"])
        where = []
        if len(loc) >= 2 and loc[0] == "upstreams" and isinstance(loc[1], int):
            index = loc[1]
            tables = data.get("upstreams") if isinstance(data, dict) else None
            name = tables[index].get("name") if isinstance(tables, list) and index < len(tables) \
                and isinstance(tables[index], dict) else None
            where.append(f"upstreams[{index}]" + (f" ({name})" if isinstance(name, str) else ""))
            loc = loc[2:]
        elif loc:
            where.append(str(loc[0]))
            loc = loc[1:]
        field = str(loc[0]) if loc else ""
        if field:
            where.append(field)
        message = str(problem["msg"]).removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "is not a setting the relay knows"
        elif problem["type"] == "missing":
            message = "is required"
        given = problem.get("input")
        secret = field in ("keys", "proxy")
        if isinstance(given, str | int | float) and not secret and repr(given) not in message \
                and problem["type"] != "missing":
            message += f" (got {given!r})"
        lines.append(f"{'.'.join(where) or 'the file'}: {message}")
    return lines


def parse(text: str, source: str = CONFIG_FILE, environ: Mapping[str, str] | None = None) -> PoolConfig:
    """The configuration in ``text``; ``ConfigError`` with a line per mistake, each starting with ``source``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([f"{source}: not valid TOML: {error}"]) from None
    try:
        return PoolConfig.model_validate(data, context={"environ": os.environ if environ is None else environ})
    except ValidationError as error:
        raise ConfigError([f"{source}: {line}" for line in describe(error, data)]) from None


def load(path: str, environ: Mapping[str, str] | None = None) -> PoolConfig:
    """The configuration in the file at ``path``; ``ConfigError`` when it cannot be read or used."""
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except OSError as error:
        raise ConfigError([f"cannot read the upstreams' configuration {path}: {error.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not UTF-8 text"]) from None
    return parse(text, path, environ)
