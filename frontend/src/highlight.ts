// Syntax highlighting: highlight.js's core and the languages replies use most,
// so the bundle stays small. Finished code blocks are highlighted once and cached.

import hljs from "highlight.js/lib/core";
import bash from "highlight.js/lib/languages/bash";
import c from "highlight.js/lib/languages/c";
import cpp from "highlight.js/lib/languages/cpp";
import csharp from "highlight.js/lib/languages/csharp";
import css from "highlight.js/lib/languages/css";
import diff from "highlight.js/lib/languages/diff";
import dockerfile from "highlight.js/lib/languages/dockerfile";
import go from "highlight.js/lib/languages/go";
import ini from "highlight.js/lib/languages/ini";
import java from "highlight.js/lib/languages/java";
import javascript from "highlight.js/lib/languages/javascript";
import json from "highlight.js/lib/languages/json";
import kotlin from "highlight.js/lib/languages/kotlin";
import markdown from "highlight.js/lib/languages/markdown";
import nginx from "highlight.js/lib/languages/nginx";
import php from "highlight.js/lib/languages/php";
import plaintext from "highlight.js/lib/languages/plaintext";
import python from "highlight.js/lib/languages/python";
import ruby from "highlight.js/lib/languages/ruby";
import rust from "highlight.js/lib/languages/rust";
import shell from "highlight.js/lib/languages/shell";
import sql from "highlight.js/lib/languages/sql";
import swift from "highlight.js/lib/languages/swift";
import typescript from "highlight.js/lib/languages/typescript";
import xml from "highlight.js/lib/languages/xml";
import yaml from "highlight.js/lib/languages/yaml";
import { escapeHtml } from "./html";

const LANGUAGES = {
  bash, c, cpp, csharp, css, diff, dockerfile, go, ini, java, javascript, json, kotlin, markdown,
  nginx, php, plaintext, python, ruby, rust, shell, sql, swift, typescript, xml, yaml,
};
for (const [name, language] of Object.entries(LANGUAGES)) hljs.registerLanguage(name, language);

const cache = new Map<string, string>();


/** The code as highlighted HTML (escaped plain text for unknown languages). */
export function highlight(code: string, lang: string): string {
  const name = lang.toLowerCase();
  if (!name || !hljs.getLanguage(name)) return escapeHtml(code);
  const key = `${name}\u0000${code}`;
  let html = cache.get(key);
  if (html === undefined) {
    try {
      html = hljs.highlight(code, { language: name, ignoreIllegals: true }).value;
    } catch {
      html = escapeHtml(code);
    }
    if (cache.size > 200) cache.clear();
    cache.set(key, html);
  }
  return html;
}

/** The name shown above a code block. */
export function languageLabel(lang: string): string {
  const language = lang ? hljs.getLanguage(lang.toLowerCase()) : undefined;
  return language?.name ?? (lang || "text");
}
