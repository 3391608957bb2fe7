"""``gptrelay`` with its upstream ClientSession forced to ``trust_env=False`` (an experiment).

With ``trust_env=True`` aiohttp, on every request, looks up ~/.netrc and the proxy
environment variables in the default thread pool (two thread hops per upstream request).
This runs the unchanged relay with that switched off, to measure what it costs:

    python bench/run.py --relay-cmd "python bench/experiments/no_trust_env.py"
"""

from __future__ import annotations

import functools
import sys

import aiohttp

_init = aiohttp.ClientSession.__init__


@functools.wraps(_init)
def _no_trust_env(self, *args, **kwargs):  # type: ignore[no-untyped-def]
    kwargs["trust_env"] = False
    _init(self, *args, **kwargs)


aiohttp.ClientSession.__init__ = _no_trust_env  # type: ignore[method-assign]

if __name__ == "__main__":
    from gptrelay.cli.main import main

    sys.argv[0] = "gptrelay"
    main()
