// The interface's words in English and Chinese. The page follows the browser's
// language until the user picks one.

export type Lang = "en" | "zh";

const en = {
  appName: "gptrelay",
  newChat: "New chat",
  conversations: "Conversations",
  conversation: "Conversation",
  noConversations: "No conversations yet",
  today: "Today",
  yesterday: "Yesterday",
  previous7: "Previous 7 days",
  older: "Older",
  rename: "Rename",
  renameNamed: "Rename “{title}”",
  deleteNamed: "Delete “{title}”",
  titleLabel: "Conversation title",
  import: "Import",
  export: "Export",
  exportMarkdown: "Export as Markdown",
  exportJson: "Export as JSON",
  exportAll: "Export all conversations (JSON)",
  settings: "Settings",
  model: "Model",
  systemPrompt: "System prompt",
  systemPlaceholder: "Instructions the assistant follows in this conversation, e.g. “Answer briefly.”",
  message: "Message",
  messagePlaceholder: "Message the assistant…",
  send: "Send",
  stop: "Stop",
  regenerate: "Regenerate",
  retry: "Retry",
  continue: "Continue",
  copy: "Copy",
  copied: "Copied",
  copyCode: "Copy code",
  you: "You",
  assistant: "Assistant",
  hint: "Enter to send · Shift+Enter for a new line · Esc to stop",
  welcomeTitle: "How can I help you today?",
  welcomeText: "Replies stream from your own gptrelay. Your conversations stay in this browser.",
  suggestion1: "Explain how HTTP streaming works, with a short example",
  suggestion2: "Write a Python function that checks whether a string is a palindrome",
  suggestion3: "用三句话介绍一下量子计算",
  suggestion4: "Make a Markdown table comparing TCP and UDP",
  scrollToBottom: "Jump to the latest reply",
  openSidebar: "Show conversations",
  closeSidebar: "Hide conversations",
  themeToDark: "Switch to dark theme",
  themeToLight: "Switch to light theme",
  language: "Language",
  languageSwitch: "中文",
  languageSwitchLabel: "切换到中文",
  replyStarted: "The assistant started replying.",
  replyFinished: "The assistant finished replying.",
  replyStopped: "The reply was stopped.",
  replyFailed: "The reply failed: {error}",
  replyContinuing: "The reply was cut off for length; continuing (round {round}).",
  cutForLength: "The reply was cut off because it reached the length limit.",
  stopped: "Stopped.",
  errorTitle: "Something went wrong",
  keyTitle: "Access key",
  keyIntro: "This relay needs an access key. It is kept in this browser and sent with every request.",
  keyLabel: "Access key",
  keySave: "Save",
  keyCancel: "Cancel",
  keyShow: "Show key",
  keyChecking: "Checking…",
  keyRejected: "The relay rejected this access key (401). Check the key and try again.",
  keyRejectedStored: "The saved access key was rejected by the relay (401). Enter the right key.",
  keyMissing: "Enter an access key.",
  keyUnreachable: "Could not check the key: {error}",
  chatUnauthorized: "The relay rejected the access key (401): {error}",
  enterKey: "Enter access key",
  changeKey: "Change access key",
  forgetKey: "Forget access key",
  keySaved: "Access key saved.",
  keyForgotten: "Access key removed from this browser.",
  theme: "Theme",
  themeSystem: "System",
  themeLight: "Light",
  themeDark: "Dark",
  continueRounds: "Continue cut-off replies automatically, up to this many times",
  settingsDone: "Done",
  shortcuts: "Keyboard shortcuts",
  shortcutSend: "Send the message",
  shortcutNewline: "New line",
  shortcutStop: "Stop the reply",
  shortcutNewChat: "New chat",
  shortcutFocus: "Focus the message box",
  deleteTitle: "Delete conversation?",
  deleteText: "“{title}” will be deleted from this browser.",
  delete: "Delete",
  cancel: "Cancel",
  imported: "Imported {count} conversation(s).",
  importFailed: "Could not import that file: {error}",
  storageFull: "The browser's storage is full; this conversation may not be saved.",
  untitled: "New chat",
  close: "Close",
  streaming: "Replying…",
  modelsUnavailable: "Model list unavailable",
};

export type Key = keyof typeof en;

const zh: Record<Key, string> = {
  appName: "gptrelay",
  newChat: "新对话",
  conversations: "对话列表",
  conversation: "对话内容",
  noConversations: "还没有对话",
  today: "今天",
  yesterday: "昨天",
  previous7: "过去 7 天",
  older: "更早",
  rename: "重命名",
  renameNamed: "重命名“{title}”",
  deleteNamed: "删除“{title}”",
  titleLabel: "对话标题",
  import: "导入",
  export: "导出",
  exportMarkdown: "导出为 Markdown",
  exportJson: "导出为 JSON",
  exportAll: "导出全部对话（JSON）",
  settings: "设置",
  model: "模型",
  systemPrompt: "系统提示词",
  systemPlaceholder: "本对话中助手遵循的指示，例如“回答尽量简短。”",
  message: "消息",
  messagePlaceholder: "给助手发消息…",
  send: "发送",
  stop: "停止",
  regenerate: "重新生成",
  retry: "重试",
  continue: "继续",
  copy: "复制",
  copied: "已复制",
  copyCode: "复制代码",
  you: "你",
  assistant: "助手",
  hint: "Enter 发送 · Shift+Enter 换行 · Esc 停止",
  welcomeTitle: "今天能帮你做什么？",
  welcomeText: "回复来自你自己的 gptrelay 并实时流式显示，对话只保存在本浏览器中。",
  suggestion1: "解释一下 HTTP 流式传输的原理，并给一个简短示例",
  suggestion2: "写一个判断字符串是否为回文的 Python 函数",
  suggestion3: "用三句话介绍一下量子计算",
  suggestion4: "用 Markdown 表格比较 TCP 和 UDP",
  scrollToBottom: "滚动到最新消息",
  openSidebar: "显示对话列表",
  closeSidebar: "隐藏对话列表",
  themeToDark: "切换到深色主题",
  themeToLight: "切换到浅色主题",
  language: "语言",
  languageSwitch: "English",
  languageSwitchLabel: "Switch to English",
  replyStarted: "助手开始回复。",
  replyFinished: "助手回复完毕。",
  replyStopped: "回复已停止。",
  replyFailed: "回复失败：{error}",
  replyContinuing: "回复因长度限制被截断，正在继续（第 {round} 轮）。",
  cutForLength: "回复达到长度上限而被截断。",
  stopped: "已停止。",
  errorTitle: "出错了",
  keyTitle: "访问密钥",
  keyIntro: "此中转服务需要访问密钥。密钥保存在本浏览器中，并随每个请求发送。",
  keyLabel: "访问密钥",
  keySave: "保存",
  keyCancel: "取消",
  keyShow: "显示密钥",
  keyChecking: "正在验证…",
  keyRejected: "中转服务拒绝了这个访问密钥（401）。请检查后重试。",
  keyRejectedStored: "已保存的访问密钥被中转服务拒绝（401），请输入正确的密钥。",
  keyMissing: "请输入访问密钥。",
  keyUnreachable: "无法验证密钥：{error}",
  chatUnauthorized: "中转服务拒绝了访问密钥（401）：{error}",
  enterKey: "输入访问密钥",
  changeKey: "更换访问密钥",
  forgetKey: "清除访问密钥",
  keySaved: "访问密钥已保存。",
  keyForgotten: "访问密钥已从本浏览器中清除。",
  theme: "主题",
  themeSystem: "跟随系统",
  themeLight: "浅色",
  themeDark: "深色",
  continueRounds: "被截断的回复自动续写的最多次数",
  settingsDone: "完成",
  shortcuts: "键盘快捷键",
  shortcutSend: "发送消息",
  shortcutNewline: "换行",
  shortcutStop: "停止回复",
  shortcutNewChat: "新对话",
  shortcutFocus: "聚焦输入框",
  deleteTitle: "删除对话？",
  deleteText: "“{title}”将从本浏览器中删除。",
  delete: "删除",
  cancel: "取消",
  imported: "已导入 {count} 个对话。",
  importFailed: "无法导入该文件：{error}",
  storageFull: "浏览器存储空间已满，本对话可能无法保存。",
  untitled: "新对话",
  close: "关闭",
  streaming: "正在回复…",
  modelsUnavailable: "无法获取模型列表",
};

const tables: Record<Lang, Record<Key, string>> = { en, zh };

let current: Lang = "en";

export function detectLang(languages: readonly string[]): Lang {
  for (const tag of languages) {
    const lower = tag.toLowerCase();
    if (lower.startsWith("zh")) return "zh";
    if (lower.startsWith("en")) return "en";
  }
  return "en";
}

export function setLang(lang: Lang): void {
  current = lang;
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
}

export function lang(): Lang {
  return current;
}

/** The text for `key` in the current language, with `{name}` placeholders filled. */
export function t(key: Key, values: Record<string, string | number> = {}): string {
  return tables[current][key].replace(/\{(\w+)\}/g, (match, name: string) =>
    name in values ? String(values[name]) : match,
  );
}

/** Fills every `data-i18n` (text), `data-i18n-label` (aria-label), `-title` and `-placeholder`. */
export function translate(root: ParentNode): void {
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
}
