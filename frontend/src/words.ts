// A page's words in English and Chinese: each page (the chat page, the admin page) brings
// its own tables; this picks the language, fills in `{name}` placeholders and the
// elements marked with `data-i18n…` attributes.

export type Lang = "en" | "zh";

export interface Words<Key extends string> {
  /** The text for `key` in the current language, with `{name}` placeholders filled. */
  t(key: Key, values?: Record<string, string | number>): string;
  /** Fills every `data-i18n` (text), `data-i18n-label` (aria-label), `-title` and `-placeholder`. */
  translate(root: ParentNode): void;
  setLang(lang: Lang): void;
  lang(): Lang;
}

export function words<Key extends string>(tables: Record<Lang, Record<Key, string>>): Words<Key> {
  let current: Lang = "en";
  const t = (key: Key, values: Record<string, string | number> = {}): string =>
    tables[current][key].replace(/\{(\w+)\}/g, (match, name: string) =>
      name in values ? String(values[name]) : match,
    );
  return {
    t,
    translate(root: ParentNode): void {
      for (const el of root.querySelectorAll<HTMLElement>("[data-i18n]")) {
        el.textContent = t(el.dataset.i18n as Key);
      }
      for (const el of root.querySelectorAll<HTMLElement>("[data-i18n-label]")) {
        el.setAttribute("aria-label", t(el.dataset.i18nLabel as Key));
      }
      for (const el of root.querySelectorAll<HTMLElement>("[data-i18n-title]")) {
        el.title = t(el.dataset.i18nTitle as Key);
      }
      for (const el of root.querySelectorAll<HTMLElement>("[data-i18n-placeholder]")) {
        el.setAttribute("placeholder", t(el.dataset.i18nPlaceholder as Key));
      }
    },
    setLang(lang: Lang): void {
      current = lang;
      document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    },
    lang: () => current,
  };
}
