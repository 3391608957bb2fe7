// The conversation on screen: one <article> per message, in order. A reply's
// Markdown is re-rendered at most once per animation frame while it streams,
// and merged into the page node by node (see morph.ts).

import { copyText } from "./clipboard";
import { t } from "./i18n";
import { icon } from "./icons";
import { renderMarkdown } from "./markdown";
import { morphHtml } from "./morph";
import type { Conversation, Message } from "./store";
import { escapeHtml } from "./html";

export interface MessageActions {
  regenerate(message: Message): void;
  retry(message: Message): void;
  continueReply(message: Message): void;
  enterKey(): void;
}

export interface MessageState {
  /** True while this message's reply is streaming. */
  streaming: boolean;
  /** True for the conversation's last assistant message (it gets Regenerate). */
  last: boolean;
}

/** What each element last showed, so unchanged parts are not rebuilt (and keep focus). */
const shown = new WeakMap<Element, string>();

export class MessageList {
  private readonly articles = new Map<string, HTMLElement>();
  private readonly pending = new Set<Message>();
  private frame = 0;
  private conversation: Conversation | null = null;

  constructor(
    private readonly container: HTMLElement,
    private readonly actions: MessageActions,
    private readonly stateOf: (message: Message) => MessageState,
    private readonly afterRender: () => void,
  ) {
    container.addEventListener("click", (event) => this.onClick(event));
  }

  /** Shows a conversation (or none), rebuilding only the articles that are new. */
  show(conversation: Conversation | null): void {
    if (conversation !== this.conversation) {
      this.container.replaceChildren();
      this.articles.clear();
      this.pending.clear();
      this.conversation = conversation;
    }
    const messages = conversation?.messages ?? [];
    const keep = new Set(messages.map((m) => m.id));
    for (const [id, article] of this.articles) {
      if (!keep.has(id)) {
        article.remove();
        this.articles.delete(id);
      }
    }
    let previous: HTMLElement | null = null;
    for (const message of messages) {
      let article = this.articles.get(message.id);
      if (!article) {
        article = this.create(message);
        this.articles.set(message.id, article);
      }
      const expected: ChildNode | null = previous ? previous.nextSibling : this.container.firstChild;
      if (expected !== article) this.container.insertBefore(article, expected);
      this.decorate(message, article);
      this.renderContent(message, article);
      previous = article;
    }
    this.afterRender();
  }

  /** Re-renders everything but the content (after a language change, say). */
  refresh(): void {
    for (const message of this.conversation?.messages ?? []) {
      const article = this.articles.get(message.id);
      if (article) {
        article.setAttribute("aria-label", message.role === "user" ? t("you") : t("assistant"));
        this.decorate(message, article);
        if (message.role === "assistant") {
          const markdown = article.querySelector(".markdown");
          if (markdown) shown.delete(markdown);
          this.renderContent(message, article);
        }
      }
    }
  }

  /** The message's text grew: render it on the next frame. */
  contentChanged(message: Message): void {
    if (!this.articles.has(message.id)) return;
    this.pending.add(message);
    if (!this.frame) {
      this.frame = requestAnimationFrame(() => this.flush());
    }
  }

  /** The message's state changed (started, finished, failed): render it now. */
  stateChanged(message: Message): void {
    const article = this.articles.get(message.id);
    if (!article) return;
    this.pending.delete(message);
    this.renderContent(message, article);
    this.decorate(message, article);
    this.afterRender();
  }

  private flush(): void {
    this.frame = 0;
    for (const message of this.pending) {
      const article = this.articles.get(message.id);
      if (article) this.renderContent(message, article);
    }
    this.pending.clear();
    this.afterRender();
  }

  private create(message: Message): HTMLElement {
    const article = document.createElement("article");
    article.className = `message ${message.role}`;
    article.dataset.id = message.id;
    article.setAttribute("aria-label", message.role === "user" ? t("you") : t("assistant"));
    if (message.role === "user") {
      article.innerHTML = '<div class="message-main"><div class="bubble"></div><div class="message-actions"></div></div>';
    } else {
      article.innerHTML =
        `<div class="avatar" aria-hidden="true">${icon("sparkle", 16)}</div>` +
        '<div class="message-main"><div class="markdown"></div>' +
        '<div class="typing" aria-hidden="true"><span></span><span></span><span></span></div>' +
        '<p class="message-notice" hidden></p><div class="message-error" hidden></div>' +
        '<div class="message-actions"></div></div>';
    }
    return article;
  }

  private renderContent(message: Message, article: HTMLElement): void {
    if (message.role === "user") {
      const bubble = article.querySelector<HTMLElement>(".bubble");
      if (bubble && bubble.textContent !== message.content) bubble.textContent = message.content;
      return;
    }
    const target = article.querySelector<HTMLElement>(".markdown");
    if (!target) return;
    if (message.content) article.classList.remove("waiting");
    if (shown.get(target) === message.content) return;
    morphHtml(target, renderMarkdown(message.content));
    shown.set(target, message.content);
  }

  private decorate(message: Message, article: HTMLElement): void {
    const { streaming, last } = this.stateOf(message);
    article.classList.toggle("streaming", streaming);
    article.classList.toggle("waiting", streaming && !message.content);
    article.setAttribute("aria-busy", String(streaming));
    const actions = article.querySelector<HTMLElement>(".message-actions");
    if (message.role === "user") {
      const html = button("copy", "copy", t("copy"));
      if (actions && shown.get(actions) !== html) {
        actions.innerHTML = html;
        shown.set(actions, html);
      }
      return;
    }
    const notice = article.querySelector<HTMLElement>(".message-notice");
    if (notice) {
      const text = streaming ? "" : message.stopped ? t("stopped") : message.finish === "length" ? t("cutForLength") : "";
      notice.textContent = text;
      notice.hidden = !text;
    }
    const error = article.querySelector<HTMLElement>(".message-error");
    if (error) {
      let html = "";
      if (message.error) {
        let buttons = "";
        if (message.keyRejected) buttons += textButton("key", "key", t("enterKey"));
        if (last && !streaming) buttons += textButton("retry", "regenerate", t("retry"));
        html =
          `<div class="error-head">${icon("alert", 16)}<strong>${escapeHtml(t("errorTitle"))}</strong></div>` +
          `<p class="error-text">${escapeHtml(message.error)}</p><div class="error-buttons">${buttons}</div>`;
      }
      if (shown.get(error) !== html) {
        error.innerHTML = html;
        shown.set(error, html);
      }
      error.hidden = !html;
    }
    if (actions) {
      let html = "";
      if (!streaming) {
        if (message.content) html += button("copy", "copy", t("copy"));
        // A failed reply offers Retry in its error box instead.
        if (last && !message.error) html += button("regenerate", "regenerate", t("regenerate"));
        if (last && message.finish === "length" && !message.error) html += button("continue", "continue", t("continue"), true);
      }
      if (shown.get(actions) !== html) {
        actions.innerHTML = html;
        shown.set(actions, html);
      }
    }
  }

  private onClick(event: Event): void {
    const target = event.target as HTMLElement;
    const codeCopy = target.closest<HTMLButtonElement>("button[data-copy-code]");
    if (codeCopy) {
      const code = codeCopy.closest(".code-block")?.querySelector("code")?.textContent ?? "";
      void copyText(code).then((ok) => ok && flash(codeCopy, t("copied")));
      return;
    }
    const actionButton = target.closest<HTMLButtonElement>("button[data-action]");
    const article = actionButton?.closest<HTMLElement>("article");
    const message = this.conversation?.messages.find((m) => m.id === article?.dataset.id);
    if (!actionButton || !message) return;
    switch (actionButton.dataset.action) {
      case "copy":
        void copyText(message.content).then((ok) => ok && flashIcon(actionButton));
        break;
      case "regenerate":
        this.actions.regenerate(message);
        break;
      case "retry":
        this.actions.retry(message);
        break;
      case "continue":
        this.actions.continueReply(message);
        break;
      case "key":
        this.actions.enterKey();
        break;
    }
  }
}

function button(action: string, iconName: Parameters<typeof icon>[0], label: string, withText = false): string {
  const text = withText ? `<span>${escapeHtml(label)}</span>` : "";
  return `<button type="button" class="action-btn${withText ? " with-text" : ""}" data-action="${action}" aria-label="${escapeHtml(label)}" title="${escapeHtml(label)}">${icon(iconName, 16)}${text}</button>`;
}

function textButton(action: string, iconName: Parameters<typeof icon>[0], label: string): string {
  return `<button type="button" class="btn btn-small" data-action="${action}">${icon(iconName, 15)}<span>${escapeHtml(label)}</span></button>`;
}

function flash(button: HTMLElement, text: string): void {
  const before = button.textContent;
  button.textContent = text;
  button.classList.add("done");
  setTimeout(() => {
    button.textContent = before;
    button.classList.remove("done");
  }, 1500);
}

function flashIcon(button: HTMLElement): void {
  const before = button.innerHTML;
  button.innerHTML = icon("check", 16);
  setTimeout(() => {
    if (button.isConnected) button.innerHTML = before;
  }, 1500);
}
