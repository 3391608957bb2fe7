"""A fake OpenAI upstream that speaks the real wire format, quirks included.

It backs the test suite, the benchmark and ``gptrelay serve --demo``. Every
reply it gives is simulated.
"""

from gptrelay.fake.app import FakeUpstream, create_fake_app
from gptrelay.fake.scenarios import Scenario

__all__ = ["FakeUpstream", "Scenario", "create_fake_app"]
