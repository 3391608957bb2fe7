"""/v1 with the official openai Python SDK, sync and async, as users point it at the relay."""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
from collections.abc import Callable, Iterator

import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from gptrelay.fake import chunks, replies
from tests.conftest import UPSTREAM_KEY, RunningFake, RunningRelay

Relay = Callable[..., RunningRelay]


@pytest.fixture
def client(relay: Relay) -> Iterator[OpenAI]:
    r = relay()
    with OpenAI(base_url=f"{r.url}/v1", api_key=r.key, max_retries=0) as c:
        yield c


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_chat_completion(client: OpenAI) -> None:
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=ask("/scenario chinese"))
    assert completion.choices[0].message.content == replies.CHINESE
    assert completion.usage is not None and completion.usage.total_tokens > 0


def test_compressed_reply_passes_through_and_the_sdk_decodes_it(client: OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=ask("/scenario chinese"))
    assert raw.headers["content-encoding"] == "gzip"
    assert raw.parse().choices[0].message.content == replies.CHINESE


def test_streamed_chat_completion(client: OpenAI) -> None:
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=ask("/scenario split-utf8"),
                                            stream=True, stream_options={"include_usage": True})
    pieces, usage = [], None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        usage = chunk.usage or usage
    assert "".join(pieces) == replies.CHINESE
    assert usage is not None


def test_streamed_responses_api(client: OpenAI) -> None:
    stream = client.responses.create(model="gpt-4o-mini", input="hello", stream=True)
    kinds, text = [], ""
    for event in stream:
        kinds.append(event.type)
        if event.type == "response.output_text.delta":
            text += event.delta
    assert text == "Hello from the Responses API."
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"


def test_embeddings(client: OpenAI) -> None:
    result = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert [e.index for e in result.data] == [0, 1]
    assert len(result.data[0].embedding) == 3


def test_models(client: OpenAI) -> None:
    assert "gpt-4o-mini" in [m.id for m in client.models.list()]
    assert client.models.retrieve("gpt-4o").id == "gpt-4o"


def test_file_upload(client: OpenAI, fake_upstream: RunningFake) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    uploaded = client.files.create(file=("train.jsonl", io.BytesIO(data)), purpose="fine-tune")
    assert uploaded.bytes == len(data) and uploaded.filename == "train.jsonl"
    assert fake_upstream.fake.last("/v1/files").headers["Content-Type"].startswith("multipart/form-data")


def test_transcription_upload(client: OpenAI) -> None:
    result = client.audio.transcriptions.create(model="whisper-1", file=("a.mp3", io.BytesIO(b"ID3" * 1000)))
    assert result.text == "fake transcription of 3000 bytes"


def test_speech_is_binary(client: OpenAI) -> None:
    speech = client.audio.speech.create(model="tts-1", voice="alloy", input="hello")
    assert speech.content == b"ID3\x04\x00" + bytes(range(256)) * 16


@pytest.mark.parametrize(("status", "exception"), [
    (401, openai.AuthenticationError), (404, openai.NotFoundError), (429, openai.RateLimitError),
    (500, openai.InternalServerError)])
def test_upstream_errors_become_the_sdks_exceptions(client: OpenAI, status: int,
                                                     exception: type[openai.APIStatusError]) -> None:
    with pytest.raises(exception) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=ask(f"/scenario error status={status}"))
    assert info.value.status_code == status
    assert info.value.message.startswith(f"Error code: {status}")
    if status == 401:  # the upstream refused the relay's own key: told in the relay's words
        assert "the upstream refused the relay's own API key" in info.value.message
    else:
        assert chunks.error_body(status)["error"]["message"] in info.value.message
    if status == 429:
        assert info.value.response.headers["retry-after"] == "20"


def test_wrong_access_key_is_an_authentication_error(relay: Relay, fake_upstream: RunningFake) -> None:
    with OpenAI(base_url=f"{relay().url}/v1", api_key="wrong", max_retries=0) as c, \
            pytest.raises(openai.AuthenticationError) as info:
        c.models.list()
    assert "wrong access key" in info.value.message
    assert fake_upstream.fake.log == []


def test_unreachable_upstream_is_a_502_api_error(relay: Relay) -> None:
    r = relay(openai_base_url="http://127.0.0.1:9/v1")
    with OpenAI(base_url=f"{r.url}/v1", api_key=r.key, max_retries=0) as c, \
            pytest.raises(openai.InternalServerError) as info:
        c.models.list()
    assert info.value.status_code == 502
    assert "cannot connect to the upstream" in info.value.message


def test_upstream_sees_the_upstream_key_never_the_clients(client: OpenAI, fake_upstream: RunningFake) -> None:
    client.models.list()
    headers = fake_upstream.fake.last("/v1/models").headers
    assert headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert "test-access-key" not in repr(headers)
    assert headers["User-Agent"].startswith("OpenAI/Python")  # end-to-end headers pass
    assert any(name.lower().startswith("x-stainless") for name in headers)


def test_request_ids_and_rate_limit_headers_come_back(client: OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=ask("hi"), stream=True)
    assert raw.headers["x-request-id"] == "req_fake"
    assert raw.headers["openai-processing-ms"] == "12"
    assert raw.headers["x-ratelimit-remaining-requests"] == "9999"
    assert raw.headers["cache-control"] == "no-cache, no-transform"
    assert raw.headers["x-accel-buffering"] == "no"
    raw.parse().close()


def test_async_client(relay: Relay) -> None:
    r = relay()

    async def go() -> tuple[str, str, list[str]]:
        async with AsyncOpenAI(base_url=f"{r.url}/v1", api_key=r.key, max_retries=0) as c:
            completion = await c.chat.completions.create(model="gpt-4o-mini", messages=ask("/scenario chinese"))
            stream = await c.chat.completions.create(model="gpt-4o-mini", messages=ask("/scenario crlf"),
                                                     stream=True)
            text = "".join([ch.choices[0].delta.content or "" async for ch in stream if ch.choices])
            models = [m.id async for m in c.models.list()]
            with pytest.raises(openai.RateLimitError):
                await c.chat.completions.create(model="gpt-4o-mini", messages=ask("/scenario error status=429"))
            return completion.choices[0].message.content or "", text, models

    # In its own thread: Playwright's sync API may own this thread's event loop.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        content, streamed, models = pool.submit(asyncio.run, go()).result(60)
    assert content == replies.CHINESE
    assert streamed.startswith("Hello!")
    assert "gpt-4o" in models
