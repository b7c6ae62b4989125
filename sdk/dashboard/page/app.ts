// The dashboard page: asks the dashboard server (which calls the stage's admin function with the
// user's own credentials) for usage, limits and the months with data, and draws them. The page holds
// no credential: the server knows it by an HttpOnly cookie.
import { barChart, dayChart } from './charts.ts';
import { byId, fill, h } from './dom.ts';
import {
  DIMENSIONS,
  monthChoices,
  monthLabel,
  perDay,
  stackOf,
  stackParts,
  money,
  type AlertsReport,
  type Dimension,
  type LimitsReport,
  type UsageReport,
} from './model.ts';
import { problemView, type Problem } from './problems.ts';
import {
  alertsView,
  daysTable,
  dimensionName,
  ESTIMATED_NOTE,
  groupsTable,
  limitsView,
  noUsageView,
  totalsView,
  type Sort,
  type SortColumn,
} from './views.ts';

interface Session {
  stages: string[];
  stage: string;
  identity: string;
  notice?: string;
}

type Answer<T> = ({ ok: true } & T) | { ok: false; error: Problem };

const ui = {
  stage: byId<HTMLSelectElement>('stage'),
  month: byId<HTMLSelectElement>('month'),
  refresh: byId<HTMLButtonElement>('refresh'),
  main: byId('main'),
  status: byId('status'),
  problem: byId('problem'),
  content: byId('content'),
};

const state = {
  session: undefined as Session | undefined,
  stage: '',
  month: '',
  current: '',
  by: 'user' as Dimension,
  sort: { col: 'spend', dir: 'descending' } as Sort,
  report: undefined as UsageReport | undefined,
  limits: undefined as LimitsReport | undefined,
  /** The month's alerts, or why they could not be read (an admin function older than alerts). */
  alerts: { problem: '' } as AlertsReport | { problem: string },
  /** Only the latest load may draw: answers to older ones are dropped. */
  seq: 0,
};

async function api<T>(path: string, body?: unknown): Promise<Answer<T>> {
  let res: Response;
  try {
    res = await fetch(path, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  } catch {
    return { ok: false, error: { kind: 'unreachable', message: 'The dashboard server does not answer: was it stopped? Start it again and reload this page.' } };
  }
  try {
    return (await res.json()) as Answer<T>;
  } catch {
    return { ok: false, error: { kind: 'refused', message: `The dashboard server answered ${res.status} without JSON.` } };
  }
}

const admin = <T>(request: Record<string, unknown>) => api<T>('api/admin', { stage: state.stage, request });

let answers = 0;

/** `body[data-state]`, and `data-answers` counting drawn answers (tests wait on both). */
function setState(name: string, busy = false): void {
  document.body.dataset.state = name;
  if (!busy) document.body.dataset.answers = String(++answers);
  ui.main.setAttribute('aria-busy', String(busy));
}

function showProblem(problem: Problem): void {
  setState(problem.kind);
  ui.content.hidden = true;
  ui.problem.hidden = false;
  fill(ui.problem, problemView(problem, state.stage, () => void loadStage()));
  ui.status.textContent = ''; // the notice is an alert of its own
}

function syncUrl(): void {
  const q = new URLSearchParams({ stage: state.stage, month: state.month, by: state.by });
  history.replaceState(null, '', `?${q}`);
}

async function init(): Promise<void> {
  const session = await api<Session>('api/session');
  if (!session.ok) {
    for (const el of byId('controls').querySelectorAll<HTMLInputElement>('select, input, button')) el.disabled = true;
    return showProblem(session.error);
  }
  state.session = session;
  const q = new URLSearchParams(location.search);
  state.stage = session.stages.includes(q.get('stage') ?? '') ? q.get('stage')! : session.stage;
  state.by = DIMENSIONS.includes(q.get('by') as Dimension) ? (q.get('by') as Dimension) : 'user';
  state.month = /^\d{4}-\d{2}$/.test(q.get('month') ?? '') ? q.get('month')! : '';
  fill(ui.stage, ...session.stages.map((s) => h('option', { value: s }, s)));
  ui.stage.value = state.stage;
  for (const radio of document.querySelectorAll<HTMLInputElement>('input[name="by"]')) radio.checked = radio.value === state.by;
  byId('identity').textContent = `Reading as ${session.identity}, through each stage's admin function.`;
  if (session.notice) {
    const notice = byId('notice');
    notice.textContent = session.notice;
    notice.hidden = false;
  }
  await loadStage();
}

/** A stage's months, then its report. */
async function loadStage(): Promise<void> {
  const seq = ++state.seq;
  setState('loading', true);
  ui.status.textContent = `Loading stage ${state.stage}…`;
  const months = await admin<{ current: string; months: string[] }>({ action: 'months' });
  if (seq !== state.seq) return;
  if (!months.ok) return showProblem(months.error);
  state.current = months.current;
  const choices = monthChoices(months.current, months.months);
  if (state.month && !choices.includes(state.month)) choices.push(state.month);
  choices.sort().reverse();
  if (!state.month) state.month = months.current;
  fill(ui.month, ...choices.map((m) => h('option', { value: m }, `${monthLabel(m)}${months.months.includes(m) ? '' : ' (no usage)'}`)));
  ui.month.value = state.month;
  await loadReport(seq);
}

async function loadReport(seq = ++state.seq): Promise<void> {
  setState('loading', true);
  syncUrl();
  ui.status.textContent = `Loading ${state.stage}, ${monthLabel(state.month)}, by ${state.by}…`;
  const [usage, limits, alerts] = await Promise.all([
    admin<UsageReport>({ action: 'usage', month: state.month, by: state.by, daily: true }),
    admin<LimitsReport>({ action: 'listLimits' }),
    admin<AlertsReport>({ action: 'listAlerts', month: state.month }),
  ]);
  if (seq !== state.seq) return;
  if (!usage.ok) return showProblem(usage.error);
  state.report = usage;
  state.limits = limits.ok ? limits : undefined;
  state.alerts = alerts.ok ? alerts : { problem: alerts.error.message };
  render();
  const t = usage.totals;
  ui.status.textContent = `Stage ${state.stage}, ${monthLabel(state.month)}, by ${state.by}: ${money(t.spend)} spent on ${t.requests} requests, ${money(t.saved)} saved by the cache.`;
  byId('updated').textContent = `Updated ${new Date().toLocaleTimeString()}.`;
}

function render(): void {
  const report = state.report!;
  ui.problem.hidden = true;
  ui.content.hidden = false;
  setState(report.rows.length ? 'ready' : 'empty');
  fill(byId('totals'), totalsView(report, state.limits));
  renderCharts();
  renderTable();
  fill(byId('alerts-body'), alertsView(state.alerts, report.month));
  fill(byId('limits-body'), state.limits ? limitsView(state.limits, report.month) : h('p', { class: 'empty' }, 'The limits could not be read.'));
}

function renderTable(): void {
  const report = state.report!;
  const wrap = byId('groups');
  byId('table-title').textContent = `Usage by ${report.by}`;
  const empty = !report.rows.length;
  wrap.hidden = empty;
  if (!empty) fill(wrap, groupsTable(report, state.sort, sortBy));
  byId('table-hint').hidden = empty;
  const note = byId('estimated-note');
  note.hidden = !report.totals.estimated;
  note.textContent = `≈ ${ESTIMATED_NOTE}`;
}

let drawnWidth = 0;

function renderCharts(): void {
  const report = state.report!;
  const stack = stackOf(report.by);
  const bars = byId('bar-chart');
  const width = Math.max(260, bars.clientWidth);
  drawnWidth = width;
  byId('breakdown-title').textContent = `Spend by ${report.by}, stacked by ${stack}`;
  const caption = byId('bar-caption');
  const order = report.groups.map((g) => g.key);
  if (!report.rows.length) {
    fill(bars, caption, noUsageView(report.stage, report.month, state.current));
  } else {
    const summary = `Bar chart of spend by ${report.by} in ${monthLabel(report.month)}, each bar split by ${stack}: ` +
      report.groups.map((g) => `${g.key} ${money(g.spend)}`).join(', ') + '.';
    caption.textContent = summary;
    const { svg, legend } = barChart(stackParts(report.rows, report.by).filter((p) => p.spend > 0), order, {
      width, groupLabel: dimensionName(report.by), stackLabel: dimensionName(stack), summary,
    });
    fill(bars, caption, legend, svg);
  }
  const days = perDay(report.days ?? [], report.month, new Date().toISOString().slice(0, 10));
  const peak = days.reduce((best, d) => (d.spend > best.spend ? d : best), days[0] ?? { day: '', spend: 0 });
  const daySummary = `Line chart of spend per day in ${monthLabel(report.month)}` +
    (peak && peak.spend > 0 ? `; the busiest day was ${peak.day} with ${money(peak.spend)}.` : '; nothing was spent.');
  byId('day-caption').textContent = daySummary;
  fill(byId('day-chart'), byId('day-caption'), dayChart(days, { width: Math.max(260, byId('day-chart').clientWidth), summary: daySummary }));
  fill(byId('days'), daysTable(days));
}

function sortBy(col: SortColumn): void {
  const same = state.sort.col === col;
  state.sort = { col, dir: same ? (state.sort.dir === 'descending' ? 'ascending' : 'descending') : col === 'key' ? 'ascending' : 'descending' };
  renderTable();
  byId('groups').querySelector<HTMLButtonElement>(`button[data-sort="${col}"]`)?.focus();
}

ui.stage.addEventListener('change', () => {
  state.stage = ui.stage.value;
  void loadStage(); // the same month, so stages compare side by side
});
ui.month.addEventListener('change', () => {
  state.month = ui.month.value;
  void loadReport();
});
byId('by').addEventListener('change', (e) => {
  state.by = (e.target as HTMLInputElement).value as Dimension;
  state.sort = { col: 'spend', dir: 'descending' };
  void loadReport();
});
ui.refresh.addEventListener('click', () => void loadStage());
byId('controls').addEventListener('submit', (e) => e.preventDefault());

// Charts are drawn for their width: redraw when it changes (rotating a phone, resizing a window).
let resizeTimer: ReturnType<typeof setTimeout> | undefined;
new ResizeObserver(() => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    if (state.report && !ui.content.hidden && Math.abs(byId('bar-chart').clientWidth - drawnWidth) > 8) renderCharts();
  }, 120);
}).observe(ui.main);

void init();
