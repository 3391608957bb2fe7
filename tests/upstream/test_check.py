"""``gptrelay check``: every upstream and key (masked), its models and time; exit 0 only if all answered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import free_port
from tests.upstream.conftest import Fakes

GOOD_KEY, BAD_KEY = "sk-check-good-0123456789-abcd", "sk-check-bad-0123456789-wxyz"
AZURE_KEY = "0123456789abcdef0123456789abcdef"


def check(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gptrelay", "check", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})})


def test_check_reports_each_upstream_and_key(fakes: Fakes, tmp_path: Path) -> None:
    openai = fakes(api_key=GOOD_KEY)
    azure = fakes(scenario="error status=500")
    (tmp_path / "gptrelay.toml").write_text(
        f'[[upstreams]]\nname = "openai"\nbase_url = "{openai.url}"\nkeys = ["{GOOD_KEY}", "env:BAD_KEY"]\n'
        f'[[upstreams]]\nname = "azure"\nkind = "azure"\nbase_url = "{azure.url.removesuffix("/v1")}"\n'
        f'keys = ["{AZURE_KEY}"]\n'
        f'[[upstreams]]\nname = "local"\nbase_url = "http://127.0.0.1:{free_port()}/v1"\n')
    result = check(cwd=tmp_path, env={"BAD_KEY": BAD_KEY})
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["UPSTREAM", "KEY", "RESULT", "STATUS", "TIME", "MODELS"]
    assert lines[1].split()[:4] == ["openai", "sk-…abcd", "ok", "200"]
    assert lines[1].endswith("4: gpt-4o-mini, gpt-4o, gpt-4.1, o4-mini")
    assert lines[2].split()[:4] == ["openai", "sk-…wxyz", "failed", "401"]
    assert lines[2].endswith("the upstream refused this key (invalid_api_key)")
    assert lines[3].split()[:4] == ["azure", "…cdef", "failed", "500"]
    assert lines[4].split()[:5] == ["local", "(no", "key)", "failed", "-"]
    assert "cannot connect to the upstream at 127.0.0.1" in lines[4]
    assert [record.path for record in azure.fake.log] == ["/openai/models"]
    assert azure.fake.log[0].query == "api-version=2024-10-21"
    for key in (GOOD_KEY, BAD_KEY, AZURE_KEY):
        assert key not in result.stdout + result.stderr

    rows = json.loads(check("--json", cwd=tmp_path, env={"BAD_KEY": BAD_KEY}).stdout)
    assert [(row["upstream"], row["ok"]) for row in rows] == [("openai", True), ("openai", False), ("azure", False),
                                                               ("local", False)]
    assert rows[0]["models"][0] == "gpt-4o-mini" and rows[0]["seconds"] < 5


def test_check_exits_0_when_all_answered(fakes: Fakes, tmp_path: Path) -> None:
    fake = fakes()
    result = check(cwd=tmp_path, env={"OPENAI_API_KEY": GOOD_KEY, "OPENAI_BASE_URL": fake.url})
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[1].split()[:4] == ["openai", "sk-…abcd", "ok", "200"]
