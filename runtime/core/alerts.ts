// Budget alerts: which thresholds of a limit a settled spend has reached, and what an alert says.
// Pure code. The ledgers detect crossings inside the settlement's own write and record each one
// with a conditional write (so it fires once per limit, threshold and period, however many calls
// cross it at once); delivery (local webhook, or DynamoDB Streams → the notifier on AWS) reads the
// alerts they made.
import { ANY, type Spender } from './protocol.ts';
import { describeScope, limitCommand, usd } from './limits.ts';
import type { Nano, Scope } from './ports.ts';
import { nanoToUsd } from './pricing.ts';

/** Percent of a limit at which an alert fires, when the limit sets none of its own. */
export const DEFAULT_ALERTS: readonly number[] = [80, 100];
export const MAX_ALERTS = 10;

export type AlertPeriod = 'month' | 'day';

/** A limit a settled row counts against, and the thresholds (percent) to watch on it. */
export interface AlertWatch {
  period: AlertPeriod;
  limit: Nano;
  thresholds: readonly number[];
}

/** A threshold reached: made once per scope, period, threshold and limit value. */
export interface BudgetAlert {
  scope: Scope;
  period: AlertPeriod;
  /** `YYYY-MM`: the month of the usage row the mark is on. */
  month: string;
  /** `YYYY-MM-DD`, for a daily limit's alert. */
  day?: string;
  /** Percent of the limit. */
  threshold: number;
  limit: Nano;
  /** Settled spend of the period when the crossing was seen. */
  spent: Nano;
  /** Epoch ms. */
  at: number;
  /** The call whose settlement crossed it. */
  callId: string;
}

/** The least spend (nano) that reaches `threshold` percent of `limit`: exact, no float rounding. */
export function thresholdNano(limit: Nano, threshold: number): Nano {
  return Number((BigInt(limit) * BigInt(threshold) + 99n) / 100n);
}

/** The thresholds of `watch` that `spent` has reached, lowest first. A limit of 0 has none. */
export function reached(watch: AlertWatch, spent: Nano): number[] {
  if (watch.limit <= 0) return [];
  return [...watch.thresholds].sort((a, b) => a - b).filter((t) => spent >= thresholdNano(watch.limit, t));
}

/**
 * The thresholds an admin asked for: `none` (no alerts), or up to 10 whole percents 1–100, comma
 * separated. Sorted, without repeats. An error message for anything else.
 */
export function parseAlerts(text: string): number[] | { error: string } {
  const trimmed = text.trim();
  if (trimmed === 'none' || trimmed === '') return [];
  const parts = trimmed.split(',').map((p) => p.trim());
  const values = parts.map(Number);
  if (parts.some((p) => !/^\d{1,3}$/.test(p)) || values.some((v) => v < 1 || v > 100)) {
    return { error: `alerts must be "none" or whole percents from 1 to 100, comma separated (got "${text}")` };
  }
  const sorted = [...new Set(values)].sort((a, b) => a - b);
  if (sorted.length > MAX_ALERTS) return { error: `at most ${MAX_ALERTS} alert thresholds per limit (got ${sorted.length})` };
  return sorted;
}

/** Thresholds as a limit stores them: `80,100`; `none` for no alerts. */
export const formatAlerts = (thresholds: readonly number[]): string => (thresholds.length ? thresholds.join(',') : 'none');

/** Whether stored thresholds are valid (a store never hands out what `parseAlerts` would refuse). */
export function storedAlerts(text: string | null | undefined): number[] | undefined {
  if (text === null || text === undefined) return undefined;
  const parsed = parseAlerts(text);
  return Array.isArray(parsed) ? parsed : undefined;
}

/** One scope's share of the period's spend, for "what most of it went to". */
export type { Spender };

/** Detail usage (one row per user and model) of the alert's period, as reports read it. */
export interface SpendRow {
  project: string;
  user: string;
  model: string;
  spent: Nano;
}

const TOP = 3;

/** The biggest users and models inside the alert's scope, from the period's detail rows. */
export function topSpenders(scope: Scope, rows: readonly SpendRow[]): { users: Spender[]; models: Spender[] } {
  const inScope = rows.filter(
    (r) =>
      r.project === scope.project && r.user !== ANY && r.model !== ANY &&
      (scope.user === ANY || r.user === scope.user) && (scope.model === ANY || r.model === scope.model),
  );
  const top = (key: 'user' | 'model'): Spender[] => {
    const sums = new Map<string, Nano>();
    for (const r of inScope) sums.set(r[key], (sums.get(r[key]) ?? 0) + r.spent);
    return [...sums]
      .filter(([, spent]) => spent > 0)
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .slice(0, TOP)
      .map(([name, spent]) => ({ name, spentUsd: nanoToUsd(spent) }));
  };
  return { users: top('user'), models: top('model') };
}

/** What every channel delivers (the webhook's JSON body as it is). Money in USD. */
export interface AlertPayload {
  type: 'budget_alert';
  stage: string;
  scope: Scope;
  period: AlertPeriod;
  month: string;
  day?: string;
  threshold: number;
  limitUsd: number;
  spentUsd: number;
  /** ISO time the crossing was seen. */
  at: string;
  topUsers: Spender[];
  topModels: Spender[];
  /** The CLI line that raises this limit. */
  raiseCommand: string;
  /** Stable per alert: a receiver may drop repeats by it. */
  id: string;
}

/** An alert's stable identity: the same crossing delivered twice has the same id. */
export function alertId(stage: string, a: BudgetAlert): string {
  const when = a.period === 'day' ? a.day : a.month;
  return [stage, a.period, when ?? '', a.scope.project, a.scope.user, a.scope.model, a.threshold, a.limit].map((p) => encodeURIComponent(p)).join(':');
}

export function alertPayload(stage: string, alert: BudgetAlert, rows: readonly SpendRow[]): AlertPayload {
  const { users, models } = topSpenders(alert.scope, rows);
  return {
    type: 'budget_alert',
    stage,
    scope: { ...alert.scope },
    period: alert.period,
    month: alert.month,
    ...(alert.day ? { day: alert.day } : {}),
    threshold: alert.threshold,
    limitUsd: nanoToUsd(alert.limit),
    spentUsd: nanoToUsd(alert.spent),
    at: new Date(alert.at).toISOString(),
    topUsers: users,
    topModels: models,
    raiseCommand: limitCommand(stage, alert.scope, '<usd>', alert.period === 'day' ? 'day' : undefined),
    id: alertId(stage, alert),
  };
}

/** A one-line subject (email subject, chat title): what crossed which threshold. */
export function alertSubject(p: AlertPayload): string {
  const kind = p.period === 'day' ? 'daily' : 'monthly';
  // SNS subjects are at most 100 characters.
  return `openai-wrapi ${p.stage}: ${p.threshold}% of the ${kind} limit of ${p.scope.project}`.slice(0, 100);
}

/** The alert as plain text (email, the local stack's console). */
export function alertText(p: AlertPayload): string {
  const scope = describeScope(p.scope);
  const when = p.period === 'day' ? `on ${p.day} (UTC)` : `in ${p.month}`;
  const nano = (u: number) => usd(Math.round(u * 1e9));
  const list = (s: Spender[]) => (s.length ? s.map((x) => `${x.name} ${nano(x.spentUsd)}`).join(', ') : 'nothing settled yet');
  return [
    `${scope} in stage ${p.stage} has spent ${nano(p.spentUsd)} ${when}: ${p.threshold}% of its ${p.period === 'day' ? 'daily' : 'monthly'} limit of ${nano(p.limitUsd)}.`,
    p.threshold >= 100 ? 'Calls that would pass the limit are now refused.' : 'Calls that would pass the limit will be refused.',
    `Most of it went to users: ${list(p.topUsers)}; models: ${list(p.topModels)}.`,
    `To raise the limit: ${p.raiseCommand}`,
  ].join('\n');
}
