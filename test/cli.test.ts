// Every `openai-wrapi` command as a subprocess against the local stack: output, --json, --help,
// exit codes (0 ok, 1 refused or failed, 2 bad usage) and one-line errors on stderr.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { settled } from './helpers/stack.ts';
import { childEnv, chat, startSdkStack, type SdkStack } from './helpers/sdk.ts';

let t: SdkStack;
let scratch: string;
const root = new URL('..', import.meta.url).pathname;

test.before(async () => {
  t = await startSdkStack([['ann', false], ['bob', false]]);
  scratch = await mkdtemp(join(tmpdir(), 'wrapi-cli-'));
});
test.after(async () => {
  await t.close();
  await rm(scratch, { recursive: true, force: true });
});

interface Run { code: number; stdout: string; stderr: string }

function cli(args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'sdk/cli.ts', ...args], { cwd: root, env: childEnv({ ...t.env, ...env }) }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

async function ok(args: string[], env?: Record<string, string | undefined>): Promise<string> {
  const r = await cli(args, env);
  assert.is(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** Fails with exit `code` and exactly one line on stderr. */
async function fails(code: number, args: string[], pattern: RegExp, env?: Record<string, string | undefined>): Promise<string> {
  const r = await cli(args, env);
  assert.is(r.code, code, `${args.join(' ')} → ${r.code}: ${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.is(lines.length, 1, `one line on stderr: ${r.stderr}`);
  assert.match(lines[0], /^openai-wrapi: /);
  assert.match(lines[0], pattern);
  return lines[0];
}

const COMMANDS = ['limits set', 'limits rm', 'limits ls', 'alerts ls', 'digest', 'usage', 'prices set', 'prices rm', 'prices ls', 'cache flush', 'outputs', 'url', 'doctor', 'local', 'local users add', 'dashboard'];

test('--help everywhere, exit 0', async () => {
  const top = await ok(['--help']);
  for (const c of COMMANDS) assert.ok(top.includes(`  ${c}`), `overview lists ${c}`);
  await Promise.all(COMMANDS.map(async (c) => {
    const text = await ok([...c.split(' '), '--help']);
    assert.match(text, new RegExp(`^Usage: openai-wrapi ${c}`));
    assert.match(text, /--stage STAGE/);
    assert.match(text, /--json/);
  }));
  for (const group of ['limits', 'prices', 'cache', 'alerts']) assert.match(await ok([group, '--help']), new RegExp(`${group} \\w+ +`));
  assert.match(await ok(['limits', 'set', '-h']), /--limit USD/);
  assert.match(await ok(['limits', 'set', '-h']), /--alerts 50,80,100\|none +alert thresholds of --limit, percent/);
  assert.match(await ok(['alerts', 'ls', '-h']), /--month YYYY-MM/);
  assert.match(await ok(['--version']), /^\d+\.\d+\.\d+/);
});

test('bad usage: exit 2 with one line saying what is wrong', async () => {
  await Promise.all([
    fails(2, [], /no command given/),
    fails(2, ['frobnicate'], /unknown command "frobnicate" \(see openai-wrapi --help\)$/),
    // A typo gets the closest command by edit distance.
    fails(2, ['limts', 'ls'], /unknown command "limts ls" — did you mean "limits ls"\?/),
    fails(2, ['usgae'], /unknown command "usgae" — did you mean "usage"\?/),
    fails(2, ['limits', 'set', '--project', 'p', '--limt', '5'], /unknown option '--limt' — did you mean --limit\?/),
    // An option without its value says so, whether it ends the line or another option follows.
    fails(2, ['limits', 'set', '--project', 'p', '--limit'], /^openai-wrapi: --limit needs a value \(see openai-wrapi limits set --help\)$/),
    fails(2, ['limits', 'set', '--project', '--limit', '5'], /^openai-wrapi: --project needs a value, and the next word starts with "-" \(write --project=VALUE/),
    // The name rule as it is, and bad usage rather than a refusal.
    fails(2, ['limits', 'set', '--project', 'a#b', '--limit', '1'],
      /--project must be 1-128 Latin-1 characters \(what an HTTP header carries\), without "#", control characters or soft hyphens, and not starting or ending with a space \(got "a#b"\)/),
    fails(2, ['local', 'users', 'add', 'bad name!'], /NAME "bad name!" is not a user name: use 1-64 letters, digits or \+ = , \. @ _ -/),
    fails(2, ['limits'], /limits needs a subcommand: set, rm, ls/),
    fails(2, ['limits', 'explode'], /unknown command "limits explode"/),
    fails(2, ['limits', 'set', '--project', 'p', '--limit', '5', '--bogus'], /unknown option '--bogus'/),
    fails(2, ['limits', 'set', '--limit', '5'], /--project is required/),
    fails(2, ['limits', 'set', '--project', 'p', '--limit', 'lots'], /--limit must be a number of USD/),
    fails(2, ['limits', 'set', '--project', 'p'], /--limit is required/),
    // An unset shell variable must not turn a user's or model's limit into the project's.
    fails(2, ['limits', 'set', '--project', 'p', '--user', '', '--limit', '1'], /--user must not be empty/),
    fails(2, ['limits', 'rm', '--project', 'p', '--model', ' '], /--model must not be empty/),
    fails(2, ['limits', 'set', '--project', 'p', '--limit', '0x10'], /--limit must be a number of USD/),
    // Below $0.000001 an amount rounds to 0 (a limit of 0 refuses every call): bad usage, not a refusal.
    fails(2, ['limits', 'set', '--project', 'p', '--limit', '0.0000000004'], /--limit must be 0 or from 0\.000001 to 1000000 USD \(got "0\.0000000004"\)/),
    fails(2, ['limits', 'set', '--project', 'p', '--limit', '1000001'], /--limit must be 0 or from 0\.000001 to 1000000 USD/),
    fails(2, ['prices', 'set', '--model', 'm', '--input', '1e-7', '--output', '1'], /--input must be a number of USD/),
    fails(2, ['usage', '--month', '2026-13'], /--month must look like 2026-11/),
    fails(2, ['usage', '--by', 'colour'], /--by must be user, project or model/),
    fails(2, ['alerts', 'ls', '--month', '2026-1'], /--month must look like 2026-11 \(got "2026-1"\)/),
    fails(2, ['alerts'], /alerts needs a subcommand: ls/),
    fails(2, ['limits', 'set', '--project', 'p', '--limit', '5', '--alerts', '80,101'], /--alerts must be "none" or whole percents from 1 to 100, comma separated, e\.g\. 50,80,100 \(got "80,101"\)/),
    fails(2, ['limits', 'set', '--project', 'p', '--limit', '5', '--alerts', 'some'], /--alerts must be "none" or whole percents/),
    fails(2, ['limits', 'set', '--project', 'p', '--limit', '5', '--alerts', ''], /--alerts must be "none" or whole percents .*\(got ""\)/),
    fails(2, ['limits', 'set', '--project', 'p', '--limit', '5', '--alerts', '1,2,3,4,5,6,7,8,9,10,11'], /--alerts takes at most 10 thresholds \(got 11\)/),
    fails(2, ['limits', 'set', '--project', 'p', '--rpm', '5', '--alerts', '50'], /--alerts goes with --limit/),
    fails(2, ['dashboard', '--port', 'high'], /--port must be a port number/),
    fails(2, ['prices', 'set', '--model', 'm', '--input', '1'], /--output is required/),
    fails(2, ['cache', 'flush', 'now'], /cache flush takes no arguments/),
    fails(2, ['local', 'users', 'add'], /local users add takes NAME/),
    fails(2, ['url', '--stage', 'no/stage'], /--stage must be a stage name/),
  ]);
});

test('limits set, ls and rm, per stage, as text and --json', async () => {
  assert.match(await ok(['limits', 'set', '--project', 'alpha', '--limit', '12.5']), /Limit of project "alpha" in stage dev: \$12\.50 per month\./);
  const set = JSON.parse(await ok(['limits', 'set', '--project', 'alpha', '--user', 'ann', '--model', 'gpt-4o', '--limit', '2', '--json']));
  assert.equal(set, { project: 'alpha', user: 'ann', model: 'gpt-4o', limit: 2 });
  await ok(['limits', 'set', '--project', 'alpha', '--limit', '99', '--stage', 'prod']);

  const table = await ok(['limits', 'ls']);
  assert.match(table, /^Limits in stage dev, \d{4}-\d{2}; use is spent \+ reserved:\nPROJECT +USER +MODEL +PER MONTH +THIS MONTH +ALERTS\n/);
  assert.match(table, /alpha +ann +gpt-4o +\$2\.00 +\$0\.00 \(0%\) +80,100%\n/);
  assert.match(table, /alpha +\* +\* +\$12\.50/);
  assert.not.match(table, /\$99\.00/, 'prod limits stay in prod');
  const prod = JSON.parse(await ok(['limits', 'ls', '--stage', 'prod', '--json']));
  assert.equal(prod.limits.map((l: any) => l.limit), [99]);
  assert.is(prod.stage, 'prod');

  assert.match(await ok(['limits', 'rm', '--project', 'alpha', '--user', 'ann', '--model', 'gpt-4o']), /Removed the limits of project "alpha", user "ann", model "gpt-4o" in stage dev\./);
  await fails(1, ['limits', 'rm', '--project', 'alpha', '--user', 'ann', '--model', 'gpt-4o'], /There is no limit for project "alpha" user "ann" model "gpt-4o" in stage dev/);
  assert.match(await ok(['limits', 'ls', '--project', 'nothing-here']), /No limits in stage dev for project "nothing-here"\./);

  // Per day and per minute, beside the monthly one; each removed on its own.
  assert.match(
    await ok(['limits', 'set', '--project', 'alpha', '--limit', '1.5', '--period', 'day', '--rpm', '60', '--tpm', '100000']),
    /Limits of project "alpha" in stage dev: \$1\.50 per day \(UTC\), 60 requests per minute, 100,000 tokens per minute\./,
  );
  const all = await ok(['limits', 'ls', '--project', 'alpha']);
  assert.match(all, /^Limits in stage dev, \d{4}-\d{2} \(today \d{4}-\d{2}-\d{2}\); use is spent \+ reserved:\nPROJECT +USER +MODEL +PER MONTH +THIS MONTH +PER DAY +TODAY +RPM +THIS MINUTE +TPM +THIS MINUTE +ALERTS\n/);
  assert.match(all, /alpha +\* +\* +\$12\.50 +\$0\.00 \(0%\) +\$1\.50 +\$0\.00 \(0%\) +60 +0 \(0%\) +100,000 +0 \(0%\) +month 80,100% · day 80,100%\n/);
  assert.match(await ok(['limits', 'rm', '--project', 'alpha', '--rpm']), /Removed the requests-per-minute limit of project "alpha" in stage dev\./);
  const left = JSON.parse(await ok(['limits', 'ls', '--project', 'alpha', '--json'])).limits[0];
  assert.equal([left.limit, left.dailyLimit, left.rpm, left.tpm], [12.5, 1.5, undefined, 100_000]);
  await fails(2, ['limits', 'set', '--project', 'alpha', '--rpm', '1.5'], /--rpm must be a whole number/);
  await fails(2, ['limits', 'set', '--project', 'alpha', '--limit', '1', '--period', 'week'], /--period must be month or day/);
  await fails(2, ['limits', 'rm', '--project', 'alpha', '--rpm', '--tpm'], /at most one of --period, --rpm, --tpm/);
  assert.match(await ok(['limits', 'rm', '--project', 'alpha']), /Removed the limits of project "alpha" in stage dev\./);
  assert.match(await ok(['limits', 'ls', '--project', 'alpha']), /No limits in stage dev for project "alpha"\./);
});

test('usage: an aligned table by user, project or model; --month, --daily, --json', async () => {
  for (const project of ['u1', 'u2']) await t.admin({ action: 'setLimit', project, limit: 5 });
  await Promise.all([
    t.client({ user: 'ann', project: 'u1', caching: false }).chat.completions.create(chat('a fake:words=5')),
    t.client({ user: 'ann', project: 'u2', caching: false }).chat.completions.create({ ...chat('b'), model: 'gpt-4o' }),
    t.client({ user: 'bob', project: 'u1', caching: false }).chat.completions.create(chat('c fake:words=50')),
    t.client({ user: 'bob', project: 'u1', caching: false }).chat.completions.create(chat('d fake:error=500')).catch(() => null),
  ]);
  await settled(t, async () => {
    const { totals } = await t.admin({ action: 'usage' });
    return totals.requests === 3 && totals.errors === 1;
  });

  const byUser = await ok(['usage']);
  const lines = byUser.trim().split('\n');
  assert.match(lines[0], /^Usage in stage dev, \d{4}-\d{2}, by user:$/);
  assert.match(lines[1], /^USER +REQUESTS +ERRORS +INPUT +CACHED +OUTPUT +SPEND +CACHE HITS +SAVED$/);
  const table = lines.slice(1).filter((l) => !l.startsWith('('));
  assert.ok(table.every((l) => l.length === table[0].length), `aligned:\n${byUser}`);
  assert.match(table.at(-1)!, /^TOTAL +3 +1 /);
  assert.ok(table.some((l) => /^ann +2 +0 /.test(l)) && table.some((l) => /^bob +1 +1 /.test(l)), byUser);
  assert.match(byUser, /\(errors: calls OpenAI answered with an error/);

  const byModel = JSON.parse(await ok(['usage', '--by', 'model', '--json']));
  assert.equal(byModel.groups.map((g: any) => g.key).sort(), ['gpt-4o', 'gpt-4o-mini']);
  assert.is(byModel.totals.requests, 3);
  assert.match(await ok(['usage', '--by', 'project']), /\nu1 +2 /);
  assert.match(await ok(['usage', '--month', '2020-01']), /^Usage in stage dev, 2020-01, by user: no calls\.$/m);
  assert.match(await ok(['usage', '--daily']), /Per day:\nDAY +PROJECT +USER +MODEL +REQUESTS +SPEND\n/);
});

test('limits set --alerts and alerts ls: thresholds set and shown, the alerts real calls made listed newest first', async () => {
  assert.match(await ok(['alerts', 'ls']), /^No budget alerts in stage dev in \d{4}-\d{2}\. An alert is made when settled spend reaches a threshold of a USD limit/);
  await t.admin({ action: 'setPrice', model: 'alert-model', input: 0, output: 1000 }); // $0.002 per call below
  assert.match(
    await ok(['limits', 'set', '--project', 'watched', '--limit', '0.01', '--alerts', '100, 50,80']),
    /^Limit of project "watched" in stage dev: \$0\.01 per month \(alerts at 50, 80, 100%\)\.$/m,
  );
  const daily = JSON.parse(await ok(['limits', 'set', '--project', 'watched', '--limit', '1', '--period', 'day', '--alerts', 'none', '--json']));
  assert.equal(daily, { project: 'watched', user: '*', model: '*', dailyLimit: 1, dailyAlerts: [] });
  assert.match(await ok(['limits', 'ls', '--project', 'watched']), /watched +\* +\* +\$0\.01 +.* +month 50,80,100% · day none\n/);

  const c = t.client({ project: 'watched', caching: false });
  for (let i = 0; i < 4; i++) await c.chat.completions.create({ model: 'alert-model', max_tokens: 2, messages: [{ role: 'user', content: 'x fake:words=1' }] });
  await settled(t, async () => (await t.admin({ action: 'listAlerts' })).alerts.length === 2);
  const text = await ok(['alerts', 'ls']);
  const lines = text.trim().split('\n');
  assert.match(lines[0], /^Budget alerts in stage dev, \d{4}-\d{2}, newest first:$/);
  assert.match(lines[1], /^TIME \(UTC\) +PROJECT +USER +MODEL +PERIOD +THRESHOLD +SPENT +LIMIT$/);
  assert.match(lines[3], /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} +watched +\* +\* +month +80% +\$0\.008 +\$0\.01$/);
  assert.match(lines[4], /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} +watched +\* +\* +month +50% +\$0\.006 +\$0\.01$/);
  assert.is(lines.length, 5);
  const json = JSON.parse(await ok(['alerts', 'ls', '--json']));
  assert.equal(json.alerts.map((a: any) => [a.project, a.period, a.threshold, a.spend, a.limit]), [['watched', 'month', 80, 0.008, 0.01], ['watched', 'month', 50, 0.006, 0.01]]);
  assert.equal([json.stage, json.month], ['dev', new Date().toISOString().slice(0, 7)]);
  assert.match(await ok(['alerts', 'ls', '--month', '2020-01']), /^No budget alerts in stage dev in 2020-01\./);
  assert.match(await ok(['alerts', 'ls', '--stage', 'prod']), /^No budget alerts in stage prod/);
  await t.admin({ action: 'removeLimit', project: 'watched' });
});

test('digest: the month so far, as the daily digest says it; --send needs the stack\'s dailyDigest', async () => {
  await t.admin({ action: 'setPrice', model: 'digest-model', input: 0, output: 1000 }); // $0.002 per call below
  await t.admin({ action: 'setLimit', project: 'digest-demo', limit: 0.004 });
  const c = t.client({ project: 'digest-demo', caching: false });
  for (let i = 0; i < 2; i++) await c.chat.completions.create({ model: 'digest-model', max_tokens: 2, messages: [{ role: 'user', content: 'x fake:words=1' }] });
  await settled(t, async () => (await t.admin({ action: 'usage', by: 'project' })).groups.some((g: any) => g.key.startsWith('digest') && g.spend === 0.004));

  const text = await ok(['digest']);
  const day = new Date().toISOString().slice(0, 10);
  assert.match(text, new RegExp(`^openai-wrapi dev: daily digest ${day}, \\$[0-9.]+ in ${day.slice(0, 7)}\n\nDaily digest of openai-wrapi stage dev for ${day} \\(UTC\\)\\.\n`));
  assert.match(text, /\n\d{4}-\d{2} to date: \$[0-9.]+ over \d+ calls/);
  assert.match(text, /\nTop projects: [^\n]*\$[0-9.]+\nTop users: [^\n]+\nTop models: [^\n]+\n/);
  assert.match(text, /\n  project "digest-demo": \$0\.004000 of \$0\.004000 in \d{4}-\d{2} \(100%, at its monthly limit: calls that would pass it are refused\)\n/);
  assert.not.match(text, /Sent to the alert topic/);

  const json = JSON.parse(await ok(['digest', '--json']));
  assert.equal([json.stage, json.published, json.digest.type, json.digest.day], ['dev', false, 'daily_digest', day]);
  assert.ok(json.digest.limits.some((l: any) => l.scope.project === 'digest-demo' && l.percent === 100));
  await fails(1, ['digest', '--send'], /Stage dev sends no daily digest: the stack setting dailyDigest turns it on/);
  await t.admin({ action: 'removeLimit', project: 'digest-demo' });
});

test('prices set, ls and rm', async () => {
  assert.match(
    await ok(['prices', 'set', '--model', 'my-model', '--input', '1.5', '--output', '6', '--cached-input', '0.75']),
    /Price of my-model in stage dev: input \$1\.5, cached input \$0\.75, output \$6 per 1M tokens\./,
  );
  assert.match(await ok(['prices', 'ls', '--model', 'my-model']), /my-model +1\.5 +0\.75 +6 +override/);
  const all = JSON.parse(await ok(['prices', 'ls', '--json']));
  assert.ok(all.prices.length > 100);
  assert.ok(all.table.asOf);
  assert.match(await ok(['prices', 'ls']), /^Prices in stage dev \(USD per 1M tokens; table of \d{4}-\d{2}-\d{2}\):\nMODEL +INPUT +CACHED +OUTPUT +SOURCE\n/);
  assert.match(await ok(['prices', 'rm', '--model', 'my-model']), /Removed the price override of my-model in stage dev\./);
  await fails(1, ['prices', 'ls', '--model', 'my-model'], /Model "my-model" has no price/);
  await fails(1, ['prices', 'set', '--model', 'a#b', '--input', '1', '--output', '1'], /"model" must be a non-empty name/);
});

test('money is printed exactly: no exponent, no bare "$0.", no digits rounded away', async () => {
  assert.match(await ok(['limits', 'set', '--project', 'tiny', '--limit', '0.000001']), /: \$0\.000001 per month\./);
  assert.match(await ok(['limits', 'set', '--project', 'tiny', '--limit', '10.005']), /: \$10\.005 per month\./);
  assert.match(await ok(['limits', 'ls', '--project', 'tiny']), /tiny +\* +\* +\$10\.005 +\$0\.00 \(0%\)/);
  // A price stored before the minimum existed still prints as a decimal.
  await t.stack.stages.dev.ledger.setPrice({ model: 'legacy-model', input: 1e-7, cachedInput: null, output: 0.0000025, updatedAt: new Date().toISOString() });
  const legacy = await ok(['prices', 'ls', '--model', 'legacy-model']);
  assert.match(legacy, /legacy-model +0\.0000001 +- +0\.0000025 +override/);
  assert.not.match(legacy, /\de-\d/);
  const { usd, price } = await import('../sdk/cli-format.ts');
  assert.equal(
    [usd(0), usd(12.5), usd(0.1 + 0.2), usd(0.000123456), usd(4e-10), usd(1234567.891), price(1e-7), price(1.5), price(0.1 + 0.2)],
    ['$0.00', '$12.50', '$0.30', '$0.000123456', '$0.0000000004', '$1234567.891', '0.0000001', '1.5', '0.3'],
  );
});

test('cache flush empties the response cache', async () => {
  await t.admin({ action: 'setLimit', project: 'cached', limit: 5 });
  const client = t.client({ project: 'cached' });
  const ask = () => client.chat.completions.create(chat('cache this')).withResponse();
  await ask();
  assert.is((await ask()).response.headers.get('openai-proxy-cache'), 'hit');
  assert.match(await ok(['cache', 'flush']), /Flushed the response cache of stage dev\./);
  assert.is((await ask()).response.headers.get('openai-proxy-cache'), 'miss');
  assert.equal(JSON.parse(await ok(['cache', 'flush', '--stage', 'prod', '--json'])), { flushed: true, stage: 'prod' });
});

test('outputs and url: what the SDK would use, and an error saying what to set when nothing is found', async () => {
  assert.is((await ok(['url'])).trim(), `${t.stack.url}/dev/`);
  assert.is((await ok(['url', '--stage', 'prod'])).trim(), `${t.stack.url}/prod/`);
  const outputs = JSON.parse(await ok(['outputs', '--json']));
  assert.is(outputs.baseURL, `${t.stack.url}/dev/v1`);
  assert.is(outputs.adminFunctionName, 'openai-admin-dev');
  assert.is(outputs.source, t.stack.outputsFile);
  assert.match(await ok(['outputs', '--stage', 'prod']), /proxyUrl +http:\/\/127\.0\.0\.1:\d+\/prod\/\n/);
  const id = 'abcdefghij0123456789klmnopqrstuv';
  assert.is((await ok(['url'], { OPENAI_WRAPI_OUTPUTS: undefined, OPENAI_API_KEY: `sk-${id}`, AWS_REGION: 'eu-west-2' })).trim(), `https://${id}.lambda-url.eu-west-2.on.aws/`);
  await fails(1, ['url'], /No proxy URL for stage "dev"\. Set one of: .*OPENAI_WRAPI_OUTPUTS/, { OPENAI_WRAPI_OUTPUTS: undefined, OPENAI_WRAPI_HOME: scratch });
  const json = await cli(['url', '--json'], { OPENAI_WRAPI_OUTPUTS: undefined, OPENAI_WRAPI_HOME: scratch });
  assert.is(json.code, 1);
  assert.is(JSON.parse(json.stderr).error.code, 'WrapiConfigError');
});

test('refusals exit 1: a user who is not an admin; a stack that is not running', async () => {
  await fails(1, ['limits', 'ls'], /Not allowed to invoke openai-admin-dev at http:\/\/127\.0\.0\.1:\d+ \(stage dev\): .*not an admin/, { AWS_PROFILE: 'ann' });
  const err = await cli(['limits', 'ls', '--json'], { AWS_PROFILE: 'ann' });
  assert.is(JSON.parse(err.stderr).error.code, 'access_denied');
  await fails(1, ['usage'], /No AWS credentials from AWS profile "ghost"/, { AWS_PROFILE: 'ghost' });
  await fails(1, ['cache', 'flush'], /Could not reach the admin function openai-admin-dev at http:\/\/127\.0\.0\.1:9 \(ECONNREFUSED\): is the local stack running/,
    { OPENAI_WRAPI_OUTPUTS: await fakeOutputs('http://127.0.0.1:9') });
});

async function fakeOutputs(url: string): Promise<string> {
  const file = join(scratch, 'dead-outputs.json');
  const { writeFile } = await import('node:fs/promises');
  await writeFile(file, JSON.stringify({ dev: { proxyUrl: `${url}/dev/`, adminFunctionName: 'openai-admin-dev', region: 'us-east-1', lambdaEndpoint: url } }));
  return file;
}

test('local users add: a user (admin only with --admin); a duplicate is refused', async () => {
  const home = join(scratch, 'home-users');
  const added = JSON.parse(await ok(['local', 'users', 'add', 'carol', '--home', home, '--json']));
  assert.equal([added.name, added.admin, added.credentialsFile], ['carol', false, `${home}/credentials`]);
  assert.match(added.accessKeyId, /^AKIA[A-Z2-7]{16}$/);
  assert.match(await ok(['local', 'users', 'add', 'dora', '--admin', '--home', home]), /Added admin user "dora" .* AWS_PROFILE=dora/s);
  await fails(1, ['local', 'users', 'add', 'carol', '--home', home], /already exists/);
  await fails(2, ['local', 'users', 'add', 'bad name', '--home', home], /is not a user name/);
});

test('local: starts the local stack (port 0 = any free port) and stops on SIGTERM', async () => {
  const home = join(scratch, 'home-local');
  const child = spawn(process.execPath, ['--import', 'tsx', 'sdk/cli.ts', 'local', '--home', home, '--port', '0'], {
    cwd: root,
    env: childEnv({ ...t.env, OPENAI_WRAPI_UPSTREAM_URL: t.fake.url, OPENAI_API_KEY: t.fake.apiKey }),
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no start line: ${out}`)), 15000);
    child.stdout.on('data', () => {
      const m = /local stack on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
  });
  const info = await (await fetch(`${url}/`)).json();
  assert.is(info.name, 'openai-wrapi local stack');
  assert.is((await ok(['url'], { OPENAI_WRAPI_OUTPUTS: undefined, OPENAI_WRAPI_HOME: home })).trim(), `${url}/dev/`);
  const code = await new Promise<number | null>((resolve) => {
    child.on('exit', (c) => resolve(c));
    child.kill('SIGTERM');
  });
  assert.is(code, 0);
});

test('local --json: one JSON object per line, the first saying where the stack runs', async () => {
  const home = join(scratch, 'home-local-json');
  const child = spawn(process.execPath, ['--import', 'tsx', 'sdk/cli.ts', 'local', '--home', home, '--port', '0', '--json'], {
    cwd: root,
    env: childEnv({ ...t.env, OPENAI_WRAPI_UPSTREAM_URL: t.fake.url, OPENAI_API_KEY: t.fake.apiKey }),
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const first = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no first line: ${out}`)), 15000);
    child.stdout.on('data', () => {
      if (!out.includes('\n')) return;
      clearTimeout(timer);
      resolve(out.slice(0, out.indexOf('\n')));
    });
  });
  const started = JSON.parse(first);
  assert.is(started.event, 'started');
  assert.match(started.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(started.stages.map((s: { stage: string }) => s.stage), ['dev', 'prod']);
  assert.is(started.outputsFile, join(home, 'outputs.json'));
  const code = await new Promise<number | null>((resolve) => {
    child.on('exit', (c) => resolve(c));
    child.kill('SIGTERM');
  });
  assert.is(code, 0);
  for (const line of out.trim().split('\n')) JSON.parse(line);
});

test('output that cannot be written (a full disk) fails with exit 1 and one line on stderr, no stack trace', async () => {
  const { openSync, closeSync } = await import('node:fs');
  for (const args of [['--help'], ['limits', 'ls'], ['limits', 'ls', '--json']]) {
    const full = openSync('/dev/full', 'w');
    const child = spawn(process.execPath, ['--import', 'tsx', 'sdk/cli.ts', ...args], { cwd: root, env: childEnv(t.env), stdio: ['ignore', full, 'pipe'] });
    closeSync(full);
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    assert.is(code, 1, `${args.join(' ')}: ${err}`);
    const lines = err.trim().split('\n');
    assert.is(lines.length, 1, err);
    assert.match(lines[0], /could not write the output: ENOSPC/);
    if (args.includes('--json')) assert.is(JSON.parse(lines[0]).error.code, 'OutputError');
  }
});

test('tables stay aligned with East Asian wide names', async () => {
  await t.admin({ action: 'setLimit', project: '研究チーム', limit: 3 });
  await t.admin({ action: 'setLimit', project: 'plain-team', limit: 3 });
  const lines = (await ok(['limits', 'ls'])).split('\n');
  const wide = lines.find((l) => l.startsWith('研究チーム'))!;
  const plain = lines.find((l) => l.startsWith('plain-team'))!;
  const { displayWidth } = await import('../sdk/cli-format.ts');
  // The LIMIT column ends at the same terminal column on both rows.
  assert.is(displayWidth(wide.slice(0, wide.indexOf('$3.00') + 5)), displayWidth(plain.slice(0, plain.indexOf('$3.00') + 5)));
  assert.equal([displayWidth('研究'), displayWidth('ｱｲ'), displayWidth('한국'), displayWidth('e\u0301'), displayWidth('abc')], [4, 2, 4, 1, 3]);
});

test('--stage with a stage that does not exist lists the ones that do', async () => {
  await fails(1, ['url', '--stage', 'Prod'], /has no outputs for stage "Prod"\. It has stages dev, prod\. Did you mean "prod"\?/);
  await fails(1, ['limits', 'ls', '--stage', 'Prod'], /The local stack in .* has stages dev, prod\. Did you mean "prod"\?/, { OPENAI_WRAPI_OUTPUTS: undefined, OPENAI_WRAPI_HOME: t.home });
});

test('with nothing but the local stack running, commands sign with its own credentials file', async () => {
  const bare = { OPENAI_WRAPI_OUTPUTS: undefined, AWS_SHARED_CREDENTIALS_FILE: undefined, AWS_PROFILE: undefined, OPENAI_WRAPI_HOME: t.home };
  assert.match(await ok(['limits', 'ls'], bare), /Limits in stage dev/);
  await fails(1, ['limits', 'ls'], /not an admin/, { ...bare, AWS_PROFILE: 'ann' });
  await fails(1, ['limits', 'ls'], /AWS profile "ghost" in the local stack's .*credentials/, { ...bare, AWS_PROFILE: 'ghost' });
});

test.run();
