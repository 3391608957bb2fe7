"""The fake upstream's HTTP server: OpenAI's endpoints, with a request log."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from gptrelay.fake import chunks, replies
from gptrelay.fake.scenarios import Scenario, find_scenario, message_text

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "x-request-id": "req_fake",
    "openai-processing-ms": "12",
    "openai-organization": "org-fake",
    "x-ratelimit-limit-requests": "10000",
    "x-ratelimit-remaining-requests": "9999",
}


@dataclass
class Record:
    """One request as the fake upstream saw it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any = None
    body_size: int = 0
    sent: int = 0  # bytes of a streamed reply written so far
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    disconnected: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


class FakeUpstream:
    """A fake OpenAI API. ``pace_ms`` paces streamed pieces unless a scenario says otherwise.

    With ``api_key`` set, requests must carry ``Authorization: Bearer <api_key>``.

    Faults, for tests of several upstreams: ``scenario`` is played for every request,
    whatever it asks for (``"error status=503"``, ``"slow-headers seconds=5"``, ``"cut"``);
    ``key_scenarios`` plays one for the requests that carry a given key. ``error`` applies
    to every path, the others to chat completions. ``POST /_fake/scenario`` with
    ``{"scenario": …, "keys": {key: scenario}}`` changes them while it runs.
    """

    def __init__(self, *, pace_ms: float = 0.0, api_key: str | None = None, log: bool = True,
                 scenario: str | None = None, key_scenarios: dict[str, str] | None = None) -> None:
        self.pace_ms = pace_ms
        self.api_key = api_key
        self.keep_log = log
        self.log: list[Record] = []
        self.scenario = scenario
        self.key_scenarios = dict(key_scenarios or {})

    def forced(self, request: web.Request) -> str | None:
        """The scenario this fake plays for ``request`` whatever it asks for, if any."""
        if self.key_scenarios:
            key = presented_key(request)
            if key in self.key_scenarios:
                return self.key_scenarios[key]
        return self.scenario

    # -- the log ---------------------------------------------------------------

    def _record(self, request: web.Request, body: Any = None, size: int = 0) -> Record:
        record = Record(request.method, request.path, request.query_string,
                        {str(name): value for name, value in request.headers.items()}, body, size)
        if self.keep_log:
            self.log.append(record)
        return record

    def last(self, path: str = "/v1/chat/completions") -> Record:
        return [r for r in self.log if r.path == path][-1]

    # -- the app ---------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1024**3, middlewares=[self._auth])
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self.azure_chat_completions)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/v1/models/{model}", self.model)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_post("/v1/responses", self.responses)
        app.router.add_post("/v1/files", self.upload)
        app.router.add_get("/v1/files/{file_id}/content", self.download)
        app.router.add_post("/v1/audio/speech", self.speech)
        app.router.add_post("/v1/audio/transcriptions", self.transcription)
        app.router.add_route("*", "/v1/echo/{tail:.*}", self.echo)
        app.router.add_get("/_fake/log", self.show_log)
        app.router.add_post("/_fake/reset", self.reset)
        app.router.add_post("/_fake/scenario", self.set_scenario)
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/_fake"):
            return await handler(request)  # type: ignore[no-any-return]
        if self.api_key:
            presented = presented_key(request)
            if presented != self.api_key:
                self._record(request)
                # OpenAI's own wording, with the wrong key masked its way.
                shown = f"{presented[:8]}{'*' * max(len(presented) - 12, 0)}{presented[-4:]}"
                message = (f"Incorrect API key provided: {shown}. You can find your API key at "
                           "https://platform.openai.com/account/api-keys.")
                return web.json_response(chunks.error_body(401, message), status=401)
        forced = self.forced(request)
        if forced is not None and Scenario.parse(forced).name == "error":
            self._record(request)
            return scenario_error(Scenario.parse(forced))
        scenario = request.headers.get("x-fake-scenario")
        if scenario and request.path in ("/v1/models", "/v1/embeddings"):
            parsed = Scenario.parse(scenario)
            if parsed.name == "error":
                self._record(request)
                return scenario_error(parsed)
        try:
            result: web.StreamResponse = await handler(request)
        except BadBody as error:  # what OpenAI refuses with 400, never a 500 of the fake's own
            return error_response(400, str(error))
        return result

    async def show_log(self, request: web.Request) -> web.Response:
        return web.json_response([r.as_json() for r in self.log], dumps=lambda o: orjson.dumps(o).decode())

    async def reset(self, request: web.Request) -> web.Response:
        self.log.clear()
        return web.json_response({"ok": True})

    async def set_scenario(self, request: web.Request) -> web.Response:
        body = await request.json(loads=orjson.loads)
        self.scenario = body.get("scenario")
        self.key_scenarios = dict(body.get("keys") or {})
        return web.json_response({"ok": True})

    # -- chat completions --------------------------------------------------------

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json_object(raw)
        if not isinstance(body.get("messages"), list):
            raise BadBody("Missing required parameter: 'messages'.")
        record = self._record(request, body, len(raw))
        scenario, index = find_scenario(body, self.forced(request) or request.headers.get("x-fake-scenario"))
        model = str(body.get("model") or "gpt-4o-mini")
        name = scenario.name

        if name == "slow-headers":
            try:
                await asyncio.sleep(scenario.number("seconds", 3600))
            except asyncio.CancelledError:
                record.disconnected = time.monotonic()
                raise
        if name == "error":
            return scenario_error(scenario)
        if model == "no-such-model":
            return error_response(404)

        text_pieces, finish = self._reply(scenario, index, body)
        if not body.get("stream"):
            prompt = sum(len(message_text(m)) for m in body.get("messages") or [])
            reply = web.json_response(chunks.completion(model, "".join(text_pieces), finish, prompt),
                                      headers={"x-request-id": "req_fake"})
            if "gzip" in request.headers.get("Accept-Encoding", ""):
                reply.enable_compression(web.ContentCoding.gzip)  # as OpenAI's edge does for JSON
            return reply

        events = self._events(scenario, model, body, text_pieces, finish)
        response = web.StreamResponse(headers=SSE_HEADERS)
        try:
            await response.prepare(request)  # (the relay may have gone already)
            await self._write(request, response, scenario, events, record)
            record.finished = time.monotonic()
        except (asyncio.CancelledError, ConnectionError):
            record.disconnected = time.monotonic()
            raise
        return response

    async def azure_chat_completions(self, request: web.Request) -> web.StreamResponse:
        """Azure OpenAI's deployment URL: ``api-version`` is required, as on Azure."""
        if "api-version" not in request.query:
            self._record(request)
            return web.json_response({"error": {"code": "404", "message": "Resource not found"}}, status=404)
        return await self.chat_completions(request)

    def _reply(self, scenario: Scenario, index: int, body: dict[str, Any]) -> tuple[list[str], str]:
        name = scenario.name
        if name == "whitespace":
            return list(replies.WHITESPACE_PIECES), "stop"
        if name == "bench":
            return [], "stop"
        text = scenario.params.get("text") or replies.text_for(name, body)
        pieces = replies.pieces(text)
        if name == "length":
            return pieces[: scenario.integer("cut", 5)], "length"
        if name == "long":
            messages = body.get("messages") or []
            already = "".join(message_text(m) for m in messages[index + 1:]
                              if isinstance(m, dict) and m.get("role") == "assistant")
            rest = replies.pieces(text[len(already):]) if text.startswith(already) else pieces
            cut = scenario.integer("cut", 30)
            return rest[:cut], "length" if len(rest) > cut else "stop"
        return pieces, "stop"

    def _events(self, scenario: Scenario, model: str, body: dict[str, Any],
                text_pieces: list[str], finish: str) -> list[bytes]:
        name = scenario.name
        options = body.get("stream_options")
        # As OpenAI: the usage chunk (and "usage": null in every other chunk) only when asked for.
        usage = isinstance(options, dict) and bool(options.get("include_usage"))
        if name == "bench":
            return list(chunks.bench_events(model, scenario.integer("chunks", 50),
                                            scenario.integer("size", 8), usage))
        writer = chunks.ChunkWriter(model, usage=usage)
        events: list[bytes] = []
        if name == "empty-choices":
            events.append(writer.prompt_filter())
        events.append(writer.role())
        if name == "tool-calls":
            events.append(writer.chunk({"tool_calls": [{"index": 0, "id": "call_fake", "type": "function",
                                                        "function": {"name": "get_weather", "arguments": ""}}]}))
            for part in ['{"city"', ': "Paris"', "}"]:
                events.append(writer.chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}))
            finish = "tool_calls"
        else:
            cut = scenario.integer("cut", 3)
            for n, piece in enumerate(text_pieces):
                if name in ("error-in-stream", "cut", "stall") and n == cut:
                    break
                events.append(writer.content(piece))
        if name == "error-in-stream":
            events.append(chunks.event(chunks.error_body(500)))
            return events
        if name == "cut":
            return events
        events.append(writer.finish(finish))
        if usage:
            events.append(writer.usage_chunk(7, len(text_pieces)))
        events.append(chunks.DONE)
        return events

    async def _write(self, request: web.Request, response: web.StreamResponse,
                     scenario: Scenario, events: list[bytes], record: Record) -> None:
        name = scenario.name
        interval = scenario.number("interval_ms", self.pace_ms if name != "bench" else 0) / 1000
        if name == "slow-first":
            await asyncio.sleep(scenario.number("seconds", 20))
        if name == "crlf":
            events = [e.replace(b"\n", b"\r\n") for e in events]
        if name == "comments":
            events = [b": keep-alive\n\n" + e if n % 2 else e for n, e in enumerate(events)]
            events.insert(0, b": OPENROUTER PROCESSING\n\n")
        if name in ("split-utf8", "split-events"):
            await self._write_slices(response, b"".join(events), name == "split-utf8", scenario)
        elif name == "coalesced":
            await response.write(b"".join(events))
        else:
            for n, data in enumerate(events):
                if name == "stall" and n == scenario.integer("cut", 3) + 1:
                    await asyncio.sleep(scenario.number("seconds", 3600))
                await response.write(data)
                record.sent += len(data)
                if interval:
                    await asyncio.sleep(interval)
        if name == "cut":
            # Drop the connection without the chunked terminator: a stream cut off.
            assert request.transport is not None
            request.transport.close()
            return
        await response.write_eof()

    async def _write_slices(self, response: web.StreamResponse, data: bytes, tiny: bool,
                            scenario: Scenario) -> None:
        rng = random.Random(scenario.integer("seed", 7))
        position = 0
        while position < len(data):
            size = rng.randint(1, 3) if tiny else rng.randint(1, 40)
            await response.write(data[position:position + size])
            position += size
            await asyncio.sleep(0.001)

    # -- the rest of the API -----------------------------------------------------

    async def models(self, request: web.Request) -> web.Response:
        self._record(request)
        ids = ["gpt-4o-mini", "gpt-4o", "gpt-4.1", "o4-mini"]
        return web.json_response({"object": "list", "data": [
            {"id": i, "object": "model", "created": chunks.CREATED, "owned_by": "openai"} for i in ids]})

    async def model(self, request: web.Request) -> web.Response:
        self._record(request)
        model = request.match_info["model"]
        if model == "no-such-model":
            return error_response(404)
        return web.json_response({"id": model, "object": "model", "created": chunks.CREATED,
                                  "owned_by": "openai"})

    async def embeddings(self, request: web.Request) -> web.Response:
        body = json_object(await request.read())
        self._record(request, body)
        inputs = body.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        return web.json_response({"object": "list", "model": body.get("model"), "data": [
            {"object": "embedding", "index": n, "embedding": [0.1 * (n + 1), 0.2, -0.3]}
            for n, _ in enumerate(items)], "usage": {"prompt_tokens": 3, "total_tokens": 3}})

    async def responses(self, request: web.Request) -> web.StreamResponse:
        body = json_object(await request.read())
        self._record(request, body)
        model = str(body.get("model") or "gpt-4o-mini")
        text_pieces = replies.pieces("Hello from the Responses API.")
        if not body.get("stream"):
            text = "".join(text_pieces)
            return web.json_response({
                "id": "resp_fake", "object": "response", "created_at": chunks.CREATED, "model": model,
                "status": "completed", "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
                "output": [{"id": "msg_fake", "type": "message", "role": "assistant", "status": "completed",
                            "content": [{"type": "output_text", "text": text, "annotations": []}]}]})
        response = web.StreamResponse(headers=SSE_HEADERS)
        await response.prepare(request)
        await write_all(response, chunks.responses_events(model, text_pieces))
        await response.write_eof()
        return response

    async def upload(self, request: web.Request) -> web.Response:
        """A multipart upload, read as a stream and hashed."""
        record = self._record(request)
        multipart_body(request)
        reader = await request.multipart()
        digest, size, filename, purpose = hashlib.sha256(), 0, "", ""
        async for part in reader:
            if part.name == "file":  # type: ignore[union-attr]
                filename = part.filename or ""  # type: ignore[union-attr]
                while chunk := await part.read_chunk(65536):  # type: ignore[union-attr]
                    digest.update(chunk)
                    size += len(chunk)
            elif part.name == "purpose":  # type: ignore[union-attr]
                purpose = (await part.text())  # type: ignore[union-attr]
        record.body_size = size
        return web.json_response({"id": "file-fake", "object": "file", "bytes": size,
                                  "created_at": chunks.CREATED, "filename": filename,
                                  "purpose": purpose, "sha256": digest.hexdigest()})

    async def download(self, request: web.Request) -> web.StreamResponse:
        """``size`` bytes of a repeating pattern, streamed in 64 KiB pieces."""
        self._record(request)
        size = int(request.query.get("size", "1048576"))
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream",
                                               "Content-Length": str(size)})
        await response.prepare(request)
        block = bytes(range(256)) * 256
        sent = 0
        while sent < size:
            piece = block[: min(len(block), size - sent)]
            await response.write(piece)
            sent += len(piece)
        await response.write_eof()
        return response

    async def speech(self, request: web.Request) -> web.Response:
        body = json_object(await request.read())
        self._record(request, body)
        audio = b"ID3\x04\x00" + bytes(range(256)) * 16
        return web.Response(body=audio, content_type="audio/mpeg")

    async def transcription(self, request: web.Request) -> web.Response:
        record = self._record(request)
        multipart_body(request)
        form = await request.post()
        upload = form.get("file")
        size = len(upload.file.read()) if isinstance(upload, web.FileField) else 0
        record.body_size = size
        return web.json_response({"text": f"fake transcription of {size} bytes"})

    async def echo(self, request: web.Request) -> web.Response:
        """Says back what arrived: method, path, query, headers, body size and hash (read as a stream)."""
        record = self._record(request)
        digest, size = hashlib.sha256(), 0
        async for chunk in request.content.iter_any():
            digest.update(chunk)
            size += len(chunk)
        record.body_size = size
        response = web.json_response({"method": request.method, "path": request.path,
                                      "query": request.raw_path.partition("?")[2], "raw_path": request.raw_path,
                                      "headers": dict(request.headers),
                                      "body_size": size, "body_sha256": digest.hexdigest()})
        # As Cloudflare in front of the real API sets its own: a client that keeps cookies
        # would send this back on its next request.
        response.set_cookie("__cf_bm", "fake-bot-management", path="/", httponly=True)
        return response


class BadBody(Exception):
    """A request body OpenAI would refuse with 400 (its message)."""


def json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadBody("We could not parse the JSON body of your request.") from None
    if not isinstance(body, dict):
        raise BadBody("Invalid type for the request body: expected an object.")
    return body


def multipart_body(request: web.Request) -> None:
    if not request.content_type.startswith("multipart/"):
        raise BadBody("Invalid Content-Type header, expected multipart/form-data.")


def error_response(status: int, message: str | None = None, code: str | None = None,
                   retry_after: str | None = "20") -> web.Response:
    headers = {"x-request-id": "req_fake_error"}
    if status == 429 and retry_after is not None:
        headers["retry-after"] = retry_after
    body = chunks.error_body(status, message)
    if code is not None:
        body["error"]["code"] = body["error"]["type"] = code
    return web.json_response(body, status=status, headers=headers)


def scenario_error(scenario: Scenario) -> web.Response:
    """``error status= text= code= retry_after=`` (``retry_after=none``: no Retry-After on a 429)."""
    retry_after = scenario.params.get("retry_after", "20")
    return error_response(scenario.integer("status", 500), scenario.params.get("text"), scenario.params.get("code"),
                          None if retry_after == "none" else retry_after)


def presented_key(request: web.Request) -> str:
    """The key a request carries: OpenAI's bearer token, or Azure's ``api-key``."""
    bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
    return bearer or request.headers.get("api-key", "")


async def write_all(response: web.StreamResponse, events: Iterable[bytes]) -> None:
    for data in events:
        await response.write(data)


def create_fake_app(**options: Any) -> web.Application:
    return FakeUpstream(**options).app()
