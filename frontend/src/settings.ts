// The page's settings, kept in localStorage, and what the relay tells the page
// through index.html (its default model).

import type { Lang } from "./i18n";

export type Theme = "system" | "light" | "dark";

export interface Settings {
  /** null: follow the browser's language. */
  lang: Lang | null;
  theme: Theme;
  /** How many times a reply cut off for length is continued automatically. */
  continueRounds: number;
}

const SETTINGS = "gptrelay:settings";
const KEY = "gptrelay:key";
const DEFAULTS: Settings = { lang: null, theme: "system", continueRounds: 5 };
export const MAX_CONTINUE_ROUNDS = 20;

export function loadSettings(): Settings {
  try {
    const stored = JSON.parse(localStorage.getItem(SETTINGS) ?? "{}") as Partial<Settings>;
    return {
      lang: stored.lang === "en" || stored.lang === "zh" ? stored.lang : null,
      theme: stored.theme === "light" || stored.theme === "dark" ? stored.theme : "system",
      continueRounds: clampRounds(stored.continueRounds ?? DEFAULTS.continueRounds),
    };
  } catch {
    return { ...DEFAULTS };
  }
}

export function saveSettings(settings: Settings): void {
  try {
    localStorage.setItem(SETTINGS, JSON.stringify(settings));
  } catch {
    // Settings are a convenience; a full storage must not break the page.
  }
}

export function clampRounds(value: unknown): number {
  const number = Math.floor(Number(value));
  return Number.isFinite(number) ? Math.min(MAX_CONTINUE_ROUNDS, Math.max(0, number)) : DEFAULTS.continueRounds;
}

export function loadKey(): string {
  return localStorage.getItem(KEY) ?? "";
}

export function saveKey(key: string): void {
  if (key) localStorage.setItem(KEY, key);
  else localStorage.removeItem(KEY);
}

/** The relay's default model, written into index.html's meta tag when the relay serves it. */
export function relayDefaultModel(): string {
  const meta = document.querySelector<HTMLMetaElement>('meta[name="gptrelay-default-model"]');
  const value = meta?.content.trim() ?? "";
  return value && !value.startsWith("__GPTRELAY") ? value : "gpt-4o-mini";
}
