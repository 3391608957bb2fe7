// The list of conversations: open, rename (inline), delete. Grouped by age.

import { type Key, t } from "./i18n";
import { icon } from "./icons";
import type { Conversation } from "./store";
import { escapeHtml } from "./html";

export interface SidebarActions {
  open(id: string): void;
  /** `null`: the rename was cancelled. */
  rename(id: string, title: string | null): void;
  remove(id: string): void;
}

export class Sidebar {
  private renaming: string | null = null;

  constructor(
    private readonly list: HTMLElement,
    private readonly actions: SidebarActions,
  ) {
    list.addEventListener("click", (event) => this.onClick(event));
  }

  render(conversations: Conversation[], currentId: string | null, streaming: (id: string) => boolean): void {
    if (this.renaming) return; // do not pull the input away from under the user's fingers
    if (!conversations.length) {
      this.list.innerHTML = `<p class="conversation-empty">${escapeHtml(t("noConversations"))}</p>`;
      return;
    }
    const groups = new Map<Key, Conversation[]>();
    for (const conversation of conversations) {
      const group = ageGroup(conversation.updated);
      groups.set(group, [...(groups.get(group) ?? []), conversation]);
    }
    let html = "";
    for (const [group, items] of groups) {
      const heading = `group-${group}`;
      html += `<h2 class="conversation-group" id="${heading}">${escapeHtml(t(group))}</h2><ul aria-labelledby="${heading}">`;
      for (const c of items) {
        const title = c.title || t("untitled");
        const current = c.id === currentId;
        html +=
          `<li class="conversation${current ? " current" : ""}${streaming(c.id) ? " busy" : ""}" data-id="${escapeHtml(c.id)}">` +
          `<button type="button" class="conversation-open" data-do="open"${current ? ' aria-current="page"' : ""}>` +
          `${icon("chat", 15)}<span class="conversation-title">${escapeHtml(title)}</span></button>` +
          '<span class="conversation-actions">' +
          `<button type="button" class="icon-btn small" data-do="rename" aria-label="${escapeHtml(t("renameNamed", { title }))}" title="${escapeHtml(t("rename"))}">${icon("pencil", 15)}</button>` +
          `<button type="button" class="icon-btn small" data-do="delete" aria-label="${escapeHtml(t("deleteNamed", { title }))}" title="${escapeHtml(t("delete"))}">${icon("trash", 15)}</button>` +
          "</span></li>";
      }
      html += "</ul>";
    }
    this.list.innerHTML = html;
  }

  /** Focuses the current conversation's entry (when the drawer opens on a phone). */
  focusCurrent(): void {
    const target =
      this.list.querySelector<HTMLElement>('[aria-current="page"]') ?? this.list.querySelector<HTMLElement>("button");
    target?.focus();
  }

  private onClick(event: Event): void {
    const button = (event.target as HTMLElement).closest<HTMLButtonElement>("button[data-do]");
    const item = button?.closest<HTMLElement>("li[data-id]");
    if (!button || !item?.dataset.id) return;
    const id = item.dataset.id;
    if (button.dataset.do === "open") this.actions.open(id);
    else if (button.dataset.do === "delete") this.actions.remove(id);
    else if (button.dataset.do === "rename") this.startRename(item, id);
  }

  private startRename(item: HTMLElement, id: string): void {
    const titleElement = item.querySelector(".conversation-title");
    const input = document.createElement("input");
    input.type = "text";
    input.className = "conversation-rename";
    input.value = titleElement?.textContent ?? "";
    input.setAttribute("aria-label", t("titleLabel"));
    input.maxLength = 200;
    this.renaming = id;
    item.classList.add("renaming");
    item.prepend(input);
    input.focus();
    input.select();
    let finished = false;
    const finish = (commit: boolean): void => {
      if (finished) return;
      finished = true;
      this.renaming = null;
      const title = input.value.trim();
      input.remove();
      item.classList.remove("renaming");
      this.actions.rename(id, commit && title ? title : null);
    };
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.isComposing) {
        event.preventDefault();
        finish(true);
      } else if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation();
        finish(false);
      }
    });
    input.addEventListener("blur", () => finish(true));
  }
}

function ageGroup(time: number): Key {
  const startOfToday = new Date();
  startOfToday.setHours(0, 0, 0, 0);
  const day = 24 * 60 * 60 * 1000;
  if (time >= startOfToday.getTime()) return "today";
  if (time >= startOfToday.getTime() - day) return "yesterday";
  if (time >= startOfToday.getTime() - 7 * day) return "previous7";
  return "older";
}

