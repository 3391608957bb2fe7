// The #usage section: a date range and key filter, the tokens-per-day chart,
// the totals, and the tables by key and by model.

import { type AdminApi, ApiError, type KeyObject, type UsageRow, type UsageTotals } from "./api";
import { type DayTokens, UsageChart } from "./chart";
import { $, daysBetween, formatNumber, h, utcDay } from "./dom";
import { t } from "./i18n";
import { problem } from "./errors";

const RANGE_DAYS = 30;
/** The key filter's value for the owner's key: never a key name (those are A–Z a–z 0–9 . _ - only). */
const OWNER = "(owner)";

export class UsageSection {
  private readonly since = $<HTMLInputElement>("usage-since");
  private readonly until = $<HTMLInputElement>("usage-until");
  private readonly keySelect = $<HTMLSelectElement>("usage-key");
  private readonly error = $("usage-error");
  private readonly refresh = $<HTMLButtonElement>("usage-refresh");
  private readonly chart: UsageChart;
  private loadCount = 0;
  private last: { days: DayTokens[]; byKey: UsageRow[]; byModel: UsageRow[] } | null = null;

  constructor(private readonly api: AdminApi) {
    this.chart = new UsageChart($("usage-chart"));
    this.resetRange();
    for (const input of [this.since, this.until, this.keySelect]) {
      input.addEventListener("change", () => void this.load());
    }
    this.refresh.addEventListener("click", () => void this.load());
  }

  /** The last 30 UTC days, today included (until is exclusive: tomorrow). */
  resetRange(): void {
    this.until.value = utcDay(1);
    this.since.value = utcDay(1 - RANGE_DAYS);
  }

  /** The key filter's choices: all keys, the owner's key, and every key's name (revoked ones too:
   * their usage stays). */
  setKeys(keys: KeyObject[]): void {
    const chosen = this.keySelect.value;
    const all = h("option", { value: "", "data-i18n": "allKeys" }, t("allKeys"));
    const owner = h("option", { value: OWNER, "data-i18n": "ownerKey" }, t("ownerKey"));
    const names = keys.map((key) => key.name);
    if (chosen && chosen !== OWNER && !names.includes(chosen)) names.push(chosen);
    this.keySelect.replaceChildren(all, owner, ...names.map((name) => h("option", { value: name }, name)));
    this.keySelect.value = chosen;
  }

  /** Forgets what was shown (on signing out). */
  clear(): void {
    this.loadCount++;
    this.last = null;
    this.setKeys([]);
    this.keySelect.value = "";
    this.resetRange();
    this.error.textContent = "";
    this.chart.show([]);
    $("usage-totals").replaceChildren();
    $("usage-by-key-body").replaceChildren();
    $("usage-by-model-body").replaceChildren();
  }

  async load(): Promise<void> {
    const count = ++this.loadCount;
    const since = this.since.value;
    const until = this.until.value;
    const chosen = this.keySelect.value;
    const owner = chosen === OWNER;
    const key = chosen && !owner ? chosen : undefined;
    this.error.textContent = "";
    if (!since || !until || since >= until) {
      this.error.textContent = t("usageRange");
      return;
    }
    this.refresh.disabled = true;
    $("usage").setAttribute("aria-busy", "true");
    try {
      const [byDay, byKey, byModel] = await Promise.all(
        (["day", "key", "model"] as const).map((by) => this.api.usage({ by, key, owner, since, until })),
      );
      if (count !== this.loadCount) return;
      const perDay = new Map(byDay.map((row) => [row.day ?? "", row]));
      const days = daysBetween(since, until).map((day) => ({
        day,
        prompt: perDay.get(day)?.prompt_tokens ?? 0,
        completion: perDay.get(day)?.completion_tokens ?? 0,
      }));
      this.last = { days, byKey, byModel };
      this.render();
    } catch (error) {
      if (count === this.loadCount && !(error instanceof ApiError && error.status === 401)) {
        this.error.textContent = problem(error);
      }
    } finally {
      if (count === this.loadCount) {
        this.refresh.disabled = false;
        $("usage").removeAttribute("aria-busy");
      }
    }
  }

  /** Draws everything again from the last answer (after a language or theme change too). */
  render(): void {
    const last = this.last;
    if (!last) return;
    const totals = sum(last.byKey);
    this.renderTotals(totals);
    this.chart.show(last.days);
    const first = last.days[0]?.day ?? "";
    const end = last.days[last.days.length - 1]?.day ?? "";
    $("usage-chart-figure").setAttribute(
      "aria-label",
      t("chartLabel", { since: first, last: end, total: formatNumber(totals.total_tokens) }),
    );
    fillTable($<HTMLTableSectionElement>("usage-by-key-body"), last.byKey, "key");
    fillTable($<HTMLTableSectionElement>("usage-by-model-body"), last.byModel, "model");
    $("usage-by-key-empty").hidden = last.byKey.length > 0;
    $("usage-by-model-empty").hidden = last.byModel.length > 0;
  }

  restyle(): void {
    this.chart.restyle();
  }

  private renderTotals(totals: UsageTotals): void {
    const stat = (id: string, label: string, value: number) =>
      h("div", { class: "stat", id }, h("dt", {}, label), h("dd", {}, formatNumber(value)));
    $("usage-totals").replaceChildren(
      stat("total-requests", t("totalRequests"), totals.requests),
      stat("total-tokens", t("totalTokens"), totals.total_tokens),
      stat("total-prompt", t("promptTokens"), totals.prompt_tokens),
      stat("total-completion", t("completionTokens"), totals.completion_tokens),
    );
  }
}

function sum(rows: UsageRow[]): UsageTotals {
  const totals: UsageTotals = { requests: 0, prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
  for (const row of rows) {
    totals.requests += row.requests;
    totals.prompt_tokens += row.prompt_tokens;
    totals.completion_tokens += row.completion_tokens;
    totals.total_tokens += row.total_tokens;
  }
  return totals;
}

function fillTable(body: HTMLTableSectionElement, rows: UsageRow[], by: "key" | "model"): void {
  const sorted = [...rows].sort((a, b) => b.total_tokens - a.total_tokens || b.requests - a.requests);
  body.replaceChildren(
    ...sorted.map((row) => {
      const name = row[by] ?? null;
      const cell =
        name === null
          ? h("th", { scope: "row", class: "faint" }, by === "key" ? t("ownerKey") : t("unknownModel"))
          : h("th", { scope: "row" }, name);
      const tr = h(
        "tr",
        {},
        cell,
        h("td", { class: "num" }, formatNumber(row.requests)),
        h("td", { class: "num" }, formatNumber(row.prompt_tokens)),
        h("td", { class: "num" }, formatNumber(row.completion_tokens)),
        h("td", { class: "num total" }, formatNumber(row.total_tokens)),
      );
      tr.dataset[by] = name ?? "";
      if (name === null) tr.classList.add(by === "key" ? "owner-key" : "no-model");
      return tr;
    }),
  );
}
