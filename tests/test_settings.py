"""Settings: names and aliases from SPEC, .env files, validation, masking."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from pydantic import ValidationError

from gptrelay.settings import Settings, is_loopback, mask, normalise_base_url


def make(tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, dotenv: str = "",
         **kwargs: object) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    env_file = tmp_path / ".env"
    env_file.write_text(dotenv)
    return Settings(_env_file=env_file, **kwargs)  # type: ignore[call-arg]


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = make(tmp_path, {}, monkeypatch)
    assert s.openai_base_url == "https://api.openai.com/v1"
    assert (s.host, s.port, s.default_model, s.cors_origins) == ("127.0.0.1", 3666, "gpt-4o-mini", ("*",))
    assert s.max_body_size == 20 * 1024 * 1024
    assert s.keepalive_interval == 15
    assert s.openai_api_key is None and s.authorization_key is None


def test_dotenv_then_environment_then_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dotenv = 'OPENAI_API_KEY="sk-from-dotenv"\nAUTHORIZATION_KEY=abc\nSERVER_PORT=4000\nDEFAULT_MODEL=m1\n'
    s = make(tmp_path, {"SERVER_PORT": "5000"}, monkeypatch, dotenv)
    assert s.openai_api_key is not None and s.openai_api_key.get_secret_value() == "sk-from-dotenv"
    assert s.access_keys == ("abc",) and s.port == 5000 and s.default_model == "m1"
    assert make(tmp_path, {"SERVER_PORT": "5000"}, monkeypatch, dotenv, port=6000).port == 6000


@pytest.mark.parametrize("name", ["OPENAI_ORGANIZATION", "OPENAI_ORG_ID", "OPENAI_API_ORGANIZATION"])
def test_organization_aliases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    assert make(tmp_path, {name: "org-1"}, monkeypatch).openai_organization == "org-1"


def test_port_alias(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert make(tmp_path, {"PORT": "8080"}, monkeypatch).port == 8080


def test_cors_origins_are_comma_separated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = make(tmp_path, {"CORS_ORIGINS": "https://a.example/, http://b.example:8080"}, monkeypatch)
    assert s.cors_origins == ("https://a.example", "http://b.example:8080")


@pytest.mark.parametrize(("given", "expected"), [
    ("https://api.openai.com/v1", "https://api.openai.com/v1"),
    ("https://api.openai.com/v1/", "https://api.openai.com/v1"),
    ("https://api.openai.com", "https://api.openai.com/v1"),
    ("https://api.openai.com/", "https://api.openai.com/v1"),
    ("http://localhost:8000/openai/v1//", "http://localhost:8000/openai/v1"),
    (" https://x.example/api/v1 ", "https://x.example/api/v1"),
])
def test_base_url_is_normalised(given: str, expected: str) -> None:
    assert normalise_base_url(given) == expected


@pytest.mark.parametrize("bad", ["api.openai.com", "ftp://x", "https://", "https://x/v1/chat/completions",
                                 "http://localhost:99999/v1", "http://localhost:abc/v1", "http://localhost:0/v1"])
def test_bad_base_url(bad: str) -> None:
    with pytest.raises(ValueError):
        normalise_base_url(bad)


@pytest.mark.parametrize(("env", "field"), [({"SERVER_PORT": "70000"}, "SERVER_PORT"),
                                             ({"SERVER_PORT": "x"}, "SERVER_PORT"),
                                             ({"OPENAI_BASE_URL": "nope"}, "OPENAI_BASE_URL"),
                                             ({"MAX_BODY_SIZE": "0"}, "MAX_BODY_SIZE")])
def test_invalid_values_name_their_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            env: dict[str, str], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        make(tmp_path, env, monkeypatch)
    assert info.value.errors()[0]["loc"][0] == field


def test_problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = make(tmp_path, {}, monkeypatch, host="0.0.0.0")
    problems = s.problems()
    # (A public bind without a key is refused at start, once the database's keys are known:
    # tests/test_cli.py and tests/auth/test_named_keys.py.)
    assert len(problems) == 1 and "OPENAI_API_KEY" in problems[0]
    assert make(tmp_path, {}, monkeypatch, demo=True, allow_no_auth=True, host="0.0.0.0").problems() == []
    assert make(tmp_path, {"OPENAI_API_KEY": "k", "AUTHORIZATION_KEY": "a"}, monkeypatch,
                host="0.0.0.0").problems() == []


def test_empty_values_mean_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = make(tmp_path, {"AUTHORIZATION_KEY": "", "OPENAI_ORGANIZATION": " "}, monkeypatch)
    assert s.authorization_key is None and s.openai_organization is None


def test_redis_failure_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert make(tmp_path, {}, monkeypatch).redis_failure_policy == "open"
    assert make(tmp_path, {}, monkeypatch).redis_fail_open
    closed = make(tmp_path, {"REDIS_FAILURE_POLICY": " Closed "}, monkeypatch)
    assert closed.redis_failure_policy == "closed" and not closed.redis_fail_open
    with pytest.raises(ValidationError) as info:
        make(tmp_path, {"REDIS_FAILURE_POLICY": "maybe"}, monkeypatch)
    assert info.value.errors()[0]["loc"][0] == "REDIS_FAILURE_POLICY"


def test_mask() -> None:
    assert mask("sk-proj-not.a.real.key.1234") == "sk-…1234"
    assert mask("my-long-access-key-wxyz") == "…wxyz"
    assert mask("short") == "…****"
    assert mask(None) == "(none)"


def test_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.1") and not is_loopback("example.com")


def test_secrets_are_hidden_in_repr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = make(tmp_path, {"OPENAI_API_KEY": "sk-secret-value", "AUTHORIZATION_KEY": "access-secret"}, monkeypatch)
    assert "sk-secret-value" not in repr(s) and "access-secret" not in repr(s)


def test_open_file_limit_is_raised_to_the_hard_limit() -> None:
    import resource

    from gptrelay.server import raise_open_file_limit

    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, before[1]), before[1]))
        limit = raise_open_file_limit()
        assert limit >= before[1]  # 65,536 when privileged, else the hard limit
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == limit
    finally:
        with contextlib.suppress(ValueError):  # a raised hard limit cannot always be put back
            resource.setrlimit(resource.RLIMIT_NOFILE, before)


def test_storage_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = make(tmp_path, {}, monkeypatch)
    assert (s.database_url, s.redis_url, s.admin_key) == ("sqlite:///gptrelay.db", None, None)
    s = make(tmp_path, {"DATABASE_URL": "postgresql://u:p@db/relay", "REDIS_URL": "redis://cache:6379/0",
                        "ADMIN_KEY": "admin-secret-value"}, monkeypatch)
    assert (s.database_url, s.redis_url) == ("postgresql://u:p@db/relay", "redis://cache:6379/0")
    assert s.admin_key is not None and s.admin_key.get_secret_value() == "admin-secret-value"
    assert "admin-secret-value" not in repr(s)
    s = make(tmp_path, {"REDIS_URL": "", "ADMIN_KEY": " "}, monkeypatch)
    assert s.redis_url is None and s.admin_key is None
