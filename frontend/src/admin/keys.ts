// The #keys section: the table of access keys, the create form, the edit dialog and revoking.

import { copyText } from "../clipboard";
import { confirmDialog } from "../confirm";
import { type AdminApi, ApiError, type KeyChanges, type KeyObject, LIMITS, type Limit } from "./api";
import { $, formatNumber, formatTime, h, sameList, splitList } from "./dom";
import { problem } from "./errors";
import { type Key, t } from "./i18n";

export type KeyStatus = "active" | "revoked" | "expired";

const STATUS_TEXT: Record<KeyStatus, Key> = {
  active: "statusActive",
  revoked: "statusRevoked",
  expired: "statusExpired",
};

const LIMIT_LABEL: Record<Limit, Key> = {
  rpm: "limitRpm",
  tpm: "limitTpm",
  daily_tokens: "limitDaily",
  monthly_tokens: "limitMonthly",
};

const NEW_INPUT: Record<Limit, string> = {
  rpm: "new-rpm",
  tpm: "new-tpm",
  daily_tokens: "new-daily",
  monthly_tokens: "new-monthly",
};

const EDIT_INPUT: Record<Limit, string> = {
  rpm: "edit-rpm",
  tpm: "edit-tpm",
  daily_tokens: "edit-daily",
  monthly_tokens: "edit-monthly",
};

export function keyStatus(key: KeyObject, now = Date.now()): KeyStatus {
  if (key.revoked) return "revoked";
  if (key.expires_at !== null && Date.parse(key.expires_at) <= now) return "expired";
  return "active";
}

/** A limit input's value: a whole number, null when empty, or an error message. */
function readLimit(input: HTMLInputElement, label: Key): { value: number | null } | { error: string } {
  const text = input.value.trim();
  if (!text && !input.validity.badInput) return { value: null };
  const value = Number(text);
  if (!text || !Number.isSafeInteger(value) || value < 0) return { error: t("notWhole", { field: t(label) }) };
  return { value };
}

export interface KeysHooks {
  /** The key list changed (the usage filter lists the names). */
  changed(keys: KeyObject[]): void;
  notify(message: string): void;
}

export class KeysSection {
  private keys: KeyObject[] = [];
  private editing: KeyObject | null = null;
  private loadCount = 0;

  private readonly body = $<HTMLTableSectionElement>("keys-body");
  private readonly empty = $("keys-empty");
  private readonly error = $("keys-error");
  private readonly hideRevoked = $<HTMLInputElement>("hide-revoked");
  private readonly createForm = $<HTMLFormElement>("create-key-form");
  private readonly createError = $("create-error");
  private readonly createButton = $<HTMLButtonElement>("create-key");
  private readonly newKeyPanel = $("new-key-panel");
  private readonly editDialog = $<HTMLDialogElement>("edit-dialog");
  private readonly editError = $("edit-error");
  private readonly editSave = $<HTMLButtonElement>("edit-save");
  private readonly editExpiry = $<HTMLSelectElement>("edit-expiry");

  constructor(
    private readonly api: AdminApi,
    private readonly hooks: KeysHooks,
  ) {
    this.hideRevoked.addEventListener("change", () => this.render());
    $("keys-refresh").addEventListener("click", () => void this.load());
    this.body.addEventListener("click", (event) => {
      const button = (event.target as Element).closest<HTMLButtonElement>("button[data-action]");
      const name = button?.closest<HTMLElement>("tr[data-key]")?.dataset.key;
      const key = this.keys.find((k) => k.name === name);
      if (!button || !key) return;
      if (button.dataset.action === "edit") this.openEdit(key);
      else if (button.dataset.action === "revoke") void this.revoke(key);
    });
    this.createForm.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.create();
    });
    $("copy-key").addEventListener("click", () => void this.copyNewKey());
    $("new-key-done").addEventListener("click", () => this.hideNewKey());
    $<HTMLFormElement>("edit-form").addEventListener("submit", (event) => {
      event.preventDefault();
      void this.saveEdit();
    });
    $("edit-cancel").addEventListener("click", () => this.editDialog.close());
    this.editDialog.addEventListener("close", () => {
      this.editing = null;
    });
  }

  /** Shows `keys` (already fetched, e.g. by the sign-in check). */
  show(keys: KeyObject[]): void {
    this.keys = [...keys].sort((a, b) => a.name.localeCompare(b.name));
    this.error.textContent = "";
    this.render();
    this.hooks.changed(this.keys);
  }

  async load(): Promise<void> {
    const count = ++this.loadCount;
    try {
      const keys = await this.api.listKeys();
      if (count === this.loadCount) this.show(keys);
    } catch (error) {
      if (count === this.loadCount && !(error instanceof ApiError && error.status === 401)) {
        this.error.textContent = problem(error);
      }
    }
  }

  clear(): void {
    this.keys = [];
    this.body.replaceChildren();
    this.hideNewKey();
    this.createForm.reset();
    this.createError.textContent = "";
    this.error.textContent = "";
    if (this.editDialog.open) this.editDialog.close();
    const confirm = $<HTMLDialogElement>("confirm-dialog");
    if (confirm.open) confirm.close();
  }

  /** Draws the table again (after a language change too). */
  render(): void {
    const now = Date.now();
    const shown = this.hideRevoked.checked ? this.keys.filter((key) => !key.revoked) : this.keys;
    this.body.replaceChildren(...shown.map((key) => this.row(key, now)));
    this.empty.hidden = shown.length > 0;
    this.empty.textContent = this.keys.length ? t("noKeysShown") : t("noKeys");
    const active = this.keys.filter((key) => keyStatus(key, now) === "active").length;
    $("keys-count").textContent = this.keys.length ? t("keyCount", { count: this.keys.length, active }) : "";
  }

  private row(key: KeyObject, now: number): HTMLTableRowElement {
    const status = keyStatus(key, now);
    const limit = (value: number | null) =>
      h("td", { class: value === null ? "num none" : "num" }, value === null ? "—" : formatNumber(value));
    const list = (items: string[], none: Key) =>
      h(
        "td",
        { class: "list" },
        items.length ? h("ul", { class: "chips" }, ...items.map((item) => h("li", {}, item))) : h("span", { class: "faint" }, t(none)),
      );
    const actions = h(
      "td",
      { class: "actions" },
      h("button", { type: "button", class: "btn btn-small", "data-action": "edit", "aria-label": t("editNamed", { name: key.name }) }, t("edit")),
      !key.revoked &&
        h(
          "button",
          { type: "button", class: "btn btn-small btn-danger-quiet", "data-action": "revoke", "aria-label": t("revokeNamed", { name: key.name }) },
          t("revoke"),
        ),
    );
    const row = h(
      "tr",
      { class: status === "active" ? undefined : `inactive ${status}` },
      h("th", { scope: "row", class: "key-name" }, key.name),
      h("td", {}, h("span", { class: `key-status status-${status}`, "data-status": status }, t(STATUS_TEXT[status]))),
      limit(key.rpm),
      limit(key.tpm),
      limit(key.daily_tokens),
      limit(key.monthly_tokens),
      list(key.models, "anyModel"),
      list(key.origins, "anyOrigin"),
      h("td", { class: "time" }, time(key.created_at)),
      h("td", { class: "time" }, key.expires_at ? time(key.expires_at) : h("span", { class: "faint" }, t("never"))),
      actions,
    );
    row.dataset.key = key.name;
    return row;
  }

  // -- create ---------------------------------------------------------------------------

  private async create(): Promise<void> {
    this.createError.textContent = "";
    const nameInput = $<HTMLInputElement>("new-name");
    const name = nameInput.value.trim();
    if (!name) {
      this.createError.textContent = t("nameMissing");
      nameInput.focus();
      return;
    }
    const fields: KeyChanges = {};
    for (const limit of LIMITS) {
      const input = $<HTMLInputElement>(NEW_INPUT[limit]);
      const read = readLimit(input, LIMIT_LABEL[limit]);
      if ("error" in read) {
        this.createError.textContent = read.error;
        input.focus();
        return;
      }
      if (read.value !== null) fields[limit] = read.value;
    }
    const models = splitList($<HTMLInputElement>("new-models").value);
    if (models.length) fields.models = models;
    const origins = splitList($<HTMLInputElement>("new-origins").value);
    if (origins.length) fields.origins = origins;
    const ttl = Number($<HTMLSelectElement>("new-ttl").value);
    if (ttl > 0) fields.ttl_seconds = ttl;

    this.createButton.disabled = true;
    this.createButton.textContent = t("creating");
    try {
      const created = await this.api.createKey(name, fields);
      this.showNewKey(created.name, created.key);
      this.createForm.reset();
      this.hooks.notify(t("created", { name: created.name }));
      await this.load();
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) this.createError.textContent = problem(error);
    } finally {
      this.createButton.disabled = false;
      this.createButton.textContent = t("create");
    }
  }

  private showNewKey(name: string, secret: string): void {
    const title = $("new-key-title");
    title.dataset.name = name;
    title.textContent = t("newKeyTitle", { name });
    $("new-key").textContent = secret;
    $("copy-key-text").textContent = t("copy");
    this.newKeyPanel.hidden = false;
    this.newKeyPanel.focus();
  }

  private hideNewKey(): void {
    this.newKeyPanel.hidden = true;
    $("new-key").textContent = "";
  }

  /** The panel's words again, after a language change. */
  translatePanel(): void {
    const title = $("new-key-title");
    if (title.dataset.name) title.textContent = t("newKeyTitle", { name: title.dataset.name });
  }

  private async copyNewKey(): Promise<void> {
    const code = $("new-key");
    const ok = await copyText(code.textContent ?? "");
    $("copy-key-text").textContent = ok ? t("copied") : t("copy");
    if (!ok) this.hooks.notify(t("copyFailed"));
  }

  // -- edit -----------------------------------------------------------------------------

  private openEdit(key: KeyObject): void {
    this.editing = key;
    $("edit-title").textContent = t("editTitle", { name: key.name });
    for (const limit of LIMITS) {
      const input = $<HTMLInputElement>(EDIT_INPUT[limit]);
      input.value = key[limit] === null ? "" : String(key[limit]);
    }
    $<HTMLInputElement>("edit-models").value = key.models.join(", ");
    $<HTMLInputElement>("edit-origins").value = key.origins.join(", ");
    const keep = this.editExpiry.options[0];
    keep.textContent = t("expiryKeep", { when: key.expires_at ? formatTime(key.expires_at) : t("never") });
    this.editExpiry.value = "";
    this.editError.textContent = "";
    this.editSave.disabled = false;
    this.editSave.textContent = t("save");
    this.editDialog.showModal();
    $<HTMLInputElement>("edit-rpm").focus();
  }

  private async saveEdit(): Promise<void> {
    const key = this.editing;
    if (!key) return;
    this.editError.textContent = "";
    const changes: KeyChanges = {};
    for (const limit of LIMITS) {
      const input = $<HTMLInputElement>(EDIT_INPUT[limit]);
      const read = readLimit(input, LIMIT_LABEL[limit]);
      if ("error" in read) {
        this.editError.textContent = read.error;
        input.focus();
        return;
      }
      if (read.value !== key[limit]) changes[limit] = read.value;
    }
    const models = splitList($<HTMLInputElement>("edit-models").value);
    if (!sameList(models, key.models)) changes.models = models;
    const origins = splitList($<HTMLInputElement>("edit-origins").value);
    if (!sameList(origins, key.origins)) changes.origins = origins;
    const expiry = this.editExpiry.value;
    if (expiry === "never") {
      if (key.expires_at !== null) changes.expires_at = null;
    } else if (Number(expiry) > 0) {
      changes.ttl_seconds = Number(expiry);
    }
    if (Object.keys(changes).length === 0) {
      this.editDialog.close();
      this.hooks.notify(t("noChanges"));
      return;
    }
    this.editSave.disabled = true;
    this.editSave.textContent = t("saving");
    try {
      await this.api.updateKey(key.name, changes);
      if (this.editing === key) this.editDialog.close();
      this.hooks.notify(t("saved", { name: key.name }));
      await this.load();
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) this.editError.textContent = problem(error);
    } finally {
      this.editSave.disabled = false;
      this.editSave.textContent = t("save");
    }
  }

  // -- revoke ---------------------------------------------------------------------------

  private async revoke(key: KeyObject): Promise<void> {
    const yes = await confirmDialog(t("revokeTitle", { name: key.name }), t("revokeText"), t("revoke"));
    if (!yes) return;
    this.error.textContent = "";
    try {
      await this.api.revokeKey(key.name);
      this.hooks.notify(t("revoked", { name: key.name }));
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return;
      this.error.textContent = problem(error);
    }
    await this.load();
  }
}

function time(iso: string): HTMLTimeElement {
  return h("time", { datetime: iso, title: iso }, formatTime(iso));
}
