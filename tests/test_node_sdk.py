"""The official openai Node SDK streams through /v1, running the README's Node example."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from gptrelay.fake import replies
from tests.conftest import RunningRelay
from tests.readme import examples, localise

Relay = Callable[..., RunningRelay]
NODE_DIR = Path(__file__).parent / "node"

pytestmark = pytest.mark.node


@pytest.fixture(scope="module")
def node() -> str:
    binary = shutil.which("node")
    if binary is None:
        pytest.skip("Node.js is not installed")
    if not (NODE_DIR / "node_modules" / "openai").is_dir():
        pytest.skip("the openai npm package is not installed: cd tests/node && npm ci (scripts/test does it)")
    return binary


def run(node: str, code: str, tmp_name: str) -> subprocess.CompletedProcess[str]:
    script = NODE_DIR / tmp_name
    script.write_text(code)
    try:
        return subprocess.run([node, str(script)], cwd=NODE_DIR, capture_output=True, text=True, timeout=60)
    finally:
        script.unlink()


def test_readme_node_example_streams(relay: Relay, node: str, tmp_path: Path) -> None:
    """Saved and run as the README says, in a directory as ``npm install openai`` leaves it: its
    package.json names no module type, so a ``.js`` file would warn MODULE_TYPELESS_PACKAGE_JSON."""
    readme = examples()
    installed: list[str] = []
    command: list[str] = []
    for line in readme["node-run"].splitlines():
        words = shlex.split(line)
        if words[:2] == ["npm", "install"]:
            installed += words[2:]
        elif words[:1] == ["node"]:
            command = [node, *words[1:]]
    assert installed and command, readme["node-run"]
    ours = json.loads((NODE_DIR / "package.json").read_text())["dependencies"]
    (tmp_path / "package.json").write_text(json.dumps({"dependencies": {p: ours[p] for p in installed}}))
    (tmp_path / "node_modules").symlink_to(NODE_DIR / "node_modules")
    r = relay()
    code = localise(readme["node-sdk"], r.url, r.key)
    code = code.replace('content: "Hello"', 'content: "/scenario chinese"')
    (tmp_path / command[-1]).write_text(code)
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout == replies.CHINESE + "\n"


def test_node_sdk_sees_errors_as_its_own_types(relay: Relay, node: str) -> None:
    r = relay()
    code = f"""
import OpenAI from "openai";
const client = new OpenAI({{ baseURL: "{r.url}/v1", apiKey: "{r.key}", maxRetries: 0 }});
try {{
  const messages = [{{ role: "user", content: "/scenario error status=429" }}];
  await client.chat.completions.create({{ model: "m", messages }});
}} catch (error) {{
  console.log(error instanceof OpenAI.RateLimitError, error.status);
}}
const wrong = new OpenAI({{ baseURL: "{r.url}/v1", apiKey: "wrong", maxRetries: 0 }});
try {{ await wrong.models.list(); }} catch (error) {{
  console.log(error instanceof OpenAI.AuthenticationError, error.status);
}}
"""
    result = run(node, code, "errors.mjs")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["true", "429", "true", "401"]
