// Conversations, kept in this browser's localStorage: one key per conversation
// plus the id of the one that was open, so a reload brings everything back.

export type Role = "user" | "assistant";

export interface Message {
  id: string;
  role: Role;
  content: string;
  created: number;
  /** Assistant messages: the error that ended the reply, if any. */
  error?: string | null;
  /** The HTTP status that came with the error. */
  status?: number;
  /** The error was the relay refusing the access key. */
  keyRejected?: boolean;
  /** Assistant messages: the done frame's finish_reason. */
  finish?: string | null;
  /** Assistant messages: stopped by the user. */
  stopped?: boolean;
  /** Assistant messages: the model that wrote it. */
  model?: string;
}

export interface Conversation {
  id: string;
  title: string;
  /** True once the user renamed it: the title no longer follows the first message. */
  renamed?: boolean;
  system: string;
  model: string;
  messages: Message[];
  created: number;
  updated: number;
}

const PREFIX = "gptrelay:conversation:";
const CURRENT = "gptrelay:current";

export function newId(): string {
  const bytes = new Uint8Array(9);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(36).padStart(2, "0")).join("").slice(0, 12);
}

export function newConversation(model: string): Conversation {
  const now = Date.now();
  return { id: newId(), title: "", system: "", model, messages: [], created: now, updated: now };
}

export function newMessage(role: Role, content: string): Message {
  return { id: newId(), role, content, created: Date.now() };
}

/** A title from the first user message, for conversations the user has not named. */
export function autoTitle(conversation: Conversation): string {
  const first = conversation.messages.find((m) => m.role === "user");
  if (!first) return "";
  const line = first.content.replace(/\s+/g, " ").trim();
  return line.length > 48 ? `${line.slice(0, 47)}…` : line;
}

/** Loads every stored conversation, newest first. Entries that do not parse are skipped. */
export function loadAll(): Conversation[] {
  const all: Conversation[] = [];
  for (let index = 0; index < localStorage.length; index++) {
    const key = localStorage.key(index);
    if (!key?.startsWith(PREFIX)) continue;
    try {
      const value = normalize(JSON.parse(localStorage.getItem(key) ?? "null"));
      if (value) all.push(value);
    } catch {
      // A damaged entry: leave it for the user to inspect, do not crash the page.
    }
  }
  return all.sort((a, b) => b.updated - a.updated);
}

/** Saves a conversation. Returns false when the browser's storage is full. */
export function save(conversation: Conversation): boolean {
  try {
    localStorage.setItem(PREFIX + conversation.id, JSON.stringify(conversation));
    return true;
  } catch {
    return false;
  }
}

export function remove(id: string): void {
  localStorage.removeItem(PREFIX + id);
}

export function currentId(): string | null {
  return localStorage.getItem(CURRENT);
}

export function setCurrentId(id: string | null): void {
  if (id) localStorage.setItem(CURRENT, id);
  else localStorage.removeItem(CURRENT);
}

/** True for a storage key that holds a conversation (for the `storage` event). */
export function isConversationKey(key: string | null): boolean {
  return key === null || key.startsWith(PREFIX);
}

/** Checks and completes a conversation read from storage or from an imported file. */
export function normalize(value: unknown): Conversation | null {
  if (!isObject(value) || !Array.isArray(value.messages)) return null;
  const now = Date.now();
  const messages: Message[] = [];
  for (const item of value.messages) {
    if (!isObject(item)) continue;
    const role = item.role;
    if (role !== "user" && role !== "assistant") continue;
    const message: Message = {
      id: typeof item.id === "string" && item.id ? item.id : newId(),
      role,
      content: contentText(item.content),
      created: typeof item.created === "number" ? item.created : now,
    };
    if (typeof item.error === "string" || item.error === null) message.error = item.error;
    if (typeof item.status === "number") message.status = item.status;
    if (typeof item.keyRejected === "boolean") message.keyRejected = item.keyRejected;
    if (typeof item.finish === "string" || item.finish === null) message.finish = item.finish;
    if (typeof item.stopped === "boolean") message.stopped = item.stopped;
    if (typeof item.model === "string") message.model = item.model;
    messages.push(message);
  }
  // A system message in an OpenAI-style messages array becomes the system prompt.
  const systemMessage = value.messages.find((m) => isObject(m) && m.role === "system") as Record<string, unknown> | undefined;
  const conversation: Conversation = {
    id: typeof value.id === "string" && value.id ? value.id : newId(),
    title: typeof value.title === "string" ? value.title : "",
    system: typeof value.system === "string" ? value.system : systemMessage ? contentText(systemMessage.content) : "",
    model: typeof value.model === "string" ? value.model : "",
    messages,
    created: typeof value.created === "number" ? value.created : now,
    updated: typeof value.updated === "number" ? value.updated : now,
  };
  if (value.renamed === true) conversation.renamed = true;
  if (!conversation.title) conversation.title = autoTitle(conversation);
  return conversation;
}

function contentText(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content.map((part) => (isObject(part) && typeof part.text === "string" ? part.text : "")).join("");
  }
  return "";
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
