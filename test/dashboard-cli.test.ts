// `openai-wrapi dashboard` as a user runs it: a subprocess that reads through the admin function
// with the caller's own credentials (here the local stack's, found through its outputs), opened
// in a real headless Chromium. An admin sees the report; a user who is not an admin, a stage that
// cannot be reached and a stage that is not set up each get a page saying what to do.
import { test as uvuTest } from 'uvu';
import { hasChromium, unless } from './helpers/binaries.ts';

const test = unless(hasChromium(), uvuTest);
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { money, monthLabel, type UsageReport } from '../sdk/dashboard/page/model.ts';
import { afterAnswer, ARTIFACTS, launchChromium, pageErrors, settledState } from './helpers/browser.ts';
import { chat, childEnv, startSdkStack, type SdkStack } from './helpers/sdk.ts';
import { settled } from './helpers/stack.ts';

const root = new URL('..', import.meta.url).pathname;
let t: SdkStack;
let browser: Browser;
let scratch: string;
const running = new Set<ChildProcess>();

test.before(async () => {
  t = await startSdkStack([['ann', false]]);
  scratch = await mkdtemp(join(tmpdir(), 'wrapi-dash-cli-'));
  await t.admin({ action: 'setLimit', project: 'cli', limit: 5 });
  await t.client({ user: 'ann', project: 'cli' }).chat.completions.create(chat('from the CLI test fake:words=12'));
  await settled(t, async () => (await t.admin({ action: 'usage' })).totals.requests === 1);
  browser = await launchChromium();
});

test.after(async () => {
  for (const child of running) await stop(child);
  await browser?.close();
  await t?.close();
  await rm(scratch, { recursive: true, force: true });
});

/** Starts `openai-wrapi dashboard --port 0 --json` and returns its link. */
async function dashboard(env: Record<string, string | undefined> = {}, args: string[] = []): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'sdk/cli.ts', 'dashboard', '--port', '0', '--json', ...args], {
    cwd: root,
    env: childEnv({ ...t.env, ...env }),
  });
  running.add(child);
  let out = '';
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no link printed: ${out} ${err}`)), 15_000);
    child.stdout!.on('data', (d) => {
      out += d;
      try {
        const printed = JSON.parse(out);
        clearTimeout(timer);
        resolve(printed.url);
      } catch {
        // not the whole JSON yet
      }
    });
    child.on('exit', (code) => reject(new Error(`dashboard exited ${code}: ${err}`)));
  });
  return { url, child };
}

function stop(child: ChildProcess): Promise<number | null> {
  running.delete(child);
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.kill('SIGTERM');
  });
}

async function open(url: string): Promise<{ page: Page; errors: string[] }> {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  const errors = pageErrors(page);
  await page.goto(url);
  return { page, errors };
}

test('an admin: the report of the stage, with the same figures as the admin function; prod too', async () => {
  const { url, child } = await dashboard();
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/dashboard\/\?token=[\w-]{32}$/);
  const { page, errors } = await open(url);
  assert.is(await settledState(page), 'ready');
  const report: UsageReport = await t.admin({ action: 'usage', by: 'user' });
  assert.is(await page.getAttribute('[data-total="spend"] .big', 'data-value'), String(report.totals.spend));
  assert.is(await page.textContent('[data-total="spend"] .big'), money(report.totals.spend));
  assert.equal(await page.$$eval('#groups-table tbody tr', (trs) => trs.map((tr) => (tr as HTMLElement).dataset.key)), ['ann']);
  assert.match(await page.textContent('#identity') ?? '', /AWS profile "default"/);
  assert.equal(await page.$$eval('#stage option', (os) => os.map((o) => o.textContent)), ['dev', 'prod']);
  assert.is(await afterAnswer(page, () => page.selectOption('#stage', 'prod')), 'empty');
  assert.match(await page.textContent('[data-empty="usage"]') ?? '', /No calls in stage prod/);
  assert.equal(errors, []);
  assert.is(await stop(child), 0, 'Ctrl-C (SIGTERM) stops it cleanly');
});

test('not an admin: the page says so, why, and what to do', async () => {
  const { url, child } = await dashboard({ AWS_PROFILE: 'ann' });
  const { page } = await open(url);
  assert.is(await settledState(page), 'not_admin');
  assert.is(await page.textContent('#problem h2'), 'You are not an admin of stage dev');
  assert.match(await page.textContent('#problem .what') ?? '', /Not allowed to invoke openai-admin-dev .*not an admin of the local stack/);
  assert.match(await page.textContent('#problem .todo') ?? '', /admin policy .*adminPolicyArn.*AWS_PROFILE=admin openai-wrapi dashboard.*openai-wrapi local users add NAME --admin/s);
  assert.not.ok(await page.isVisible('#content'), 'no figures');
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard-not-admin.png') });
  await stop(child);
});

test('the admin function cannot be reached; a stage not set up here: each says what to do', async () => {
  const outputs = join(scratch, 'dead.json');
  await writeFile(outputs, JSON.stringify({ dev: { proxyUrl: 'http://127.0.0.1:9/dev/', adminFunctionName: 'openai-admin-dev', region: 'us-east-1', lambdaEndpoint: 'http://127.0.0.1:9' } }));
  const { url, child } = await dashboard({ OPENAI_WRAPI_OUTPUTS: outputs });
  const { page } = await open(url);
  assert.is(await settledState(page), 'unreachable');
  assert.is(await page.textContent('#problem h2'), 'The admin function of stage dev cannot be reached');
  assert.match(await page.textContent('#problem .what') ?? '', /ECONNREFUSED.*is the local stack running/);
  // Try again: still down, still said (and the button works from the keyboard).
  await page.focus('#problem button.retry');
  assert.is(await afterAnswer(page, () => page.keyboard.press('Enter')), 'unreachable');

  assert.is(await afterAnswer(page, () => page.selectOption('#stage', 'prod')), 'config');
  assert.is(await page.textContent('#problem h2'), 'Stage prod is not set up on this machine');
  assert.match(await page.textContent('#problem .what') ?? '', /has no outputs for stage "prod"/);
  assert.match(await page.textContent('#problem .todo') ?? '', /pulumi stack output --json --stack prod > prod\.json/);
  await stop(child);
});

test('--stage picks the first stage shown; the month list comes from the admin function', async () => {
  const { url, child } = await dashboard({}, ['--stage', 'prod']);
  const { page } = await open(url);
  assert.is(await settledState(page), 'empty');
  assert.is(await page.inputValue('#stage'), 'prod');
  const month = new Date().toISOString().slice(0, 7);
  assert.equal(await page.$$eval('#month option', (os) => os.map((o) => o.textContent)), [`${monthLabel(month)} (no usage)`]);
  await stop(child);
});

test.run();
