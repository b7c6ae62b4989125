// The daily digest end to end: real calls recorded by the proxy, then the admin's `sendDigest`, and
// what reaches SNS. On DynamoDB (dynalite) through the very Lambda handlers the stack deploys, invoked
// with the event EventBridge Scheduler sends; on SQLite through the local stack (its Invoke API for a
// preview) and the admin core over the same ledger with the Lambda's SNS publisher. SNS is a local
// server that checks each Publish's SigV4 signature with the local stack's own verifier.
import { readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createAdmin } from '../runtime/core/admin.ts';
import type { ChatNotification } from '../runtime/core/alert-messages.ts';
import { DIGEST_SCHEDULE_EVENT } from '../runtime/core/contract.ts';
import { usd } from '../runtime/core/limits.ts';
import { usdToNano } from '../runtime/core/pricing.ts';
import type { FunctionUrlEvent } from '../runtime/lambda/function-url.ts';
import { startFakeOpenAI, type FakeOpenAI } from '../runtime/local/simulated-openai.ts';
import { quietLogger } from '../runtime/local/stack.ts';
import { ensureLedgerTable } from '../runtime/store/dynamo-ledger.ts';
import { invokeStreaming } from './helpers/awslambda-stub.ts';
import { setDeployedEnv } from './helpers/deployed-env.ts';
import { startDynalite, type DynaliteServer } from './helpers/dynalite.ts';
import { startFakeSns, type FakeSns, type Publish } from './helpers/fake-sns.ts';
import { startTestStack, type TestStack } from './helpers/stack.ts';

const REGION = 'us-east-1';
const TOPIC = `arn:aws:sns:${REGION}:123456789012:openai-wrapi-dev-alerts`;
const ROLE = { accessKeyId: 'ASIADIGESTEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYDIGESTKEY', sessionToken: 'digest-session-token-0123' };
/** In every prompt: it must never reach a digest, an answer or a log line. */
const PROMPT_MARK = 'zebra-quartz-prompt';
const MODEL = 'gpt-4o-mini';
/** With output at $1000 per 1M tokens and free input, a call capped at 10 tokens costs exactly $0.01. */
const CENT = { max_tokens: 10 };
const money = (u: number) => usd(usdToNano(u));

let sns: FakeSns;
let fake: FakeOpenAI;
let calls = 0;
const prompt = (extra = '') => `${PROMPT_MARK} call ${++calls} fake:words=30 ${extra}`.trim();

/** The email text and the chat card of a Publish, as subscribers get them. */
function messageOf(p: Publish): { email: string; card: ChatNotification } {
  assert.is(p.messageStructure, 'json');
  const message = JSON.parse(p.message!);
  assert.equal(Object.keys(message).sort(), ['default', 'email']);
  return { email: message.email, card: JSON.parse(message.default) };
}

// ------------------------------------------------------------------ DynamoDB, the Lambda handlers

const lambda = suite('daily digest: the admin Lambda on DynamoDB, as the schedule invokes it');

const REFERENCE = new URL('./fixtures/reference/', import.meta.url);
const reference = (name: string): FunctionUrlEvent => JSON.parse(readFileSync(new URL(name, REFERENCE), 'utf8'));
const AS_ALICE = reference('lambda-function-url-event-iam.json'); // IAM user alice
const AS_ROLE = reference('lambda-function-url-event-iam-assumed-role.json'); // role DataScientist: user "DataScientist/*"

type ProxyHandler = (event: FunctionUrlEvent, stream: import('node:stream').Writable, context: unknown) => Promise<void>;
type AdminHandler = (event: unknown, context?: { awsRequestId?: string }) => Promise<any>;
let dynamo: DynaliteServer;
let proxy: ProxyHandler;
let admin: AdminHandler;

/** One call through the proxy handler, as a function URL hands it over. */
async function call(project: string, base = AS_ALICE, body: Record<string, unknown> = {}) {
  const e: FunctionUrlEvent = structuredClone(base);
  const json = JSON.stringify({ model: MODEL, ...CENT, messages: [{ role: 'user', content: prompt() }], ...body });
  e.body = json;
  e.isBase64Encoded = false;
  e.headers!['content-length'] = String(Buffer.byteLength(json));
  e.headers!['openai-proxy-project'] = project;
  e.headers!['openai-proxy-caching'] = '0';
  const r = await invokeStreaming(proxy, e);
  assert.is(r.statusCode, 200, r.body);
  return r;
}

/** What the functions write to stdout and stderr meanwhile (the Powertools logger writes there itself). */
async function captureOutput<T>(run: () => Promise<T>): Promise<{ value?: T; error?: unknown; lines: string[] }> {
  const lines: string[] = [];
  const out = process.stdout.write;
  const err = process.stderr.write;
  const keep = ((chunk: unknown) => lines.push(...String(chunk).split('\n').filter(Boolean)) > 0) as typeof out;
  process.stdout.write = keep;
  process.stderr.write = keep;
  try {
    return { value: await run(), lines };
  } catch (error) {
    return { error, lines };
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
}

let scheduled: { value?: any; lines: string[] };
let failedFirst: { value?: any; error?: unknown; lines: string[] };
let triesWhileDown = 0;
let again: any[];
let report: any;

lambda.before(async () => {
  [dynamo, fake, sns] = await Promise.all([startDynalite(), startFakeOpenAI(), startFakeSns({ region: REGION, ...ROLE, topics: [TOPIC] })]);
  await ensureLedgerTable(dynamo.client(), 'openai-wrapi-digest-test');
  // The admin's environment with the digest on: the topic's ARN (what the program writes) and the
  // role's credentials (what Lambda adds); SNS answers locally.
  setDeployedEnv({
    table: 'openai-wrapi-digest-test', dynamodbEndpoint: dynamo.endpoint, upstreamUrl: fake.url, apiKey: fake.apiKey,
    extra: {
      AWS_REGION: REGION, AWS_ACCESS_KEY_ID: ROLE.accessKeyId, AWS_SECRET_ACCESS_KEY: ROLE.secretAccessKey, AWS_SESSION_TOKEN: ROLE.sessionToken,
      OPENAI_WRAPI_ALERT_TOPIC_ARN: TOPIC, AWS_ENDPOINT_URL_SNS: sns.url, OPENAI_ORG_ID: 'org-digest-secret',
    },
  });
  proxy = (await import('../runtime/lambda/proxy.ts')).handler as unknown as ProxyHandler;
  admin = (await import('../runtime/lambda/admin.ts')).handler as AdminHandler;
  const ok = async (request: Record<string, unknown>) => assert.ok((await admin(request)).ok, JSON.stringify(request));
  await ok({ action: 'setPrice', model: MODEL, input: 0, cachedInput: 0, output: 1000 });
  await ok({ action: 'setLimit', project: 'research', limit: 0.05 });
  await ok({ action: 'setLimit', project: 'roles', limit: 0.02, alerts: 'none' });
  await ok({ action: 'setLimit', project: 'ops', limit: 1 });
  await ok({ action: 'setLimit', project: 'broken', limit: 1 });

  // research: $0.04 of $0.05 (80%); roles: $0.02 of $0.02 with no alert thresholds; ops: 1%; and one
  // call whose stream broke off upstream, billed by estimate.
  for (let i = 0; i < 3; i++) await call('research');
  await call('research', AS_ROLE);
  for (let i = 0; i < 2; i++) await call('roles');
  await call('ops');
  const broken = await call('broken', AS_ALICE, { stream: true, messages: [{ role: 'user', content: prompt('fake:break=3') }] });
  assert.match(broken.body, 'upstream_stream_interrupted');

  report = await admin({ action: 'usage', by: 'project' });
  assert.ok(report.ok);
  // The day's first invocation meets SNS down: it fails (Lambda retries it) and gives its claim on
  // the day's digest back, so that the retry sends it.
  sns.status = 500;
  failedFirst = await captureOutput(() => admin(DIGEST_SCHEDULE_EVENT, { awsRequestId: '0d7a4c8e-digest-0002' }));
  triesWhileDown = sns.publishes.length;
  sns.status = 200;
  sns.publishes.length = 0;
  scheduled = await captureOutput(() => admin(DIGEST_SCHEDULE_EVENT, { awsRequestId: '0d7a4c8e-digest-0001' }));
  // Lambda delivers an asynchronous event at least once: the same day's event twice more, at once.
  again = await Promise.all([admin(DIGEST_SCHEDULE_EVENT), admin(DIGEST_SCHEDULE_EVENT)]);
});

lambda.after(async () => {
  await Promise.all([fake?.close(), dynamo?.close(), sns?.close()]);
});

lambda('the report the digest is judged against: 8 billed calls, one of them estimated', () => {
  assert.equal([report.totals.requests, report.totals.estimated], [8, 1]);
  assert.equal(report.groups.slice(0, 2).map((g: any) => [g.key, g.spend]), [['research', 0.04], ['roles', 0.02]]);
});

lambda('the schedule\'s event: one Publish to the topic, its message id answered', () => {
  const result = scheduled.value;
  assert.ok(result?.ok, JSON.stringify(result));
  assert.is(result.published, true);
  assert.equal(sns.publishes.length, 1);
  const [p] = sns.publishes;
  assert.is(p.topicArn, TOPIC);
  assert.is(result.messageId, p.messageId);
  assert.ok(p.messageId);
});

lambda('the Publish is signed with SigV4 for SNS with the role\'s credentials, its session token signed too', () => {
  const [p] = sns.publishes;
  assert.is(p.verified, true);
  assert.is(p.headers['x-amz-security-token'], ROLE.sessionToken);
  assert.match(String(p.headers.authorization), new RegExp(`Credential=${ROLE.accessKeyId}/\\d{8}/${REGION}/sns/aws4_request, SignedHeaders=[a-z;-]*x-amz-security-token`));
  assert.is(p.headers['content-type'], 'application/x-www-form-urlencoded; charset=utf-8');
});

lambda('the email: the month to date, the day before, the top projects, users and models, the limits near or over, the estimate', () => {
  const { email } = messageOf(sns.publishes[0]);
  const { digest } = scheduled.value;
  const { month, day, previousDay } = digest;
  assert.is(day, new Date().toISOString().slice(0, 10));
  const lines = email.split('\n');
  const t = report.totals;
  assert.equal(lines.slice(0, 4), [
    `Daily digest of openai-wrapi stage dev for ${day} (UTC).`,
    '',
    `${month} to date: ${money(t.spend)} over 8 calls.`,
    `${previousDay}: no calls.`,
  ]);
  const top = (groups: any[]) => groups.filter((g) => g.spend > 0).slice(0, 3).map((g) => `${g.key} ${money(g.spend)}`).join(', ');
  assert.ok(lines.includes(`Top projects: ${top(report.groups)}`), email);
  assert.match(email, /^Top projects: research \$0\.04, roles \$0\.02, /m);
  assert.match(email, `Top users: alice ${money(t.spend - 0.01)}, DataScientist/* $0.01`);
  assert.match(email, `Top models: gpt-4o-mini ${money(t.spend)}`);
  const limits = lines.slice(lines.indexOf('Limits near or over:') + 1, lines.indexOf('Limits near or over:') + 3);
  assert.equal(limits, [
    `  project "roles": $0.02 of $0.02 in ${month} (100%, at its monthly limit: calls that would pass it are refused)`,
    `  project "research": $0.04 of $0.05 in ${month} (80%, past its 80% alert)`,
  ]);
  assert.is(lines[lines.indexOf('Limits near or over:') + 3], '', 'ops (1%) and broken are not near');
  assert.ok(lines.includes(`Billed by estimate in ${month}: 1 call (OpenAI's usage never arrived; the proxy's log lines with outcome "estimated" say which).`));
  assert.is(lines.at(-1), 'The whole report: openai-wrapi usage --stage dev');
  assert.equal(scheduled.value.text, email, 'the answer carries the text it sent');
});

lambda('the subject, and the Slack card (Amazon Q custom notification) with names as code', () => {
  const [p] = sns.publishes;
  const { month, day } = scheduled.value.digest;
  assert.is(p.subject, `openai-wrapi dev: daily digest ${day}, ${money(report.totals.spend)} in ${month}`);
  const { card } = messageOf(p);
  assert.equal([card.version, card.source, card.content.textType, card.metadata.eventType], ['1.0', 'custom', 'client-markdown', 'DailyDigest']);
  assert.is(card.content.title, `:bar_chart: ${p.subject}`);
  assert.match(card.content.description, 'Top projects: `research` $0.04, `roles` $0.02');
  assert.match(card.content.description, 'project `roles`: $0.02 of $0.02');
  assert.equal(card.content.nextSteps, ['The whole report: `openai-wrapi usage --stage dev`']);
  assert.is(card.metadata.threadId, `dev:digest:${month}`);
});

lambda('no key, no prompt, no org id in the Publish, the answer or the function\'s output', () => {
  const seen = [...sns.publishes.map((p) => p.body), JSON.stringify(scheduled.value), ...scheduled.lines].join('\n');
  for (const secret of [fake.apiKey, ROLE.secretAccessKey, ROLE.sessionToken, 'org-digest-secret', PROMPT_MARK]) {
    assert.not.ok(seen.includes(secret), `leaked ${secret.slice(0, 8)}…`);
  }
});

lambda('the same day\'s scheduled event again, twice at once (at-least-once delivery): nothing more is sent; an admin asking is sent one', async () => {
  for (const r of again) assert.equal([r.ok, r.published, r.alreadySent, r.messageId], [true, false, true, undefined], JSON.stringify(r));
  assert.is(sns.publishes.length, 1, 'one digest for the day');
  const asked = await admin({ action: 'sendDigest' });
  assert.equal([asked.ok, asked.published], [true, true]);
  assert.is(sns.publishes.length, 2, 'an explicit request is not deduplicated');
  assert.is(asked.messageId, sns.publishes[1].messageId);
});

lambda('a day\'s first scheduled digest sent by four invocations at once: one Publish, three answered alreadySent', async () => {
  const { digestPublisher } = await import('../runtime/lambda/admin.ts');
  const { createDeliveryLog } = await import('../runtime/store/alert-deliveries.ts');
  const deliveries = createDeliveryLog({ client: dynamo.lean(), tableName: 'openai-wrapi-digest-test', pollMs: 20 });
  const publish = digestPublisher({ topicArn: TOPIC, region: REGION, snsEndpoint: sns.url }, { AWS_ACCESS_KEY_ID: ROLE.accessKeyId, AWS_SECRET_ACCESS_KEY: ROLE.secretAccessKey, AWS_SESSION_TOKEN: ROLE.sessionToken }, deliveries);
  const digest = { ...scheduled.value.digest, day: '2031-01-02' }; // a day no other test sent
  const before = sns.publishes.length;
  const answers = await Promise.all([1, 2, 3, 4].map(() => publish(digest, { scheduled: true })));
  assert.is(sns.publishes.length - before, 1, 'one Publish');
  assert.equal(answers.filter((a) => 'messageId' in a).length, 1);
  assert.equal(answers.filter((a) => 'alreadySent' in a).length, 3);
  assert.equal(await publish(digest, { scheduled: true }), { alreadySent: true }, 'and again later');
});

lambda('dryRun answers the same digest and publishes nothing; a dryRun that is not a boolean is refused', async () => {
  const before = sns.publishes.length;
  const preview = await admin({ action: 'sendDigest', dryRun: true });
  assert.equal([preview.ok, preview.published, preview.messageId], [true, false, undefined]);
  assert.is(preview.text, scheduled.value.text);
  assert.is(sns.publishes.length, before);
  const bad = await admin({ action: 'sendDigest', dryRun: 'yes' });
  assert.equal([bad.ok, bad.error.code, bad.error.param, bad.error.type], [false, 'invalid_request', 'dryRun', 'invalid_request_error']);
});

lambda('SNS down: the schedule\'s invocation fails after the publisher\'s retries (Lambda retries it; the error alarm counts it); an admin asking gets an OpenAI-shaped error', async () => {
  const failed = failedFirst;
  assert.ok(failed.error instanceof Error, 'the invocation failed');
  assert.is((failed.error as Error).name, 'ScheduledDigestError');
  assert.is((failed.error as Error).message, 'The daily digest was not sent (admin_error).');
  assert.is(triesWhileDown, 3, 'three tries');
  assert.ok(scheduled.value?.published, 'the retry, once SNS answers, sends the day\'s digest');
  sns.status = 500;
  try {
    const logged = failed.lines.map((l) => JSON.parse(l));
    assert.equal(logged.map((l) => [l.level, l.message]), [['ERROR', 'admin error'], ['ERROR', 'daily digest not sent']]);
    assert.equal([logged[0].action, logged[0].error, logged[0].function_request_id], ['sendDigest', 'InternalError', '0d7a4c8e-digest-0002']);
    assert.not.match(failed.lines.join('\n'), /at .*\.ts|try again|wJalr/);

    const asked = await admin({ action: 'sendDigest' }, { awsRequestId: '0d7a4c8e-digest-0003' });
    assert.equal([asked.ok, asked.error.code, asked.error.type], [false, 'admin_error', 'server_error']);
    assert.match(asked.error.message, 'request 0d7a4c8e-digest-0003');
  } finally {
    sns.status = 200;
  }
});

lambda.run();

// ------------------------------------------------------------------ SQLite, the local stack

const local = suite('daily digest: SQLite, the local stack\'s ledger, a day\'s calls and the day before');

let t: TestStack;
let clock = Date.parse('2026-11-20T12:00:00Z'); // the day before the digest
const DIGEST_AT = Date.parse('2026-11-21T08:00:00Z');

/** The digest's exact text for the calls below. */
const EXPECTED = [
  'Daily digest of openai-wrapi stage dev for 2026-11-21 (UTC).',
  '',
  '2026-11 to date: $0.10 over 10 calls.',
  '2026-11-20: $0.06 over 6 calls.',
  '',
  'Top projects: team $0.06, nightly $0.03, quiet $0.01',
  'Top users: alice $0.06, bob $0.04',
  'Top models: gpt-4o-mini $0.10',
  '',
  'Limits near or over:',
  '  project "nightly": $0.03 of $0.03 on 2026-11-20 (100%, at its daily limit: calls that would pass it are refused)',
  '  project "team", model "gpt-4o-mini": $0.06 of $0.07 in 2026-11 (85%, past its 80% alert)',
  '  project "team": $0.06 of $0.10 in 2026-11 (60%, past its 50% alert)',
  '',
  'Billed by estimate in 2026-11: none.',
  'The whole report: openai-wrapi usage --stage dev',
].join('\n');

local.before(async () => {
  sns = await startFakeSns({ region: REGION, ...ROLE, topics: [TOPIC] });
  t = await startTestStack({ stack: { now: () => clock } });
  await t.user('alice');
  await t.user('bob');
  const ok = async (request: Record<string, unknown>) => assert.ok((await t.admin(request)).ok, JSON.stringify(request));
  await ok({ action: 'setPrice', model: MODEL, input: 0, cachedInput: 0, output: 1000 });
  await ok({ action: 'setLimit', project: 'team', limit: 0.1, alerts: '50,90' });
  await ok({ action: 'setLimit', project: 'team', model: MODEL, limit: 0.07 });
  await ok({ action: 'setLimit', project: 'nightly', limit: 1 });
  await ok({ action: 'setLimit', project: 'nightly', limit: 0.03, period: 'day' });
  await ok({ action: 'setLimit', project: 'quiet', limit: 1 });

  const chat = async (user: string, project: string) => {
    const answer = await t.client({ user, project, caching: false }).chat.completions.create({ model: MODEL, ...CENT, messages: [{ role: 'user', content: prompt() }] });
    assert.is(answer.usage?.completion_tokens, 10);
  };
  // The proxy settles after answering. Before the clock moves on, or the hold of a call not settled
  // yet would be past its deadline and charged as an estimate.
  const settledCalls = async (n: number) => {
    const end = Date.now() + 5_000;
    while ((await t.admin({ action: 'usage', month: '2026-11' })).totals.requests < n) {
      if (Date.now() > end) throw new Error('the calls never settled');
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  // The day before: alice, 3 calls in team and 3 in nightly (its whole daily limit).
  for (let i = 0; i < 3; i++) await chat('alice', 'team');
  for (let i = 0; i < 3; i++) await chat('alice', 'nightly');
  await settledCalls(6);
  // The digest's day: bob, 3 in team and 1 in quiet.
  clock = DIGEST_AT - 3600_000;
  for (let i = 0; i < 3; i++) await chat('bob', 'team');
  await chat('bob', 'quiet');
  await settledCalls(10);
  clock = DIGEST_AT;
});

local.after(async () => {
  await t?.close();
  await sns?.close();
});

local('the local stack\'s admin (Invoke API) shows the digest with dryRun, exactly', async () => {
  const preview = await t.admin({ action: 'sendDigest', dryRun: true });
  assert.ok(preview.ok, JSON.stringify(preview));
  assert.is(preview.text, EXPECTED);
  assert.equal([preview.digest.day, preview.digest.previousDay, preview.digest.month, preview.digest.moreLimits], ['2026-11-21', '2026-11-20', '2026-11', 0]);
});

local('without a publisher it refuses to send, saying which setting turns the digest on', async () => {
  const refused = await t.admin({ action: 'sendDigest' });
  assert.equal([refused.ok, refused.error.code, refused.error.type], [false, 'digest_not_configured', 'invalid_request_error']);
  assert.match(refused.error.message, 'the stack setting dailyDigest turns it on');
  assert.match(refused.error.message, '"dryRun": true');
});

local('the admin core over this SQLite ledger with the Lambda\'s SNS publisher: the same text, signed, to the topic', async () => {
  const { digestPublisher } = await import('../runtime/lambda/admin.ts');
  const dev = t.stack.stages.dev;
  const before = sns.publishes.length;
  const send = createAdmin({
    stage: 'dev', ledger: dev.ledger, cache: dev.cache, now: () => clock, log: quietLogger,
    publishDigest: digestPublisher(
      { topicArn: TOPIC, region: REGION, snsEndpoint: sns.url },
      { AWS_ACCESS_KEY_ID: ROLE.accessKeyId, AWS_SECRET_ACCESS_KEY: ROLE.secretAccessKey, AWS_SESSION_TOKEN: ROLE.sessionToken },
    ),
  });
  const result = (await send({ action: 'sendDigest' })) as any;
  assert.ok(result.ok, JSON.stringify(result));
  assert.is(sns.publishes.length - before, 1);
  const p = sns.publishes.at(-1)!;
  assert.equal([p.verified, p.topicArn, result.messageId], [true, TOPIC, p.messageId]);
  assert.is(p.subject, 'openai-wrapi dev: daily digest 2026-11-21, $0.10 in 2026-11');
  const { email, card } = messageOf(p);
  assert.is(email, EXPECTED);
  assert.match(card.content.description, 'project `team`, model `gpt-4o-mini`: $0.06 of $0.07 in 2026-11 (85%, past its 80% alert)');
  assert.not.ok(p.body.includes(PROMPT_MARK) || p.body.includes(t.fake.apiKey), 'no prompt, no key');
});

local('the first of a month: the day before is the last of the previous month, and this month starts empty', async () => {
  clock = Date.parse('2026-12-01T08:00:00Z');
  try {
    const preview = await t.admin({ action: 'sendDigest', dryRun: true });
    assert.ok(preview.ok, JSON.stringify(preview));
    const lines = preview.text.split('\n');
    assert.equal(lines.slice(2, 4), ['2026-12 to date: no calls yet.', '2026-11-30: no calls.']);
    assert.ok(lines.includes('No limit has reached an alert threshold.'), preview.text);
  } finally {
    clock = DIGEST_AT;
  }
});

local.run();
