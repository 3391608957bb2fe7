"""The gptrelay command, run as a user runs it: a real process, its output, a real request."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import chat, free_port, user, wait_until_serving

CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "AUTHORIZATION_KEY")}


def gptrelay(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 20
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gptrelay", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**CLEAN_ENV, **(env or {})})


@pytest.fixture
def start_relay(tmp_path: Path) -> Iterator[object]:
    processes: list[subprocess.Popen[str]] = []

    def start(*args: str, dotenv: str = "") -> tuple[subprocess.Popen[str], str, str]:
        (tmp_path / ".env").write_text(dotenv)
        port = free_port()
        process = subprocess.Popen([sys.executable, "-m", "gptrelay", "serve", "--port", str(port), *args],
                                   cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   env=CLEAN_ENV)
        processes.append(process)
        assert process.stdout is not None
        banner = "".join(process.stdout.readline() for _ in range(3))
        url = f"http://127.0.0.1:{port}"
        wait_until_serving(url, process)
        return process, url, banner

    yield start
    for process in processes:
        process.terminate()
        process.wait(10)


def test_version(tmp_path: Path) -> None:
    from gptrelay import __version__

    result = gptrelay("--version", cwd=tmp_path)
    assert result.stdout.strip() == f"gptrelay {__version__}"


def test_refuses_a_public_bind_without_an_access_key_in_one_line(tmp_path: Path) -> None:
    result = gptrelay("serve", "--host", "0.0.0.0", cwd=tmp_path, env={"OPENAI_API_KEY": "sk-x"})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "refusing to serve on 0.0.0.0 without an access key" in result.stderr


def test_one_line_per_mistake(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("OPENAI_BASE_URL=api.openai.com\n")
    result = gptrelay("serve", "--port", "70000", cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2
    assert len(lines) == 2
    assert any(line.startswith("gptrelay: --port: ") for line in lines)
    assert any(line.startswith("gptrelay: OPENAI_BASE_URL: must be an http:// or https:// URL") for line in lines)


@pytest.mark.parametrize("url", ["http://localhost:99999/v1", "http://localhost:abc/v1"])
def test_a_bad_upstream_port_is_one_line(tmp_path: Path, url: str) -> None:
    result = gptrelay("serve", cwd=tmp_path, env={"OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": url})
    assert result.returncode == 2
    assert result.stderr == f"gptrelay: OPENAI_BASE_URL: must have a port from 1 to 65535 (or none), got {url!r}\n"


def test_missing_upstream_key(tmp_path: Path) -> None:
    result = gptrelay("serve", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == ("gptrelay: OPENAI_API_KEY is not set: put your upstream key in .env "
                                     "(or try `gptrelay serve --demo` without one)")


def test_a_named_env_file_that_does_not_exist_is_one_line(tmp_path: Path) -> None:
    result = gptrelay("serve", "--env-file", "missing.env", cwd=tmp_path, env={"OPENAI_API_KEY": "sk-x"})
    assert result.returncode == 2
    assert result.stderr == "gptrelay: cannot read --env-file missing.env: No such file or directory\n"


def test_unknown_names_in_the_env_file_are_a_warning_each(tmp_path: Path) -> None:
    (tmp_path / "relay.env").write_text(
        "OPENAI_API_KEY=sk-proj-secret.upstream.1234\n"
        "AUTHORISATION_KEY=secret-access-key-5678\n"
        "sk-proj-pasted.alone.9999\n"
        "# known, in any case: the settings' names, the proxy's\n"
        "PORT=1\nopenai_org_id=org-1\nhttps_proxy=\nNO_PROXY=localhost\nexport DEFAULT_MODEL=m\n"
        "OPENAI_BASEURL=http://127.0.0.1:9/v1\nSOMETHING_ELSE=1\n")
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "gptrelay", "serve", "--port", str(port), "--env-file",
                                "relay.env"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=CLEAN_ENV)
    try:
        wait_until_serving(f"http://127.0.0.1:{port}", process)  # warned, and started all the same
    finally:
        process.terminate()
        errors = process.communicate(timeout=10)[1]
    assert [line for line in errors.splitlines() if line.startswith("gptrelay: relay.env: ")] == [
        "gptrelay: relay.env: unknown setting AUTHORISATION_KEY (did you mean AUTHORIZATION_KEY?)",
        "gptrelay: relay.env: line 3 is not NAME=value, ignored",
        "gptrelay: relay.env: unknown setting OPENAI_BASEURL (did you mean OPENAI_BASE_URL?)",
        "gptrelay: relay.env: unknown setting SOMETHING_ELSE",
    ]
    assert errors.startswith("gptrelay: relay.env: unknown setting AUTHORISATION_KEY")
    assert "secret" not in errors and "pasted" not in errors


def test_demo_streams_and_says_it_is_simulated(start_relay) -> None:  # type: ignore[no-untyped-def]
    _, url, banner = start_relay("--demo")
    assert "demo upstream (replies are simulated)" in banner
    reply = chat(url, user("hello"))
    assert reply.status == 200
    assert "simulated" in reply.text and len(reply.frames) > 10


def test_keys_are_masked_in_the_banner(start_relay) -> None:  # type: ignore[no-untyped-def]
    dotenv = ("OPENAI_API_KEY=sk-proj-very.secret.test.key.9876\nAUTHORIZATION_KEY=access-key-for-friends-4321\n"
              "OPENAI_BASE_URL=http://127.0.0.1:9/v1\n")
    process, url, banner = start_relay(dotenv=dotenv)
    assert "sk-…9876" in banner and "…4321" in banner
    assert "very.secret" not in banner and "for-friends" not in banner
    reply = chat(url, user("hi"), {"Authorization": "access-key-for-friends-4321"})
    assert reply.status == 502
    process.terminate()
    output = process.communicate(timeout=10)[0]
    assert "very.secret" not in output and "for-friends" not in output
    assert "cannot connect to the upstream" in output  # the failure is logged, the key is not


def test_port_in_use_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = gptrelay("serve", "--demo", "--port", str(port), cwd=tmp_path)
    assert result.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_workers_share_the_port_and_stop_together(start_relay) -> None:  # type: ignore[no-untyped-def]
    import psutil

    process, url, banner = start_relay("--demo", "--workers", "2")
    assert "2 workers" in banner
    for _ in range(8):
        assert chat(url, user("/scenario chinese interval_ms=0")).status == 200
    children = psutil.Process(process.pid).children()
    assert len(children) >= 2
    serving = {c.pid for c in children if c.net_connections(kind="tcp")}
    assert len(serving) == 2
    process.terminate()
    process.wait(10)
    _, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []
