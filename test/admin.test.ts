// The admin functions through the Lambda Invoke API of the local stack, called with the AWS SDK's
// own Lambda client and credentials from the stack's credentials file, as the SDK and CLI will.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFile } from 'node:fs/promises';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { fromIni } from '@aws-sdk/credential-providers';
import { startTestStack, settled, type TestStack } from './helpers/stack.ts';
import { SignatureV4 } from '@smithy/signature-v4';
import { Sha256 } from '@aws-crypto/sha256-js';
import { createAdmin } from '../runtime/core/admin.ts';
import { addUser } from '../runtime/local/credentials.ts';
import type { Ledger } from '../runtime/core/ports.ts';

let t: TestStack;
const run = promisify(execFile);

test.before(async () => {
  t = await startTestStack();
});
test.after(() => t.close());

function lambdaAs(profile: string) {
  return new LambdaClient({
    endpoint: t.stack.url,
    region: 'us-east-1',
    credentials: fromIni({ profile, filepath: `${t.home}/credentials`, configFilepath: '/nonexistent', ignoreCache: true }),
    maxAttempts: 1,
  });
}

async function invoke(profile: string, payload: unknown, fn = 'openai-admin-dev') {
  const out = await lambdaAs(profile).send(new InvokeCommand({ FunctionName: fn, Payload: JSON.stringify(payload) }));
  return JSON.parse(Buffer.from(out.Payload!).toString());
}

test('outputs.json names each stage like the Pulumi stacks do, plus the local endpoint', async () => {
  const outputs = JSON.parse(await readFile(t.stack.outputsFile, 'utf8'));
  for (const stage of ['dev', 'prod']) {
    assert.is(outputs[stage].proxyUrl, `${t.stack.url}/${stage}/`);
    assert.is(outputs[stage].adminFunctionName, `openai-admin-${stage}`);
    assert.is(outputs[stage].region, 'us-east-1');
    assert.is(outputs[stage].lambdaEndpoint, t.stack.url);
  }
});

test('an admin sets, lists and removes limits through Invoke; stages are separate', async () => {
  const set = await invoke('default', { action: 'setLimit', project: 'alpha', user: 'bob', model: 'gpt-4o', limit: 12.5 });
  assert.equal(set.limit, { project: 'alpha', user: 'bob', model: 'gpt-4o', limit: 12.5 });
  await invoke('default', { action: 'setLimit', project: 'alpha', limit: 100 });
  const listed = await invoke('default', { action: 'listLimits', project: 'alpha' });
  assert.is(listed.limits.length, 2);
  assert.ok(listed.limits.some((l: any) => l.user === '*' && l.model === '*' && l.limit === 100));
  const prod = await invoke('default', { action: 'listLimits' }, 'openai-admin-prod');
  assert.is(prod.limits.length, 0, 'prod has its own ledger');
  const removed = await invoke('default', { action: 'removeLimit', project: 'alpha', user: 'bob', model: 'gpt-4o' });
  assert.ok(removed.ok);
  const again = await invoke('default', { action: 'removeLimit', project: 'alpha', user: 'bob', model: 'gpt-4o' });
  assert.is(again.ok, false);
  assert.is(again.error.code, 'limit_not_found');

  // Per day and per minute beside per month: set together or apart, each kept until removed.
  const more = await invoke('default', { action: 'setLimit', project: 'alpha', limit: 3, period: 'day', rpm: 60 });
  assert.equal(more.limit, { project: 'alpha', user: '*', model: '*', dailyLimit: 3, rpm: 60 });
  await invoke('default', { action: 'setLimit', project: 'alpha', tpm: 90_000 });
  const all = await invoke('default', { action: 'listLimits', project: 'alpha' });
  assert.match(all.day, /^\d{4}-\d{2}-\d{2}$/);
  assert.equal(all.limits, [{
    project: 'alpha', user: '*', model: '*', limit: 100, dailyLimit: 3, rpm: 60, tpm: 90_000, alerts: [80, 100], dailyAlerts: [80, 100],
    spend: 0, committed: 0, today: 0, minuteRequests: 0, minuteTokens: 0,
  }]);
  assert.ok((await invoke('default', { action: 'removeLimit', project: 'alpha', kind: 'day' })).ok);
  const noDay = await invoke('default', { action: 'removeLimit', project: 'alpha', kind: 'day' });
  assert.match(noDay.error.message, /There is no daily limit for project "alpha"/);
  assert.equal((await invoke('default', { action: 'listLimits', project: 'alpha' })).limits.map((l: any) => [l.limit, l.dailyLimit, l.rpm, l.tpm]), [[100, undefined, 60, 90_000]]);
  assert.ok((await invoke('default', { action: 'removeLimit', project: 'alpha' })).ok);
  assert.equal((await invoke('default', { action: 'listLimits', project: 'alpha' })).limits, []);
});

test('bad admin input: clear errors, nothing changed', async () => {
  const before = await invoke('default', { action: 'listLimits' });
  const cases: [unknown, string][] = [
    [{ action: 'setLimit', project: 'x', limit: -1 }, 'invalid_amount'],
    [{ action: 'setLimit', project: 'x', limit: 'lots' }, 'invalid_amount'],
    [{ action: 'setLimit', project: 'x', limit: '0x10' }, 'invalid_amount'],
    [{ action: 'setLimit', project: 'x', limit: 0.0000000004 }, 'invalid_amount'],
    [{ action: 'setLimit', project: 'x', user: '', limit: 5 }, 'invalid_name'],
    // HTTP trims header values: no call could ever reach a project named with a trailing space.
    [{ action: 'setLimit', project: 'demo ', limit: 5 }, 'invalid_name'],
    [{ action: 'setLimit', limit: 5 }, 'invalid_name'],
    [{ action: 'setLimit', project: 'a#b', limit: 5 }, 'invalid_name'],
    // A bad rate or period changes nothing, not even the valid limit given with it.
    [{ action: 'setLimit', project: 'x', limit: 5, rpm: -1 }, 'invalid_amount'],
    [{ action: 'setLimit', project: 'x', limit: 5, tpm: 1.5 }, 'invalid_amount'],
    [{ action: 'setLimit', project: 'x', rpm: 'many' }, 'invalid_amount'],
    [{ action: 'setLimit', project: 'x', limit: 5, period: 'week' }, 'invalid_period'],
    [{ action: 'setLimit', project: 'x', period: 'day' }, 'invalid_limit'],
    [{ action: 'setLimit', project: 'x' }, 'invalid_limit'],
    [{ action: 'removeLimit', project: 'x', kind: 'hour' }, 'invalid_limit'],
    // Alert thresholds: whole percents 1-100, at most 10, and only with the USD limit they are of.
    [{ action: 'setLimit', project: 'x', limit: 5, alerts: '0,80' }, 'invalid_alerts'],
    [{ action: 'setLimit', project: 'x', limit: 5, alerts: [50, 101] }, 'invalid_alerts'],
    [{ action: 'setLimit', project: 'x', limit: 5, alerts: [79.5] }, 'invalid_alerts'],
    [{ action: 'setLimit', project: 'x', limit: 5, alerts: ['80'] }, 'invalid_alerts'],
    [{ action: 'setLimit', project: 'x', limit: 5, alerts: 'lots' }, 'invalid_alerts'],
    [{ action: 'setLimit', project: 'x', limit: 5, alerts: '' }, 'invalid_alerts'],
    [{ action: 'setLimit', project: 'x', limit: 5, alerts: 80 }, 'invalid_alerts'],
    [{ action: 'setLimit', project: 'x', limit: 5, alerts: '1,2,3,4,5,6,7,8,9,10,11' }, 'invalid_alerts'],
    [{ action: 'setLimit', project: 'x', rpm: 60, alerts: '50' }, 'invalid_alerts'],
    [{ action: 'listAlerts', month: '2026-1' }, 'invalid_month'],
    [{ action: 'usage', month: '2026-13' }, 'invalid_month'],
    [{ action: 'usage', by: 'colour' }, 'invalid_group'],
    [{ action: 'setPrice', model: 'm', input: 1 }, 'invalid_amount'],
    [{ action: 'explode' }, 'unknown_action'],
  ];
  for (const [payload, code] of cases) {
    const r = await invoke('default', payload);
    assert.is(r.ok, false, JSON.stringify(payload));
    assert.is(r.error.code, code, JSON.stringify(payload));
    assert.is(typeof r.error.message, 'string');
  }
  assert.equal(await invoke('default', { action: 'listLimits' }), before);
});

test('a non-admin user is refused by the Invoke API; an unknown function is not found', async () => {
  await t.user('plain');
  const err = await invoke('plain', { action: 'listLimits' }).catch((e) => e);
  assert.is(err.name, 'AccessDeniedException');
  assert.match(err.message, /not an admin/);
  const missing = await invoke('default', { action: 'listLimits' }, 'openai-admin-staging').catch((e) => e);
  assert.is(missing.name, 'ResourceNotFoundException');
});

test('usage report: rows, groups and totals by user, project and model; daily rows', async () => {
  await invoke('default', { action: 'setLimit', project: 'p1', limit: 5 });
  await invoke('default', { action: 'setLimit', project: 'p2', limit: 5 });
  await t.user('ann');
  await t.user('ben');
  const calls = [
    t.client({ user: 'ann', project: 'p1', caching: false }).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'a' }] }),
    t.client({ user: 'ann', project: 'p2', caching: false }).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'b' }] }),
    t.client({ user: 'ben', project: 'p1', caching: false }).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'c' }] }),
  ];
  await Promise.all(calls);
  await settled(t, async () => (await invoke('default', { action: 'usage' })).totals.requests === 3);
  const byUser = await invoke('default', { action: 'usage', by: 'user', daily: true });
  assert.is(byUser.rows.length, 3);
  assert.equal(byUser.groups.map((g: any) => g.key).sort(), ['ann', 'ben']);
  const byModel = await invoke('default', { action: 'usage', by: 'model' });
  const total = byModel.groups.reduce((s: number, g: any) => s + g.spend, 0);
  assert.ok(Math.abs(total - byModel.totals.spend) < 1e-9);
  assert.is(byUser.days.length, 3);
  assert.is(byUser.days[0].day, new Date().toISOString().slice(0, 10));
  const empty = await invoke('default', { action: 'usage', month: '2020-01' });
  assert.is(empty.rows.length, 0);
  assert.is(empty.totals.spend, 0);

  const thisMonth = new Date().toISOString().slice(0, 7);
  assert.equal(await invoke('default', { action: 'months' }), { ok: true, stage: 'dev', current: thisMonth, months: [thisMonth] });
  const prod = await invoke('default', { action: 'months' }, 'openai-admin-prod');
  assert.equal([prod.current, prod.months], [thisMonth, []], 'prod has no usage yet');
});

test('price overrides: set, listed as override, removed', async () => {
  const set = await invoke('default', { action: 'setPrice', model: 'gpt-4o', input: 1, output: 2, cachedInput: 0.5 });
  assert.is(set.price.source, 'override');
  const one = await invoke('default', { action: 'listPrices', model: 'gpt-4o-2031-01-01' });
  assert.equal([one.prices[0].input, one.prices[0].source, one.prices[0].overrideModel], [1, 'override', 'gpt-4o'],
    'a family override binds its dated ids');
  const listed = await invoke('default', { action: 'listPrices', model: 'gpt-4o-2024-08-06' });
  assert.equal([listed.prices[0].input, listed.prices[0].source, listed.prices[0].overrideModel], [2.5, 'override', 'gpt-4o'],
    'a family override does not cut a dated id the table lists below its own row');
  const fam = await invoke('default', { action: 'listPrices', model: 'gpt-4o' });
  assert.equal([fam.prices[0].input, fam.prices[0].source], [1, 'override']);
  const all = await invoke('default', { action: 'listPrices' });
  assert.ok(all.prices.length > 100);
  assert.is(all.table.asOf, '2026-11-17');
  assert.ok((await invoke('default', { action: 'removePrice', model: 'gpt-4o' })).ok);
  const back = await invoke('default', { action: 'listPrices', model: 'gpt-4o' });
  assert.equal([back.prices[0].input, back.prices[0].source], [2.5, 'table']);
});

test('alert thresholds: set with the USD limit they are of, listed (defaults when none set), kept until set again', async () => {
  const list = async (project: string) => (await invoke('default', { action: 'listLimits', project })).limits;
  // Defaults: what will fire is shown, for each USD limit the scope has, and nothing for rates.
  await invoke('default', { action: 'setLimit', project: 'alerting', limit: 10, rpm: 30 });
  assert.equal((await list('alerting')).map((l: any) => [l.alerts, l.dailyAlerts]), [[[80, 100], undefined]]);

  // An array, a comma string (sorted, repeats dropped), and "none", each on the limit of its period.
  const monthly = await invoke('default', { action: 'setLimit', project: 'alerting', limit: 10, alerts: [95, 50, 80] });
  assert.equal(monthly.limit, { project: 'alerting', user: '*', model: '*', limit: 10, alerts: [50, 80, 95] });
  const daily = await invoke('default', { action: 'setLimit', project: 'alerting', limit: 2, period: 'day', alerts: ' 100, 90,90 ' });
  assert.equal(daily.limit, { project: 'alerting', user: '*', model: '*', dailyLimit: 2, dailyAlerts: [90, 100] });
  const none = await invoke('default', { action: 'setLimit', project: 'alerting', user: 'zed', limit: 1, alerts: 'none' });
  assert.equal(none.limit.alerts, []);
  assert.equal((await list('alerting')).map((l: any) => [l.user, l.alerts, l.dailyAlerts]), [['*', [50, 80, 95], [90, 100]], ['zed', [], undefined]]);

  // A new limit value without alerts keeps the thresholds; a rate change touches none of them.
  const raised = await invoke('default', { action: 'setLimit', project: 'alerting', limit: 20, tpm: 1000 });
  assert.equal(raised.limit, { project: 'alerting', user: '*', model: '*', limit: 20, tpm: 1000 }, 'the answer says only what was set');
  const kept = (await list('alerting')).find((l: any) => l.user === '*');
  assert.equal([kept.limit, kept.alerts, kept.dailyAlerts], [20, [50, 80, 95], [90, 100]]);

  // Refused: nothing changed, not the limit given with the bad thresholds either.
  const bad = await invoke('default', { action: 'setLimit', project: 'alerting', limit: 30, alerts: '80,120' });
  assert.equal([bad.ok, bad.error.code, bad.error.param, bad.error.type], [false, 'invalid_alerts', 'alerts', 'invalid_request_error']);
  assert.match(bad.error.message, /"alerts" must be "none" or whole percents from 1 to 100/);
  const alone = await invoke('default', { action: 'setLimit', project: 'alerting', alerts: '50' });
  assert.match(alone.error.message, /"alerts" goes with "limit"/);
  const many = await invoke('default', { action: 'setLimit', project: 'alerting', limit: 30, alerts: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11] });
  assert.match(many.error.message, /"alerts" takes at most 10 alert thresholds per limit/);
  const after = (await list('alerting')).find((l: any) => l.user === '*');
  assert.equal([after.limit, after.alerts], [20, [50, 80, 95]]);

  // Removing a limit takes its thresholds with it: set again, it has the defaults.
  assert.ok((await invoke('default', { action: 'removeLimit', project: 'alerting', kind: 'day' })).ok);
  await invoke('default', { action: 'setLimit', project: 'alerting', limit: 2, period: 'day' });
  assert.equal((await list('alerting')).find((l: any) => l.user === '*').dailyAlerts, [80, 100]);
  for (const user of [undefined, 'zed']) assert.ok((await invoke('default', { action: 'removeLimit', project: 'alerting', user })).ok);
});

test('listAlerts: thresholds crossed by real calls, once each, newest first, in USD with ISO times', async () => {
  const month = new Date().toISOString().slice(0, 7);
  assert.equal(await invoke('default', { action: 'listAlerts' }), { ok: true, stage: 'dev', month, alerts: [] });
  // $0.001 per output token; each call settles exactly 2 tokens = $0.002 of the $0.01 limit.
  await invoke('default', { action: 'setPrice', model: 'alert-model', input: 0, output: 1000 });
  await invoke('default', { action: 'setLimit', project: 'spender', limit: 0.01, alerts: [30, 80, 100] });
  await invoke('default', { action: 'setLimit', project: 'spender', limit: 0.005, period: 'day', alerts: 'none' });
  await invoke('default', { action: 'setLimit', project: 'spender', user: 'default', limit: 1, period: 'day' });
  const c = t.client({ project: 'spender', caching: false });
  const call = () => c.chat.completions.create({ model: 'alert-model', max_tokens: 2, messages: [{ role: 'user', content: 'x fake:words=1' }] });
  const alerts = async () => (await invoke('default', { action: 'listAlerts' })).alerts;
  const spent = async () => (await invoke('default', { action: 'listLimits', project: 'spender' })).limits.find((l: any) => l.user === '*').spend;

  await call();
  await call(); // $0.004: 40% of the monthly limit, and 80% of the daily one, whose alerts are "none"
  await settled(t, async () => Math.abs((await spent()) - 0.004) < 1e-12);
  assert.equal((await alerts()).map((a: any) => [a.project, a.user, a.period, a.threshold]), [['spender', '*', 'month', 30]]);

  // The daily limit is spent; raise it (a new value, still no alerts) so the month can reach 80% and 100%.
  await invoke('default', { action: 'setLimit', project: 'spender', limit: 1, period: 'day' });
  for (let i = 0; i < 3; i++) await call(); // $0.01: 100%
  await settled(t, async () => (await alerts()).length === 3);
  const listed = await alerts();
  assert.equal(listed.map((a: any) => a.threshold), [100, 80, 30], 'newest first');
  const [full, near] = listed;
  assert.equal(
    { ...full, at: undefined, callId: undefined },
    { project: 'spender', user: '*', model: '*', period: 'month', month, threshold: 100, limit: 0.01, spend: 0.01, at: undefined, callId: undefined },
  );
  assert.is(near.spend, 0.008, 'the settled spend when 80% was reached');
  for (const a of listed) {
    assert.match(a.at, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    assert.ok(Date.now() - Date.parse(a.at) < 60_000);
    assert.is(typeof a.callId, 'string');
  }
  assert.ok(listed[0].at >= listed[1].at && listed[1].at >= listed[2].at);
  // The refused call that follows adds nothing; another month and another stage have none.
  await call().catch(() => null);
  assert.is((await alerts()).length, 3);
  assert.equal((await invoke('default', { action: 'listAlerts', month: '2020-01' })).alerts, []);
  assert.equal((await invoke('default', { action: 'listAlerts' }, 'openai-admin-prod')).alerts, []);
});

test('openai-wrapi local users add: a new user can call at once, as admin only with --admin', async () => {
  const cli = ['--import', 'tsx', 'sdk/cli.ts'];
  const { stdout } = await run(process.execPath, [...cli, 'local', 'users', 'add', 'carol', '--home', t.home, '--json']);
  const added = JSON.parse(stdout);
  assert.is(added.name, 'carol');
  assert.is(added.admin, false);
  await invoke('default', { action: 'setLimit', project: 'cli', limit: 1 });
  const c = new (await import('openai')).default({
    apiKey: 'x', baseURL: `${t.stack.url}/dev/v1`, maxRetries: 0,
    fetch: (await import('../sdk/sign.ts')).signedFetch({
      credentials: fromIni({ profile: 'carol', filepath: `${t.home}/credentials`, configFilepath: '/nonexistent', ignoreCache: true }),
      region: 'us-east-1',
    }),
    defaultHeaders: { 'openai-proxy-project': 'cli' },
  });
  assert.ok((await c.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })).id);
  const dup = await run(process.execPath, [...cli, 'local', 'users', 'add', 'carol', '--home', t.home]).catch((e) => e);
  assert.is(dup.code, 1);
  assert.match(dup.stderr, /already/);
  await run(process.execPath, [...cli, 'local', 'users', 'add', 'dora', '--admin', '--home', t.home]);
  assert.ok((await invoke('dora', { action: 'listLimits' })).ok);
});

test('a user added while the stack runs can call at once with a presigned URL too (the verifier asks the credentials file)', async () => {
  const erin = await addUser(t.home, 'erin', false);
  const signer = new SignatureV4({ credentials: erin, region: 'us-east-1', service: 'lambda', sha256: Sha256 });
  const url = new URL(`${t.stack.url}/dev/v1/models`);
  const presigned = await signer.presign(
    { method: 'GET', protocol: 'http:', hostname: url.hostname, port: Number(url.port), path: url.pathname, headers: { host: url.host } },
    { expiresIn: 300 },
  );
  const query = Object.entries(presigned.query ?? {}).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`).join('&');
  const res = await fetch(`${url}?${query}`);
  assert.is(res.status, 200, await res.clone().text());
});

test('an unexpected failure answers with a request id and is logged with it, without the error text', async () => {
  const lines: { message: string; fields?: Record<string, unknown> }[] = [];
  const broken = createAdmin({
    stage: 'dev',
    ledger: { expired: async () => [], usage: async () => [], listLimits: async () => { throw new Error('disk on fire at /secret/path'); } } as unknown as Ledger,
    cache: { get: async () => undefined, set: async () => {}, flush: async () => {} },
    log: { info() {}, error: (message, fields) => lines.push({ message, fields }) },
  });
  const r: any = await broken({ action: 'listLimits' });
  assert.is(r.ok, false);
  assert.is(r.error.code, 'admin_error');
  const id = /request ([0-9a-f-]{36})/.exec(r.error.message)?.[1];
  assert.ok(id, r.error.message);
  assert.equal(lines, [{ message: 'admin error', fields: { stage: 'dev', action: 'listLimits', requestId: id, error: 'Error' } }]);
  assert.not.match(JSON.stringify(r) + JSON.stringify(lines), /fire|secret/);
});

test('Invoke: an unexpected failure carries the response\'s request id, in the answer and in the log line', async () => {
  const lines: { message: string; fields?: Record<string, unknown> }[] = [];
  const broken = await startTestStack({
    stack: {
      log: { info() {}, error: (message, fields) => lines.push({ message, fields }) },
      // Every other ledger call works: only listing limits fails, with a message that must not leak.
      wrapLedger: (ledger) =>
        new Proxy(ledger, {
          get(target, name) {
            if (name === 'listLimits') return async () => { throw new Error('disk on fire at /secret/path'); };
            const value = Reflect.get(target, name);
            return typeof value === 'function' ? value.bind(target) : value;
          },
        }),
    },
  });
  try {
    const lambda = new LambdaClient({
      endpoint: broken.stack.url,
      region: 'us-east-1',
      credentials: fromIni({ profile: 'default', filepath: `${broken.home}/credentials`, configFilepath: '/nonexistent', ignoreCache: true }),
      maxAttempts: 1,
    });
    const out = await lambda.send(new InvokeCommand({ FunctionName: 'openai-admin-dev', Payload: JSON.stringify({ action: 'listLimits' }) }));
    const answer = JSON.parse(Buffer.from(out.Payload!).toString());
    const requestId = out.$metadata.requestId;
    assert.match(requestId ?? '', /^[0-9a-f-]{36}$/);
    assert.is(answer.error.code, 'admin_error');
    assert.match(answer.error.message, `request ${requestId}`);
    const logged = lines.filter((l) => l.message === 'admin error');
    assert.equal(logged.map((l) => [l.fields?.stage, l.fields?.action, l.fields?.requestId]), [['dev', 'listLimits', requestId]]);
    assert.not.match(JSON.stringify(answer) + JSON.stringify(lines), /fire|secret/);
  } finally {
    await broken.close();
  }
});

test.run();
