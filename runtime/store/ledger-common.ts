// Small pieces both ledger implementations share, so they cannot drift apart.
import type { BudgetAlert } from '../core/alerts.ts';
import type { DailyRow, LimitRow, MemberRow, Scope, UsageDelta, UsageRow } from '../core/ports.ts';

/** The counters of a usage row, in a fixed order (column and attribute names derive from these). */
export const COUNTERS = [
  'requests',
  'errors',
  'inputTokens',
  'cachedTokens',
  'outputTokens',
  'spent',
  'cacheHits',
  'saved',
  'estimated',
] as const satisfies readonly (keyof UsageDelta)[];

/**
 * A usage row is listed once something was counted on it or budget is held there. Rows that only
 * ever held a reservation that was given back are not usage: both stores hide them alike.
 */
export const isListed = (row: UsageDelta & { committed: number }): boolean =>
  row.requests > 0 || row.errors > 0 || row.cacheHits > 0 || row.committed !== 0;

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareScope(a: Scope, b: Scope): number {
  return compareText(a.project, b.project) || compareText(a.user, b.user) || compareText(a.model, b.model);
}

// Listings come back in one order from both stores (by day, then project, user, model).
export const sortUsage = (rows: UsageRow[]) => rows.sort(compareScope);
export const sortDaily = (rows: DailyRow[]) => rows.sort((a, b) => compareText(a.day, b.day) || compareScope(a, b));
export const sortLimits = (rows: LimitRow[]) => rows.sort((a, b) => compareScope(a.scope, b.scope));
export const sortNames = (names: string[]) => names.sort(compareText);
/** Projects with members, each list sorted; projects left with none are dropped (they are open). */
export const sortMembers = (rows: MemberRow[]) =>
  rows
    .filter((r) => r.members.length > 0)
    .map((r) => ({ project: r.project, members: sortNames(r.members) }))
    .sort((a, b) => compareText(a.project, b.project));

/** `YYYY-MM-DD` → `YYYY-MM`. */
export const monthOf = (day: string) => day.slice(0, 7);

/** Alerts in the order they were made (ties: by scope, then threshold). */
export const sortAlerts = (alerts: BudgetAlert[]) =>
  alerts.sort((a, b) => a.at - b.at || compareScope(a.scope, b.scope) || a.threshold - b.threshold);
