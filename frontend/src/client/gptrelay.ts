/**
 * gptrelay's browser client: stream a reply from a relay's `POST /chat`.
 *
 * A standalone ES module with no imports, served by the relay at
 * `/static/gptrelay.js`, so pages on other sites (a user script, say) can use it:
 *
 *     import { streamChat } from "https://relay.example/static/gptrelay.js";
 *
 *     const reply = await streamChat({
 *       key: "your-access-key",
 *       messages: [{ role: "user", content: "Hello" }],
 *       onContent: (piece, text) => { output.textContent = text; },
 *     });
 *     console.log(reply.text, reply.finishReason);
 *
 * `/chat` answers with one JSON object per line (NDJSON):
 *
 *     {"done":false,"error":false,"content":"Hel"}
 *     {"done":false,"error":true,"content":"a message"}          (an error)
 *     {"done":true,"error":false,"content":"[DONE]","finish_reason":"stop"}
 *
 * Network reads do not respect line boundaries, and a multi-byte UTF-8
 * character may be split across two reads: the decoder below buffers partial
 * lines and decodes UTF-8 in streaming mode.
 */

/** One chat message, as the OpenAI API takes it. */
export interface ChatMessage {
  role: string;
  content: unknown;
  [key: string]: unknown;
}

/** One line of a `/chat` stream. Frames may carry more keys (`usage`, …). */
export interface Frame {
  done: boolean;
  error: boolean;
  content: string;
  finish_reason?: string | null;
  [key: string]: unknown;
}

/** What `streamChat` resolves to. It never rejects for network, HTTP or stream errors. */
export interface ChatReply {
  /** The whole reply: every content piece, continuations joined. */
  text: string;
  /** The done frame's `finish_reason` (of the last round), or null. */
  finishReason: string | null;
  /** The error message, when an error frame arrived or the request failed. */
  error: string | null;
  /** The HTTP status of the last request; 0 when the relay could not be reached. */
  status: number;
  /** True when the `signal` stopped the request. */
  aborted: boolean;
  /** How many requests were made: 1 plus the continuations. */
  rounds: number;
}

export interface StreamChatOptions {
  /** The conversation so far. */
  messages: ChatMessage[];
  /** The model; the relay uses its default model when omitted. */
  model?: string;
  /** Any other Chat Completions parameters: `temperature`, `max_tokens`, … */
  params?: Record<string, unknown>;
  /** The relay's `/chat` URL. Default: `/chat` on the relay that served this module. */
  url?: string | URL;
  /** The access key, sent as `Authorization: Bearer <key>`. */
  key?: string;
  /** Extra request headers. */
  headers?: Record<string, string>;
  /** Stops the request (the relay then cancels its upstream call). */
  signal?: AbortSignal;
  /** How many times to continue a reply cut off with `finish_reason: "length"`. Default 0. */
  continueRounds?: number;
  /** The user message that asks for a continuation. */
  continuePrompt?: string;
  /** `fetch`'s credentials mode. Default `"same-origin"`. */
  credentials?: RequestCredentials;
  /** Each non-empty content piece, and the reply so far. */
  onContent?: (piece: string, text: string) => void;
  /** Each error: an error frame's message, an HTTP failure, a broken stream. */
  onError?: (message: string, status: number) => void;
  /** Once, at the end: the finish reason (null when unknown, aborted or failed). */
  onFinish?: (finishReason: string | null, reply: ChatReply) => void;
  /** Before each continuation request; `round` counts from 1. */
  onContinue?: (round: number, text: string) => void;
  /** Every frame as it arrives, keep-alive frames included. */
  onFrame?: (frame: Frame) => void;
  /** A `fetch` to use instead of the global one. */
  fetch?: typeof fetch;
}

export const DEFAULT_CONTINUE_PROMPT =
  "Continue exactly where your last message stopped, without repeating anything and without any preamble.";

/**
 * Turns the bytes of an NDJSON stream into frames.
 *
 * `push` takes each network read and returns the complete lines it finished;
 * `flush` returns the last line when the stream ends without a newline.
 */
export class FrameDecoder {
  private readonly decoder = new TextDecoder("utf-8");
  private buffer = "";

  push(chunk: Uint8Array): Frame[] {
    this.buffer += this.decoder.decode(chunk, { stream: true });
    return this.take(false);
  }

  flush(): Frame[] {
    this.buffer += this.decoder.decode();
    return this.take(true);
  }

  private take(final: boolean): Frame[] {
    const frames: Frame[] = [];
    let start = 0;
    for (;;) {
      const end = this.buffer.indexOf("\n", start);
      if (end === -1) break;
      pushFrame(frames, this.buffer.slice(start, end));
      start = end + 1;
    }
    this.buffer = this.buffer.slice(start);
    if (final && this.buffer) {
      pushFrame(frames, this.buffer);
      this.buffer = "";
    }
    return frames;
  }
}

function pushFrame(frames: Frame[], line: string): void {
  const text = line.trim(); // also drops a "\r" before the "\n"
  if (text) frames.push(parseFrame(text));
}

/** One line as a frame. Lines that are not frames become error frames, never exceptions. */
export function parseFrame(line: string): Frame {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { done: false, error: true, content: `Unexpected line in the stream: ${line.slice(0, 120)}` };
  }
  if (isObject(value)) {
    if (typeof value.content === "string" || value.done === true) {
      const content = typeof value.content === "string" ? value.content : "";
      return { ...value, done: value.done === true, error: value.error === true, content };
    }
    // An OpenAI-style error body, from a proxy in front of the relay perhaps.
    const error = value.error;
    if (isObject(error) && typeof error.message === "string") {
      return { done: false, error: true, content: error.message };
    }
  }
  return { done: false, error: true, content: `Unexpected line in the stream: ${line.slice(0, 120)}` };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** `/chat` on the relay that served this module (`…/static/gptrelay.js` → `…/chat`). */
function defaultUrl(): string {
  const here = new URL(import.meta.url);
  const at = here.pathname.lastIndexOf("/static/");
  here.pathname = (at >= 0 ? here.pathname.slice(0, at) : "") + "/chat";
  here.search = "";
  here.hash = "";
  return here.href;
}

function authorization(key: string): string {
  return /^bearer\s/i.test(key) ? key : `Bearer ${key}`;
}

/**
 * Streams a `/chat` reply, reporting pieces, errors and the finish reason as they come.
 *
 * Resolves with the whole reply; continues replies cut off by length up to
 * `continueRounds` times, joining the pieces into one text. Only exceptions
 * thrown by your own callbacks make it reject.
 */
export async function streamChat(options: StreamChatOptions): Promise<ChatReply> {
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  const url = options.url === undefined ? defaultUrl() : String(options.url);
  const headers: Record<string, string> = {
    "Content-Type": "application/json",
    Accept: "application/x-ndjson",
    ...options.headers,
  };
  if (options.key) headers.Authorization = authorization(options.key);
  const maxContinues = Math.max(0, options.continueRounds ?? 0);
  const signal = options.signal;
  const reply: ChatReply = { text: "", finishReason: null, error: null, status: 0, aborted: false, rounds: 0 };

  const fail = (message: string): void => {
    reply.error = reply.error ? `${reply.error}\n${message}` : message;
    options.onError?.(message, reply.status);
  };

  for (;;) {
    reply.rounds += 1;
    reply.finishReason = null;
    const messages = reply.rounds === 1 ? options.messages : [
      ...options.messages,
      { role: "assistant", content: reply.text },
      { role: "user", content: options.continuePrompt ?? DEFAULT_CONTINUE_PROMPT },
    ];
    const body: Record<string, unknown> = { ...options.params, messages };
    if (options.model) body.model = options.model;

    let response: Response;
    try {
      response = await doFetch(url, {
        method: "POST",
        headers,
        body: JSON.stringify(body),
        signal,
        credentials: options.credentials ?? "same-origin",
        cache: "no-store",
      });
    } catch (error) {
      if (signal?.aborted) reply.aborted = true;
      else fail(`Could not reach the relay at ${url}: ${describe(error)}`);
      break;
    }
    reply.status = response.status;
    const type = response.headers.get("Content-Type") ?? "";
    if (!response.body || (!response.ok && !/json/i.test(type))) {
      const detail = await response.text().catch(() => "");
      fail(`HTTP ${response.status} ${response.statusText}${detail ? `: ${detail.slice(0, 200)}` : ""}`.trim());
      break;
    }

    const outcome = await readFrames(response.body, options, reply, fail);
    if (outcome === "aborted") {
      reply.aborted = true;
      break;
    }
    if (outcome === "broken" && !reply.error) {
      fail("The connection closed before the reply was complete.");
    }
    if (!response.ok && !reply.error) fail(`HTTP ${response.status} ${response.statusText}`.trim());
    if (reply.error || reply.finishReason !== "length" || reply.rounds > maxContinues) break;
    options.onContinue?.(reply.rounds, reply.text);
  }
  options.onFinish?.(reply.aborted ? null : reply.finishReason, reply);
  return reply;
}

type Outcome = "done" | "broken" | "aborted";

async function readFrames(
  stream: ReadableStream<Uint8Array>,
  options: StreamChatOptions,
  reply: ChatReply,
  fail: (message: string) => void,
): Promise<Outcome> {
  const reader = stream.getReader();
  const decoder = new FrameDecoder();
  let done = false;
  let finished = false;
  try {
    for (;;) {
      let read: ReadableStreamReadResult<Uint8Array>;
      try {
        read = await reader.read();
      } catch (error) {
        if (options.signal?.aborted) return "aborted";
        if (!done) fail(`The stream broke off: ${describe(error)}`);
        return done ? "done" : "broken";
      }
      const frames = read.done ? decoder.flush() : decoder.push(read.value);
      for (const frame of frames) {
        if (done) continue; // nothing counts after the done frame
        options.onFrame?.(frame);
        if (frame.done) {
          done = true;
          reply.finishReason = typeof frame.finish_reason === "string" ? frame.finish_reason : null;
        } else if (frame.error) {
          fail(frame.content || "Unknown error");
        } else if (frame.content) {
          reply.text += frame.content;
          options.onContent?.(frame.content, reply.text);
        }
      }
      if (read.done) {
        finished = true;
        return done ? "done" : "broken";
      }
    }
  } finally {
    // Reached when a callback threw or the read failed: close the connection.
    if (!finished) reader.cancel().catch(() => undefined);
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
