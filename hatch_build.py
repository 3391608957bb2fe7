"""Build the chat and admin pages (frontend/, with npm) into src/gptrelay/static/ when the package is built.

The page's libraries come from npm through frontend/package-lock.json and are
bundled into the Python package, so the relay never loads anything from a CDN.
Set GPTRELAY_SKIP_FRONTEND=1 to build without Node.js (the relay then serves a
plain notice at /).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class FrontendBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        root = Path(self.root)
        frontend = root / "frontend"
        if os.environ.get("GPTRELAY_SKIP_FRONTEND") or not (frontend / "package.json").exists():
            return
        npm = shutil.which("npm")
        if npm is None:
            self.app.display_warning("npm not found: building without the chat and admin pages (install Node.js)")
            return
        lock = frontend / "package-lock.json"
        installed = frontend / "node_modules" / ".package-lock.json"
        if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
            # `npm install --no-save` installs the locked versions and never rewrites the lock.
            # (`npm ci`, which deploy/Dockerfile uses, would too, but it deletes node_modules first:
            # a rebuild here would download everything again.)
            subprocess.run([npm, "install", "--no-save", "--no-audit", "--no-fund"], cwd=frontend, check=True)
        subprocess.run([npm, "run", "build"], cwd=frontend, check=True)
