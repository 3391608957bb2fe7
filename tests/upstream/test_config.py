"""The upstreams' file: read, and every mistake told in one line at start, with no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gptrelay.settings import Settings
from gptrelay.upstream.config import ConfigError, masked_url, parse

WORKED = """
[[upstreams]]
name = "openai"
base_url = "https://api.openai.com/v1/"
keys = ["sk-first-0123456789abcd", "env:SECOND_KEY"]
models = ["gpt-4o*", "o3*"]
weight = 2
proxy = "socks5h://user:pass@127.0.0.1:1080"

[[upstreams]]
name = "azure-east"
kind = "azure"
base_url = "https://my-resource.openai.azure.com/"
api_version = "2024-10-21"
keys = ["env:AZURE_KEY"]
deployments = { "gpt-4o" = "gpt4o-prod" }

[[upstreams]]
name = "local"
base_url = "http://127.0.0.1:11434"
models = ["llama3*", "qwen*"]

[aliases]
"gpt-4" = "gpt-4o"
"best" = "gpt-4"
"""
ENVIRON = {"SECOND_KEY": "sk-second-0123456789wxyz", "AZURE_KEY": "azure-key-0123456789"}


def problems(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(text, "gptrelay.toml", ENVIRON if environ is None else environ)
    return caught.value.lines


def test_the_worked_example() -> None:
    config = parse(WORKED, environ=ENVIRON)
    openai, azure, local = config.upstreams
    assert [key.get_secret_value() for key in openai.keys] == ["sk-first-0123456789abcd", "sk-second-0123456789wxyz"]
    assert openai.base_url == "https://api.openai.com/v1" and openai.weight == 2
    assert openai.proxy is not None and openai.proxy.get_secret_value().startswith("socks5h://")
    assert azure.kind == "azure" and azure.base_url == "https://my-resource.openai.azure.com"
    assert azure.served == ("gpt-4o",) and azure.keys[0].get_secret_value() == "azure-key-0123456789"
    assert local.base_url == "http://127.0.0.1:11434/v1" and local.keys == ()
    assert config.resolve("best") == "gpt-4o" and config.resolve("gpt-4o-mini") == "gpt-4o-mini"


def test_every_mistake_is_one_line_naming_where() -> None:
    text = """
[[upstreams]]
name = "a"
kind = "azur"
base_url = "https://x.example.com"

[[upstreams]]
name = "b"
base_url = "ftp://files.example.com"
keys = ["env:NOT_SET_ANYWHERE"]
colour = "blue"

[[upstreams]]
name = "c"
base_url = "https://c.example.com/v1"
proxy = "gopher://user:hunter2-secret@proxy:70"
"""
    lines = problems(text)
    assert len(lines) == 5, lines
    assert all(line.startswith("gptrelay.toml: upstreams[") for line in lines)
    joined = "\n".join(lines)
    assert "upstreams[0] (a).kind: Input should be 'openai' or 'azure' (got 'azur')" in joined
    assert "upstreams[1] (b).base_url: must be an http:// or https:// URL" in joined
    assert "upstreams[1] (b).keys: env:NOT_SET_ANYWHERE names the environment variable NOT_SET_ANYWHERE, " \
           "which is not set" in joined
    assert "upstreams[1] (b).colour: is not a setting the relay knows" in joined
    assert "upstreams[2] (c).proxy: must be a proxy URL" in joined and "hunter2" not in joined


def test_duplicate_names_and_alias_loops() -> None:
    duplicate = '[[upstreams]]\nname = "a"\nbase_url = "http://h1"\n[[upstreams]]\nname = "a"\nbase_url = "http://h2"\n'
    assert problems(duplicate) == ["gptrelay.toml: the file: two upstreams are named 'a': each needs a name of its own"]
    loop = '[[upstreams]]\nname = "a"\nbase_url = "http://h1"\n[aliases]\n"x" = "y"\n"y" = "z"\n"z" = "x"\n'
    assert problems(loop) == ["gptrelay.toml: the file: the aliases loop: x -> y -> z -> x"]


def test_no_upstream_and_bad_toml() -> None:
    assert problems("") == ["gptrelay.toml: upstreams: is required"]
    assert problems("upstreams = []") == ["gptrelay.toml: upstreams: there is no [[upstreams]] table: "
                                          "describe at least one upstream"]
    (line,) = problems("[[upstreams]\nname=")
    assert line.startswith("gptrelay.toml: not valid TOML: ")


def test_an_empty_model_list_is_a_mistake() -> None:
    assert problems('[[upstreams]]\nname = "a"\nbase_url = "http://h1"\nmodels = []\n') == [
        "gptrelay.toml: upstreams[0] (a).models: is empty, so the upstream would serve no model: leave it out "
        "to serve any"]


def test_keys_never_appear_in_the_lines() -> None:
    text = '[[upstreams]]\nname = "a"\nbase_url = "nope"\nkeys = ["sk-secret-0123456789abcd", 5]\nweight = -1\n'
    lines = problems(text)
    assert len(lines) == 3 and "sk-secret" not in "\n".join(lines), lines


def test_proxy_passwords_are_masked() -> None:
    assert masked_url("socks5h://user:a-long-password-1234@127.0.0.1:1080") == "socks5h://user:****@127.0.0.1:1080"
    assert masked_url("http://proxy:3128") == "http://proxy:3128"


def test_the_file_is_found_in_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert Settings(_env_file=None).config_file is None  # type: ignore[call-arg]
    (tmp_path / "gptrelay.toml").write_text('[[upstreams]]\nname = "a"\nbase_url = "http://h1"\n')
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.config_file == str(tmp_path / "gptrelay.toml")
    assert settings.problems() == []  # no OPENAI_API_KEY needed: the file names the upstreams


def run_serve(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gptrelay", "serve", "--port", "0", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=30,
                          env={**os.environ, "AUTHORIZATION_KEY": "k", **(env or {})})


def test_serve_refuses_a_bad_file_in_one_line_per_mistake(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text('[[upstreams]]\nname = "a"\nkind = "azur"\nbase_url = "https://x"\nkeys = ["env:UNSET_KEY_1"]\n'
                    '[[upstreams]]\nname = "a"\nbase_url = "https://y"\nkeys = ["sk-never-shown-0123456789"]\n')
    result = run_serve("--config", str(path), cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines == [f"gptrelay: {path}: upstreams[0] (a).kind: Input should be 'openai' or 'azure' (got 'azur')",
                     f"gptrelay: {path}: upstreams[0] (a).keys: env:UNSET_KEY_1 names the environment variable "
                     "UNSET_KEY_1, which is not set"], result.stderr
    # the duplicate is told once the tables themselves are right
    path.write_text('[[upstreams]]\nname = "a"\nbase_url = "https://x"\n[[upstreams]]\nname = "a"\n'
                    'base_url = "https://y"\n')
    result = run_serve(cwd=tmp_path, env={"GPTRELAY_CONFIG": str(path)})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr == f"gptrelay: {path}: the file: two upstreams are named 'a': each needs a name of its own\n"
    result = run_serve("--config", str(tmp_path / "missing.toml"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (f"gptrelay: cannot read the upstreams' configuration {tmp_path / 'missing.toml'}: "
                             "No such file or directory\n")


@pytest.mark.parametrize("readme", ["README.md", "README.zh-CN.md"])
def test_the_readme_example_is_valid(readme: str) -> None:
    from tests.readme import examples

    environ = {"OPENAI_KEY_1": "sk-one-0123456789abcd", "OPENAI_KEY_2": "sk-two-0123456789wxyz",
               "AZURE_OPENAI_KEY": "0123456789abcdef0123456789abcdef"}
    config = parse(examples(readme)["gptrelay-toml"], environ=environ)
    assert [upstream.name for upstream in config.upstreams] == ["openai", "azure-east", "ollama"]
    assert config.upstreams[0].proxy is not None and len(config.upstreams[0].keys) == 2
    assert config.resolve("gpt-4") == "gpt-4o"
