"""Settings: command-line flags over environment variables over ``.env``.

Built once at start (``Settings()``), handed to ``create_app(settings)``,
never read from module globals.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from dotenv.parser import parse_stream
from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MiB = 1024 * 1024
# Read from the environment by upstream.proxy_for (urllib), not by Settings; lower case too.
PROXY_NAMES = ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CONFIG_FILE = "gptrelay.toml"  # the upstreams' file, when GPTRELAY_CONFIG names none


def mask(secret: str | SecretStr | None) -> str:
    """``sk-…abcd``: enough to tell keys apart, never enough to use one."""
    if secret is None:
        return "(none)"
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    if len(value) < 12:
        return "…" + "*" * 4
    prefix = value[:3] if value.startswith("sk-") else ""
    return f"{prefix}…{value[-4:]}"


def normalise_base_url(url: str) -> str:
    """``https://host/v1/`` → ``https://host/v1``; a bare host gets ``/v1``."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http:// or https:// URL such as https://api.openai.com/v1, got {url!r}")
    try:
        good_port = parts.port != 0  # None (no port) is good
    except ValueError:  # not a number, or beyond 65535
        good_port = False
    if not good_port:
        raise ValueError(f"must have a port from 1 to 65535 (or none), got {url!r}")
    path = parts.path.rstrip("/")
    if path.endswith("/chat/completions"):
        raise ValueError(f"must be the API's base URL (…/v1), not an endpoint: {url!r}")
    if not path:
        path = "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    """Everything the relay can be told. Environment names are in ``validation_alias``."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True,
    )

    openai_api_key: SecretStr | None = Field(None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str = Field("https://api.openai.com/v1", validation_alias="OPENAI_BASE_URL")
    openai_organization: str | None = Field(
        None,
        validation_alias=AliasChoices("OPENAI_ORGANIZATION", "OPENAI_ORG_ID", "OPENAI_API_ORGANIZATION"),
    )
    openai_project: str | None = Field(None, validation_alias=AliasChoices("OPENAI_PROJECT", "OPENAI_PROJECT_ID"))
    authorization_key: SecretStr | None = Field(None, validation_alias="AUTHORIZATION_KEY")
    host: str = Field("127.0.0.1", validation_alias="HOST")
    port: int = Field(3666, ge=0, le=65535, validation_alias=AliasChoices("SERVER_PORT", "PORT"))
    default_model: str = Field("gpt-4o-mini", min_length=1, validation_alias="DEFAULT_MODEL")
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(("*",), validation_alias="CORS_ORIGINS")
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = Field((), validation_alias="TRUSTED_PROXIES")

    connect_timeout: float = Field(10.0, gt=0, validation_alias="UPSTREAM_CONNECT_TIMEOUT")
    first_byte_timeout: float = Field(600.0, gt=0, validation_alias="UPSTREAM_FIRST_BYTE_TIMEOUT")
    read_timeout: float = Field(300.0, gt=0, validation_alias="UPSTREAM_READ_TIMEOUT")
    keepalive_interval: float = Field(15.0, gt=0, validation_alias="KEEPALIVE_INTERVAL")
    client_idle_timeout: float = Field(75.0, gt=0, validation_alias="CLIENT_IDLE_TIMEOUT")
    client_body_timeout: float = Field(60.0, gt=0, le=3600, validation_alias="CLIENT_BODY_TIMEOUT")
    client_write_timeout: float = Field(120.0, gt=0, le=3600, validation_alias="CLIENT_WRITE_TIMEOUT")
    max_body_size: int = Field(20 * MiB, gt=0, validation_alias="MAX_BODY_SIZE")
    max_upload_size: int = Field(512 * MiB, gt=0, validation_alias="MAX_UPLOAD_SIZE")
    # /chat: how many times a reply cut by length is asked for again and streamed on as one (0: never).
    chat_max_continuations: int = Field(0, ge=0, le=20, validation_alias="CHAT_MAX_CONTINUATIONS")

    workers: int = Field(1, ge=1, le=64, validation_alias="WORKERS")
    # SIGTERM: how long replies in progress may take to finish before the rest are cut (gptrelay.http.drain).
    drain_timeout: float = Field(30.0, ge=0, le=86400, validation_alias="DRAIN_TIMEOUT")
    access_log: bool = Field(False, validation_alias="ACCESS_LOG")  # one line a request (gptrelay.observe)
    log_format: Literal["text", "json"] = Field("text", validation_alias="LOG_FORMAT")
    allow_no_auth: bool = Field(False, validation_alias="ALLOW_NO_AUTH")
    demo: bool = Field(False, validation_alias="GPTRELAY_DEMO")
    # While the rate limits' Redis cannot be reached: admit requests unchecked, or refuse them (503).
    redis_failure_policy: Literal["open", "closed"] = Field("open", validation_alias="REDIS_FAILURE_POLICY")

    database_url: str = Field("sqlite:///gptrelay.db", min_length=1, validation_alias="DATABASE_URL")
    redis_url: str | None = Field(None, validation_alias="REDIS_URL")
    admin_key: SecretStr | None = Field(None, validation_alias="ADMIN_KEY")
    # The upstreams' file (gptrelay.upstream.config); gptrelay.toml in the working directory if there is one.
    config_file: str | None = Field(None, validation_alias="GPTRELAY_CONFIG")

    @field_validator("openai_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return normalise_base_url(value)

    @field_validator("redis_failure_policy", "log_format", mode="before")
    @classmethod
    def _policy(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(o.strip().rstrip("/") for o in value.split(",") if o.strip())
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxies(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = tuple(part.strip() for part in value.split(",") if part.strip())
        for part in value:
            ipaddress.ip_network(str(part).strip(), strict=False)  # ValueError: one line at start
        return tuple(value)

    @field_validator("openai_api_key", "authorization_key", "openai_organization", "openai_project",
                     "redis_url", "admin_key", "config_file", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _config_file(self) -> Settings:
        if self.config_file is None and os.path.isfile(CONFIG_FILE):
            self.config_file = os.path.abspath(CONFIG_FILE)
        return self

    @property
    def redis_fail_open(self) -> bool:
        return self.redis_failure_policy == "open"

    @property
    def access_keys(self) -> tuple[str, ...]:
        return (self.authorization_key.get_secret_value(),) if self.authorization_key else ()

    def problems(self) -> list[str]:
        """What stops this configuration from starting, one line each."""
        found = []
        if self.config_file is not None and not self.demo:
            from gptrelay.upstream.config import ConfigError, load

            try:
                load(self.config_file)
            except ConfigError as error:
                found += error.lines
        elif self.openai_api_key is None and not self.demo:
            found.append("OPENAI_API_KEY is not set: put your upstream key in .env "
                         "(or try `gptrelay serve --demo` without one)")
        # (A public bind without AUTHORIZATION_KEY is refused at start unless the database holds keys.)
        return found


def environment_names() -> list[str]:
    """The variables the relay reads, as the README names them."""
    names = []
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
        names += [choice for choice in choices if isinstance(choice, str)]
    return [*names, *PROXY_NAMES]


def unknown_in_env_file(path: str) -> list[str]:
    """One line for each name in the ``.env`` file at ``path`` that the relay does not read, with
    the nearest one it does. Never a value, nor a line that is not ``NAME=value``: it may be a key.

    Names are not case-sensitive, and pydantic-settings also reads a setting's field name.
    """
    names = environment_names()
    known = {name.upper() for name in [*names, *Settings.model_fields]}
    found: list[str] = []
    with open(path, encoding="utf-8", errors="replace") as stream:
        for binding in parse_stream(stream):
            if binding.error or binding.key is None:
                continue  # python-dotenv says so itself when Settings reads the file
            if binding.value is None or not _NAME.fullmatch(binding.key):
                found.append(f"line {binding.original.line} is not NAME=value, ignored")
            elif binding.key.upper() not in known:
                close = difflib.get_close_matches(binding.key.upper(), names, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                found.append(f"unknown setting {binding.key}{hint}")
    return list(dict.fromkeys(found))
