// The usage chart: prompt and completion tokens per UTC day as stacked bars, drawn
// with uPlot. It follows its container's width and the page's colours (light/dark).

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { formatCompact, formatNumber, h } from "./dom";
import { t } from "./i18n";

export interface DayTokens {
  day: string; // YYYY-MM-DD
  prompt: number;
  completion: number;
}

interface Palette {
  prompt: string;
  completion: string;
  text: string;
  grid: string;
  font: string;
}

function palette(): Palette {
  const style = getComputedStyle(document.documentElement);
  const read = (name: string, fallback: string) => style.getPropertyValue(name).trim() || fallback;
  return {
    prompt: read("--chart-prompt", "#10a37f"),
    completion: read("--chart-completion", "#6e8efb"),
    text: read("--text-soft", "#5d5d5d"),
    grid: read("--border", "#e5e5e5"),
    font: read("--font", "sans-serif"),
  };
}

// Tick steps, in days.
const DAY_STEPS = [1, 2, 3, 5, 7, 14, 28, 56, 91, 182, 364];

export class UsageChart {
  private plot: uPlot | null = null;
  private days: DayTokens[] = [];
  private readonly plotBox: HTMLElement;
  private readonly readout: HTMLElement;
  private readonly observer: ResizeObserver;
  private width = 0;

  constructor(private readonly container: HTMLElement) {
    this.plotBox = h("div", { class: "chart-plot" });
    this.readout = h("div", { class: "chart-readout", "aria-hidden": "true" });
    container.replaceChildren(this.plotBox, this.readout);
    this.observer = new ResizeObserver(() => this.resize());
    this.observer.observe(container);
  }

  /** Draws `days` (every day of the range, zeros included). */
  show(days: DayTokens[]): void {
    this.days = days;
    this.build();
  }

  /** Draws again with the page's current colours and language. */
  restyle(): void {
    if (this.days.length) this.build();
  }

  private height(): number {
    return this.container.clientWidth < 560 ? 220 : 280;
  }

  private resize(): void {
    const width = this.plotBox.clientWidth;
    if (!this.plot || width === this.width || width === 0) return;
    this.width = width;
    this.plot.setSize({ width, height: this.height() });
  }

  private build(): void {
    this.plot?.destroy();
    this.plot = null;
    const days = this.days;
    if (!days.length) {
      this.readout.replaceChildren();
      return;
    }
    const colors = palette();
    const x = days.map((_, index) => index);
    const prompt = days.map((day) => day.prompt);
    const stacked = days.map((day) => day.prompt + day.completion);
    const max = Math.max(0, ...stacked);
    const multiYear = days.length > 0 && days[0].day.slice(0, 4) !== days[days.length - 1].day.slice(0, 4);
    const label = (index: number) => {
      const day = days[index]?.day ?? "";
      return multiYear ? day : day.slice(5);
    };
    const axisFont = `12px ${colors.font}`;
    const bars = uPlot.paths.bars!({ size: [0.7, 48], gap: 1 });
    this.width = this.plotBox.clientWidth || this.container.clientWidth || 600;

    const options: uPlot.Options = {
      width: this.width,
      height: this.height(),
      legend: { show: false },
      cursor: { drag: { x: false, y: false, setScale: false }, points: { show: false }, y: false },
      select: { show: false, left: 0, top: 0, width: 0, height: 0 },
      padding: [12, 8, 0, 0],
      scales: {
        x: { time: false, range: () => [-0.5, Math.max(0, days.length - 1) + 0.5] },
        y: { range: () => (max > 0 ? uPlot.rangeNum(0, max, 0.1, true) : [0, 10]) },
      },
      bands: [{ series: [2, 1] }],
      axes: [
        {
          stroke: colors.text,
          font: axisFont,
          grid: { show: false },
          ticks: { stroke: colors.grid, size: 4 },
          size: 32,
          space: 48,
          incrs: DAY_STEPS,
          values: (_u, splits) => splits.map((v) => (Number.isInteger(v) && v >= 0 && v < days.length ? label(v) : "")),
        },
        {
          stroke: colors.text,
          font: axisFont,
          grid: { stroke: colors.grid, width: 1 },
          ticks: { show: false },
          size: 56,
          values: (_u, splits) => splits.map((v) => (Number.isInteger(v) ? formatCompact(v) : "")),
        },
      ],
      series: [
        {},
        { label: t("prompt"), fill: colors.prompt, stroke: colors.prompt, width: 0, paths: bars, points: { show: false } },
        { label: t("completion"), fill: colors.completion, stroke: colors.completion, width: 0, paths: bars, points: { show: false } },
      ],
      hooks: {
        setCursor: [(u) => this.showReadout(u.cursor.idx ?? null)],
      },
    };
    this.plot = new uPlot(options, [x, prompt, stacked], this.plotBox);
    this.showReadout(null);
  }

  /** The legend under the chart: one day's numbers while hovering, else the range's. */
  private showReadout(index: number | null): void {
    const colors = palette();
    const day = index === null ? null : this.days[index];
    const prompt = day ? day.prompt : this.days.reduce((sum, d) => sum + d.prompt, 0);
    const completion = day ? day.completion : this.days.reduce((sum, d) => sum + d.completion, 0);
    const first = this.days[0]?.day ?? "";
    const last = this.days[this.days.length - 1]?.day ?? "";
    const item = (color: string, name: string, value: number) =>
      h("span", { class: "readout-item" }, swatch(color), `${name} `, h("strong", {}, formatNumber(value)));
    this.readout.replaceChildren(
      h("span", { class: "readout-day" }, day ? day.day : first === last ? first : `${first} – ${last}`),
      item(colors.prompt, t("prompt"), prompt),
      item(colors.completion, t("completion"), completion),
    );
  }
}

function swatch(color: string): HTMLElement {
  const element = h("span", { class: "swatch" });
  element.style.background = color;
  return element;
}
