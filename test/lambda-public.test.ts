// The public function: the same Lambda handler with OPENAI_WRAPI_PUBLIC_PROJECT in its environment,
// behind a function URL with AuthType NONE. Its events carry no authorizer; the client is
// requestContext.http.sourceIp. Its own process: the handler reads its environment once per instance.
import { readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { invokeStreaming } from './helpers/awslambda-stub.ts';
import { setDeployedEnv } from './helpers/deployed-env.ts';
import { startDynalite, type DynaliteServer } from './helpers/dynalite.ts';
import { startFakeOpenAI, type FakeOpenAI } from '../runtime/local/simulated-openai.ts';
import { ensureLedgerTable } from '../runtime/store/dynamo-ledger.ts';
import type { FunctionUrlEvent } from '../runtime/lambda/function-url.ts';

const IAM_EVENT: FunctionUrlEvent = JSON.parse(readFileSync(new URL('./fixtures/reference/lambda-function-url-event-iam.json', import.meta.url), 'utf8'));
const TABLE = 'openai-wrapi-lambda-public-test';
const ORIGIN = 'https://app.example.com';

type Handler = (event: FunctionUrlEvent, stream: import('node:stream').Writable, context: unknown) => Promise<void>;
let dynamo: DynaliteServer;
let fake: FakeOpenAI;
let proxy: Handler;
let admin: (event: unknown) => Promise<any>;

let seq = 0;
/** An AuthType NONE event: the reference capture without its authorizer, from `sourceIp`. */
function publicEvent(sourceIp: string, headers: Record<string, string | undefined> = { origin: ORIGIN }, keepAuthorizer = false): FunctionUrlEvent {
  const e: FunctionUrlEvent = structuredClone(IAM_EVENT);
  if (!keepAuthorizer) delete (e.requestContext as { authorizer?: unknown }).authorizer;
  (e.requestContext.http as { sourceIp?: string }).sourceIp = sourceIp;
  for (const name of Object.keys(e.headers!)) if (name.startsWith('x-amz-')) delete e.headers![name];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) delete e.headers![name];
    else e.headers![name] = value;
  }
  const body = JSON.stringify({ model: 'gpt-4o-mini', max_completion_tokens: 50, messages: [{ role: 'user', content: `public ${++seq} fake:words=3` }] });
  e.body = body;
  e.isBase64Encoded = false;
  e.headers!['content-length'] = String(Buffer.byteLength(body));
  return e;
}

async function rows(): Promise<{ project: string; user: string; requests: number }[]> {
  const report = await admin({ action: 'usage' });
  assert.ok(report.ok, JSON.stringify(report));
  return report.rows;
}

async function eventually(check: () => Promise<boolean>, timeoutMs = 3_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

const test = suite('lambda: the public function');

test.before(async () => {
  dynamo = await startDynalite();
  fake = await startFakeOpenAI();
  await ensureLedgerTable(dynamo.client(), TABLE);
  setDeployedEnv({
    table: TABLE, dynamodbEndpoint: dynamo.endpoint, upstreamUrl: fake.url, apiKey: fake.apiKey,
    extra: { OPENAI_WRAPI_PUBLIC_PROJECT: 'website', OPENAI_WRAPI_PUBLIC_ORIGINS: ORIGIN, OPENAI_WRAPI_PUBLIC_RPM: '2' },
  });
  proxy = (await import('../runtime/lambda/proxy.ts')).handler as unknown as Handler;
  admin = (await import('../runtime/lambda/admin.ts')).handler as (event: unknown) => Promise<any>;
  assert.ok((await admin({ action: 'setLimit', project: 'website', limit: 1 })).ok);
});

test.after(async () => {
  await fake?.close();
  await dynamo?.close();
});

test('served and billed to the public project as public:<sourceIp>, whatever the headers say', async () => {
  const r = await invokeStreaming(proxy, publicEvent('198.51.100.20', { origin: ORIGIN, 'openai-proxy-project': 'research', 'x-forwarded-for': '192.0.2.1' }));
  assert.is(r.statusCode, 200, r.body);
  assert.is(JSON.parse(r.body).object, 'chat.completion');
  assert.is(r.headers['access-control-allow-origin'], undefined, 'the function URL adds CORS; the function does not');
  assert.is(r.headers['x-ratelimit-remaining-requests'], '1');
  await eventually(async () => (await rows()).some((row) => row.project === 'website' && row.user === 'public:198.51.100.20'));
  assert.not.ok((await rows()).some((row) => row.project === 'research' || row.user === 'public:192.0.2.1'));
});

test('an IAM identity in the event makes no difference here: still the public client', async () => {
  const r = await invokeStreaming(proxy, publicEvent('198.51.100.21', { origin: ORIGIN }, true));
  assert.is(r.statusCode, 200, r.body);
  await eventually(async () => (await rows()).some((row) => row.user === 'public:198.51.100.21'));
  assert.not.ok((await rows()).some((row) => row.user === 'alice'));
});

test('per client RPM, an IPv6 client by its /64', async () => {
  const a = await invokeStreaming(proxy, publicEvent('2001:db8:1:2::10'));
  const b = await invokeStreaming(proxy, publicEvent('2001:db8:1:2:aaaa::11'));
  const c = await invokeStreaming(proxy, publicEvent('2001:db8:1:2::12'));
  assert.equal([a.statusCode, b.statusCode, c.statusCode], [200, 200, 429]);
  const refusal = JSON.parse(c.body);
  assert.is(refusal.error.code, 'rate_limit_exceeded');
  assert.match(refusal.error.message, /public:2001:db8:1:2::\/64/);
  assert.ok(Number(c.headers['retry-after']) >= 1);
  const elsewhere = await invokeStreaming(proxy, publicEvent('2001:db8:1:3::10'));
  assert.is(elsewhere.statusCode, 200, 'the next /64 is another client');
});

test('no allowed Origin: 403, nothing forwarded', async () => {
  const before = fake.requests.length;
  const none = await invokeStreaming(proxy, publicEvent('198.51.100.30', { origin: undefined }));
  const other = await invokeStreaming(proxy, publicEvent('198.51.100.30', { origin: 'https://evil.example' }));
  assert.equal([none.statusCode, other.statusCode], [403, 403]);
  assert.is(JSON.parse(other.body).error.code, 'origin_not_allowed');
  assert.is(fake.requests.length, before);
});

test.run();
