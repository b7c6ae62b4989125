// The dashboard in a real headless Chromium, served by the local stack at /dashboard: real proxied
// calls by two users in two projects on two models (one streamed, one a cache hit, one billed by
// estimate), then the page's figures must equal the admin usage report, whatever the grouping and
// month; the keyboard drives it; empty states and sessions say what they should.
import { test as uvuTest } from 'uvu';
import { hasChromium, unless } from './helpers/binaries.ts';

const test = unless(hasChromium(), uvuTest);
import * as assert from 'uvu/assert';
import { request } from 'node:http';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { settlementOf } from '../runtime/core/bill.ts';
import { callScopes } from '../runtime/core/limits.ts';
import {
  count, levelOf, money, monthLabel, projectsNearLimits, roundUsd, stackOf, stackParts, type AlertsReport, type LimitsReport, type UsageReport,
} from '../sdk/dashboard/page/model.ts';
import { afterAnswer, ARTIFACTS, launchChromium, pageErrors, settledState } from './helpers/browser.ts';
import { chat } from './helpers/sdk.ts';
import { settled, startTestStack, type TestStack } from './helpers/stack.ts';

let t: TestStack;
let browser: Browser;
const today = new Date().toISOString().slice(0, 10);
const month = today.slice(0, 7);
const past = (() => {
  const d = new Date(`${month}-01T00:00:00Z`);
  d.setUTCMonth(d.getUTCMonth() - 1);
  return d.toISOString().slice(0, 7);
})();
const LAPTOP = { width: 1366, height: 900 };
const PHONE = { width: 390, height: 844 };

test.before(async () => {
  t = await startTestStack();
  await t.user('ann');
  await t.user('bob');
  for (const project of ['research', 'chatbot']) await t.admin({ action: 'setLimit', project, limit: 5 });

  const annResearch = t.client({ user: 'ann', project: 'research' });
  await annResearch.chat.completions.create(chat('the same question fake:words=40'));
  const hit = await annResearch.chat.completions.create(chat('the same question fake:words=40')).withResponse();
  assert.is(hit.response.headers.get('openai-proxy-cache'), 'hit');
  const stream = await t.client({ user: 'bob', project: 'chatbot' }).chat.completions.create({
    model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'stream please fake:words=120' }],
  });
  for await (const _ of stream);
  await t.client({ user: 'bob', project: 'research', caching: false }).chat.completions.create({ ...chat('fake:words=30'), model: 'gpt-4o' });
  // The upstream breaks off mid-stream: no usage block, so the call is billed by a local estimate.
  const broken = await t.client({ user: 'ann', project: 'chatbot', caching: false }).chat.completions.create({
    ...chat('fake:words=50 fake:break=3'), stream: true,
  });
  await (async () => { for await (const _ of broken); })().catch(() => undefined);
  // OpenAI answers with an error: free, and counted apart as an error.
  await t.client({ user: 'bob', project: 'chatbot', caching: false }).chat.completions.create(chat('fake:error=500')).catch(() => null);
  await settled(t, async () => {
    const { totals } = await t.admin({ action: 'usage' });
    return totals.requests === 4 && totals.cacheHits === 1 && totals.estimated === 1 && totals.errors === 1;
  }, 5000);

  // Last month's figures: written through the ledger port (the proxy's clock is the real one).
  const ledger = t.stack.stages.dev.ledger;
  const lastMonth = {
    callId: 'last-month', month: past, day: `${past}-15`, expiresAt: Date.now() + 60_000,
    holds: callScopes('research', 'ann', 'gpt-4o-mini').map((scope) => ({ scope, amount: 0 })),
  };
  await ledger.reserve(lastMonth);
  await ledger.settle(settlementOf(lastMonth, {
    requests: 3, errors: 0, inputTokens: 300, cachedTokens: 100, outputTokens: 900, spent: 4_200_000, cacheHits: 2, saved: 1_000_000, estimated: 0,
  }));

  // Limits in each colour band: bob's chatbot spend over his own limit, research's gpt-4o near its.
  const byScope = async (by: 'user' | 'model', project: string) =>
    Object.fromEntries(((await t.admin({ action: 'usage', by })).rows as UsageReport['rows'])
      .filter((r) => r.project === project).map((r) => [r[by], r.spend]));
  const bobChatbot = (await byScope('user', 'chatbot')).bob;
  const researchGpt4o = (await byScope('model', 'research'))['gpt-4o'];
  await t.admin({ action: 'setLimit', project: 'chatbot', user: 'bob', limit: roundUsd(bobChatbot * 0.9) });
  await t.admin({ action: 'setLimit', project: 'research', model: 'gpt-4o', limit: roundUsd(researchGpt4o / 0.85), alerts: [50, 90] });
  await t.admin({ action: 'setLimit', project: 'research', limit: 100, period: 'day' });
  await t.admin({ action: 'setLimit', project: 'chatbot', user: 'bob', rpm: 60, tpm: 100_000 });
  browser = await launchChromium();
});

test.after(async () => {
  await browser?.close();
  await t?.close();
});

async function open(url = t.stack.dashboardUrl, viewport = LAPTOP): Promise<{ page: Page; errors: string[] }> {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const errors = pageErrors(page);
  await page.goto(url);
  return { page, errors };
}

const usage = (by: string, m = month): Promise<UsageReport> => t.admin({ action: 'usage', by, month: m, daily: true });

const FORMATS: Record<string, (n: number) => string> = {
  requests: count, errors: (n) => (n ? count(n) : '—'), inputTokens: count, cachedTokens: count, outputTokens: count, cacheHits: count,
  spend: money, saved: money, estimated: (n) => (n ? `≈ ${count(n)}` : '—'),
};

/** Every cell of the usage table equals the report: the exact value and its text. */
async function assertTableIs(page: Page, report: UsageReport): Promise<void> {
  const rows = await page.$$eval('#groups-table tbody tr, #groups-table tfoot tr', (trs) =>
    trs.map((tr) => ({
      key: (tr as HTMLElement).dataset.key!,
      cells: Object.fromEntries([...tr.querySelectorAll('td')].map((td) => [td.dataset.col, { value: Number(td.dataset.value), text: td.textContent }])),
    })),
  );
  const expected = [...report.groups, { key: '*total*', ...report.totals }];
  assert.equal(rows.map((r) => r.key).sort(), expected.map((g) => g.key).sort(), 'one row per group, plus the total');
  for (const g of expected) {
    const row = rows.find((r) => r.key === g.key)!;
    for (const [col, format] of Object.entries(FORMATS)) {
      const value = g[col as keyof typeof g] as number;
      assert.equal(row.cells[col], { value, text: format(value) }, `${g.key} ${col}`);
    }
  }
  const spends = rows.slice(0, -1).map((r) => r.cells.spend.value);
  assert.equal(spends, [...spends].sort((a, b) => b - a), 'biggest spend first');
  assert.is(await page.textContent('#groups-table thead th:first-child'), `${report.by[0].toUpperCase()}${report.by.slice(1)}↕`);
}

test('the page shows the admin usage report: totals, the stacked bars, the table, spend per day and the limits', async () => {
  const { page, errors } = await open();
  assert.is(await settledState(page), 'ready');
  assert.is(new URL(page.url()).searchParams.get('token'), null, 'the token leaves the address bar');
  const report = await usage('user');
  const limits: LimitsReport = await t.admin({ action: 'listLimits' });
  await assertTableIs(page, report);

  const total = (id: string) => page.$eval(`[data-total="${id}"] .big`, (e) => ({ value: Number((e as HTMLElement).dataset.value), text: e.textContent }));
  assert.equal(await total('spend'), { value: report.totals.spend, text: money(report.totals.spend) });
  assert.equal(await total('saved'), { value: report.totals.saved, text: money(report.totals.saved) });
  assert.ok(report.totals.saved > 0 && report.totals.cacheHits === 1);
  const near = projectsNearLimits(limits.limits);
  assert.equal(near.map((p) => p.project).sort(), ['chatbot', 'research']);
  assert.is((await total('near')).value, near.length);
  assert.match(await page.textContent('[data-total="near"] .sub') ?? '', /chatbot \d+%, research 8\d%/);

  // Bars: one segment per user and model, labelled for screen readers with every group's spend.
  const label = await page.getAttribute('#bar-chart svg[role="img"]', 'aria-label');
  for (const g of report.groups) assert.ok(label?.includes(`${g.key} ${money(g.spend)}`), `${label} names ${g.key}`);
  const segments = stackParts(report.rows, 'user').filter((p) => p.spend > 0).length;
  assert.is(await page.locator('#bar-chart g[aria-label="bar"] rect').count(), segments);
  assert.equal((await page.locator('#bar-chart [class$="-swatch"]').allTextContents()).sort(), ['gpt-4o', 'gpt-4o-mini']);

  // Spend per day: today's figures are the sum of the daily rows.
  const todays = report.days!.filter((d) => d.day === today);
  const day = await page.$eval(`#days-table tr[data-day="${today}"] td[data-col="spend"]`, (e) => Number((e as HTMLElement).dataset.value));
  assert.is(day, roundUsd(todays.reduce((s, d) => s + d.spend, 0)));
  assert.is(day, report.totals.spend);
  assert.match(await page.getAttribute('#day-chart svg', 'aria-label') ?? '', new RegExp(`busiest day was ${today} with \\$`));

  // Estimated calls are flagged, with the reason.
  assert.is(await page.locator('#groups-table tr.estimated').count(), 1);
  assert.is(await page.textContent('#groups-table tr.estimated .flag'), 'estimated');
  assert.ok(await page.isVisible('#estimated-note'));

  // Limits: each with its spend, coloured at 80% and 100% (and said in words, not by colour alone).
  const rows = await page.$$eval('#limits-table tbody tr', (trs) => trs.map((tr) => ({
    scope: (tr as HTMLElement).dataset.scope, level: (tr as HTMLElement).dataset.level,
    spend: Number((tr.querySelector('[data-col="spend"]') as HTMLElement).dataset.value),
    limit: Number((tr.querySelector('[data-col="spend"]') as HTMLElement).dataset.limit),
    colour: getComputedStyle(tr.querySelector('.fill')!).backgroundColor, text: tr.querySelector('.pct')!.textContent,
  })));
  assert.is(rows.length, limits.limits.length);
  for (const l of limits.limits) {
    const row = rows.find((r) => r.scope === `${l.project}#${l.user}#${l.model}`)!;
    assert.equal([row.spend, row.limit, row.level], [l.spend, l.limit, levelOf(l.spend, l.limit!)]);
  }
  const level = (scope: string) => rows.find((r) => r.scope === scope)!;
  assert.is(level('chatbot#bob#*').level, 'over');
  assert.match(level('chatbot#bob#*').text!, /at or over the limit/);
  assert.is(level('research#*#gpt-4o').level, 'near');
  assert.is(level('research#*#*').level, 'ok');
  assert.is(new Set(rows.map((r) => r.colour)).size, 3, 'three colours for three bands');

  // Daily and per-minute limits beside the monthly one, each with its use in words.
  const meters = await page.$$eval('#limits-table [data-col="others"] [data-kind]', (spans) => spans.map((e) => ({
    scope: (e.closest('tr') as HTMLElement).dataset.scope, kind: (e as HTMLElement).dataset.kind,
    value: Number((e as HTMLElement).dataset.value), limit: Number((e as HTMLElement).dataset.limit), text: e.textContent,
  })));
  const research = limits.limits.find((l) => l.project === 'research' && l.user === '*' && l.model === '*')!;
  assert.ok(research.today > 0, 'today\'s calls count against the daily limit');
  assert.equal(meters.map(({ scope, kind, value, limit }) => ({ scope, kind, value, limit })), [
    { scope: 'research#*#*', kind: 'day', value: research.today, limit: 100 },
    { scope: 'chatbot#bob#*', kind: 'rpm', value: 0, limit: 60 },
    { scope: 'chatbot#bob#*', kind: 'tpm', value: 0, limit: 100_000 },
  ].sort((a, b) => meters.findIndex((m) => m.scope === a.scope) - meters.findIndex((m) => m.scope === b.scope)));
  assert.match(meters.find((m) => m.kind === 'day')!.text!, /^\$[\d.]+ of \$100\.00 today/);
  assert.match(meters.find((m) => m.kind === 'rpm')!.text!, /^0 of 60 requests this minute/);
  assert.match(meters.find((m) => m.kind === 'tpm')!.text!, /^0 of 100,000 tokens this minute/);

  // Each USD limit's alert thresholds (the defaults where none were set), per period when a scope has both.
  const thresholds = await page.$$eval('#limits-table [data-col="alerts"] [data-period]', (spans) => spans.map((e) => ({
    scope: (e.closest('tr') as HTMLElement).dataset.scope, period: (e as HTMLElement).dataset.period, alerts: (e as HTMLElement).dataset.alerts,
    text: e.textContent!.trim(),
  })));
  const expected = limits.limits.flatMap((l) => [
    ...(l.limit !== undefined ? [{ scope: `${l.project}#${l.user}#${l.model}`, period: 'month', alerts: l.alerts!.join(',') }] : []),
    ...(l.dailyLimit !== undefined ? [{ scope: `${l.project}#${l.user}#${l.model}`, period: 'day', alerts: l.dailyAlerts!.join(',') }] : []),
  ]);
  assert.equal(thresholds.map(({ scope, period, alerts }) => ({ scope, period, alerts })).sort((a, b) => `${a.scope}${a.period}`.localeCompare(`${b.scope}${b.period}`)),
    expected.sort((a, b) => `${a.scope}${a.period}`.localeCompare(`${b.scope}${b.period}`)));
  const said = (scope: string) => thresholds.filter((x) => x.scope === scope).map((x) => x.text);
  assert.equal(said('research#*#gpt-4o'), ['50, 90%']);
  assert.equal(said('research#*#*'), ['monthly 80, 100%', 'daily 80, 100%']);
  assert.equal(said('chatbot#bob#*'), ['80, 100%']);

  // No call has crossed a threshold yet (the limits were set after the calls): said plainly.
  assert.match(await page.textContent('[data-empty="alerts"]') ?? '', new RegExp(`No budget alerts in stage dev in ${monthLabel(month)}\\..*--alerts 50,80,100`));
  assert.equal(errors, []);
});

test('group by project and by model: the table follows the report, the other dimension stacks the bars', async () => {
  const { page, errors } = await open();
  await settledState(page);
  for (const by of ['project', 'model'] as const) {
    assert.is(await afterAnswer(page, () => page.click(`#by label:has-text("${by[0].toUpperCase()}${by.slice(1)}")`)), 'ready');
    const report = await usage(by);
    await assertTableIs(page, report);
    assert.is(await page.textContent('#breakdown-title'), `Spend by ${by}, stacked by ${stackOf(by)}`);
    const stackKeys = [...new Set(report.rows.filter((r) => r.spend > 0).map((r) => r[stackOf(by)]))].sort();
    assert.equal((await page.locator('#bar-chart [class$="-swatch"]').allTextContents()).sort(), stackKeys);
    assert.is(new URL(page.url()).searchParams.get('by'), by);
  }
  assert.equal(errors, []);
});

test('months: the current one by default, the months with data offered, a past month shows its own figures', async () => {
  const { page } = await open();
  await settledState(page);
  assert.is(await page.inputValue('#month'), month);
  const options = await page.$$eval('#month option', (os) => os.map((o) => [(o as HTMLOptionElement).value, o.textContent]));
  assert.equal(options, [[month, monthLabel(month)], [past, monthLabel(past)]]);
  assert.is(await afterAnswer(page, () => page.selectOption('#month', past)), 'ready');
  const report = await usage('user', past);
  assert.is(report.totals.spend, 0.0042);
  await assertTableIs(page, report);
  assert.is(await page.textContent('[data-total="spend"] dt'), `Spent in ${monthLabel(past)}`);
  assert.match(await page.textContent('#limits .hint') ?? '', /limits count the current month/);
  assert.is(new URL(page.url()).searchParams.get('month'), past);

  // A month without usage (from a bookmarked address): said plainly, and still offered.
  await page.goto(new URL(`?stage=dev&month=2020-01&by=user`, page.url()).href);
  assert.is(await settledState(page), 'empty');
  assert.match(await page.textContent('[data-empty="usage"]') ?? '', /No calls in stage dev in January 2020\.\s*Pick another month/);
  assert.is(await page.$eval('#month option[value="2020-01"]', (o) => o.textContent), 'January 2020 (no usage)');
});

test('empty state: a stage without usage or limits says so and what to run', async () => {
  const { page, errors } = await open();
  await settledState(page);
  assert.is(await afterAnswer(page, () => page.selectOption('#stage', 'prod')), 'empty');
  assert.match(await page.textContent('[data-empty="usage"]') ?? '', new RegExp(`No calls in stage prod in ${monthLabel(month)} yet\\..*openai-wrapi limits set --stage prod`));
  assert.match(await page.textContent('[data-empty="limits"]') ?? '', /No limits in stage prod\..*refused/);
  assert.match(await page.textContent('[data-empty="alerts"]') ?? '', new RegExp(`No budget alerts in stage prod in ${monthLabel(month)}\\.`));
  assert.is(await page.textContent('[data-total="spend"] .big'), '$0.00');
  assert.ok(!(await page.isVisible('#groups-table')), 'no empty table');
  assert.equal(errors, []);
});

test('keyboard: tab to the controls, change month and grouping with arrow keys, sort the table with Enter', async () => {
  const { page, errors } = await open();
  await settledState(page);
  const focused = () => page.evaluate(() => {
    const e = document.activeElement as HTMLElement;
    return e.id || e.dataset.sort || (e as HTMLInputElement).value || e.textContent || e.tagName;
  });
  await page.keyboard.press('Tab');
  assert.is(await focused(), 'Skip to the figures');
  const tabTo = async (want: string) => {
    for (let i = 0; i < 40 && (await focused()) !== want; i++) await page.keyboard.press('Tab');
    assert.is(await focused(), want);
  };
  await tabTo('stage');
  await tabTo('month');
  assert.is(await afterAnswer(page, () => page.keyboard.press('ArrowDown')), 'ready');
  assert.is(await page.inputValue('#month'), past);
  await page.keyboard.press('Tab');
  assert.is(await focused(), 'user', 'the checked radio of the grouping');
  assert.is(await afterAnswer(page, () => page.keyboard.press('ArrowRight')), 'ready');
  assert.is(await page.textContent('#table-title'), 'Usage by project');
  await assertTableIs(page, await usage('project', past));

  await tabTo('requests');
  await page.keyboard.press('Enter');
  assert.is(await page.getAttribute('#groups-table th:has(button[data-sort="requests"])', 'aria-sort'), 'descending');
  assert.is(await focused(), 'requests', 'focus stays on the heading after sorting');
  await page.keyboard.press('Enter');
  assert.is(await page.getAttribute('#groups-table th:has(button[data-sort="requests"])', 'aria-sort'), 'ascending');
  const requests = await page.$$eval('#groups-table tbody td[data-col="requests"]', (tds) => tds.map((td) => Number((td as HTMLElement).dataset.value)));
  assert.equal(requests, [...requests].sort((a, b) => a - b));
  assert.equal(errors, []);
});

test('accessible structure: labelled controls, table headers, charts with text', async () => {
  const { page } = await open();
  await settledState(page);
  assert.is(await page.getByLabel('Stage').count(), 1);
  assert.is(await page.getByLabel('Month').count(), 1);
  assert.is(await page.getByRole('radiogroup', { name: 'Group by' }).or(page.getByRole('group', { name: 'Group by' })).count(), 1);
  for (const table of ['#groups-table', '#limits-table', '#days-table']) {
    assert.ok((await page.textContent(`${table} caption`))!.length > 10, `${table} has a caption`);
    assert.ok(await page.locator(`${table} th[scope="col"]`).count() > 2, `${table} has column headers`);
  }
  for (const chart of ['#bar-chart', '#day-chart']) assert.ok(((await page.getAttribute(`${chart} svg[role="img"]`, 'aria-label')) ?? '').length > 40);
  assert.is(await page.getAttribute('#status', 'role'), 'status');
});

test('sessions: only the link opens the data; wrong tokens, other sites and other host names get nothing', async () => {
  const { page } = await open(`${t.stack.url}/dashboard/`);
  assert.is(await settledState(page), 'session');
  assert.match(await page.textContent('#problem h2') ?? '', /needs the link from your terminal/);
  const wrong = await open(`${t.stack.url}/dashboard/?token=guess`);
  assert.is(await settledState(wrong.page), 'session');

  const api = `${t.stack.url}/dashboard/api`;
  assert.is((await fetch(`${api}/session`)).status, 401);
  const cookie = await loginCookie();
  const post = (body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${api}/admin`, { method: 'POST', headers: { 'content-type': 'application/json', cookie, ...headers }, body: JSON.stringify(body) });
  const ok = await post({ stage: 'dev', request: { action: 'months' } });
  assert.is(ok.status, 200);
  assert.equal((await ok.json()).months, [month, past]);
  assert.is((await post({ stage: 'dev', request: { action: 'months' } }, { origin: 'https://evil.example' })).status, 403);
  const write = await post({ stage: 'dev', request: { action: 'setLimit', project: 'research', limit: 1000 } });
  assert.is(write.status, 400, 'the dashboard only reads');
  assert.match((await write.json()).error.message, /only reads/);
  assert.is((await post({ stage: 'nope', request: { action: 'months' } })).status, 400);
  const rebound = await new Promise<number>((resolve, reject) =>
    request(`${api}/session`, { headers: { cookie, host: 'attacker.example' } }, (res) => resolve(res.resume().statusCode!)).on('error', reject).end());
  assert.is(rebound, 421, 'DNS rebinding: a foreign Host is refused');
  assert.is((await t.admin({ action: 'listLimits', project: 'research' })).limits.find((l: { user: string; model: string }) => l.user === '*' && l.model === '*').limit, 5);
});

/** The cookie the link sets, as a browser would keep it. */
async function loginCookie(): Promise<string> {
  const res = await fetch(t.stack.dashboardUrl, { redirect: 'manual' });
  assert.is(res.status, 303);
  const set = res.headers.get('set-cookie') ?? '';
  assert.match(set, /HttpOnly/);
  assert.match(set, /SameSite=Strict/);
  return set.split(';')[0];
}

test('budget alerts: calls that cross a limit\'s thresholds show in the month\'s alerts, newest first, with their limit and spend', async () => {
  // $0.001 per output token: each call below settles exactly $0.002.
  await t.admin({ action: 'setPrice', model: 'alert-model', input: 0, output: 1000 });
  await t.admin({ action: 'setLimit', project: 'alerted', limit: 0.01, alerts: [50, 80] });
  await t.admin({ action: 'setLimit', project: 'alerted', user: 'ann', limit: 0.01, period: 'day', alerts: '60' });
  const c = t.client({ user: 'ann', project: 'alerted', caching: false });
  for (let i = 0; i < 4; i++) await c.chat.completions.create({ model: 'alert-model', max_tokens: 2, messages: [{ role: 'user', content: 'x fake:words=1' }] });
  await settled(t, async () => (await t.admin({ action: 'listAlerts' })).alerts.length === 3);

  const { page, errors } = await open();
  assert.is(await settledState(page), 'ready');
  const report: AlertsReport = await t.admin({ action: 'listAlerts', month });
  // (No named functions inside: the page would not know tsx's __name helper.)
  const rows = await page.$$eval('#alerts-table tbody tr', (trs) => trs.map((tr) => {
    const [at, limit, spend] = ['at', 'limit', 'spend'].map((col) => tr.querySelector(`[data-col="${col}"]`) as HTMLElement);
    return {
      scope: (tr as HTMLElement).dataset.scope, period: (tr as HTMLElement).dataset.period, threshold: Number((tr as HTMLElement).dataset.threshold),
      level: (tr as HTMLElement).dataset.level, at: at.dataset.value, limit: Number(limit.dataset.value), limitText: limit.textContent,
      spend: Number(spend.dataset.value), spendText: spend.textContent, who: tr.querySelector('th')!.textContent,
    };
  }));
  // The page draws the admin answer, in its order: newest first.
  assert.equal(rows.map((r) => [r.scope, r.period, r.threshold, r.at, r.limit, r.spend]),
    report.alerts.map((a) => [`${a.project}#${a.user}#${a.model}`, a.period, a.threshold, a.at, a.limit, a.spend]));
  assert.equal(rows.map((r) => [r.scope, r.period, r.threshold]).sort(),
    [['alerted#*#*', 'month', 50], ['alerted#*#*', 'month', 80], ['alerted#ann#*', 'day', 60]].sort());
  assert.equal([rows[0].threshold, rows[0].period, rows[0].level], [80, 'month', 'near'], 'the 4th call\'s crossing is the newest');
  assert.ok(rows.every((r, i) => i === 0 || r.at! <= rows[i - 1].at!));
  const near = rows[0];
  assert.equal([near.spend, near.spendText, near.limitText], [0.008, money(0.008), `monthly ${money(0.01)}`]);
  const daily = rows.find((r) => r.period === 'day')!;
  assert.equal([daily.spend, daily.limitText, daily.who], [0.006, `daily ${money(0.01)} (${today})`, 'alerted · user ann']);
  assert.match(await page.textContent('#alerts .hint') ?? '', new RegExp(`Budget alerts in stage dev, ${monthLabel(month)}, newest first`));
  assert.equal(await page.$eval('#limits-table tr[data-scope="alerted#*#*"] [data-period="month"]', (e) => e.textContent!.trim()), '50, 80%');

  // Another month has its own alerts: none.
  assert.is(await afterAnswer(page, () => page.selectOption('#month', past)), 'ready');
  assert.match(await page.textContent('[data-empty="alerts"]') ?? '', new RegExp(`No budget alerts in stage dev in ${monthLabel(past)}\\.`));
  assert.equal(errors, []);
});

test('fast and light, readable on a phone: screenshots of the populated page', async () => {
  const { page } = await open();
  await settledState(page);
  // From the start of navigation (a fresh browser context: nothing cached) to the figures drawn.
  const readyMs = Math.round(await page.evaluate(() => performance.now()));
  const weight = await page.evaluate(() =>
    performance.getEntriesByType('resource').concat(performance.getEntriesByType('navigation'))
      .reduce((s, r) => [s[0] + (r as PerformanceResourceTiming).transferSize, s[1] + (r as PerformanceResourceTiming).decodedBodySize], [0, 0]));
  console.log(`    dashboard: ${(weight[0] / 1024).toFixed(0)} KB transferred (${(weight[1] / 1024).toFixed(0)} KB uncompressed), ready in ${readyMs} ms`);
  assert.ok(weight[0] < 160 * 1024, `page weight ${weight[0]} bytes`);
  assert.ok(readyMs < 3000, `ready in ${readyMs} ms`);
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard-laptop.png'), fullPage: true });

  const phone = await open(t.stack.dashboardUrl, PHONE);
  await settledState(phone.page);
  const overflow = await phone.page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.is(overflow, 0, 'no sideways scrolling of the page on a phone (wide tables scroll inside their box)');
  await phone.page.screenshot({ path: join(ARTIFACTS, 'dashboard-phone.png'), fullPage: true });
  assert.equal(phone.errors, []);
});

test.run();
