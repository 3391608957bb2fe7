"""The long fuzz run, kept out of CI: the fuzz tests and schemathesis with a large budget.

    .venv/bin/python bench/fuzz.py                   # the long profile: 20,000 examples a property (hours)
    .venv/bin/python bench/fuzz.py --examples 4000   # about 15 minutes on a 2-core machine
    .venv/bin/python bench/fuzz.py -- -x -k sse      # anything after -- goes to pytest

CI runs the same tests with the ``ci`` profile (200 examples a property, see tests/fuzz/profiles.py).
A failure prints the smallest input found and a ``@reproduce_failure`` line; the long profile also
keeps failing examples in ``.hypothesis/examples`` and tries them first next time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ["tests/fuzz", "tests/admin/test_openapi.py"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, help="examples per property (default: the long profile's)")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
    args = parser.parse_args()
    env = {**os.environ, "HYPOTHESIS_PROFILE": "long"}
    if args.examples:
        env["FUZZ_EXAMPLES"] = str(args.examples)
    command = [sys.executable, "-m", "pytest", *TESTS, "-p", "no:cacheprovider", "-o", "timeout=0", "-q",
               *args.pytest_args]
    started = time.monotonic()
    status = subprocess.call(command, cwd=ROOT, env=env)
    print(f"fuzz: {'passed' if status == 0 else 'FAILED'} in {time.monotonic() - started:.0f} s", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
