"""The README's examples run as written (pointed at a test relay), in both languages."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import RunningRelay
from tests.readme import ROOT, examples, localise

Relay = Callable[..., RunningRelay]
README = examples("README.md")


def strip_comment(line: str) -> str:
    return re.sub(r"\s+#.*|\s+//.*", "", line)


def test_every_language_has_the_same_examples() -> None:
    chinese = examples("README.zh-CN.md")
    assert set(chinese) == set(README)
    for name, code in README.items():
        code_lines = [line for line in code.splitlines() if not line.strip().startswith(("#", "//"))]
        chinese_lines = [line for line in chinese[name].splitlines()
                         if not line.strip().startswith(("#", "//"))]
        assert [strip_comment(line) for line in code_lines] == \
               [strip_comment(line) for line in chinese_lines], name


@pytest.mark.parametrize("name", ["curl-chat", "curl-chatgpt", "curl-v1"])
def test_curl_examples(relay: Relay, name: str) -> None:
    r = relay()
    result = subprocess.run(["bash", "-c", localise(README[name], r.url, r.key)], capture_output=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    if name == "curl-chat":
        assert out.endswith('{"done":true,"error":false,"content":"[DONE]","finish_reason":"stop"}\n')
        assert "你好" in "".join(json.loads(line)["content"] for line in out.splitlines()[:-1])
    elif name == "curl-chatgpt":
        assert out.rstrip().endswith("data: [DONE]")
    else:
        assert '"gpt-4o-mini"' in out


def readme_pip_packages() -> list[str]:
    """The packages the README tells the user to ``pip install`` for its Python examples."""
    packages = []
    for line in README["python-install"].splitlines():
        words = shlex.split(strip_comment(line))
        if words[:2] == ["pip", "install"]:
            packages += [word for word in words[2:] if not word.startswith("-")]
    assert packages, README["python-install"]
    return packages


@pytest.fixture(scope="session")
def readme_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment holding only what the README says to install (from PyPI)."""
    venv = tmp_path_factory.mktemp("readme-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
    python = venv / "bin" / "python"
    result = subprocess.run([str(python), "-m", "pip", "install", "--quiet", *readme_pip_packages()],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return python


@pytest.mark.timeout(420)  # the first one sets up the virtual environment
@pytest.mark.parametrize("name", ["python-chat", "python-chatgpt", "python-sdk"])
def test_python_examples(relay: Relay, readme_python: Path, tmp_path: Path, name: str) -> None:
    r = relay()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    result = subprocess.run([str(readme_python), "-c", localise(README[name], r.url, r.key)],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "simulated" in result.stdout


def test_cli_help_in_the_readme_is_the_real_one() -> None:
    text = (ROOT / "README.md").read_text("utf-8")
    shown = re.search(r"<!-- cli-help -->\s*```\n\$ gptrelay serve --help\n(.*?)```", text, re.S)
    assert shown
    result = subprocess.run([sys.executable, "-m", "gptrelay", "serve", "--help"], capture_output=True,
                            text=True, env={**os.environ, "COLUMNS": "80"})
    assert shown.group(1) == result.stdout.replace("Usage: python -m gptrelay", "Usage: gptrelay")
