"""The fuzz tests' Hypothesis profile is loaded here (see ``profiles``), and an upstream that
answers with any event stream a test gives it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import orjson
import pytest
from aiohttp import web

from tests.conftest import LoopThread
from tests.fuzz import profiles  # noqa: F401  (registers and loads the profile)


class Cut:
    """In a scripted reply: the upstream's connection breaks there."""


CUT = Cut()


class ScriptedUpstream:
    """An upstream that answers each chat with the event stream it was given for that prompt."""

    def __init__(self) -> None:
        self.replies: dict[str, list[bytes | Cut]] = {}
        self.url = ""

    def reply(self, *writes: bytes | Cut) -> str:
        """The prompt that gets ``writes`` as its reply, each written on its own (with a pause)."""
        prompt = f"reply {len(self.replies)}"
        self.replies[prompt] = list(writes)
        return prompt

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        writes = self.replies[body["messages"][-1]["content"]]
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for n, data in enumerate(writes):
            if n:
                await asyncio.sleep(0.001)  # so that the relay reads the writes apart
            if isinstance(data, Cut):
                assert request.transport is not None
                request.transport.abort()
                return response
            await response.write(data)
        await response.write_eof()
        return response


@pytest.fixture(scope="session")
def scripted_upstream(loop_thread: LoopThread) -> Iterator[ScriptedUpstream]:
    upstream = ScriptedUpstream()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", upstream.chat)
    runner, port = loop_thread.serve_app(app)
    upstream.url = f"http://127.0.0.1:{port}/v1"
    yield upstream
    loop_thread.run(runner.cleanup())

