// The admin page's entry point: sign in with ADMIN_KEY, then the keys and usage sections.

import "../styles/app.css";
import "../styles/admin.css";
import { fillIcons } from "../icons";
import { loadSettings } from "../settings";
import { AdminApi, ApiError, type KeyObject } from "./api";
import { $ } from "./dom";
import { detectLang, lang, setLang, t, translate } from "./i18n";
import { problem } from "./errors";
import { KeysSection } from "./keys";
import { UsageSection } from "./usage";
import { toast } from "../toast";

const STORED_KEY = "gptrelay-admin-key";

function storedKey(): string {
  try {
    return sessionStorage.getItem(STORED_KEY) ?? "";
  } catch {
    return "";
  }
}

function storeKey(key: string): void {
  try {
    if (key) sessionStorage.setItem(STORED_KEY, key);
    else sessionStorage.removeItem(STORED_KEY);
  } catch {
    // without storage, a reload asks again
  }
}

class AdminPage {
  private readonly api = new AdminApi("");
  private readonly keys: KeysSection;
  private readonly usage: UsageSection;
  private readonly media = matchMedia("(prefers-color-scheme: dark)");
  private signedIn = false;

  private readonly signInView = $("sign-in-view");
  private readonly adminView = $("admin");
  private readonly signInForm = $<HTMLFormElement>("sign-in-form");
  private readonly keyInput = $<HTMLInputElement>("admin-key");
  private readonly signInButton = $<HTMLButtonElement>("sign-in");
  private readonly signInError = $("sign-in-error");

  constructor() {
    this.keys = new KeysSection(this.api, {
      changed: (keys) => this.usage.setKeys(keys),
      notify: (text) => toast(text),
    });
    this.usage = new UsageSection(this.api);
    this.api.onUnauthorized = (error) => {
      if (this.signedIn) this.signOut(problem(error));
    };
  }

  start(): void {
    fillIcons(document);
    this.applyTheme();
    this.applyLang(detectLang());
    this.media.addEventListener("change", () => this.applyTheme());
    window.addEventListener("storage", (event) => {
      if (event.key === "gptrelay:settings") this.applyTheme();
    });
    $("language").addEventListener("click", () => this.applyLang(lang() === "en" ? "zh" : "en", true));
    $("sign-out").addEventListener("click", () => {
      this.signOut("");
      toast(t("signedOut"));
    });
    this.signInForm.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.signIn(this.keyInput.value.trim());
    });
    const key = storedKey();
    if (key) void this.signIn(key, true);
    else this.showSignIn("");
  }

  // -- language and theme ----------------------------------------------------------------

  private applyLang(next: "en" | "zh", remember = false): void {
    setLang(next, remember);
    translate(document);
    document.title = t("pageTitle");
    const button = $("language");
    $("language-text").textContent = t("languageSwitch");
    button.lang = next === "en" ? "zh-CN" : "en";
    button.setAttribute("aria-label", t("languageSwitchLabel"));
    button.title = t("languageSwitchLabel");
    this.keys.render();
    this.keys.translatePanel();
    this.usage.render();
  }

  /** Dark or light as the chat page's theme setting says, else as the system does. */
  private applyTheme(): void {
    const theme = loadSettings().theme;
    const dark = theme === "dark" || (theme === "system" && this.media.matches);
    const before = document.documentElement.dataset.theme;
    document.documentElement.dataset.theme = dark ? "dark" : "light";
    if (before && before !== document.documentElement.dataset.theme) this.usage.restyle();
  }

  // -- signing in and out ----------------------------------------------------------------

  private showSignIn(error: string): void {
    this.signedIn = false;
    this.adminView.hidden = true;
    $("sign-out").hidden = true;
    this.signInView.hidden = false;
    this.signInError.textContent = error;
    this.keyInput.setAttribute("aria-invalid", String(Boolean(error)));
    this.keyInput.focus();
  }

  private async signIn(key: string, stored = false): Promise<void> {
    if (!key) {
      this.showSignIn(t("keyMissing"));
      return;
    }
    this.signInError.textContent = "";
    this.signInButton.disabled = true;
    this.signInButton.textContent = t("signingIn");
    if (stored) this.signInView.setAttribute("aria-busy", "true");
    this.api.setKey(key);
    let keys: KeyObject[];
    try {
      keys = await this.api.listKeys();
    } catch (error) {
      storeKey(stored && !(error instanceof ApiError && error.status === 401) ? key : "");
      this.api.setKey("");
      this.showSignIn(signInProblem(error, stored));
      if (error instanceof ApiError && error.status === 401) this.keyInput.select();
      return;
    } finally {
      this.signInButton.disabled = false;
      this.signInButton.textContent = t("signIn");
      this.signInView.removeAttribute("aria-busy");
    }
    storeKey(key);
    this.keyInput.value = "";
    this.signedIn = true;
    this.signInView.hidden = true;
    this.adminView.hidden = false;
    $("sign-out").hidden = false;
    this.keys.show(keys);
    void this.usage.load();
    $("admin-heading").focus({ preventScroll: true });
  }

  /** Forgets the key and shows the sign-in form, with `error` if the relay rejected the key. */
  private signOut(error: string): void {
    storeKey("");
    this.api.setKey("");
    this.keys.clear();
    this.usage.clear();
    this.showSignIn(error);
  }
}

function signInProblem(error: unknown, stored: boolean): string {
  if (error instanceof ApiError) {
    if (error.status === 401 && !stored) return t("keyRejected", { detail: error.message });
    if (error.status === 404) return t("adminOff");
  }
  return problem(error);
}

new AdminPage().start();
