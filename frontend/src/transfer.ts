// Export and import of conversations: JSON (exact) and Markdown (readable,
// with comment markers so it imports back to the same messages).

import { type Conversation, newId, normalize, type Role } from "./store";

const FORMAT_ONE = "gptrelay.conversation";
const FORMAT_ALL = "gptrelay.conversations";

export function toJson(conversation: Conversation): string {
  return JSON.stringify({ format: FORMAT_ONE, version: 1, conversation }, null, 2) + "\n";
}

export function allToJson(conversations: Conversation[]): string {
  return JSON.stringify({ format: FORMAT_ALL, version: 1, conversations }, null, 2) + "\n";
}

const HEADINGS: Record<Role | "system", string> = { system: "System", user: "You", assistant: "Assistant" };
const MARKER = /^<!-- gptrelay:(system|user|assistant) -->$/;

export function toMarkdown(conversation: Conversation): string {
  const meta = { format: FORMAT_ONE, version: 1, model: conversation.model, created: conversation.created };
  const parts = [
    `# ${conversation.title.replace(/\n/g, " ") || "Conversation"}`,
    "",
    `<!-- gptrelay ${JSON.stringify(meta).replace(/--/g, "\\u002d\\u002d")} -->`,
  ];
  const section = (role: Role | "system", content: string): void => {
    parts.push("", `## ${HEADINGS[role]}`, `<!-- gptrelay:${role} -->`, content);
  };
  if (conversation.system) section("system", conversation.system);
  for (const message of conversation.messages) section(message.role, message.content);
  return parts.join("\n") + "\n";
}

/** Reads a file exported by this page (JSON or Markdown), or an OpenAI-style `{messages}` JSON. */
export function parseImport(text: string, fileName: string): Conversation[] {
  const trimmed = text.trimStart();
  if (trimmed.startsWith("{") || trimmed.startsWith("[")) return fromJson(JSON.parse(text) as unknown);
  if (/\.(md|markdown|txt)$/i.test(fileName) || trimmed.startsWith("#")) return [fromMarkdown(text)];
  throw new Error("not a gptrelay export (JSON or Markdown)");
}

function fromJson(value: unknown): Conversation[] {
  const items: unknown[] = Array.isArray(value)
    ? value
    : isObject(value) && Array.isArray(value.conversations)
      ? value.conversations
      : isObject(value) && isObject(value.conversation)
        ? [value.conversation]
        : [value];
  const conversations = items.map((item) => normalize(item)).filter((c): c is Conversation => c !== null);
  if (!conversations.length) throw new Error("no conversation found in the file");
  return conversations;
}

function fromMarkdown(text: string): Conversation {
  const lines = text.replace(/\r\n/g, "\n").split("\n");
  const title = (lines.find((line) => line.startsWith("# ")) ?? "").slice(2).trim();
  const metaLine = lines.find((line) => line.startsWith("<!-- gptrelay {"));
  let model = "";
  let created = Date.now();
  if (metaLine) {
    try {
      const meta = JSON.parse(metaLine.slice("<!-- gptrelay ".length, -" -->".length)) as Record<string, unknown>;
      if (typeof meta.model === "string") model = meta.model;
      if (typeof meta.created === "number") created = meta.created;
    } catch {
      // The metadata is optional.
    }
  }
  const sections: { role: string; lines: string[] }[] = [];
  for (let index = 0; index < lines.length; index++) {
    const match = MARKER.exec(lines[index]);
    if (match) {
      // The "## Heading" line above a marker belongs to the section it opens.
      const previous = sections.at(-1);
      if (previous && lines[index - 1]?.startsWith("## ")) {
        previous.lines.pop();
        if (previous.lines.at(-1) === "") previous.lines.pop();
      }
      sections.push({ role: match[1], lines: [] });
    } else {
      sections.at(-1)?.lines.push(lines[index]);
    }
  }
  if (!sections.length) throw new Error("no gptrelay message markers in the Markdown file");
  const last = sections.at(-1);
  if (last && last.lines.at(-1) === "") last.lines.pop();
  const system = sections.filter((s) => s.role === "system").map((s) => s.lines.join("\n")).join("\n");
  const messages = sections
    .filter((s) => s.role !== "system")
    .map((s) => ({ id: newId(), role: s.role, content: s.lines.join("\n"), created }));
  const conversation = normalize({ title, model, system, messages, created, updated: created });
  if (!conversation) throw new Error("no conversation found in the file");
  if (title) conversation.renamed = true;
  return conversation;
}

/** Offers `text` as a file download. */
export function download(fileName: string, text: string, type: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = document.createElement("a");
  link.href = url;
  link.download = fileName;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function fileStem(title: string): string {
  const stem = title.replace(/[\\/:*?"<>|\u0000-\u001f]+/g, " ").replace(/\s+/g, " ").trim().slice(0, 60);
  return stem || "conversation";
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
