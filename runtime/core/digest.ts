// The daily digest: a short summary of a stage's month so far for the people on its alert topic, so
// that spend is seen every morning and not only when a threshold fires. Pure code over what the
// ledger answers the admin's reports (counted by usage-report.ts). Names and amounts only: a digest
// never carries a prompt, an answer or a key.
import { DEFAULT_ALERTS, reached, type AlertPeriod } from './alerts.ts';
import { dayOf, monthOf, usd } from './limits.ts';
import type { DailyRow, LimitRow, Nano, Scope, UsageRow } from './ports.ts';
import { nanoToUsd, usdToNano } from './pricing.ts';
import { ANY, type DailyDigest, type DigestLimit, type Spender, type UsageGroupBy } from './protocol.ts';
import { groupUsage, reportedRows, sumUsage, usageDto } from './usage-report.ts';

const DAY_MS = 86_400_000;
/** Biggest projects, users and models named. */
const TOP = 3;
/** Limits listed at most; the rest are counted (the limits listing has them all). */
const MAX_LIMITS = 10;

/** What the digest is made from: the ledger's answers at one instant. */
export interface DigestInput {
  stage: string;
  /** Epoch ms. Its UTC day names the digest; the month to date and the UTC day before are reported. */
  at: number;
  /** Every row of `at`'s month (Ledger.usage). */
  usage: UsageRow[];
  /** The detail rows of the day before (Ledger.daily of its month, that day's rows or more). */
  previousDay: DailyRow[];
  limits: LimitRow[];
  /** Committed on the day before, per limit (same order): what its daily limit is judged by. */
  previousDayCommitted: Nano[];
}

export function dailyDigest(input: DigestInput): DailyDigest {
  const { stage, at } = input;
  const month = monthOf(at);
  const previousDay = dayOf(at - DAY_MS);
  const rows = reportedRows(input.usage, month);
  const dayRows = input.previousDay.filter((r) => r.day === previousDay).map((r) => usageDto(r, previousDay.slice(0, 7)));
  const top = (by: UsageGroupBy): Spender[] =>
    groupUsage(rows, by)
      .filter((g) => g.spend > 0)
      .slice(0, TOP)
      .map((g) => ({ name: g.key, spentUsd: g.spend }));
  const notices = limitNotices(input, month, previousDay);
  return {
    type: 'daily_digest',
    stage,
    day: dayOf(at),
    month,
    previousDay,
    monthToDate: sumUsage(rows),
    previousDayTotals: sumUsage(dayRows),
    topProjects: top('project'),
    topUsers: top('user'),
    topModels: top('model'),
    limits: notices.slice(0, MAX_LIMITS),
    moreLimits: Math.max(0, notices.length - MAX_LIMITS),
    reportCommand: `openai-wrapi usage --stage ${stage}`,
  };
}

/** Monthly limits by the month's settled spend, daily ones by the day before (today has barely begun). */
function limitNotices(input: DigestInput, month: string, previousDay: string): DigestLimit[] {
  const spentOf = new Map(input.usage.map((r) => [scopeKey(r), r.spent]));
  const notices: DigestLimit[] = [];
  input.limits.forEach((l, i) => {
    if (l.limit !== undefined) {
      notices.push(...notice(l.scope, 'month', month, l.limit, spentOf.get(scopeKey(l.scope)) ?? 0, l.alerts ?? DEFAULT_ALERTS));
    }
    if (l.dayLimit !== undefined) {
      notices.push(...notice(l.scope, 'day', previousDay, l.dayLimit, input.previousDayCommitted[i] ?? 0, l.dayAlerts ?? DEFAULT_ALERTS));
    }
  });
  return notices.sort((a, b) => b.percent - a.percent);
}

function notice(scope: Scope, period: AlertPeriod, when: string, limit: Nano, spent: Nano, thresholds: readonly number[]): DigestLimit[] {
  // The limit itself counts too: a limit with alerts "none" that refuses calls is worth a line.
  const hit = reached({ period, limit, thresholds: [...thresholds, 100] }, spent);
  if (hit.length === 0) return [];
  const alerts = hit.filter((t) => thresholds.includes(t));
  return [{
    scope,
    period,
    when,
    limitUsd: nanoToUsd(limit),
    spentUsd: nanoToUsd(spent),
    percent: Number((BigInt(spent) * 100n) / BigInt(limit)),
    ...(alerts.length ? { threshold: alerts.at(-1) } : {}),
  }];
}

const scopeKey = (s: Scope) => `${s.project}#${s.user}#${s.model}`;

/** One line for an email subject or a chat title. */
export function digestSubject(d: DailyDigest): string {
  return `openai-wrapi ${d.stage}: daily digest ${d.day}, ${money(d.monthToDate.spend)} in ${d.month}`;
}

/** How project, user and model names are set in the text: in lists, and where a sentence names one. */
export interface TextStyle {
  name(name: string): string;
  quoted(name: string): string;
}

/** Email: names as they are, quoted inside a sentence. */
export const PLAIN_TEXT: TextStyle = { name: (n) => n, quoted: (n) => `"${n}"` };

/** The digest as text, plain by default (email); a chat card passes a markdown style. */
export function digestText(d: DailyDigest, style: TextStyle = PLAIN_TEXT): string {
  const m = d.monthToDate;
  const spenders = (list: Spender[]) => list.map((s) => `${style.name(s.name)} ${money(s.spentUsd)}`).join(', ');
  const lines = [`Daily digest of openai-wrapi stage ${d.stage} for ${d.day} (UTC).`, ''];
  if (m.requests + m.errors + m.cacheHits === 0) lines.push(`${d.month} to date: no calls yet.`);
  else {
    const cache = m.cacheHits ? `; the cache answered ${count(m.cacheHits, 'call')}, saving ${money(m.saved)}` : '';
    lines.push(`${d.month} to date: ${money(m.spend)} over ${count(m.requests, 'call')}${m.errors ? ` (and ${count(m.errors, 'error')})` : ''}${cache}.`);
  }
  const y = d.previousDayTotals;
  lines.push(`${d.previousDay}: ${y.requests ? `${money(y.spend)} over ${count(y.requests, 'call')}` : 'no calls'}.`);
  if (d.topProjects.length) {
    lines.push('', `Top projects: ${spenders(d.topProjects)}`, `Top users: ${spenders(d.topUsers)}`, `Top models: ${spenders(d.topModels)}`);
  }
  lines.push('');
  if (d.limits.length === 0) lines.push('No limit has reached an alert threshold.');
  else {
    lines.push('Limits near or over:');
    for (const l of d.limits) lines.push(`  ${limitLine(l, style)}`);
    if (d.moreLimits) lines.push(`  and ${d.moreLimits} more: openai-wrapi limits ls --stage ${d.stage}`);
  }
  lines.push(
    '',
    m.estimated
      ? `Billed by estimate in ${d.month}: ${count(m.estimated, 'call')} (OpenAI's usage never arrived; the proxy's log lines with outcome "estimated" say which).`
      : `Billed by estimate in ${d.month}: none.`,
    `The whole report: ${d.reportCommand}`,
  );
  return lines.join('\n');
}

function limitLine(l: DigestLimit, style: TextStyle): string {
  const { project, user, model } = l.scope;
  const scope = [`project ${style.quoted(project)}`, ...(user !== ANY ? [`user ${style.quoted(user)}`] : []), ...(model !== ANY ? [`model ${style.quoted(model)}`] : [])].join(', ');
  const when = l.period === 'day' ? `on ${l.when}` : `in ${l.when}`;
  const state = l.percent >= 100
    ? `at its ${l.period === 'day' ? 'daily' : 'monthly'} limit: calls that would pass it are refused`
    : `past its ${l.threshold}% alert`;
  return `${scope}: ${money(l.spentUsd)} of ${money(l.limitUsd)} ${when} (${l.percent}%, ${state})`;
}

const money = (u: number) => usd(usdToNano(u));
const count = (n: number, what: string) => `${n.toLocaleString('en-US')} ${what}${n === 1 ? '' : 's'}`;
