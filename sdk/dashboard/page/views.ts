// The page's blocks as DOM: totals, the usage table, the limits, the daily figures and the notices
// that replace them when there is nothing to show or something went wrong.
import { code, h } from './dom.ts';
import {
  count,
  levelOf,
  monthLabel,
  otherMeters,
  projectsNearLimits,
  scopeLabel,
  money,
  thresholdsText,
  usedPercent,
  type AlertsReport,
  type DayTotal,
  type Dimension,
  type LimitMeter,
  type LimitsReport,
  type LimitStatus,
  type Totals,
  type UsageReport,
} from './model.ts';

const NAMES: Record<Dimension, string> = { user: 'User', project: 'Project', model: 'Model' };
export const dimensionName = (d: Dimension) => NAMES[d];

/** A number cell: the figure as text, the exact value in `data-value` (the tests read both). */
const num = (col: string, value: number, text: string) => h('td', { 'data-col': col, 'data-value': value }, text);

export function totalsView(report: UsageReport, limits: LimitsReport | undefined): HTMLElement {
  const t = report.totals;
  const near = limits ? projectsNearLimits(limits.limits) : [];
  const card = (id: string, label: string, value: string, raw: number | string, sub: string, level?: string) =>
    h(
      'div',
      { class: `card${level ? ` ${level}` : ''}`, 'data-total': id },
      h('dt', {}, label),
      h('dd', {}, h('span', { class: 'big', 'data-value': raw }, value), h('span', { class: 'sub' }, sub)),
    );
  const limited = limits ? new Set(limits.limits.map((l) => l.project)).size : 0;
  return h(
    'dl',
    { class: 'totals' },
    card('spend', `Spent in ${monthLabel(report.month)}`, money(t.spend), t.spend,
      `${count(t.requests)} request${t.requests === 1 ? '' : 's'}${t.errors ? ` · ${count(t.errors)} error${t.errors === 1 ? '' : 's'}` : ''}` +
        `${t.estimated ? ` · ${count(t.estimated)} estimated` : ''}`),
    card('saved', 'Saved by the cache', money(t.saved), t.saved, `${count(t.cacheHits)} cache hit${t.cacheHits === 1 ? '' : 's'}`),
    card('tokens', 'Tokens', count(t.inputTokens + t.outputTokens), t.inputTokens + t.outputTokens,
      `${count(t.inputTokens)} in (${count(t.cachedTokens)} cached) · ${count(t.outputTokens)} out`),
    card(
      'near',
      limits && limits.month !== report.month ? `Near their limits (${monthLabel(limits.month)})` : 'Projects near their limits',
      String(near.length),
      near.length,
      !limits
        ? 'limits unavailable'
        : near.length
          ? near.slice(0, 3).map((p) => `${p.project} ${p.percent}%`).join(', ') + (near.length > 3 ? ', …' : '')
          : `none of ${count(limited)} project${limited === 1 ? '' : 's'} with a limit`,
      near.some((p) => p.percent >= 100) ? 'over' : near.length ? 'near' : undefined,
    ),
  );
}

export type SortColumn = 'key' | keyof Totals;
export interface Sort {
  col: SortColumn;
  dir: 'ascending' | 'descending';
}

const COLUMNS: { id: keyof Totals; label: string; format: (n: number) => string }[] = [
  { id: 'requests', label: 'Requests', format: count },
  { id: 'errors', label: 'Errors', format: (n) => (n ? count(n) : '—') },
  { id: 'inputTokens', label: 'Input tokens', format: count },
  { id: 'cachedTokens', label: 'Cached tokens', format: count },
  { id: 'outputTokens', label: 'Output tokens', format: count },
  { id: 'spend', label: 'Spend', format: money },
  { id: 'cacheHits', label: 'Cache hits', format: count },
  { id: 'saved', label: 'Saved', format: money },
  { id: 'estimated', label: 'Estimated', format: (n) => (n ? `≈ ${count(n)}` : '—') },
];

export const ESTIMATED_NOTE =
  'Estimated: billed conservatively because OpenAI\'s usage could never be known (the answer broke off upstream or passed the deadline).';

/** The groups of the report as a table whose column headers sort it (click, Enter or Space). */
export function groupsTable(report: UsageReport, sort: Sort, onSort: (col: SortColumn) => void): HTMLTableElement {
  const factor = sort.dir === 'ascending' ? 1 : -1;
  const rows = [...report.groups].sort((a, b) =>
    sort.col === 'key' ? factor * a.key.localeCompare(b.key) : factor * (a[sort.col] - b[sort.col]) || a.key.localeCompare(b.key),
  );
  const header = (col: SortColumn, label: string) =>
    h(
      'th',
      { scope: 'col', 'aria-sort': sort.col === col ? sort.dir : null, class: col === 'key' ? 'text' : null },
      h('button', { type: 'button', 'data-sort': col, onclick: () => onSort(col) }, label,
        h('span', { class: 'arrow', 'aria-hidden': 'true' }, sort.col === col ? (sort.dir === 'ascending' ? '▲' : '▼') : '↕')),
    );
  return h(
    'table',
    { id: 'groups-table', class: 'data' },
    h('caption', {}, `Usage in stage ${report.stage}, ${monthLabel(report.month)}, by ${report.by}. Select a column heading to sort.`),
    h('thead', {}, h('tr', {}, header('key', dimensionName(report.by)), ...COLUMNS.map((c) => header(c.id, c.label)))),
    h(
      'tbody',
      {},
      ...rows.map((g) =>
        h(
          'tr',
          { 'data-key': g.key, class: g.estimated ? 'estimated' : null },
          h('th', { scope: 'row', class: 'text', title: g.key }, g.key,
            g.estimated ? h('span', { class: 'flag', title: ESTIMATED_NOTE }, 'estimated') : null),
          ...COLUMNS.map((c) => num(c.id, g[c.id], c.format(g[c.id]))),
        ),
      ),
    ),
    h(
      'tfoot',
      {},
      h('tr', { 'data-key': '*total*' }, h('th', { scope: 'row', class: 'text' }, 'Total'),
        ...COLUMNS.map((c) => num(c.id, report.totals[c.id], c.format(report.totals[c.id])))),
    ),
  );
}

/** Each limit with this month's spend against it, as a bar that turns amber at 80% and red at 100%. */
export function limitsView(limits: LimitsReport, shownMonth: string): HTMLElement {
  const stage = limits.stage;
  if (!limits.limits.length) {
    return h('div', { class: 'empty', 'data-empty': 'limits' },
      h('p', {}, h('strong', {}, `No limits in stage ${stage}.`), ' Calls of a project without a limit are refused (unless the stack sets a default limit).'),
      h('p', {}, 'Set one: ', code(`openai-wrapi limits set --stage ${stage} --project NAME --limit 10`)));
  }
  const monthUse = (l: LimitStatus) => (l.limit === undefined ? -1 : usedPercent(l.spend, l.limit));
  const rows = [...limits.limits].sort((a, b) => monthUse(b) - monthUse(a) || scopeLabel(a).localeCompare(scopeLabel(b)));
  const caption = `Limits in stage ${stage} with the spend of ${monthLabel(limits.month)}` +
    (shownMonth !== limits.month ? ' (limits count the current month)' : '') +
    ', and today\'s (UTC) and this minute\'s use of the daily and per-minute ones. Bars turn amber at 80% and red at 100%.' +
    (limits.limits.some((l) => l.alerts || l.dailyAlerts) ? ' Alerts are made when spend reaches the percents of a USD limit shown.' : '');
  const table = h(
    'table',
    { id: 'limits-table', class: 'data limits' },
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col', class: 'text' }, 'Scope'), h('th', { scope: 'col' }, 'Spend of monthly limit'),
      h('th', { scope: 'col', class: 'text used' }, 'Used'), h('th', { scope: 'col', class: 'text' }, 'Per day and per minute'),
      h('th', { scope: 'col', class: 'text' }, 'Alerts at'))),
    h(
      'tbody',
      {},
      ...rows.map((l) => {
        const others = h('td', { class: 'text', 'data-col': 'others' }, ...otherMeters(l).map(meterView));
        const alerts = alertsCell(l);
        const scopeCell = h('th', { scope: 'row', class: 'text' }, scopeLabel(l));
        const key = `${l.project}#${l.user}#${l.model}`;
        if (l.limit === undefined) {
          return h('tr', { 'data-scope': key, 'data-level': 'none' }, scopeCell,
            h('td', { 'data-col': 'spend', 'data-value': l.spend }, h('span', { class: 'of' }, 'no monthly limit')), h('td', { class: 'text used' }), others, alerts);
        }
        const level = levelOf(l.spend, l.limit);
        const percent = usedPercent(l.spend, l.limit);
        const fill = h('span', { class: `fill ${level}` });
        fill.style.width = `${Math.min(100, percent)}%`;
        const inFlight = l.committed - l.spend > 1e-9;
        return h(
          'tr',
          { 'data-scope': key, 'data-level': level },
          scopeCell,
          h('td', { 'data-col': 'spend', 'data-value': l.spend, 'data-limit': l.limit },
            h('span', { class: 'spent' }, money(l.spend)), ' ', h('span', { class: 'of' }, `of ${money(l.limit)}`)),
          h('td', { class: 'text used', 'data-col': 'used', 'data-value': percent },
            h('span', { class: 'meter', 'aria-hidden': 'true' }, fill),
            h('span', { class: 'pct' }, `${percent}%`, level === 'near' ? ' · near the limit' : level === 'over' ? ' · at or over the limit' : ''),
            inFlight ? h('span', { class: 'sub' }, ` (+${money(l.committed - l.spend)} held by calls in flight)`) : null),
          others,
          alerts,
        );
      }),
    ),
  );
  return h('div', {}, h('p', { class: 'hint', 'aria-hidden': 'true' }, caption), table);
}

/** The thresholds of a scope's USD limits: `80, 100%`, or per period when it has both. */
function alertsCell(l: LimitStatus): HTMLElement {
  const both = l.limit !== undefined && l.dailyLimit !== undefined;
  const periods = [
    { period: 'month', label: both ? 'monthly ' : '', alerts: l.limit !== undefined ? l.alerts : undefined },
    { period: 'day', label: 'daily ', alerts: l.dailyLimit !== undefined ? l.dailyAlerts : undefined },
  ];
  return h('td', { class: 'text', 'data-col': 'alerts' }, ...periods.map(({ period, label, alerts }) =>
    alerts ? h('span', { class: 'alert-text', 'data-period': period, 'data-alerts': alerts.join(',') }, `${label}${thresholdsText(alerts)}`, ' ') : null));
}

/** The alerts of the month shown: each threshold of a USD limit that settled spend reached, newest first. */
export function alertsView(report: AlertsReport | { problem: string }, month: string): HTMLElement {
  if ('problem' in report) return h('p', { class: 'empty' }, `The alerts could not be read: ${report.problem}`);
  const stage = report.stage;
  if (!report.alerts.length) {
    return h('div', { class: 'empty', 'data-empty': 'alerts' },
      h('p', {}, h('strong', {}, `No budget alerts in stage ${stage} in ${monthLabel(month)}.`),
        ' An alert is made the first time settled spend reaches one of a USD limit\'s thresholds: 80% and 100% unless set otherwise with ',
        code(`openai-wrapi limits set --stage ${stage} --project NAME --limit 10 --alerts 50,80,100`), '.'));
  }
  const caption = `Budget alerts in stage ${stage}, ${monthLabel(month)}, newest first: each threshold of a USD limit that settled spend reached.`;
  const table = h(
    'table',
    { id: 'alerts-table', class: 'data alerts' },
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col', class: 'text' }, 'When (UTC)'), h('th', { scope: 'col', class: 'text' }, 'Scope'),
      h('th', { scope: 'col' }, 'Reached'), h('th', { scope: 'col', class: 'text' }, 'Of the limit'), h('th', { scope: 'col' }, 'Spent then'))),
    h('tbody', {}, ...report.alerts.map((a) =>
      h('tr', {
        'data-scope': `${a.project}#${a.user}#${a.model}`, 'data-period': a.period, 'data-threshold': a.threshold, 'data-level': a.threshold >= 100 ? 'over' : a.threshold >= 80 ? 'near' : 'ok',
      },
      h('td', { class: 'text', 'data-col': 'at', 'data-value': a.at }, a.at.slice(0, 16).replace('T', ' ')),
      h('th', { scope: 'row', class: 'text' }, scopeLabel(a)),
      h('td', { 'data-col': 'threshold', 'data-value': a.threshold }, h('span', { class: 'pct' }, `${a.threshold}%`)),
      h('td', { class: 'text', 'data-col': 'limit', 'data-value': a.limit },
        a.period === 'day' ? `daily ${money(a.limit)} (${a.day ?? ''})` : `monthly ${money(a.limit)}`),
      num('spend', a.spend, money(a.spend))))),
  );
  return h('div', {}, h('p', { class: 'hint', 'aria-hidden': 'true' }, caption), table);
}

const METER_TEXT = {
  day: (m: LimitMeter) => `${money(m.used)} of ${money(m.limit)} today`,
  rpm: (m: LimitMeter) => `${count(m.used)} of ${count(m.limit)} requests this minute`,
  tpm: (m: LimitMeter) => `${count(m.used)} of ${count(m.limit)} tokens this minute`,
};

/** One daily or per-minute limit with its use, in words (the level is said, not only coloured). */
function meterView(m: LimitMeter): HTMLElement {
  const level = levelOf(m.used, m.limit);
  return h('span', { class: `meter-text ${level}`, 'data-kind': m.kind, 'data-value': m.used, 'data-limit': m.limit, 'data-level': level },
    METER_TEXT[m.kind](m), level === 'over' ? ' (at the limit)' : level === 'near' ? ' (near the limit)' : '', ' ');
}

/** The daily figures behind the line chart, for keyboard and screen-reader users. */
export function daysTable(days: DayTotal[]): HTMLTableElement {
  const used = days.filter((d) => d.requests || d.cacheHits);
  return h(
    'table',
    { id: 'days-table', class: 'data' },
    h('caption', {}, used.length ? 'Days with calls' : 'No calls on any day'),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col', class: 'text' }, 'Day'), h('th', { scope: 'col' }, 'Requests'),
      h('th', { scope: 'col' }, 'Spend'), h('th', { scope: 'col' }, 'Cache hits'), h('th', { scope: 'col' }, 'Saved'))),
    h('tbody', {}, ...used.map((d) =>
      h('tr', { 'data-day': d.day }, h('th', { scope: 'row', class: 'text' }, d.day), num('requests', d.requests, count(d.requests)),
        num('spend', d.spend, money(d.spend)), num('cacheHits', d.cacheHits, count(d.cacheHits)), num('saved', d.saved, money(d.saved))))),
  );
}

export function noUsageView(stage: string, month: string, current: string): HTMLElement {
  const past = month !== current;
  return h(
    'div',
    { class: 'empty', 'data-empty': 'usage' },
    h('p', {}, h('strong', {}, past ? `No calls in stage ${stage} in ${monthLabel(month)}.` : `No calls in stage ${stage} in ${monthLabel(month)} yet.`)),
    past
      ? h('p', {}, 'Pick another month above: the list offers the months that have usage.')
      : h('p', {}, 'Calls made through the proxy (with the openai-wrapi SDK, or any client that signs for the stage) show up here once they finish. ' +
          'A project needs a limit before its calls are allowed: ', code(`openai-wrapi limits set --stage ${stage} --project NAME --limit 10`), '.'),
  );
}
