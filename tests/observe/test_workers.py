"""``gptrelay serve --workers 2``: whichever worker answers a scrape, it sums both."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
from prometheus_client.mmap_dict import MmapedDict

from tests.conftest import UPSTREAM_KEY, RunningFake
from tests.helpers import eventually, serve_process, user
from tests.observe.conftest import ADMIN_KEY, scrape, value

REQUESTS = 40


def chat_requests(path: Path) -> float:
    """The /chat 200s one worker counted in its file."""
    return sum(count for key, count, _, _ in MmapedDict.read_all_values_from_file(str(path))
               if json.loads(key)[1] == "gptrelay_requests_total" and json.loads(key)[2] == {
                   "route": "/chat", "status": "200"})


def test_two_workers_sum_their_counts(fake_upstream: RunningFake, tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "OPENAI_API_KEY": UPSTREAM_KEY, "OPENAI_BASE_URL": fake_upstream.url,
           "AUTHORIZATION_KEY": "workers-key", "ADMIN_KEY": ADMIN_KEY, "WORKERS": "2",
           "DATABASE_URL": f"sqlite:///{tmp_path}/relay.db", "TMPDIR": str(temp)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    relay = serve_process(env, tmp_path, within=60)
    try:
        for _ in range(REQUESTS):  # a new connection each: SO_REUSEPORT spreads them over the workers
            reply = httpx.post(f"{relay.url}/chat", json=user("hi"), headers={"Authorization": "Bearer workers-key"})
            assert reply.status_code == 200
        [shared] = list(temp.glob("gptrelay-metrics-*"))
        # Both workers answered some of them, each counting in its own file (a request is counted just
        # after its last byte is sent, so the last one may still be on its way)...
        def counted() -> list[float]:
            return [chat_requests(path) for path in shared.glob("counter_*.db")]

        eventually(lambda: sum(counted()) == REQUESTS)
        assert len(counted()) == 2 and all(counted()) and sum(counted()) == REQUESTS, counted()
        # ...and every scrape, answered by one worker or the other, has them all.
        for _ in range(6):
            samples = eventually(lambda: (s := scrape(relay.url)) and value(
                s, "gptrelay_requests_total", route="/chat", status="200") == REQUESTS and s)
            assert samples, "the workers' counts do not add up"
            assert value(samples, "gptrelay_request_duration_seconds_count", route="/chat") == REQUESTS
            assert value(samples, "gptrelay_tokens_total", kind="completion") > 0
        # What the workers read from their own counters (every second) adds up too.
        assert eventually(lambda: value(scrape(relay.url), "gptrelay_usage_records_total", result="committed")
                          == REQUESTS)
    finally:
        stderr = relay.stop()
    assert relay.process.returncode == 0, stderr
    assert not shared.exists()  # removed with the relay
