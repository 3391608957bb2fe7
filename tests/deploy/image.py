"""deploy/Dockerfile built without a Docker engine: every instruction of every stage carried out for real,
the way an engine would, on this machine's Debian 12 in place of the base images.

- The build context is what ``docker build`` sends: the repository filtered by .dockerignore, with
  docker-py's own implementation of its rules (``docker.utils.build.exclude_paths``).
- A stage's file system is an overlay: this machine's root as the read-only lower layer (standing in
  for the stage's base image: ``node:20-bookworm-slim`` and ``python:3.11-slim-bookworm`` are Debian 12
  with Node 20 and Python 3.11, as this machine is), and a directory of the stage's own as the upper
  layer, as an engine's storage driver does. ``RUN`` commands run verbatim in a private mount namespace,
  chrooted into it, at the stage's ``WORKDIR``, with its ``ENV``; ``COPY`` writes into the upper layer;
  ``COPY --from`` and ``RUN --mount=type=bind,from=`` read another stage's.
- In the Python stages, ``python`` and ``pip`` are a fresh virtual environment of Debian's Python 3.11 at
  /opt/python, first on the PATH (the python image's are in /usr/local/bin); in the node stage, Debian's
  Node.js. The network, DNS and package indexes are this machine's.

Needs root (mount namespaces, overlayfs, chroot), as an engine does.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.readme import ROOT

DOCKERFILE = ROOT / "deploy" / "Dockerfile"
PYTHON_ENV = "/opt/python"  # the stand-in for the python image's interpreter
# This machine's way to its package indexes (pip's and npm's settings, proxies), passed on to RUN.
_MACHINE = re.compile(r"(PIP_|NPM_CONFIG_|npm_config_|HTTPS?_PROXY|https?_proxy|NO_PROXY|no_proxy|SSL_CERT_)")
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Run in a private mount namespace (``unshare -m``): mount the stage's overlay, chroot into it, become
# the user asked for, and exec the command. Arguments: one JSON object.
_CHILD = r"""
import json, os, subprocess, sys
a = json.loads(sys.argv[1])
def mount(*args):
    subprocess.run(["mount", *args], check=True)
mount("--make-rprivate", "/")
mount("-t", "overlay", "overlay", "-o", f"lowerdir=/,upperdir={a['upper']},workdir={a['work']}", a["root"])
for name in ("proc", "dev", "sys"):
    mount("--rbind", "/" + name, a["root"] + "/" + name)
mount("-t", "tmpfs", "tmpfs", a["root"] + "/tmp")
for source, target in a["binds"]:
    os.makedirs(a["root"] + target, exist_ok=True)
    mount("--bind", "-o", "ro", source, a["root"] + target)
os.chroot(a["root"])
os.makedirs(a["workdir"], exist_ok=True)
os.chdir(a["workdir"])
if a["user"]:
    uid, _, gid = a["user"].partition(":")
    os.setgroups([])
    os.setgid(int(gid or uid))
    os.setuid(int(uid))
os.execvpe(a["argv"][0], a["argv"], a["env"])
"""


@dataclass
class Stage:
    name: str
    base: str
    folder: Path
    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    user: str = ""
    facts: dict[str, str] = field(default_factory=dict)  # EXPOSE, HEALTHCHECK, STOPSIGNAL, CMD, USER as written

    @property
    def upper(self) -> Path:
        return self.folder / "upper"

    def path(self, inside: str) -> Path:
        """Where a path of the stage's file system is in its upper layer (what the stage wrote)."""
        return self.upper / inside.lstrip("/")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped (dockerfile-parse
    does the parsing)."""
    from dockerfile_parse import DockerfileParser

    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()))
    return [(item["instruction"], item["value"]) for item in parser.structure if item["instruction"] != "COMMENT"]


def substitute(value: str, names: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: names.get(m[1] or m[2], m[0]), value)


def build_context(folder: Path) -> Path:
    """The files ``docker build`` would send, copied into ``folder``."""
    from docker.utils.build import exclude_paths

    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for name in sorted(exclude_paths(str(ROOT), patterns, dockerfile="deploy/Dockerfile")):
        source = ROOT / name
        if source.is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, folder / name)
    return folder


class Build:
    """deploy/Dockerfile's stages, carried out one instruction at a time; ``log`` says what was run."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.context = build_context(folder / "context")
        self.stages: list[Stage] = []
        self.log: list[str] = []

    def run_all(self) -> Stage:
        """Every instruction; the final stage."""
        args: dict[str, str] = {}
        for instruction, value in instructions(DOCKERFILE.read_text()):
            if instruction == "ARG" and not self.stages:
                name, _, default = value.partition("=")
                args[name] = default
            elif instruction == "FROM":
                words = substitute(value, args).split()
                name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(self.stages))
                self.start(name, words[0])
            else:
                getattr(self, instruction.lower())(substitute(value, self.stages[-1].env))
        return self.stages[-1]

    def start(self, name: str, base: str) -> None:
        stage = Stage(name, base, self.folder / f"stage-{len(self.stages)}-{name}")
        for part in ("upper", "work", "root"):
            (stage.folder / part).mkdir(parents=True)
        self.stages.append(stage)
        self.log.append(f"FROM {base} AS {name}: this machine's root as the lower layer")
        if base.startswith("python:"):  # the image's python and pip: a fresh environment of Python 3.11
            self.execute(stage, ["/usr/bin/python3", "-m", "venv", PYTHON_ENV], "/")

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    def env(self, value: str) -> None:
        stage = self.stages[-1]
        for word in shlex.split(value):
            name, _, setting = word.partition("=")
            stage.env[name] = setting

    def workdir(self, value: str) -> None:
        stage = self.stages[-1]
        stage.workdir = os.path.join(stage.workdir, value)
        stage.path(stage.workdir).mkdir(parents=True, exist_ok=True)

    def copy(self, value: str) -> None:
        stage = self.stages[-1]
        words = shlex.split(value)
        source_root = self.context
        if words[0].startswith("--from="):
            source_root = self.stage(words.pop(0).removeprefix("--from=")).upper
        *sources, destination = words
        target = stage.path(os.path.join(stage.workdir, destination))
        for source in sources:
            path = source_root / source.lstrip("/")
            assert path.exists(), f"COPY {source}: not in the {'context' if source_root == self.context else 'stage'}"
            if path.is_dir():
                shutil.copytree(path, target, dirs_exist_ok=True)
            elif destination.endswith("/"):
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target / path.name)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
        self.log.append(f"COPY {value}")

    def run(self, value: str) -> None:
        stage = self.stages[-1]
        binds = []
        while value.startswith("--mount="):
            option, _, value = value.partition(" ")
            spec = dict(part.split("=", 1) for part in option.removeprefix("--mount=").split(","))
            assert spec.pop("type") == "bind", option
            binds.append((str(self.stage(spec["from"]).path(spec["source"])), spec["target"]))
        command = value.strip()
        stubs = [stage.path(target) for _, target in binds if not stage.path(target).exists()]
        self.execute(stage, ["/bin/sh", "-c", command], stage.workdir, binds)
        for stub in stubs:  # the mount points made for the binds are not left in the layer (as BuildKit does)
            stub.rmdir()
        self.log.append(f"RUN {command}")

    def execute(self, stage: Stage, argv: list[str], workdir: str, binds: list[tuple[str, str]] | None = None,
                user: str = "", env: dict[str, str] | None = None, timeout: float = 900) -> None:
        done = subprocess.run(self.command(stage, argv, workdir, binds, user, env), capture_output=True, text=True,
                              timeout=timeout)
        assert done.returncode == 0, f"{argv} failed ({done.returncode}): {done.stdout[-3000:]}{done.stderr[-3000:]}"

    def command(self, stage: Stage, argv: list[str], workdir: str, binds: list[tuple[str, str]] | None = None,
                user: str = "", env: dict[str, str] | None = None) -> list[str]:
        """The command line that runs ``argv`` in ``stage``'s file system."""
        path = f"{PYTHON_ENV}/bin:{BASE_PATH}" if stage.base.startswith("python:") else BASE_PATH
        machine = {name: value for name, value in os.environ.items() if _MACHINE.match(name)}
        environment = {**machine, "PATH": path, "HOME": os.environ.get("HOME", "/root"), **stage.env, **(env or {})}
        arguments = {"upper": str(stage.upper), "work": str(stage.folder / "work"), "root": str(stage.folder / "root"),
                     "binds": binds or [], "workdir": workdir, "user": user, "argv": argv, "env": environment}
        return ["unshare", "-m", sys.executable, "-c", _CHILD, json.dumps(arguments)]

    # What the final image says about itself: kept, checked by the tests, used to run it.
    def _fact(self, instruction: str, value: str) -> None:
        self.stages[-1].facts[instruction] = value

    def user(self, value: str) -> None:
        self.stages[-1].user = value
        self._fact("USER", value)

    def expose(self, value: str) -> None:
        self._fact("EXPOSE", value)

    def volume(self, value: str) -> None:
        self._fact("VOLUME", value)

    def healthcheck(self, value: str) -> None:
        self._fact("HEALTHCHECK", value)

    def stopsignal(self, value: str) -> None:
        self._fact("STOPSIGNAL", value)

    def cmd(self, value: str) -> None:
        self._fact("CMD", value)


def exec_form(value: str) -> list[str]:
    """``["a", "b"]`` (the exec form of CMD and HEALTHCHECK's CMD) as a list."""
    words = json.loads(value)
    assert isinstance(words, list) and all(isinstance(w, str) for w in words), value
    return words
