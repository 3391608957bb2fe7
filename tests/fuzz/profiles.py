"""Hypothesis budgets for the fuzz tests, chosen by ``HYPOTHESIS_PROFILE``:

- ``ci`` (the default): a modest number of examples per test, no deadline (a loaded
  machine must not fail a test for being slow), no example database written;
- ``long``: many more examples, for a run by hand or at night, e.g.
  ``HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest tests/fuzz -p no:cacheprovider``;
  failures are kept in ``.hypothesis/`` and replayed first on the next run.

``FUZZ_EXAMPLES=N`` overrides the number of examples of either profile.
Tests that pay for a real socket per example take a tenth of the budget (``budget(10)``).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

_SLOW_IS_FINE = [HealthCheck.too_slow, HealthCheck.data_too_large]

settings.register_profile("ci", max_examples=200, deadline=None, database=None, print_blob=True,
                          suppress_health_check=_SLOW_IS_FINE)
settings.register_profile("long", max_examples=20_000, deadline=None, print_blob=True,
                          database=DirectoryBasedExampleDatabase(".hypothesis/examples"),
                          suppress_health_check=_SLOW_IS_FINE)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)
if os.environ.get("FUZZ_EXAMPLES"):
    settings.register_profile("chosen", settings.get_profile(PROFILE),
                              max_examples=int(os.environ["FUZZ_EXAMPLES"]))
    settings.load_profile("chosen")


def budget(divisor: int = 1) -> settings:
    """The loaded profile, with ``1/divisor`` of its examples (at least 10)."""
    return settings(max_examples=max(10, settings.default.max_examples // divisor))
