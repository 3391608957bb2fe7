// The chat page: conversations, sending, streaming, stopping, continuing.

import { type ChatMessage, type ChatReply, DEFAULT_CONTINUE_PROMPT, streamChat } from "./client/gptrelay";
import { confirmDialog } from "./confirm";
import { KeyDialog, SettingsDialog } from "./dialogs";
import { detectLang, type Lang, lang, setLang, t, translate } from "./i18n";
import { fillIcons, icon } from "./icons";
import { onMathReady } from "./markdown";
import { MessageList } from "./messages";
import { accessKeyRejected, fetchModels, relayUrl } from "./relay";
import { type Settings, loadKey, loadSettings, relayDefaultModel, saveKey, saveSettings } from "./settings";
import { Sidebar } from "./sidebar";
import * as store from "./store";
import type { Conversation, Message } from "./store";
import { allToJson, download, fileStem, parseImport, toJson, toMarkdown } from "./transfer";
import { toast } from "./toast";

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} is missing from index.html`);
  return element as T;
};

export class App {
  private settings: Settings = loadSettings();
  private key = loadKey();
  private readonly defaultModel = relayDefaultModel();
  private models: string[] = [];
  private conversations: Conversation[] = [];
  /** The conversation on screen; a new chat is not stored until its first message. */
  private current: Conversation;
  /** Replies streaming now, by conversation id. */
  private readonly streams = new Map<string, { controller: AbortController; message: Message }>();
  private readonly saveTimers = new Map<string, number>();
  /** Conversations deleted while a reply was still streaming into them. */
  private readonly deleted = new WeakSet<Conversation>();
  private stickToBottom = true;

  private readonly input = $<HTMLTextAreaElement>("input");
  private readonly sendButton = $<HTMLButtonElement>("send");
  private readonly stopButton = $<HTMLButtonElement>("stop");
  private readonly modelSelect = $<HTMLSelectElement>("model");
  private readonly systemInput = $<HTMLTextAreaElement>("system-prompt");
  private readonly scroller = $("scroller");
  private readonly status = $("status");
  private readonly messages: MessageList;
  private readonly sidebar: Sidebar;
  private readonly keyDialog: KeyDialog;
  private readonly settingsDialog: SettingsDialog;
  private readonly media = matchMedia("(prefers-color-scheme: dark)");

  constructor() {
    this.conversations = store.loadAll();
    const stored = this.conversations.find((c) => c.id === store.currentId());
    this.current = stored ?? store.newConversation(this.defaultModel);
    this.messages = new MessageList(
      $("messages"),
      {
        regenerate: (message) => this.regenerate(message),
        retry: (message) => this.regenerate(message),
        continueReply: (message) => this.continueReply(message),
        enterKey: () => this.keyDialog.open("rejected"),
      },
      (message) => ({
        streaming: this.streams.get(this.current.id)?.message === message,
        last: this.lastAssistant(this.current) === message,
      }),
      () => this.afterRender(),
    );
    this.sidebar = new Sidebar($("conversation-list"), {
      open: (id) => this.open(id),
      rename: (id, title) => this.rename(id, title),
      remove: (id) => void this.remove(id),
    });
    this.keyDialog = new KeyDialog({
      check: (key) => fetchModels(key),
      accepted: (key, models) => {
        this.key = key;
        saveKey(key);
        if (models) this.setModels(models);
        toast(t("keySaved"));
      },
    });
    this.settingsDialog = new SettingsDialog({
      get: () => this.settings,
      change: (settings) => this.applySettings(settings),
      changeKey: () => this.keyDialog.open(this.key ? "change" : "missing"),
      forgetKey: () => {
        this.key = "";
        saveKey("");
        toast(t("keyForgotten"));
      },
      exportAll: () => download("gptrelay-conversations.json", allToJson(this.conversations), "application/json"),
    });
  }

  start(): void {
    onMathReady(() => this.messages.refresh());
    fillIcons(document);
    this.applySettings(this.settings);
    this.bindEvents();
    this.showConversation();
    void this.loadModels();
    this.input.focus();
  }

  // -- settings, language, theme ------------------------------------------------------

  private applySettings(settings: Settings): void {
    this.settings = settings;
    saveSettings(settings);
    setLang(settings.lang ?? detectLang(navigator.languages?.length ? navigator.languages : [navigator.language]));
    translate(document);
    this.applyTheme();
    const other: Lang = lang() === "en" ? "zh" : "en";
    const langButton = $("lang-button");
    $("lang-button-text").textContent = t("languageSwitch");
    langButton.lang = other === "zh" ? "zh-CN" : "en";
    langButton.setAttribute("aria-label", t("languageSwitchLabel"));
    langButton.title = t("languageSwitchLabel");
    this.messages.refresh();
    this.renderChrome();
  }

  private applyTheme(): void {
    const dark = this.settings.theme === "dark" || (this.settings.theme === "system" && this.media.matches);
    document.documentElement.dataset.theme = dark ? "dark" : "light";
    const button = $("theme-button");
    const label = dark ? t("themeToLight") : t("themeToDark");
    button.setAttribute("aria-label", label);
    button.title = label;
    button.innerHTML = icon(dark ? "sun" : "moon");
  }

  // -- events --------------------------------------------------------------------------

  private bindEvents(): void {
    $("composer").addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
    this.input.addEventListener("keydown", (event) => {
      // Enter sends; Shift+Enter is a new line; Enter that ends an IME composition (中文输入) is not a send.
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        this.send();
      }
    });
    this.input.addEventListener("input", () => this.autosize());
    this.stopButton.addEventListener("click", () => this.stop());
    $("new-chat").addEventListener("click", () => this.newChat());
    this.modelSelect.addEventListener("change", () => {
      this.current.model = this.modelSelect.value;
      if (this.isStored(this.current)) this.persist(this.current);
    });
    $("system-button").addEventListener("click", () => this.toggleSystem());
    this.systemInput.addEventListener("input", () => {
      this.current.system = this.systemInput.value;
      if (this.isStored(this.current)) this.saveSoon(this.current);
    });
    $("theme-button").addEventListener("click", () => {
      const dark = document.documentElement.dataset.theme === "dark";
      this.applySettings({ ...this.settings, theme: dark ? "light" : "dark" });
    });
    this.media.addEventListener("change", () => this.applyTheme());
    $("lang-button").addEventListener("click", () =>
      this.applySettings({ ...this.settings, lang: lang() === "en" ? "zh" : "en" }),
    );
    $("settings-button").addEventListener("click", () => this.settingsDialog.open());
    $("import-button").addEventListener("click", () => $<HTMLInputElement>("import-file").click());
    $<HTMLInputElement>("import-file").addEventListener("change", (event) => void this.importFiles(event));
    this.bindExportMenu();
    $("suggestions").addEventListener("click", (event) => {
      const button = (event.target as HTMLElement).closest("button");
      if (button?.textContent) {
        this.input.value = button.textContent;
        this.input.focus();
        this.send();
      }
    });
    $("menu-button").addEventListener("click", () => this.toggleDrawer(true));
    $("close-sidebar").addEventListener("click", () => this.toggleDrawer(false));
    $("scrim").addEventListener("click", () => this.toggleDrawer(false));
    this.scroller.addEventListener("scroll", () => {
      const gap = this.scroller.scrollHeight - this.scroller.scrollTop - this.scroller.clientHeight;
      this.stickToBottom = gap < 40;
      $("to-bottom").hidden = gap < 120;
    }, { passive: true });
    $("to-bottom").addEventListener("click", () => this.scrollToBottom(true));
    document.addEventListener("keydown", (event) => this.onGlobalKey(event));
    window.addEventListener("storage", (event) => this.onStorage(event));
    window.addEventListener("pagehide", () => this.flushSaves());
  }

  private onGlobalKey(event: KeyboardEvent): void {
    if (document.querySelector("dialog[open]")) return;
    if (event.key === "Escape") {
      if (!$("export-items").hidden) {
        this.closeExportMenu(true);
      } else if (document.body.classList.contains("drawer-open")) {
        this.toggleDrawer(false);
      } else if (this.streams.has(this.current.id)) {
        event.preventDefault();
        this.stop();
      }
    } else if ((event.ctrlKey || event.metaKey) && event.shiftKey && event.key.toLowerCase() === "o") {
      event.preventDefault();
      this.newChat();
    } else if (event.key === "/" && !event.ctrlKey && !event.metaKey && !isEditable(event.target)) {
      event.preventDefault();
      this.input.focus();
    }
  }

  private onStorage(event: StorageEvent): void {
    // Another tab changed the conversations: take its version, unless we are streaming here.
    if (!store.isConversationKey(event.key) || this.streams.size) return;
    this.conversations = store.loadAll();
    const fresh = this.conversations.find((c) => c.id === this.current.id);
    if (fresh) this.current = fresh;
    else if (this.isStoredId(this.current.id)) this.current = store.newConversation(this.defaultModel);
    this.showConversation();
  }

  // -- the conversation on screen ----------------------------------------------------

  private showConversation(): void {
    this.systemInput.value = this.current.system;
    this.messages.show(this.current);
    this.renderChrome();
    this.scrollToBottom(true);
  }

  /** Everything around the messages: title, model, buttons, list, welcome. */
  private renderChrome(): void {
    const conversation = this.current;
    const streaming = this.streams.has(conversation.id);
    $("title").textContent = conversation.title || t("untitled");
    document.title = conversation.title ? `${conversation.title} · gptrelay` : "gptrelay";
    $("welcome").hidden = conversation.messages.length > 0;
    this.renderModels();
    this.setStreamingButtons(streaming);
    const hasSystem = conversation.system.trim() !== "";
    $("system-button").classList.toggle("active", hasSystem);
    this.sidebar.render(this.conversations, this.isStored(conversation) ? conversation.id : null, (id) =>
      this.streams.has(id),
    );
    $<HTMLButtonElement>("export-button").disabled = conversation.messages.length === 0;
  }

  private setStreamingButtons(streaming: boolean): void {
    const focusWasOn = document.activeElement;
    this.sendButton.hidden = streaming;
    this.stopButton.hidden = !streaming;
    // Keep the keyboard focus on the button that took the other's place.
    if (streaming && focusWasOn === this.sendButton) this.stopButton.focus();
    if (!streaming && focusWasOn === this.stopButton) this.input.focus();
  }

  private afterRender(): void {
    if (this.stickToBottom) this.scrollToBottom(false);
  }

  private scrollToBottom(force: boolean): void {
    if (force) this.stickToBottom = true;
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  private autosize(): void {
    this.input.style.height = "auto";
    this.input.style.height = `${Math.min(this.input.scrollHeight, 240)}px`;
  }

  private toggleSystem(force?: boolean): void {
    const panel = $("system-panel");
    const open = force ?? panel.hidden;
    panel.hidden = !open;
    $("system-button").setAttribute("aria-expanded", String(open));
    if (open) this.systemInput.focus();
  }

  private toggleDrawer(open: boolean): void {
    document.body.classList.toggle("drawer-open", open);
    $("scrim").hidden = !open;
    $("menu-button").setAttribute("aria-expanded", String(open));
    if (open) this.sidebar.focusCurrent();
    else if (document.activeElement?.closest("#sidebar")) $("menu-button").focus();
  }

  // -- models -------------------------------------------------------------------------

  private async loadModels(): Promise<void> {
    const result = await fetchModels(this.key);
    if (result.ok) {
      this.setModels(result.models);
    } else if (result.keyRejected) {
      this.keyDialog.open(this.key ? "rejected" : "missing", result.message);
    } else {
      console.warn(`gptrelay: the model list is unavailable: ${result.message}`);
    }
  }

  private setModels(models: string[]): void {
    this.models = models;
    this.renderModels();
  }

  private renderModels(): void {
    const chosen = this.current.model || this.defaultModel;
    const names = [...new Set([this.defaultModel, ...this.models, chosen])].filter(Boolean);
    const wanted = names.join("\n");
    if (this.modelSelect.dataset.names !== wanted) {
      this.modelSelect.replaceChildren(...names.map((name) => new Option(name, name)));
      this.modelSelect.dataset.names = wanted;
    }
    this.modelSelect.value = chosen;
  }

  // -- sending and streaming -----------------------------------------------------------

  private send(): void {
    const text = this.input.value;
    const conversation = this.current;
    if (!text.trim() || this.streams.has(conversation.id)) return;
    this.input.value = "";
    this.autosize();
    if (!conversation.model) conversation.model = this.modelSelect.value || this.defaultModel;
    const question = store.newMessage("user", text);
    const answer = store.newMessage("assistant", "");
    conversation.messages.push(question, answer);
    if (!conversation.renamed) conversation.title = store.autoTitle(conversation);
    this.persist(conversation);
    this.messages.show(conversation);
    this.scrollToBottom(true);
    void this.reply(conversation, answer, "");
  }

  private regenerate(message: Message): void {
    const conversation = this.current;
    if (this.streams.has(conversation.id) || this.lastAssistant(conversation) !== message) return;
    this.scrollToBottom(true);
    void this.reply(conversation, message, "");
  }

  private continueReply(message: Message): void {
    const conversation = this.current;
    if (this.streams.has(conversation.id) || this.lastAssistant(conversation) !== message) return;
    void this.reply(conversation, message, message.content);
  }

  /** Streams the reply into `message`; `prefix` is the text being continued ("" for a fresh reply). */
  private async reply(conversation: Conversation, message: Message, prefix: string): Promise<void> {
    const history = this.history(conversation, message);
    if (prefix) history.push({ role: "assistant", content: prefix }, { role: "user", content: DEFAULT_CONTINUE_PROMPT });
    const controller = new AbortController();
    this.streams.set(conversation.id, { controller, message });
    const model = conversation.model || this.defaultModel;
    Object.assign(message, { content: prefix, error: null, finish: null, stopped: false, model });
    delete message.status;
    delete message.keyRejected;
    this.announce(t("replyStarted"));
    this.refresh(conversation, message);

    let reply: ChatReply;
    try {
      reply = await streamChat({
        url: relayUrl("chat"),
        key: this.key,
        model,
        messages: history,
        signal: controller.signal,
        continueRounds: this.settings.continueRounds,
        continuePrompt: DEFAULT_CONTINUE_PROMPT,
        onContent: (_piece, text) => {
          message.content = prefix + text;
          if (conversation === this.current) this.messages.contentChanged(message);
          this.saveSoon(conversation);
        },
        onContinue: (round) => this.announce(t("replyContinuing", { round })),
      });
    } catch (error) {
      // Only a bug in this page's own callbacks gets here; never leave the conversation stuck.
      controller.abort();
      const text = error instanceof Error ? error.message : String(error);
      reply = { text: message.content, finishReason: null, error: text, status: 0, aborted: false, rounds: 0 };
    } finally {
      this.streams.delete(conversation.id);
    }
    if (this.deleted.has(conversation)) return;
    message.finish = reply.finishReason;
    message.stopped = reply.aborted;
    const keyRejected = reply.error !== null && accessKeyRejected(reply.status, reply.error);
    if (reply.error) {
      message.error = keyRejected ? t("chatUnauthorized", { error: reply.error }) : reply.error;
      message.status = reply.status;
      message.keyRejected = keyRejected;
    }
    conversation.updated = Date.now();
    this.persist(conversation);
    this.refresh(conversation, message);
    if (reply.aborted) this.announce(t("replyStopped"));
    else if (reply.error) this.announce(t("replyFailed", { error: message.error ?? "" }));
    else this.announce(t("replyFinished"));
    if (keyRejected) this.keyDialog.open("rejected", reply.error ?? "");
  }

  /** The messages sent upstream for a reply in `before`'s place. */
  private history(conversation: Conversation, before: Message): ChatMessage[] {
    const end = conversation.messages.indexOf(before);
    const history: ChatMessage[] = conversation.messages
      .slice(0, end === -1 ? undefined : end)
      .filter((m) => m.content !== "")
      .map((m) => ({ role: m.role, content: m.content }));
    if (conversation.system.trim()) history.unshift({ role: "system", content: conversation.system });
    return history;
  }

  private stop(): void {
    this.streams.get(this.current.id)?.controller.abort();
  }

  private refresh(conversation: Conversation, message: Message): void {
    if (conversation !== this.current) {
      this.renderChrome();
      return;
    }
    // The previous last reply loses its Regenerate button, so redraw them all.
    this.messages.show(conversation);
    this.messages.stateChanged(message);
    this.renderChrome();
  }

  private announce(text: string): void {
    this.status.textContent = text;
  }

  private lastAssistant(conversation: Conversation): Message | undefined {
    const last = conversation.messages.at(-1);
    return last?.role === "assistant" ? last : undefined;
  }

  // -- conversations -------------------------------------------------------------------

  private newChat(): void {
    if (!this.current.messages.length && !this.isStored(this.current)) {
      this.input.focus();
      return;
    }
    this.current = store.newConversation(this.defaultModel);
    store.setCurrentId(null);
    this.toggleDrawer(false);
    this.toggleSystem(false);
    this.showConversation();
    this.input.focus();
  }

  private open(id: string): void {
    const conversation = this.conversations.find((c) => c.id === id);
    if (!conversation) return;
    this.current = conversation;
    store.setCurrentId(id);
    this.toggleDrawer(false);
    this.toggleSystem(conversation.system.trim() !== "" && !$("system-panel").hidden);
    this.showConversation();
  }

  private rename(id: string, title: string | null): void {
    const conversation = this.conversations.find((c) => c.id === id);
    if (conversation && title) {
      conversation.title = title;
      conversation.renamed = true;
      this.persist(conversation, false);
    }
    this.renderChrome();
    this.sidebar.focusCurrent();
  }

  private async remove(id: string): Promise<void> {
    const conversation = this.conversations.find((c) => c.id === id);
    if (!conversation) return;
    const title = conversation.title || t("untitled");
    if (!(await confirmDialog(t("deleteTitle"), t("deleteText", { title }), t("delete")))) return;
    this.streams.get(id)?.controller.abort();
    this.deleted.add(conversation);
    clearTimeout(this.saveTimers.get(id));
    this.saveTimers.delete(id);
    store.remove(id);
    this.conversations = this.conversations.filter((c) => c.id !== id);
    if (this.current.id === id) {
      this.current = store.newConversation(this.defaultModel);
      store.setCurrentId(null);
      this.showConversation();
    } else {
      this.renderChrome();
    }
    this.input.focus();
  }

  private isStored(conversation: Conversation): boolean {
    return this.conversations.includes(conversation);
  }

  private isStoredId(id: string): boolean {
    return this.conversations.some((c) => c.id === id);
  }

  /** Saves now; puts the conversation at the top of the list when `touch`. */
  private persist(conversation: Conversation, touch = true): void {
    const timer = this.saveTimers.get(conversation.id);
    if (timer) clearTimeout(timer);
    this.saveTimers.delete(conversation.id);
    if (touch) conversation.updated = Date.now();
    if (!this.isStored(conversation)) this.conversations.unshift(conversation);
    this.conversations.sort((a, b) => b.updated - a.updated);
    if (conversation === this.current) store.setCurrentId(conversation.id);
    if (!store.save(conversation)) toast(t("storageFull"));
  }

  /** Saves within a second (while a reply streams in). */
  private saveSoon(conversation: Conversation): void {
    if (this.saveTimers.has(conversation.id)) return;
    this.saveTimers.set(
      conversation.id,
      window.setTimeout(() => {
        this.saveTimers.delete(conversation.id);
        if (this.isStored(conversation)) store.save(conversation);
      }, 1000),
    );
  }

  private flushSaves(): void {
    for (const id of this.saveTimers.keys()) {
      const conversation = this.conversations.find((c) => c.id === id);
      if (conversation) store.save(conversation);
    }
  }

  // -- export and import ---------------------------------------------------------------

  private bindExportMenu(): void {
    const button = $("export-button");
    const items = $("export-items");
    button.addEventListener("click", () => {
      if (items.hidden) {
        items.hidden = false;
        button.setAttribute("aria-expanded", "true");
        items.querySelector<HTMLButtonElement>("button")?.focus();
      } else {
        this.closeExportMenu(false);
      }
    });
    items.addEventListener("keydown", (event) => {
      const buttons = Array.from(items.querySelectorAll<HTMLButtonElement>("button"));
      const index = buttons.indexOf(document.activeElement as HTMLButtonElement);
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        const step = event.key === "ArrowDown" ? 1 : -1;
        buttons[(index + step + buttons.length) % buttons.length]?.focus();
      }
    });
    document.addEventListener("click", (event) => {
      if (!items.hidden && !$("export-menu").contains(event.target as Node)) this.closeExportMenu(false);
    });
    $("export-menu").addEventListener("focusout", (event) => {
      if (!$("export-menu").contains(event.relatedTarget as Node | null) && event.relatedTarget) this.closeExportMenu(false);
    });
    $("export-md").addEventListener("click", () => {
      this.closeExportMenu(true);
      download(`${fileStem(this.current.title)}.md`, toMarkdown(this.current), "text/markdown");
    });
    $("export-json").addEventListener("click", () => {
      this.closeExportMenu(true);
      download(`${fileStem(this.current.title)}.json`, toJson(this.current), "application/json");
    });
  }

  private closeExportMenu(focusButton: boolean): void {
    $("export-items").hidden = true;
    $("export-button").setAttribute("aria-expanded", "false");
    if (focusButton) $("export-button").focus();
  }

  private async importFiles(event: Event): Promise<void> {
    const inputElement = event.target as HTMLInputElement;
    const files = Array.from(inputElement.files ?? []);
    inputElement.value = "";
    let imported: Conversation[] = [];
    try {
      for (const file of files) imported = imported.concat(parseImport(await file.text(), file.name));
    } catch (error) {
      toast(t("importFailed", { error: error instanceof Error ? error.message : String(error) }));
      return;
    }
    for (const conversation of imported) {
      if (this.isStoredId(conversation.id)) conversation.id = store.newId();
      this.persist(conversation, false);
    }
    if (imported.length) {
      this.current = imported[0];
      store.setCurrentId(this.current.id);
      this.showConversation();
    }
    toast(t("imported", { count: imported.length }));
  }
}

function isEditable(target: EventTarget | null): boolean {
  return target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
}
