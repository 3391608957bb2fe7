"""Browser code that users already run, in Chromium, against the relay:

- the README's `streamChat` example, through a proxy that trickles the reply
  two bytes at a time (frames and UTF-8 characters cut across reads);
- the two seed documents' clients, as written: they parse every network read
  on its own, so each frame or event must reach them whole. (No server can
  promise that when a burst outruns the browser's reads, so these replies are
  paced like a real model's, 10 ms a piece.)

Each page is served from another origin than the relay's, so CORS is real.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import ClientSession, web

from gptrelay.fake import replies
from tests.conftest import LoopThread, RunningRelay
from tests.readme import examples, localise

Relay = Callable[..., RunningRelay]


@pytest.fixture
def page_host(loop_thread: LoopThread) -> Callable[[str], str]:
    """Serves one HTML page at / on its own port (its own origin); returns its URL."""
    runners: list[web.AppRunner] = []

    def host(html: str) -> str:
        app = web.Application()

        async def index(request: web.Request) -> web.Response:
            return web.Response(text=html, content_type="text/html")

        app.router.add_get("/", index)
        runner, port = loop_thread.serve_app(app)
        runners.append(runner)
        return f"http://127.0.0.1:{port}/"

    yield host  # type: ignore[misc]
    for runner in runners:
        loop_thread.run(runner.cleanup())


@pytest.fixture
def trickle(loop_thread: LoopThread) -> Callable[[str], str]:
    """A proxy in front of a relay that passes replies on two bytes at a time."""
    runners: list[web.AppRunner] = []

    def start(target: str) -> str:
        app = web.Application()

        async def forward(request: web.Request) -> web.StreamResponse:
            headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
            async with ClientSession() as session, session.request(
                    request.method, f"{target}{request.path}", headers=headers, data=await request.read()) as up:
                skip = ("content-length", "transfer-encoding", "connection")
                response = web.StreamResponse(status=up.status, headers={
                    k: v for k, v in up.headers.items() if k.lower() not in skip})
                await response.prepare(request)
                async for chunk in up.content.iter_any():
                    for i in range(0, len(chunk), 2):
                        await response.write(chunk[i:i + 2])
                        await asyncio.sleep(0.002)
                await response.write_eof()
                return response

        app.router.add_route("*", "/{tail:.*}", forward)
        runner, port = loop_thread.serve_app(app)
        runners.append(runner)
        return f"http://127.0.0.1:{port}"

    yield start  # type: ignore[misc]
    for runner in runners:
        loop_thread.run(runner.cleanup())


def test_readme_example_on_a_slow_network(relay: Relay, trickle: Callable[[str], str],
                                          page_host: Callable[[str], str], new_context: Any) -> None:
    r = relay()
    code = localise(examples()["browser-chat"], trickle(r.url), r.key)
    code = code.replace('content: "你好"', 'content: "/scenario chinese"')
    page = new_context().new_page()
    page.goto(page_host("<!doctype html><meta charset=utf-8><body></body>"))
    page.add_script_tag(content=f"window.done = (async () => {{ {code} ; return reply; }})();")
    assert page.evaluate("window.done") == replies.CHINESE
    assert page.evaluate("document.body.textContent") == replies.CHINESE


def test_readme_example_reports_errors(relay: Relay, page_host: Callable[[str], str], new_context: Any) -> None:
    r = relay()
    code = localise(examples()["browser-chat"], r.url, "wrong-key")
    page = new_context().new_page()
    page.goto(page_host("<!doctype html><meta charset=utf-8><body></body>"))
    page.add_script_tag(content=f"window.done = (async () => {{ {code} }})().catch(e => 'error: ' + e.message);")
    assert page.evaluate("window.done") == "error: wrong access key"


def test_readme_module_example(relay: Relay, page_host: Callable[[str], str], new_context: Any) -> None:
    r = relay()
    html = localise(examples()["browser-module"], r.url, r.key).replace('content: "你好"',
                                                                       'content: "/scenario chinese"')
    page = new_context().new_page()
    page.goto(page_host(f"<!doctype html><meta charset=utf-8>{html}"))
    page.wait_for_function(f"document.querySelector('#output').textContent === {replies.CHINESE!r}")


SEED_CHAT = """<!doctype html><meta charset=utf-8><body></body><script>
/* The seed README's client (000_843069257c48463d.txt), its TypeScript types removed. */
let messages = [];
window.finished = chat("/scenario chinese");
async function chat(content) {
  const user_message = { role: "user", content: content };
  const assistant_message = { role: "assistant", content: "" };
  messages.push(user_message);
  await streamChat(messages, ({ done, error, content }) => {
    if (done) {
    } else if (error) {
      console.error(content);
      assistant_message.content = content;
    } else {
      assistant_message.content = assistant_message.content + content;
    }
    document.querySelector("body").innerText = assistant_message.content;
  });
  messages.push(assistant_message);
}
async function streamChat(messages, callback) {
  const res = await fetch("RELAY/chat", {
    headers: { "Content-Type": "application/json" },
    method: "POST",
    mode: "cors",
    credentials: "include",
    body: JSON.stringify({ messages: messages }),
  });
  const decoder = new TextDecoder();
  const reader = res.body?.getReader();
  if (reader) {
    let done = false;
    while (!done) {
      const chunk = await reader.read();
      done = chunk.done;
      if (!done) {
        const data = decoder.decode(chunk.value);
        for (const line of data.split("\\n").filter((line) => line.trim() !== "")) {
          callback(JSON.parse(line.trim()));
        }
      }
    }
    console.log("chat done");
  } else {
    console.error("reader is undefined");
  }
}
</script>"""


@pytest.mark.parametrize("scenario", ["chinese", "split-utf8"])
def test_seed_readme_client(relay: Relay, page_host: Callable[[str], str], new_context: Any,
                            scenario: str) -> None:
    r = relay(authorization_key=None)  # the seed sends no key: a loopback relay without one
    page = new_context().new_page()
    prompt = f"/scenario {scenario} interval_ms=10"
    page.goto(page_host(SEED_CHAT.replace("RELAY", r.url).replace("/scenario chinese", prompt)))
    page.evaluate("window.finished")
    assert page.evaluate("document.body.innerText") == replies.CHINESE


SEED_BLOG = """<!DOCTYPE html>
<html>
<head>
  <meta charset="UTF-8">
  <title>ChatGPT Streaming Demo</title>
  <script>window.marked = { parse: (text) => text };  /* stands in for marked.js from a CDN */</script>
  <script type="module">
    window.onload = async () => {
      const url = "RELAY/chatgpt";
      const jsonBody = {
        messages: [
          {
            role: 'user',
            content: 'PROMPT'
          }
        ]
      };

      const outputDiv = document.getElementById("output");
      let result = "";

      const answer = async (isContinue) => {
        const res = await fetch(url, {
          method: "POST",
          body: JSON.stringify(jsonBody),
          headers: {
            "Content-Type": "application/json"
          }
        })
        // Create a reader for the response body
        const reader = res.body.getReader();
        // Create a decoder for UTF-8 encoded text
        const decoder = new TextDecoder("utf-8");
        let render = 0
        // Function to read chunks of the response body
        const readChunk = async () => {
          return reader.read().then(({ value, done }) => {
            if (!done) {
              const dataString = decoder.decode(value);
              console.log(dataString)
              dataString.toString().trim().split("data: ").forEach(async (line) => {
                if (line != '') {
                  const text = line.replace("data: ", "")
                  try {
                    // Parse the chunk as a JSON object
                    const data = JSON.parse(text)
                    console.log(data.choices[0])
                    if (data.choices[0].delta.content) {
                      result += data.choices[0].delta.content
                      if (render++ > 5) {
                        outputDiv.innerHTML += data.choices[0].delta.content
                        render = 0
                      } else {
                        outputDiv.innerHTML = marked.parse(result + data.choices[0].delta.content)
                      }
                    }
                    if (data.choices[0].finish_reason === 'length') { // 支持长回复
                      await answer(true)
                    } else if (data.choices[0].finish_reason === 'stop') {
                      outputDiv.innerHTML = marked.parse(result);
                      jsonBody.result = result
                      return
                    }
                    return readChunk();
                  } catch (error) {
                    // End the stream but do not send the error, as this is likely the DONE message from createCompletion
                    // console.error(error)
                    console.log(text)
                    if (text.trim() === '[DONE]') {
                      outputDiv.innerHTML = marked.parse(result);
                      jsonBody.result = result
                      return
                    }
                  }
                }
              })
            } else {
              console.log("done");
            }
          });
        };

        await readChunk();
      }

      await answer()
    }
  </script>
</head>

<body>
  <div id="output"></div>
</body>

</html>"""


@pytest.mark.parametrize("scenario", ["chinese", "split-events", "split-utf8"])
def test_seed_blog_page(relay: Relay, page_host: Callable[[str], str], new_context: Any,
                        scenario: str) -> None:
    r = relay(authorization_key=None)
    prompt = f"/scenario {scenario} interval_ms=10"
    html = SEED_BLOG.replace("RELAY", r.url).replace("PROMPT", prompt)
    page = new_context().new_page()
    page.goto(page_host(html))
    expected = replies.text_for(scenario, {"messages": [{"role": "user", "content": prompt}]})
    page.wait_for_function(f"document.getElementById('output').textContent === {expected!r}")
