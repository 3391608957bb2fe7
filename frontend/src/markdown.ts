// Markdown to sanitized HTML, for replies that are still being written.
//
// markdown-it never throws on half-written input: an unclosed fence renders as
// a code block that grows, and math stays plain text until its closing
// delimiter arrives. Raw HTML in a reply is shown as text (html: false), and
// DOMPurify sanitizes whatever the renderer produces, KaTeX's output included.

import DOMPurify from "dompurify";
import MarkdownIt from "markdown-it";
import type StateBlock from "markdown-it/lib/rules_block/state_block.mjs";
import type StateInline from "markdown-it/lib/rules_inline/state_inline.mjs";
import { highlight, languageLabel } from "./highlight";
import { t } from "./i18n";

const md = new MarkdownIt({
  html: false,
  linkify: true,
  breaks: true,
  typographer: false,
  highlight: (code, lang) => highlight(code, lang),
});

// -- code fences: a header with the language and a copy button -------------------

md.renderer.rules.fence = (tokens, index) => {
  const token = tokens[index];
  const lang = token.info.trim().split(/\s+/)[0] ?? "";
  const body = highlight(token.content, lang);
  const label = languageLabel(lang);
  return (
    `<div class="code-block"><div class="code-head"><span class="code-lang">${md.utils.escapeHtml(label)}</span>` +
    `<button type="button" class="code-copy" data-copy-code="">${md.utils.escapeHtml(t("copyCode"))}</button></div>` +
    `<pre><code class="hljs${lang ? ` language-${md.utils.escapeHtml(lang)}` : ""}">${body}</code></pre></div>\n`
  );
};

// -- links open elsewhere; images from other hosts become links ---------------------

const defaultLinkOpen =
  md.renderer.rules.link_open ?? ((tokens, index, options, _env, self) => self.renderToken(tokens, index, options));
md.renderer.rules.link_open = (tokens, index, options, env, self) => {
  const token = tokens[index];
  token.attrSet("target", "_blank");
  token.attrSet("rel", "noopener noreferrer nofollow");
  return defaultLinkOpen(tokens, index, options, env, self);
};

// The page may load nothing from another host (and its CSP would block it anyway).
md.renderer.rules.image = (tokens, index) => {
  const token = tokens[index];
  const src = token.attrGet("src") ?? "";
  const alt = token.content || src;
  if (src.startsWith("data:image/") || isSameOrigin(src)) {
    return `<img src="${md.utils.escapeHtml(src)}" alt="${md.utils.escapeHtml(alt)}" loading="lazy">`;
  }
  return `<a href="${md.utils.escapeHtml(src)}" target="_blank" rel="noopener noreferrer nofollow">🖼 ${md.utils.escapeHtml(alt)}</a>`;
};

function isSameOrigin(src: string): boolean {
  try {
    return new URL(src, location.href).origin === location.origin;
  } catch {
    return false;
  }
}

// -- math: $…$, \(…\), $$…$$ and \[…\], rendered by KaTeX once closed --------------

const mathCache = new Map<string, string>();
let renderTex: ((tex: string, display: boolean) => string) | null = null;
let mathLoading: Promise<void> | null = null;
const mathListeners: (() => void)[] = [];

/** Calls `listener` once KaTeX has loaded, so replies with math can be rendered again. */
export function onMathReady(listener: () => void): void {
  mathListeners.push(listener);
}

function loadMath(): void {
  mathLoading ??= import("./math").then(
    (module) => {
      renderTex = module.renderTex;
      for (const listener of mathListeners) listener();
    },
    () => {
      mathLoading = null; // try again with the next formula
    },
  );
}

function renderMath(tex: string, display: boolean): string {
  let html: string;
  if (!renderTex) {
    loadMath();
    html = `<code class="math-source">${md.utils.escapeHtml(tex)}</code>`;
  } else {
    const key = `${display ? "D" : "I"}${tex}`;
    html = mathCache.get(key) ?? "";
    if (!html) {
      try {
        html = renderTex(tex, display);
      } catch {
        html = `<code class="math-source">${md.utils.escapeHtml(tex)}</code>`;
      }
      if (mathCache.size > 500) mathCache.clear();
      mathCache.set(key, html);
    }
  }
  return display ? `<div class="math-block">${html}</div>` : `<span class="math-inline">${html}</span>`;
}

const INLINE_DELIMITERS: [open: string, close: string, display: boolean][] = [
  ["$$", "$$", true],
  ["\\[", "\\]", true],
  ["\\(", "\\)", false],
  ["$", "$", false],
];

function mathInline(state: StateInline, silent: boolean): boolean {
  const src = state.src;
  const start = state.pos;
  const found = INLINE_DELIMITERS.find(([open]) => src.startsWith(open, start));
  if (!found) return false;
  const [open, close, display] = found;
  const from = start + open.length;
  if (open === "$" && (from >= state.posMax || /\s/.test(src[from]))) return false;
  let search = from;
  let end = -1;
  while (search < state.posMax) {
    const at = src.indexOf(close, search);
    if (at === -1 || at >= state.posMax) return false;
    const escaped = close === "$" && src[at - 1] === "\\";
    // Pandoc's rule for $…$: no space before the closing $, no digit after it ("$5 and $10").
    const loose = open === "$" && (/\s/.test(src[at - 1]) || /\d/.test(src[at + 1] ?? ""));
    if (!escaped && !loose) {
      end = at;
      break;
    }
    search = at + 1;
  }
  if (end <= from) return false;
  if (!silent) {
    const token = state.push(display ? "math_display" : "math_inline", "math", 0);
    token.content = src.slice(from, end);
    token.markup = open;
  }
  state.pos = end + close.length;
  return true;
}

function mathBlock(state: StateBlock, startLine: number, endLine: number, silent: boolean): boolean {
  const lineText = (line: number): string =>
    state.src.slice(state.bMarks[line] + state.tShift[line], state.eMarks[line]);
  if (state.sCount[startLine] - state.blkIndent >= 4) return false;
  const first = lineText(startLine);
  const open = first.startsWith("$$") ? "$$" : first.startsWith("\\[") ? "\\[" : "";
  if (!open) return false;
  const close = open === "$$" ? "$$" : "\\]";
  const rest = first.slice(open.length).trimEnd();
  let content: string | null = null;
  let last = startLine;
  if (rest.endsWith(close) && rest.length >= close.length) {
    content = rest.slice(0, -close.length);
  } else {
    const lines = rest ? [rest] : [];
    for (let line = startLine + 1; line < endLine; line++) {
      if (state.sCount[line] < state.blkIndent && state.bMarks[line] + state.tShift[line] < state.eMarks[line]) break;
      const text = lineText(line).trimEnd();
      if (text.endsWith(close)) {
        lines.push(text.slice(0, -close.length));
        content = lines.join("\n");
        last = line;
        break;
      }
      lines.push(text);
    }
  }
  // Not closed yet (still streaming): let the paragraph rule show it as text.
  if (content === null || !content.trim()) return false;
  if (silent) return true;
  state.line = last + 1;
  const token = state.push("math_block", "math", 0);
  token.block = true;
  token.content = content;
  token.markup = open;
  token.map = [startLine, state.line];
  return true;
}

md.inline.ruler.before("escape", "math_inline", mathInline);
md.block.ruler.before("fence", "math_block", mathBlock, { alt: ["paragraph", "reference", "blockquote", "list"] });
md.renderer.rules.math_inline = (tokens, index) => renderMath(tokens[index].content, false);
md.renderer.rules.math_display = (tokens, index) => renderMath(tokens[index].content, true);
md.renderer.rules.math_block = (tokens, index) => renderMath(tokens[index].content, true) + "\n";

// -- sanitizing --------------------------------------------------------------------

const SAFE_URL = /^(?:https?:|mailto:|tel:|#|\/(?!\/)|data:image\/(?:png|gif|jpeg|webp);)/i;

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  for (const name of ["href", "src"]) {
    const value = node.getAttribute(name);
    if (value !== null && !SAFE_URL.test(value.trim())) node.removeAttribute(name);
  }
  if (node.tagName === "A" && node.hasAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
});

/** Sanitize HTML; only what the Markdown renderer and KaTeX legitimately produce survives. */
export function sanitize(html: string): string {
  return DOMPurify.sanitize(html, {
    ADD_TAGS: ["semantics", "annotation"],
    ADD_ATTR: ["target", "encoding", "data-copy-code"],
    FORBID_TAGS: ["style", "form", "input", "textarea", "select", "iframe", "object", "embed"],
    FORBID_ATTR: ["id", "name"],
  });
}

/** Markdown (complete or half-written) to sanitized HTML. */
export function renderMarkdown(text: string): string {
  let html: string;
  try {
    html = md.render(text).trim();
  } catch {
    html = `<p>${md.utils.escapeHtml(text)}</p>`;
  }
  return sanitize(html);
}
