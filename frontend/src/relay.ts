// What the page asks the relay for besides /chat: the model list (which also
// tells whether the access key is accepted).

export type ModelsResult =
  | { ok: true; models: string[] }
  | { ok: false; status: number; message: string; keyRejected: boolean };

/**
 * True when the relay itself refused the access key, as opposed to the upstream
 * refusing the relay's own API key (which the relay passes on as a 401 too).
 * The relay says `WWW-Authenticate: Bearer realm="gptrelay"` or names the access key.
 */
export function accessKeyRejected(status: number, message: string, challenge = ""): boolean {
  return (status === 401 || status === 403) && (/gptrelay/i.test(challenge) || /access key/i.test(message));
}

/** URLs relative to the page, so a relay behind a path prefix still works. */
export function relayUrl(path: string): string {
  return new URL(path, document.baseURI).href;
}

export function authHeaders(key: string): Record<string, string> {
  return key ? { Authorization: /^bearer\s/i.test(key) ? key : `Bearer ${key}` } : {};
}

// Models that cannot chat; hidden from the picker.
const NOT_CHAT = /embedding|tts|whisper|dall-e|davinci|babbage|moderation|transcribe|realtime|image|audio/i;

export async function fetchModels(key: string): Promise<ModelsResult> {
  let response: Response;
  try {
    response = await fetch(relayUrl("v1/models"), { headers: authHeaders(key), cache: "no-store" });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return { ok: false, status: 0, message, keyRejected: false };
  }
  let body: unknown = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const message = errorMessage(body) ?? `HTTP ${response.status}`;
    const keyRejected = accessKeyRejected(response.status, message, response.headers.get("WWW-Authenticate") ?? "");
    return { ok: false, status: response.status, message, keyRejected };
  }
  const data = isObject(body) && Array.isArray(body.data) ? body.data : [];
  const models = data
    .map((item) => (isObject(item) && typeof item.id === "string" ? item.id : ""))
    .filter((id) => id && !NOT_CHAT.test(id))
    .sort((a, b) => a.localeCompare(b));
  return { ok: true, models };
}

function errorMessage(body: unknown): string | null {
  if (isObject(body) && isObject(body.error) && typeof body.error.message === "string") return body.error.message;
  if (isObject(body) && typeof body.content === "string") return body.content;
  return null;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
