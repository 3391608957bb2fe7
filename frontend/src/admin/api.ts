// The relay's admin JSON API (/admin/api/…), with the admin key as a bearer token.

export interface KeyObject {
  name: string;
  created_at: string;
  expires_at: string | null;
  revoked: boolean;
  revoked_at: string | null;
  rpm: number | null;
  tpm: number | null;
  daily_tokens: number | null;
  monthly_tokens: number | null;
  models: string[];
  origins: string[];
}

export interface CreatedKey extends KeyObject {
  /** The secret, shown only this once. */
  key: string;
}

export const LIMITS = ["rpm", "tpm", "daily_tokens", "monthly_tokens"] as const;
export type Limit = (typeof LIMITS)[number];

export interface KeyChanges {
  rpm?: number | null;
  tpm?: number | null;
  daily_tokens?: number | null;
  monthly_tokens?: number | null;
  models?: string[];
  origins?: string[];
  expires_at?: string | null;
  ttl_seconds?: number | null;
}

export interface UsageTotals {
  requests: number;
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface UsageRow extends UsageTotals {
  key?: string | null;
  model?: string | null;
  day?: string;
}

export type UsageBy = "key" | "model" | "day";

export interface UsageQuery {
  by: UsageBy;
  /** One key's usage, by its name. */
  key?: string;
  /** The owner key's (AUTHORIZATION_KEY's) usage alone: its records have no key name. */
  owner?: boolean;
  since?: string;
  until?: string;
}

/** A failed call: `status` 0 when the relay could not be reached; `message` is the API's own (in English),
 * `code` its envelope's (`conflict`, `not_found`, `invalid_api_key`, …) when it sent one. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** Where the admin API is: next to the page (/admin), so a path prefix (a proxy's) still works. */
export function apiBase(pathname = location.pathname): string {
  const prefix = pathname.replace(/\/admin\/?$/, "/");
  return `${prefix.endsWith("/") ? prefix : "/"}admin/api/`;
}

export class AdminApi {
  /** Called with every 401 (after the one a sign-in check answers). */
  onUnauthorized: (error: ApiError) => void = () => {};

  constructor(
    private key: string,
    private readonly base = apiBase(),
  ) {}

  setKey(key: string): void {
    this.key = key;
  }

  listKeys(): Promise<KeyObject[]> {
    return this.call<{ data: KeyObject[] }>("GET", "keys").then((body) => body.data);
  }

  createKey(name: string, fields: KeyChanges): Promise<CreatedKey> {
    return this.call<CreatedKey>("POST", "keys", { name, ...fields });
  }

  updateKey(name: string, changes: KeyChanges): Promise<KeyObject> {
    return this.call<KeyObject>("PATCH", `keys/${encodeURIComponent(name)}`, changes);
  }

  async revokeKey(name: string): Promise<void> {
    await this.call<null>("DELETE", `keys/${encodeURIComponent(name)}`);
  }

  usage(query: UsageQuery): Promise<UsageRow[]> {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) if (value) params.set(name, String(value));
    return this.call<{ data: UsageRow[] }>("GET", `usage?${params}`).then((body) => body.data);
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { Authorization: `Bearer ${this.key}`, Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response: Response;
    try {
      response = await fetch(this.base + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
        credentials: "omit",
      });
    } catch (error) {
      throw new ApiError(0, error instanceof Error ? error.message : String(error));
    }
    if (response.status === 204) return null as T;
    let data: unknown = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) {
      const sent = envelope(data);
      const message = sent.message ?? `HTTP ${response.status} ${response.statusText}`.trim();
      const error = new ApiError(response.status, message, sent.code);
      if (response.status === 401) this.onUnauthorized(error);
      throw error;
    }
    return data as T;
  }
}

/** OpenAI's error envelope, `{"error": {"message", "type", "code"}}`: its message and code, if there. */
function envelope(body: unknown): { message: string | null; code: string | null } {
  const error = typeof body === "object" && body !== null && "error" in body ? body.error : null;
  if (typeof error !== "object" || error === null) return { message: null, code: null };
  const message = "message" in error && typeof error.message === "string" && error.message ? error.message : null;
  const code = "code" in error && typeof error.code === "string" ? error.code : null;
  return { message, code };
}
