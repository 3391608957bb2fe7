"""bench/soak.py, run small so that it cannot rot: a few hundred mixed requests on SQLite, every check
passing. The soak itself (100,000 requests, both storages) is run by hand: bench/README.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.readme import ROOT

SOAK = ROOT / "bench" / "soak.py"


def run_soak(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SOAK), "--out", str(out), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=100)


def test_a_small_soak_on_sqlite_passes_every_check(tmp_path: Path) -> None:
    done = run_soak(tmp_path, "--requests", "400", "--clients", "20", "--warmup", "100", "--settle", "5",
                    "--prefill", "2000")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "soak.json").read_text())
    checks = {check["name"]: check["ok"] for check in report["checks"]}
    assert checks and all(checks.values()), checks
    assert set(checks) >= {"RSS growth", "file descriptors", "upstream connections", "usage records",
                           "5xx not caused by the upstream", "answers as expected"}
    # The mix was sent: streams, non-streams, clients leaving, upstream errors, refusals.
    kinds = {kind for kind, _, _ in report["tally"]["by_kind"]}
    assert {"/v1 stream", "/v1 non-stream", "/chat stream", "/chatgpt stream"} <= kinds
    assert report["tally"]["left"] > 0
    assert any(cause.startswith("upstream") for cause in report["tally"]["server_errors"])
    assert report["end"]["upstream_in_progress"] == 0


def test_a_failed_check_fails_the_run(tmp_path: Path) -> None:
    """A gate: an RSS growth allowance no run can meet makes the exit status non-zero."""
    done = run_soak(tmp_path, "--requests", "100", "--clients", "10", "--warmup", "30", "--settle", "3",
                    "--prefill", "0", "--max-rss-growth", "-100")
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "soak.json").read_text())
    assert [check["name"] for check in report["checks"] if not check["ok"]] == ["RSS growth"]
