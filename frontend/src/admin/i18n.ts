// The admin page's words in English and Chinese, the way the chat page does it
// (src/i18n.ts): the browser's language until the user picks one with #language.

export type Lang = "en" | "zh";

const en = {
  pageTitle: "gptrelay admin",
  admin: "Admin",
  skipToContent: "Skip to content",
  openChat: "Chat page",
  languageSwitch: "中文",
  languageSwitchLabel: "切换到中文",
  signOut: "Sign out",
  signedOut: "Signed out.",
  navLabel: "Sections",

  signInTitle: "Sign in to the admin page",
  signInIntro: "Enter the relay's admin key (ADMIN_KEY). It is kept in this browser tab only, until you sign out or close the tab.",
  adminKey: "Admin key",
  signIn: "Sign in",
  signingIn: "Signing in…",
  keyMissing: "Enter the admin key.",
  keyRejected: "The relay rejected this admin key (401).",
  keyRejectedLater: "The relay rejected the admin key (401); sign in again.",
  adminOff: "The admin API is off on this relay: start it with ADMIN_KEY set.",
  unreachable: "Could not reach the relay: {error}",
  loading: "Loading…",

  keysTitle: "Access keys",
  keysIntro: "Keys for people and apps that use this relay, each with its own limits.",
  hideRevoked: "Hide revoked keys",
  refresh: "Refresh",
  noKeys: "No access keys yet. Create one below.",
  noKeysShown: "Every key is revoked; clear “Hide revoked keys” to see them.",
  keyCount: "{count} key(s), {active} active",
  colName: "Name",
  colStatus: "Status",
  colRpm: "RPM",
  colTpm: "TPM",
  colDaily: "Daily",
  colMonthly: "Monthly",
  colModels: "Models",
  colOrigins: "Origins",
  colCreated: "Created",
  colExpires: "Expires",
  colActions: "Actions",
  statusActive: "active",
  statusRevoked: "revoked",
  statusExpired: "expired",
  anyModel: "any",
  anyOrigin: "any",
  never: "never",
  edit: "Edit",
  revoke: "Revoke",
  editNamed: "Edit “{name}”",
  revokeNamed: "Revoke “{name}”",

  createTitle: "Create a key",
  newName: "Name",
  newNameHint: "1 to 64 of A–Z a–z 0–9 . _ -",
  nameMissing: "Enter a name for the key.",
  limitRpm: "Requests per minute",
  limitTpm: "Tokens per minute",
  limitDaily: "Tokens per day",
  limitMonthly: "Tokens per month",
  noLimit: "no limit",
  models: "Models",
  modelsHint: "Names or patterns such as gpt-4o*, separated by commas or spaces; empty: any model",
  origins: "Origins",
  originsHint: "Web pages that may use the key from a browser, such as https://app.example.com; empty: any",
  expiry: "Expires",
  ttlNever: "Never",
  ttlHour: "In 1 hour",
  ttlDay: "In 1 day",
  ttlWeek: "In 7 days",
  ttlMonth: "In 30 days",
  create: "Create key",
  creating: "Creating…",
  newKeyTitle: "Key “{name}” created",
  newKeyNote: "Copy the key now: it will not be shown again.",
  copy: "Copy",
  copied: "Copied",
  copyFailed: "Copy failed; select the key and copy it by hand.",
  dismiss: "Done",
  notWhole: "{field}: enter a whole number of 0 or more, or leave it empty.",

  editTitle: "Edit “{name}”",
  editIntro: "Empty a limit to remove it.",
  expiryKeep: "Unchanged ({when})",
  save: "Save",
  saving: "Saving…",
  cancel: "Cancel",
  saved: "Saved “{name}”.",
  noChanges: "Nothing changed.",

  revokeTitle: "Revoke “{name}”?",
  revokeText: "Apps and people using this key are refused from now on. This cannot be undone.",
  revoked: "Revoked “{name}”.",
  created: "Created “{name}”.",

  usageTitle: "Usage",
  usageIntro: "Requests and tokens counted by the relay, by UTC day.",
  since: "From (UTC)",
  until: "Until, not included (UTC)",
  usageKey: "Key",
  allKeys: "All keys",
  usageRange: "Since must be before until.",
  totalRequests: "Requests",
  totalTokens: "Total tokens",
  promptTokens: "Prompt tokens",
  completionTokens: "Completion tokens",
  chartTitle: "Tokens per day (UTC)",
  chartLabel: "Chart of prompt and completion tokens per UTC day, {since} to {last}: {total} tokens in all.",
  day: "Day",
  prompt: "Prompt",
  completion: "Completion",
  byKey: "By key",
  byModel: "By model",
  colKey: "Key",
  colModel: "Model",
  colRequests: "Requests",
  colPrompt: "Prompt",
  colCompletion: "Completion",
  colTotal: "Total",
  ownerKey: "(owner key)",
  unknownModel: "(no model)",
  noUsage: "No usage in this range.",
  usageLoaded: "Usage updated.",
};

export type Key = keyof typeof en;

const zh: Record<Key, string> = {
  pageTitle: "gptrelay 管理",
  admin: "管理",
  skipToContent: "跳到正文",
  openChat: "聊天页面",
  languageSwitch: "English",
  languageSwitchLabel: "Switch to English",
  signOut: "退出登录",
  signedOut: "已退出登录。",
  navLabel: "页面分区",

  signInTitle: "登录管理页面",
  signInIntro: "请输入中转服务的管理密钥（ADMIN_KEY）。它只保存在当前浏览器标签页中，退出登录或关闭标签页后即清除。",
  adminKey: "管理密钥",
  signIn: "登录",
  signingIn: "正在登录…",
  keyMissing: "请输入管理密钥。",
  keyRejected: "中转服务拒绝了这个管理密钥（401）。",
  keyRejectedLater: "中转服务拒绝了管理密钥（401），请重新登录。",
  adminOff: "此中转服务未开启管理 API：请设置 ADMIN_KEY 后启动。",
  unreachable: "无法连接中转服务：{error}",
  loading: "正在加载…",

  keysTitle: "访问密钥",
  keysIntro: "供使用此中转服务的人和应用使用的密钥，每个密钥有各自的限额。",
  hideRevoked: "隐藏已吊销的密钥",
  refresh: "刷新",
  noKeys: "还没有访问密钥。请在下方创建。",
  noKeysShown: "所有密钥都已吊销；取消勾选“隐藏已吊销的密钥”即可查看。",
  keyCount: "共 {count} 个密钥，{active} 个有效",
  colName: "名称",
  colStatus: "状态",
  colRpm: "RPM",
  colTpm: "TPM",
  colDaily: "每日",
  colMonthly: "每月",
  colModels: "模型",
  colOrigins: "来源",
  colCreated: "创建时间",
  colExpires: "过期时间",
  colActions: "操作",
  statusActive: "有效",
  statusRevoked: "已吊销",
  statusExpired: "已过期",
  anyModel: "不限",
  anyOrigin: "不限",
  never: "永不",
  edit: "编辑",
  revoke: "吊销",
  editNamed: "编辑“{name}”",
  revokeNamed: "吊销“{name}”",

  createTitle: "创建密钥",
  newName: "名称",
  newNameHint: "1 到 64 个字符：A–Z a–z 0–9 . _ -",
  nameMissing: "请输入密钥名称。",
  limitRpm: "每分钟请求数",
  limitTpm: "每分钟 token 数",
  limitDaily: "每日 token 数",
  limitMonthly: "每月 token 数",
  noLimit: "不限",
  models: "模型",
  modelsHint: "模型名或模式，如 gpt-4o*，用逗号或空格分隔；留空表示不限",
  origins: "来源",
  originsHint: "可在浏览器中使用此密钥的网页，如 https://app.example.com；留空表示不限",
  expiry: "有效期",
  ttlNever: "永不过期",
  ttlHour: "1 小时后过期",
  ttlDay: "1 天后过期",
  ttlWeek: "7 天后过期",
  ttlMonth: "30 天后过期",
  create: "创建密钥",
  creating: "正在创建…",
  newKeyTitle: "已创建密钥“{name}”",
  newKeyNote: "请立即复制此密钥：它不会再次显示。",
  copy: "复制",
  copied: "已复制",
  copyFailed: "复制失败，请手动选中密钥并复制。",
  dismiss: "完成",
  notWhole: "{field}：请输入大于或等于 0 的整数，或留空。",

  editTitle: "编辑“{name}”",
  editIntro: "清空某项限额即取消该限额。",
  expiryKeep: "不变（{when}）",
  save: "保存",
  saving: "正在保存…",
  cancel: "取消",
  saved: "已保存“{name}”。",
  noChanges: "没有改动。",

  revokeTitle: "吊销“{name}”？",
  revokeText: "此后使用这个密钥的应用和用户都会被拒绝。此操作无法撤销。",
  revoked: "已吊销“{name}”。",
  created: "已创建“{name}”。",

  usageTitle: "用量",
  usageIntro: "中转服务统计的请求数和 token 数，按 UTC 日期计。",
  since: "起始日期（UTC）",
  until: "截止日期，不含当天（UTC）",
  usageKey: "密钥",
  allKeys: "全部密钥",
  usageRange: "起始日期必须早于截止日期。",
  totalRequests: "请求数",
  totalTokens: "token 总数",
  promptTokens: "提示 token",
  completionTokens: "补全 token",
  chartTitle: "每日 token 用量（UTC）",
  chartLabel: "{since} 至 {last} 每个 UTC 日的提示和补全 token 图表：共 {total} 个 token。",
  day: "日期",
  prompt: "提示",
  completion: "补全",
  byKey: "按密钥",
  byModel: "按模型",
  colKey: "密钥",
  colModel: "模型",
  colRequests: "请求数",
  colPrompt: "提示",
  colCompletion: "补全",
  colTotal: "合计",
  ownerKey: "（所有者密钥）",
  unknownModel: "（无模型）",
  noUsage: "此时间范围内没有用量。",
  usageLoaded: "用量已更新。",
};

const tables: Record<Lang, Record<Key, string>> = { en, zh };
const STORED = "gptrelay-admin-lang";

let current: Lang = "en";

export function detectLang(): Lang {
  try {
    const stored = localStorage.getItem(STORED);
    if (stored === "en" || stored === "zh") return stored;
  } catch {
    // no storage: follow the browser
  }
  return (navigator.language || "").toLowerCase().startsWith("zh") ? "zh" : "en";
}

export function setLang(lang: Lang, remember = false): void {
  current = lang;
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  if (remember) {
    try {
      localStorage.setItem(STORED, lang);
    } catch {
      // a convenience only
    }
  }
}

export function lang(): Lang {
  return current;
}

export function locale(): string {
  return current === "zh" ? "zh-CN" : "en-US";
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
