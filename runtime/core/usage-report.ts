// The usage report's arithmetic: ledger rows as the admin API answers them (USD), summed and grouped.
// Shared by the `usage` action and the daily digest, so both count a month the same way.
import { isDetail } from './limits.ts';
import type { DailyRow, UsageRow } from './ports.ts';
import { nanoToUsd } from './pricing.ts';
import type { UsageDto, UsageGroupBy, UsageTotals } from './protocol.ts';

/** One ledger row (a month's or a day's) in USD. */
export function usageDto(r: (UsageRow | DailyRow) & Partial<UsageRow & DailyRow>, month: string): UsageDto {
  return {
    month,
    ...(r.day ? { day: r.day } : {}),
    project: r.project,
    user: r.user,
    model: r.model,
    requests: r.requests,
    errors: r.errors,
    inputTokens: r.inputTokens,
    cachedTokens: r.cachedTokens,
    outputTokens: r.outputTokens,
    spend: nanoToUsd(r.spent),
    cacheHits: r.cacheHits,
    saved: nanoToUsd(r.saved),
    estimated: r.estimated,
    ...(r.priceVersion ? { priceVersion: r.priceVersion } : {}),
  };
}

/**
 * The rows a report lists: one per project, user and model that did something. Aggregate rows (`*`)
 * would count every call twice, and rows of calls still in flight hold budget but have nothing to
 * report yet.
 */
export function reportedRows(rows: UsageRow[], month: string): UsageDto[] {
  return rows.filter((r) => isDetail(r) && (r.requests || r.errors || r.cacheHits)).map((r) => usageDto(r, month));
}

export function sumUsage(rows: UsageDto[]): UsageTotals {
  const t: UsageTotals = { requests: 0, errors: 0, inputTokens: 0, cachedTokens: 0, outputTokens: 0, spend: 0, cacheHits: 0, saved: 0, estimated: 0 };
  for (const r of rows) {
    for (const k of Object.keys(t) as (keyof UsageTotals)[]) t[k] += r[k];
  }
  // Sums of float USD drift in the last digits; money is exact in nano-USD, so round to it.
  t.spend = Math.round(t.spend * 1e9) / 1e9;
  t.saved = Math.round(t.saved * 1e9) / 1e9;
  return t;
}

/** Rows summed per user, project or model, biggest spend first. */
export function groupUsage(rows: UsageDto[], by: UsageGroupBy): ({ key: string } & UsageTotals)[] {
  const groups = new Map<string, UsageDto[]>();
  for (const r of rows) {
    const members = groups.get(r[by]);
    if (members) members.push(r);
    else groups.set(r[by], [r]);
  }
  return [...groups].map(([k, rs]) => ({ key: k, ...sumUsage(rs) })).sort((a, b) => b.spend - a.spend);
}
