// Modal dialogs: the access key and the settings ("are you sure?" is confirm.ts).

import type { Lang } from "./i18n";
import { t } from "./i18n";
import type { ModelsResult } from "./relay";
import { clampRounds, type Settings, type Theme } from "./settings";

const byId = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;

export interface KeyDialogHooks {
  /** Asks the relay whether `key` is accepted. */
  check(key: string): Promise<ModelsResult>;
  accepted(key: string, models: string[] | null): void;
}

export type KeyDialogMode = "missing" | "rejected" | "change";

/** Asks for the access key and checks it with the relay before keeping it. */
export class KeyDialog {
  private readonly dialog = byId<HTMLDialogElement>("key-dialog");
  private readonly input = byId<HTMLInputElement>("key-input");
  private readonly error = byId<HTMLElement>("key-error");
  private readonly save = byId<HTMLButtonElement>("key-save");

  constructor(private readonly hooks: KeyDialogHooks) {
    byId<HTMLFormElement>("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      void this.submit();
    });
    byId("key-cancel").addEventListener("click", () => this.dialog.close());
    byId<HTMLInputElement>("key-show").addEventListener("change", (event) => {
      this.input.type = (event.target as HTMLInputElement).checked ? "text" : "password";
    });
  }

  open(mode: KeyDialogMode, detail = ""): void {
    byId("key-intro").textContent = t("keyIntro");
    this.error.textContent = mode === "rejected" ? withDetail(t("keyRejectedStored"), detail) : "";
    this.input.value = "";
    this.input.setAttribute("aria-invalid", String(mode === "rejected"));
    if (!this.dialog.open) this.dialog.showModal();
    this.input.focus();
  }

  private async submit(): Promise<void> {
    const key = this.input.value.trim();
    if (!key) {
      this.error.textContent = t("keyMissing");
      this.input.focus();
      return;
    }
    this.save.disabled = true;
    this.save.textContent = t("keyChecking");
    const result = await this.hooks.check(key);
    this.save.disabled = false;
    this.save.textContent = t("keySave");
    if (!result.ok && result.keyRejected) {
      this.error.textContent = withDetail(t("keyRejected"), result.message);
      this.input.setAttribute("aria-invalid", "true");
      this.input.select();
      return;
    }
    // Anything but a rejection means the relay let the key through (the upstream may still be down).
    this.dialog.close();
    this.hooks.accepted(key, result.ok ? result.models : null);
  }
}

function withDetail(text: string, detail: string): string {
  return detail ? `${text} (${detail})` : text;
}

export interface SettingsHooks {
  get(): Settings;
  change(settings: Settings): void;
  changeKey(): void;
  forgetKey(): void;
  exportAll(): void;
}

export class SettingsDialog {
  private readonly dialog = byId<HTMLDialogElement>("settings-dialog");
  private readonly lang = byId<HTMLSelectElement>("settings-lang");
  private readonly rounds = byId<HTMLInputElement>("settings-rounds");

  constructor(private readonly hooks: SettingsHooks) {
    this.dialog.addEventListener("change", (event) => {
      const target = event.target as HTMLInputElement;
      const settings = { ...hooks.get() };
      if (target.name === "theme") settings.theme = target.value as Theme;
      else if (target === this.rounds) settings.continueRounds = clampRounds(this.rounds.value);
      else if (target === (this.lang as unknown as HTMLInputElement)) settings.lang = (this.lang.value || null) as Lang | null;
      hooks.change(settings);
    });
    byId("settings-key").addEventListener("click", () => {
      this.dialog.close();
      hooks.changeKey();
    });
    byId("settings-forget-key").addEventListener("click", () => hooks.forgetKey());
    byId("settings-export-all").addEventListener("click", () => hooks.exportAll());
  }

  open(): void {
    const settings = this.hooks.get();
    for (const radio of this.dialog.querySelectorAll<HTMLInputElement>('input[name="theme"]')) {
      radio.checked = radio.value === settings.theme;
    }
    this.lang.value = settings.lang ?? "";
    this.rounds.value = String(settings.continueRounds);
    this.dialog.showModal();
  }
}
