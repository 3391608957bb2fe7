"""Several fake upstreams at once, each with its faults, and relays reading a ``gptrelay.toml``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from gptrelay.fake import FakeUpstream
from tests.conftest import LoopThread, RunningFake, RunningRelay

Fakes = Callable[..., RunningFake]


@pytest.fixture
def fakes(loop_thread: LoopThread) -> Iterator[Fakes]:
    """A factory: ``fakes(scenario=…, key_scenarios=…)`` starts one more fake upstream."""
    runners: list[web.AppRunner] = []

    def make(**options: Any) -> RunningFake:
        fake = FakeUpstream(**options)
        runner, port = loop_thread.serve_app(fake.app())
        runners.append(runner)
        return RunningFake(fake, f"http://127.0.0.1:{port}/v1", port)

    yield make
    for runner in runners:
        loop_thread.run(runner.cleanup())


@pytest.fixture
def pooled(relay: Callable[..., RunningRelay], tmp_path: Path) -> Callable[..., RunningRelay]:
    """A factory: ``pooled(toml_text, **settings)`` starts a relay whose upstreams that text describes."""

    def make(text: str, **overrides: Any) -> RunningRelay:
        path = tmp_path / "gptrelay.toml"
        path.write_text(text, encoding="utf-8")
        return relay(config_file=str(path), **overrides)

    return make


def served(fake: RunningFake, path: str = "/v1/chat/completions") -> int:
    """How many requests for ``path`` this fake saw."""
    return sum(1 for record in fake.fake.log if record.path == path)
