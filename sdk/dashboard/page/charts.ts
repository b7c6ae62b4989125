// The two charts, drawn with Observable Plot as SVG: crisp at any zoom, real text, and an
// aria-label with the chart's figures so a screen reader gets the same story (the tables beside
// them hold every number).
import * as Plot from '@observablehq/plot';
import { count, money, type DayTotal, type StackPart } from './model.ts';

/** One accent for the daily line; readable on the light and the dark background. */
const ACCENT = '#3b82f6';
const LABEL_CHARS = 22;

const truncate = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

/** Marks the SVG as one image described by `label`: its parts are drawing, not content. */
function describe(svg: Element, label: string): void {
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', label);
  for (const g of svg.querySelectorAll('g')) g.setAttribute('aria-hidden', 'true');
}

/**
 * Horizontal bars, one per group (in `order`), split by the stack dimension. Returns the SVG and
 * its colour legend (HTML swatches, so the legend is text too).
 */
export function barChart(
  parts: StackPart[],
  order: string[],
  opts: { width: number; groupLabel: string; stackLabel: string; summary: string },
): { svg: Element; legend?: Element } {
  const narrow = opts.width < 520;
  const labelChars = Math.min(LABEL_CHARS, Math.max(...order.map((k) => k.length), 4));
  const marginLeft = Math.min(narrow ? 110 : 190, 14 + labelChars * 7);
  const partsDomain = [...new Set(parts.map((p) => p.part))].sort();
  const chart = Plot.plot({
    width: opts.width,
    height: Math.max(100, order.length * (narrow ? 30 : 34) + 46),
    marginLeft,
    marginRight: 20,
    style: { fontSize: '12px', background: 'transparent', overflow: 'visible' },
    x: { label: null, grid: true, nice: true, ticks: Math.max(2, Math.floor(opts.width / 120)), tickFormat: (d: number) => money(d) },
    y: { domain: order, label: null, tickFormat: (k: string) => truncate(k, narrow ? 14 : LABEL_CHARS) },
    color: { domain: partsDomain, scheme: 'observable10' },
    marks: [
      Plot.barX(parts, {
        x: 'spend',
        y: 'key',
        fill: 'part',
        inset: 0.5,
        title: (d: StackPart) => `${opts.groupLabel}: ${d.key}\n${opts.stackLabel}: ${d.part}\nSpend: ${money(d.spend)}`,
        tip: true,
      }),
      Plot.ruleX([0]),
    ],
  });
  describe(chart, opts.summary);
  const legend = partsDomain.length > 0 ? chart.legend('color', { label: opts.stackLabel }) : undefined;
  return { svg: chart, legend: legend ?? undefined };
}

/** Spend per day as a line over the month, the busiest day labelled. */
export function dayChart(days: DayTotal[], opts: { width: number; summary: string }): Element {
  const data = days.map((d) => ({ ...d, date: new Date(`${d.day}T00:00:00Z`) }));
  const peak = data.reduce<(typeof data)[number] | undefined>((best, d) => (d.spend > (best?.spend ?? 0) ? d : best), undefined);
  // Its label leans away from the chart's edges.
  const at = peak ? data.indexOf(peak) / Math.max(1, data.length - 1) : 0.5;
  const textAnchor = at > 0.85 ? 'end' : at < 0.15 ? 'start' : 'middle';
  const narrow = opts.width < 520;
  const chart = Plot.plot({
    width: opts.width,
    height: narrow ? 190 : 230,
    marginLeft: 64,
    marginRight: 20,
    marginTop: 24,
    style: { fontSize: '12px', background: 'transparent', overflow: 'visible' },
    x: { type: 'utc', label: null, ticks: Math.max(2, Math.floor(opts.width / 90)), tickFormat: '%b %-d' },
    y: { label: '↑ Spend (USD)', grid: true, nice: true, zero: true, ticks: 4, tickFormat: (d: number) => money(d) },
    marks: [
      Plot.areaY(data, { x: 'date', y: 'spend', fill: ACCENT, fillOpacity: 0.12 }),
      Plot.lineY(data, { x: 'date', y: 'spend', stroke: ACCENT, strokeWidth: 2 }),
      Plot.dot(data.filter((d) => d.requests > 0 || d.cacheHits > 0), { x: 'date', y: 'spend', fill: ACCENT, r: 3 }),
      Plot.ruleY([0]),
      ...(peak ? [Plot.text([peak], { x: 'date', y: 'spend', text: (d: DayTotal) => money(d.spend), dy: -10, textAnchor, fontWeight: 600 })] : []),
      Plot.tip(
        data,
        Plot.pointerX({
          x: 'date',
          y: 'spend',
          title: (d: DayTotal) =>
            `${d.day}\n${money(d.spend)} spent · ${count(d.requests)} request${d.requests === 1 ? '' : 's'}` +
            (d.cacheHits ? `\n${count(d.cacheHits)} cache hit${d.cacheHits === 1 ? '' : 's'} saved ${money(d.saved)}` : ''),
        }),
      ),
    ],
  });
  describe(chart, opts.summary);
  return chart;
}
