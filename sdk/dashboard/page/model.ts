// What the dashboard shows, computed from the admin function's answers: pure functions, shared by
// the page and its tests (which check the page against the same admin report).
import { count } from '../../cli-format.ts';
import type {
  AlertDto, AlertsReport, LimitStatus, LimitsReport, UsageDto, UsageGroupBy, UsageReport, UsageTotals,
} from '../../../runtime/core/protocol.ts';

export { count };

/**
 * USD for the page: cents from $1 up; below, three significant digits ($0.0125, $0.00024), since a
 * month of a small team's calls is often well under a dollar and cents would hide the differences.
 */
export function money(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const abs = Math.abs(n);
  if (abs === 0) return '$0.00';
  if (abs >= 1) return `${n < 0 ? '-' : ''}$${abs.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
  const digits = Math.min(9, Math.max(2, 2 - Math.floor(Math.log10(abs))));
  return `${n < 0 ? '-' : ''}$${abs.toFixed(digits).replace(/(\.\d\d\d*?)0+$/, '$1')}`;
}

export type Dimension = UsageGroupBy;
export const DIMENSIONS: Dimension[] = ['user', 'project', 'model'];
export type Totals = UsageTotals;
export type { AlertDto, AlertsReport, LimitStatus, LimitsReport, UsageReport };

/** The dimension a grouping stacks its bars by: models within users and projects, projects within models. */
export const stackOf = (by: Dimension): Dimension => (by === 'model' ? 'project' : 'model');

/** `2026-11` → `November 2026`. */
export function monthLabel(month: string): string {
  const [year, m] = month.split('-').map(Number);
  return new Date(Date.UTC(year, m - 1, 1)).toLocaleString('en-US', { month: 'long', year: 'numeric', timeZone: 'UTC' });
}

/** The months to offer: those with data and the current one, newest first, each once. */
export function monthChoices(current: string, withData: string[]): string[] {
  return [...new Set([current, ...withData])].sort().reverse();
}

/** Every day of `month` (`YYYY-MM-DD`), up to `today` when that falls within it. */
export function daysOf(month: string, today: string): string[] {
  const [year, m] = month.split('-').map(Number);
  const last = new Date(Date.UTC(year, m, 0)).getUTCDate();
  const end = today.startsWith(`${month}-`) ? Number(today.slice(8, 10)) : last;
  return Array.from({ length: end }, (_, i) => `${month}-${String(i + 1).padStart(2, '0')}`);
}

export interface DayTotal {
  day: string;
  spend: number;
  requests: number;
  cacheHits: number;
  saved: number;
}

/** Spend per day over the month, zero on days without calls. */
export function perDay(days: UsageDto[], month: string, today: string): DayTotal[] {
  const byDay = new Map(daysOf(month, today).map((day) => [day, { day, spend: 0, requests: 0, cacheHits: 0, saved: 0 }]));
  for (const d of days) {
    if (!d.day) continue;
    let total = byDay.get(d.day);
    if (!total) byDay.set(d.day, (total = { day: d.day, spend: 0, requests: 0, cacheHits: 0, saved: 0 }));
    total.spend = roundUsd(total.spend + d.spend);
    total.requests += d.requests;
    total.cacheHits += d.cacheHits;
    total.saved = roundUsd(total.saved + d.saved);
  }
  return [...byDay.values()].sort((a, b) => (a.day < b.day ? -1 : 1));
}

export interface StackPart {
  key: string;
  part: string;
  spend: number;
}

/** Spend per group and stack part (e.g. per user and model), for the stacked bars. */
export function stackParts(rows: UsageDto[], by: Dimension): StackPart[] {
  const stack = stackOf(by);
  const parts = new Map<string, StackPart>();
  for (const r of rows) {
    const id = `${r[by]}\u0000${r[stack]}`;
    const p = parts.get(id) ?? { key: r[by], part: r[stack], spend: 0 };
    p.spend = roundUsd(p.spend + r.spend);
    parts.set(id, p);
  }
  return [...parts.values()];
}

/** Money is exact in the ledger (nano-USD); float sums of it are rounded back to that grain. */
export const roundUsd = (n: number): number => Math.round(n * 1e9) / 1e9;

export type Level = 'ok' | 'near' | 'over';

/** Colour band of a limit: near from 80% used, over from 100%. A $0 limit blocks everything. */
export function levelOf(spend: number, limit: number): Level {
  if (limit <= 0) return 'over';
  const used = spend / limit;
  return used >= 1 ? 'over' : used >= 0.8 ? 'near' : 'ok';
}

export const usedPercent = (spend: number, limit: number): number => (limit > 0 ? Math.round((spend / limit) * 100) : 100);

/** One limit of a scope with its use: `used` of `limit` per month, per day, per minute. */
export interface LimitMeter {
  kind: 'day' | 'rpm' | 'tpm';
  used: number;
  limit: number;
}

/** The limits beside the monthly one that a scope has, with this day's and this minute's use. */
export function otherMeters(l: LimitStatus): LimitMeter[] {
  const meters: LimitMeter[] = [];
  if (l.dailyLimit !== undefined) meters.push({ kind: 'day', used: l.today, limit: l.dailyLimit });
  if (l.rpm !== undefined) meters.push({ kind: 'rpm', used: l.minuteRequests, limit: l.rpm });
  if (l.tpm !== undefined) meters.push({ kind: 'tpm', used: l.minuteTokens, limit: l.tpm });
  return meters;
}

/** Projects with a USD limit (of any scope within them, per month or day) at 80% or more, most used first. */
export function projectsNearLimits(limits: LimitStatus[]): { project: string; percent: number }[] {
  const worst = new Map<string, number>();
  for (const l of limits) {
    const usd = [
      ...(l.limit !== undefined ? [{ used: l.spend, limit: l.limit }] : []),
      ...otherMeters(l).filter((m) => m.kind === 'day'),
    ];
    for (const m of usd) {
      if (levelOf(m.used, m.limit) === 'ok') continue;
      worst.set(l.project, Math.max(worst.get(l.project) ?? 0, usedPercent(m.used, m.limit)));
    }
  }
  return [...worst].map(([project, percent]) => ({ project, percent })).sort((a, b) => b.percent - a.percent);
}

/** `project`, `project · user`, `project · model`, `project · user · model`. */
export const scopeLabel = (l: { project: string; user: string; model: string }): string =>
  [l.project, l.user === '*' ? '' : `user ${l.user}`, l.model === '*' ? '' : `model ${l.model}`].filter(Boolean).join(' · ');

/** Alert thresholds as the page writes them: `80, 100%`, or `none`. */
export const thresholdsText = (alerts: readonly number[]): string => (alerts.length ? `${alerts.join(', ')}%` : 'none');
