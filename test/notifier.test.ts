// The budget-alert notifier (runtime/lambda/notifier.ts) with DynamoDB Streams records as Lambda hands
// them over, built from real alert marks the DynamoDB ledger made on dynalite, delivering to a local
// server standing in for SNS (the signed Publish checked field by field) and to a local webhook whose
// URL comes from a fake Secrets Manager, as on AWS.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { alertPayload, alertSubject, alertText, type AlertPayload, type AlertWatch, type BudgetAlert } from '../runtime/core/alerts.ts';
import { chatNotification, snsAlertMessage } from '../runtime/core/alert-messages.ts';
import { ALERT_STREAM } from '../runtime/core/contract.ts';
import type { Settlement, UsageDelta } from '../runtime/core/ports.ts';
import { createDeliveryLog, deliveryKey } from '../runtime/store/alert-deliveries.ts';
import type { StreamEvent, StreamRecord } from '../runtime/store/alert-stream.ts';
import { usageKey, usagePk, type Item } from '../runtime/store/dynamo-codec.ts';
import { createDynamoLedger, ensureLedgerTable } from '../runtime/store/dynamo-ledger.ts';
import { signRequest } from '../runtime/store/sigv4-signer.ts';
import { startDynalite } from './helpers/dynalite.ts';
import { startFakeSecretsManager } from './helpers/fake-secrets-manager.ts';

const REGION = 'us-east-1';
const TABLE = 'openai-wrapi-dev';
const TOPIC = `arn:aws:sns:${REGION}:123456789012:openai-wrapi-dev-alerts`;
const WEBHOOK_SECRET = `arn:aws:secretsmanager:${REGION}:123456789012:secret:openai-wrapi-dev-alert-webhook-AbCdEf`;
const STREAM_ARN = `arn:aws:dynamodb:${REGION}:123456789012:table/${TABLE}/stream/2026-11-01T00:00:00.000`;
const CREDENTIALS = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', sessionToken: 'session-token-example' };
const MONTH = '2026-11';
const DAY = '2026-11-26';
const USD = 1e9;

// ------------------------------------------------------------------------------- stand-in services

interface Received {
  headers: http.IncomingHttpHeaders;
  body: string;
}

async function listen(handle: (req: Received, res: http.ServerResponse) => void | Promise<void>) {
  const received: Received[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const r = { headers: req.headers, body };
      received.push(r);
      void handle(r, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received, close: () => new Promise((r) => server.close(r)) };
}

let snsStatus = 200;
const sns = await listen((_req, res) => {
  res.statusCode = snsStatus;
  res.setHeader('content-type', 'text/xml');
  res.end(
    snsStatus === 200
      ? '<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult><MessageId>94f20ce6-13c5-43a0-9a9e-ca52d816e90b</MessageId></PublishResult></PublishResponse>'
      : '<ErrorResponse><Error><Type>Receiver</Type><Code>InternalError</Code><Message>try again</Message></Error></ErrorResponse>',
  );
});

/** What the webhook answers, per try, by the alert's project: a status and a delay. */
let webhookPlan: (payload: AlertPayload, attempt: number) => { status: number; delayMs?: number } = () => ({ status: 204 });
const attempts = new Map<string, number>();
const webhook = await listen(async (req, res) => {
  const payload = JSON.parse(req.body) as AlertPayload;
  const n = (attempts.get(payload.id) ?? 0) + 1;
  attempts.set(payload.id, n);
  const { status, delayMs } = webhookPlan(payload, n);
  if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
  res.statusCode = status;
  res.end();
});

const dynamo = await startDynalite();
const client = dynamo.lean({ requestTimeoutMs: 5000 });
await ensureLedgerTable(dynamo.client(), TABLE);
const ledger = createDynamoLedger({ tableName: TABLE, client });
const secrets = await startFakeSecretsManager(WEBHOOK_SECRET, { url: `${webhook.url}/hooks/budget?token=s3cret-hook-token` });

Object.assign(process.env, {
  AWS_REGION: REGION,
  AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
  AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
  AWS_SESSION_TOKEN: CREDENTIALS.sessionToken,
  OPENAI_WRAPI_STAGE: 'dev',
  OPENAI_WRAPI_TABLE: TABLE,
  OPENAI_WRAPI_DYNAMODB_ENDPOINT: dynamo.endpoint,
  OPENAI_WRAPI_ALERT_TOPIC_ARN: TOPIC,
  OPENAI_WRAPI_ALERT_WEBHOOK_SECRET_ARN: WEBHOOK_SECRET,
  AWS_ENDPOINT_URL_SNS: sns.url,
  AWS_ENDPOINT_URL_SECRETS_MANAGER: secrets.endpoint,
  POWERTOOLS_LOG_LEVEL: 'SILENT',
});
const { handler } = await import('../runtime/lambda/notifier.ts');

// --------------------------------------------------------------------------- alerts the ledger made

const ZERO: UsageDelta = { requests: 0, errors: 0, inputTokens: 0, cachedTokens: 0, outputTokens: 0, spent: 0, cacheHits: 0, saved: 0, estimated: 0 };
let calls = 0;
let sequence = 100;

/** Settles `usd` for one user and model inside `project`, watching the project's limits. */
async function spend(project: string, user: string, model: string, usd: number, watch: AlertWatch[], day = DAY): Promise<BudgetAlert[]> {
  const cost = Math.round(usd * USD);
  const callId = `call-${++calls}`;
  const scopes = [{ project, user: '*', model: '*' }, { project, user, model }];
  // Settlements apply only to rows that hold the call's reservation.
  const reserved = await ledger.reserve({ callId, month: day.slice(0, 7), day, expiresAt: Date.now() + 60_000, holds: scopes.map((scope) => ({ scope, amount: cost })) });
  assert.ok(reserved.ok);
  const s: Settlement = {
    callId,
    month: day.slice(0, 7),
    day,
    rows: [
      { scope: scopes[0], committed: 0, daily: false, watch },
      { scope: scopes[1], committed: 0, daily: true },
    ],
    delta: { ...ZERO, requests: 1, inputTokens: 100, outputTokens: 10, spent: cost },
  };
  return (await ledger.settle(s)) || [];
}

const getItem = async (key: Item) => (await client.send(new GetItemCommand({ TableName: TABLE, Key: key, ConsistentRead: true }))).Item;

/** The stream record of the write that marked the alert: the project row, before and after. */
async function recordOf(alert: BudgetAlert): Promise<StreamRecord> {
  const keys = usageKey(alert.month, alert.scope);
  const image = (await getItem(keys))!;
  assert.ok(image[ALERT_STREAM.carrier], 'the marking write left the carrier on the item');
  const { [ALERT_STREAM.carrier]: _carrier, ...old } = image;
  const seq = String(++sequence).padStart(21, '0');
  return {
    eventID: `c81e728d9d4c2f636f067f89cc14862c-${seq}`,
    eventName: 'MODIFY',
    eventVersion: '1.1',
    eventSource: 'aws:dynamodb',
    awsRegion: REGION,
    dynamodb: {
      ApproximateCreationDateTime: Math.floor(alert.at / 1000),
      Keys: keys,
      NewImage: image,
      OldImage: old,
      SequenceNumber: seq,
      SizeBytes: JSON.stringify(image).length,
      StreamViewType: 'NEW_AND_OLD_IMAGES',
    },
    eventSourceARN: STREAM_ARN,
  };
}

const MONTHLY_10: AlertWatch[] = [{ period: 'month', limit: 10 * USD, thresholds: [80, 100] }];

/** A project whose $10 monthly limit just reached 80%: alice $5 on gpt-4o, bob $3.50 on gpt-4o-mini. */
async function eightyPercent(project: string): Promise<{ alert: BudgetAlert; record: StreamRecord }> {
  assert.equal(await spend(project, 'alice', 'gpt-4o', 5, MONTHLY_10), []);
  const [alert] = await spend(project, 'bob', 'gpt-4o-mini', 3.5, MONTHLY_10);
  assert.ok(alert, '80% reached');
  return { alert, record: await recordOf(alert) };
}

const eventOf = (...records: StreamRecord[]): StreamEvent => ({ Records: records });
const context = () => ({ awsRequestId: 'req-1', getRemainingTimeInMillis: () => 60_000 });
const publishes = (project: string) =>
  sns.received.map((r) => new URLSearchParams(r.body)).filter((f) => f.get('Subject')?.endsWith(` ${project}`));
const posts = (project: string) => webhook.received.map((r) => JSON.parse(r.body) as AlertPayload).filter((p) => p.scope.project === project);
const deliveryState = async (alertId: string, channel: string) => (await getItem(deliveryKey(alertId, channel)))?.state?.S;

// ------------------------------------------------------------------------------------------ tests

const test = suite('notifier');
test.after(async () => {
  await Promise.all([sns.close(), webhook.close(), secrets.close(), dynamo.close()]);
  client.destroy();
});

test('the notifier\'s IAM conditions name the ledger\'s own key prefixes', () => {
  assert.ok(usagePk(MONTH).startsWith(ALERT_STREAM.usagePartitionPrefix));
  assert.ok(deliveryKey('x', 'sns').pk.S.startsWith(ALERT_STREAM.deliveryPartitionPrefix));
  assert.is(deliveryKey('y'.repeat(5000), 'sns').pk.S.length, 2 + 7 + 64, 'a very long alert id is hashed into the key');
});

test('an SNS subject stays under 100 characters without control characters, whatever the project is called', () => {
  const alert: BudgetAlert = { scope: { project: `long\n${'p'.repeat(150)}`, user: '*', model: '*' }, period: 'month', month: MONTH, threshold: 100, limit: USD, spent: USD, at: 0, callId: 'c' };
  const { subject } = snsAlertMessage(alertPayload('dev', alert, []));
  assert.ok(subject.length < 100);
  assert.not.match(subject, /[\n\r]/);
});

test('the event filter passes the marking write\'s record and nothing else', async () => {
  const { record } = await eightyPercent('filtered');
  const pattern = JSON.parse(ALERT_STREAM.filterPattern);
  assert.ok(matches(pattern, record), 'the alert record passes');
  assert.not.ok(matches(pattern, { ...record, dynamodb: { ...record.dynamodb, NewImage: record.dynamodb!.OldImage } }), 'a write without the carrier');
  assert.not.ok(matches(pattern, { ...record, eventName: 'REMOVE' }), 'a removal');
});

test('one record: one Publish to the topic (email text, Amazon Q card) and one webhook POST with the payload', async () => {
  const { alert, record } = await eightyPercent('research');
  const result = await handler(eventOf(record), context());
  assert.equal(result, { batchItemFailures: [] });

  const [post, ...morePosts] = posts('research');
  assert.equal(morePosts, []);
  const expected: AlertPayload = {
    type: 'budget_alert',
    stage: 'dev',
    scope: { project: 'research', user: '*', model: '*' },
    period: 'month',
    month: MONTH,
    threshold: 80,
    limitUsd: 10,
    spentUsd: 8.5,
    at: new Date(alert.at).toISOString(),
    topUsers: [{ name: 'alice', spentUsd: 5 }, { name: 'bob', spentUsd: 3.5 }],
    topModels: [{ name: 'gpt-4o', spentUsd: 5 }, { name: 'gpt-4o-mini', spentUsd: 3.5 }],
    raiseCommand: 'openai-wrapi limits set --stage dev --project "research" --limit <usd>',
    id: alertPayload('dev', alert, []).id,
  };
  assert.equal(post, expected);
  const hook = webhook.received.find((r) => r.body.includes('"research"'))!;
  assert.is(hook.headers['content-type'], 'application/json');

  const [form, ...more] = publishes('research');
  assert.equal(more, []);
  assert.is(form.get('Action'), 'Publish');
  assert.is(form.get('Version'), '2010-03-31');
  assert.is(form.get('TopicArn'), TOPIC);
  assert.is(form.get('MessageStructure'), 'json');
  assert.is(form.get('Subject'), alertSubject(expected));
  const message = JSON.parse(form.get('Message')!);
  assert.equal(Object.keys(message).sort(), ['default', 'email']);
  assert.is(message.email, alertText(expected));
  const card = JSON.parse(message.default);
  assert.equal(card, chatNotification(expected));
  assert.equal([card.version, card.source, card.content.textType], ['1.0', 'custom', 'client-markdown']);
  assert.match(card.content.description, '$8.50');
  assert.match(card.content.description, '`alice` $5.00');
  assert.match(card.content.nextSteps[0], expected.raiseCommand);
  assert.is(await deliveryState(expected.id, 'sns'), 'sent');
  assert.is(await deliveryState(expected.id, 'webhook'), 'sent');
});

test('the Publish is signed with SigV4 for SNS with the role\'s credentials (session token included)', async () => {
  const r = sns.received.at(-1)!;
  const auth = String(r.headers.authorization);
  assert.match(auth, new RegExp(`^AWS4-HMAC-SHA256 Credential=${CREDENTIALS.accessKeyId}/\\d{8}/${REGION}/sns/aws4_request, `));
  assert.match(auth, 'SignedHeaders=content-type;host;x-amz-date;x-amz-security-token,');
  assert.is(r.headers['x-amz-security-token'], CREDENTIALS.sessionToken);
  assert.is(r.headers['content-type'], 'application/x-www-form-urlencoded; charset=utf-8');
  // The signature over what arrived, recomputed: the host fetch sent is the host that was signed.
  const { createHash } = await import('node:crypto');
  const again = signRequest({
    credentials: CREDENTIALS,
    region: REGION,
    service: 'sns',
    amzDate: String(r.headers['x-amz-date']),
    headers: { host: String(r.headers.host), 'content-type': String(r.headers['content-type']) },
    payloadHash: createHash('sha256').update(r.body).digest('hex'),
  });
  assert.is(auth, again.authorization);
});

test('the same record twice, one after the other: delivered once', async () => {
  const { record } = await eightyPercent('twice');
  assert.equal(await handler(eventOf(record), context()), { batchItemFailures: [] });
  assert.equal(await handler(eventOf(record), context()), { batchItemFailures: [] });
  assert.is(publishes('twice').length, 1);
  assert.is(posts('twice').length, 1);
});

test('the same record twice at once (and twice in one batch): delivered once, both succeed', async () => {
  const { record } = await eightyPercent('concurrent');
  webhookPlan = (p) => ({ status: 204, delayMs: p.scope.project === 'concurrent' ? 300 : 0 });
  try {
    const results = await Promise.all([handler(eventOf(record), context()), handler(eventOf(record, record), context())]);
    assert.equal(results, [{ batchItemFailures: [] }, { batchItemFailures: [] }]);
  } finally {
    webhookPlan = () => ({ status: 204 });
  }
  assert.is(publishes('concurrent').length, 1);
  assert.is(posts('concurrent').length, 1);
});

test('a webhook failing then recovering is retried with backoff inside the invocation', async () => {
  const { record } = await eightyPercent('flaky');
  webhookPlan = (p, n) => ({ status: p.scope.project === 'flaky' && n < 3 ? (n === 1 ? 503 : 429) : 204 });
  const started = Date.now();
  try {
    assert.equal(await handler(eventOf(record), context()), { batchItemFailures: [] });
  } finally {
    webhookPlan = () => ({ status: 204 });
  }
  assert.is(posts('flaky').length, 3);
  assert.ok(Date.now() - started >= 1_400, 'waited 0.5 s, then 1 s');
  assert.is(publishes('flaky').length, 1);
});

test('a webhook failing for good: the record is reported, the webhook not marked sent; a later retry delivers it, SNS not again', async () => {
  const { alert, record } = await eightyPercent('down');
  const { record: fine } = await eightyPercent('fine');
  const id = alertPayload('dev', alert, []).id;
  webhookPlan = (p) => ({ status: p.scope.project === 'down' ? 502 : 204 });
  try {
    const result = await handler(eventOf(fine, record), context());
    assert.equal(result, { batchItemFailures: [{ itemIdentifier: record.dynamodb!.SequenceNumber! }] }, 'only the failed record');
  } finally {
    webhookPlan = () => ({ status: 204 });
  }
  assert.is(posts('down').length, 3, 'three tries');
  assert.is(await deliveryState(id, 'webhook'), 'sending', 'claimed, released, never sent');
  const item = (await getItem(deliveryKey(id, 'webhook')))!;
  assert.equal([item.lease.N, item.error.S, item.tries.N], ['0', 'WebhookError', '1']);
  assert.ok(Number(item.ttl.N) > Date.now() / 1000 + 39 * 86_400, 'expires after about 40 days');
  assert.is(await deliveryState(id, 'sns'), 'sent', 'the topic did get it');
  assert.is(posts('fine').length, 1);

  // Lambda's retry, the webhook back up.
  assert.equal(await handler(eventOf(record), context()), { batchItemFailures: [] });
  assert.is(posts('down').length, 4);
  assert.is(publishes('down').length, 1, 'SNS is not sent twice');
  assert.is(await deliveryState(id, 'webhook'), 'sent');
});

test('a webhook refusing the alert (4xx) is not retried inside the invocation', async () => {
  const { record } = await eightyPercent('refused');
  webhookPlan = (p) => ({ status: p.scope.project === 'refused' ? 400 : 204 });
  try {
    const result = await handler(eventOf(record), context());
    assert.is(result.batchItemFailures.length, 1);
  } finally {
    webhookPlan = () => ({ status: 204 });
  }
  assert.is(posts('refused').length, 1);
});

test('SNS failing for good fails the record too, after its own retries', async () => {
  const { record } = await eightyPercent('sns-down');
  snsStatus = 500;
  try {
    const result = await handler(eventOf(record), context());
    assert.equal(result, { batchItemFailures: [{ itemIdentifier: record.dynamodb!.SequenceNumber! }] });
  } finally {
    snsStatus = 200;
  }
  assert.is(publishes('sns-down').length, 3);
  assert.is(posts('sns-down').length, 1, 'the webhook got it, once');
  assert.equal(await handler(eventOf(record), context()), { batchItemFailures: [] });
  assert.is(publishes('sns-down').length, 4);
  assert.is(posts('sns-down').length, 1);
});

test('records without a carrier (other writes, removals, other items) are ignored', async () => {
  const { record } = await eightyPercent('plain');
  const before = [sns.received.length, webhook.received.length];
  const withoutCarrier = { ...record, dynamodb: { ...record.dynamodb, NewImage: record.dynamodb!.OldImage } };
  const limitItem: StreamRecord = {
    ...record,
    eventName: 'INSERT',
    dynamodb: { Keys: { pk: { S: 'LIMIT' }, sk: { S: 'plain#*#*' } }, NewImage: { pk: { S: 'LIMIT' }, sk: { S: 'plain#*#*' }, limit: { N: '1' } }, SequenceNumber: '1', StreamViewType: 'NEW_AND_OLD_IMAGES' },
  };
  const removal: StreamRecord = { ...record, eventName: 'REMOVE', dynamodb: { ...record.dynamodb, NewImage: undefined } };
  assert.equal(await handler(eventOf(withoutCarrier, limitItem, removal), context()), { batchItemFailures: [] });
  assert.equal(await handler({}, context()), { batchItemFailures: [] });
  assert.equal([sns.received.length, webhook.received.length], before);
});

test('a daily limit\'s alert names the day and that day\'s top users only', async () => {
  const daily: AlertWatch[] = [{ period: 'day', limit: 2 * USD, thresholds: [50] }];
  await spend('daily', 'carol', 'o3', 0.9, daily, '2026-11-25');
  await spend('daily', 'alice', 'gpt-4o', 0.4, daily);
  const [alert] = await spend('daily', 'bob', 'gpt-4o', 0.7, daily);
  assert.equal([alert?.period, alert?.day], ['day', DAY]);
  assert.equal(await handler(eventOf(await recordOf(alert)), context()), { batchItemFailures: [] });
  const [post] = posts('daily');
  assert.equal([post.period, post.day, post.threshold, post.limitUsd, post.spentUsd], ['day', DAY, 50, 2, 1.1]);
  assert.equal(post.topUsers, [{ name: 'bob', spentUsd: 0.7 }, { name: 'alice', spentUsd: 0.4 }]);
  assert.match(post.raiseCommand, '--period day');
});

test('a sender that died mid-send holds its claim until the lease is over; then the next one delivers', async () => {
  const log = createDeliveryLog({ client, tableName: TABLE, leaseMs: 300, pollMs: 50 });
  void log.once('crash-alert', 'webhook', Date.now() + 5_000, () => new Promise(() => {})); // never returns
  await new Promise((r) => setTimeout(r, 50));
  let sent = 0;
  const started = Date.now();
  assert.is(await log.once('crash-alert', 'webhook', Date.now() + 5_000, async () => void sent++), 'sent');
  assert.ok(Date.now() - started >= 200, 'waited for the lease');
  assert.is(sent, 1);
  assert.is(await log.once('crash-alert', 'webhook', Date.now() + 5_000, async () => void sent++), 'already-sent');
  // A claim still held at the deadline fails the record (Lambda retries it later).
  void log.once('held-alert', 'sns', Date.now() + 5_000, () => new Promise(() => {}));
  await new Promise((r) => setTimeout(r, 20));
  try {
    await log.once('held-alert', 'sns', Date.now() + 100, async () => void sent++);
    assert.unreachable('should have given up');
  } catch (error) {
    assert.is((error as Error).name, 'DeliveryBusyError');
  }
});

test('the webhook URL (and its token) never reaches a log line or an error', async () => {
  const lines: string[] = [];
  const { createNotifier } = await import('../runtime/lambda/notifier.ts');
  const { record } = await eightyPercent('quiet');
  const notifier = createNotifier({
    stage: 'dev', client, tableName: TABLE, log: { info: (m, f) => void lines.push(JSON.stringify([m, f])), error: (m, f) => void lines.push(JSON.stringify([m, f])) },
    channels: [{ name: 'webhook', send: async (p) => {
      const { postAlert } = await import('../runtime/store/alert-webhook.ts');
      await postAlert(`${webhook.url}/x?token=s3cret-hook-token`, p, { attempts: 1 });
    } }],
  });
  webhookPlan = () => ({ status: 500 });
  try {
    assert.is((await notifier(eventOf(record), Date.now() + 5_000)).batchItemFailures.length, 1);
  } finally {
    webhookPlan = () => ({ status: 204 });
  }
  assert.equal(JSON.parse(lines[0])[0], 'budget alert delivery failed');
  assert.not.match(lines.join('\n'), 's3cret-hook-token');
  await notifier(eventOf(record), Date.now() + 5_000);
  assert.equal(lines.length, 2, 'one line per delivered alert');
  assert.equal(JSON.parse(lines[1]), ['budget alert delivered', {
    alertId: alertPayload('dev', (await import('../runtime/store/alert-stream.ts')).alertOfRecord(record)!, []).id,
    stage: 'dev', project: 'quiet', period: 'month', threshold: 80, channels: { webhook: 'sent' },
  }]);
});

test.run();

// ------------------------------------------------------------------------------------------ helpers

/**
 * Lambda's event filtering for the parts the pattern uses: objects match key by key, a list of
 * values matches one of them, `{ exists: true }` matches any present value.
 */
function matches(pattern: unknown, value: unknown): boolean {
  if (Array.isArray(pattern)) {
    return pattern.some((p) => (typeof p === 'object' && p !== null && 'exists' in p ? (value !== undefined) === p.exists : p === value));
  }
  if (typeof pattern === 'object' && pattern !== null) {
    if (typeof value !== 'object' || value === null) return false;
    return Object.entries(pattern).every(([k, p]) => matches(p, (value as Record<string, unknown>)[k]));
  }
  return pattern === value;
}
