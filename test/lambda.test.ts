// The Lambda adapter end to end in one process: the streaming proxy handler and the admin handler,
// built at cold start from the environment a deployed function gets, over DynamoDB (dynalite) and
// the fake OpenAI upstream. Events are the reference function-URL captures, edited per case; the
// response goes through a faithful `awslambda` stub (prelude + 8 NULs, then the body as written).
import { readFileSync } from 'node:fs';
import { encode } from 'gpt-tokenizer';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { invokeStreaming, type StreamingResult } from './helpers/awslambda-stub.ts';
import { setDeployedEnv } from './helpers/deployed-env.ts';
import { startDynalite, type DynaliteServer } from './helpers/dynalite.ts';
import { startFakeOpenAI, type FakeOpenAI } from '../runtime/local/simulated-openai.ts';
import { ensureLedgerTable } from '../runtime/store/dynamo-ledger.ts';
import type { FunctionUrlEvent } from '../runtime/lambda/function-url.ts';

const REFERENCE = new URL('./fixtures/reference/', import.meta.url);
const reference = (name: string): FunctionUrlEvent => JSON.parse(readFileSync(new URL(name, REFERENCE), 'utf8'));
const IAM_EVENT = reference('lambda-function-url-event-iam.json');
const ROLE_EVENT = reference('lambda-function-url-event-iam-assumed-role.json');

const TABLE = 'openai-wrapi-lambda-test';
const MODEL = 'gpt-4o-mini';
// gpt-4o-mini in runtime/data/prices.json: USD 0.15 / 0.60 per 1M tokens = 150 / 600 nano-USD per token.
const NANO_IN = 150;
const NANO_OUT = 600;

type Handler = (event: FunctionUrlEvent, stream: import('node:stream').Writable, context: unknown) => Promise<void>;
let dynamo: DynaliteServer;
let fake: FakeOpenAI;
let proxy: Handler;
let admin: (event: unknown) => Promise<any>;

interface EventEdit {
  base?: FunctionUrlEvent;
  body?: Record<string, unknown>;
  headers?: Record<string, string | undefined>;
  base64?: boolean;
  authorizer?: null;
}

/** A deep copy of a reference event with a new body and header edits; the rest keeps its shape. */
function event({ base = IAM_EVENT, body, headers = {}, base64 = false, authorizer }: EventEdit = {}): FunctionUrlEvent {
  const e: FunctionUrlEvent = structuredClone(base);
  if (body) {
    const json = JSON.stringify(body);
    e.body = base64 ? Buffer.from(json).toString('base64') : json;
    e.isBase64Encoded = base64;
    e.headers!['content-length'] = String(Buffer.byteLength(json));
  }
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) delete e.headers![name];
    else e.headers![name.toLowerCase()] = value;
  }
  if (authorizer === null) e.requestContext.authorizer = null;
  return e;
}

let seq = 0;
/** A chat body with a unique prompt (so no two tests share a cache key) carrying fake directives. */
function chat(directives: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { model: MODEL, messages: [{ role: 'user', content: `Lambda test ${++seq}. ${directives}`.trim() }], ...extra };
}

/** The fake's prompt count for one user message (3 per message + role + content, 3 to prime). */
const promptTokens = (content: string) => 3 + 3 + encode('user').length + encode(content).length;
const contentOf = (body: Record<string, unknown>) => (body.messages as { content: string }[])[0].content;

const json = (r: StreamingResult) => JSON.parse(r.body);

async function usageRows(project: string): Promise<any[]> {
  const report = await admin({ action: 'usage' });
  assert.ok(report.ok, JSON.stringify(report));
  return report.rows.filter((r: { project: string }) => r.project === project);
}

async function eventually(check: () => boolean, timeoutMs = 3_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const test = suite('lambda adapter');

test.before(async () => {
  dynamo = await startDynalite();
  fake = await startFakeOpenAI();
  await ensureLedgerTable(dynamo.client(), TABLE);
  // What the deployed function's environment holds (credentials come from the execution role).
  setDeployedEnv({
    table: TABLE, dynamodbEndpoint: dynamo.endpoint, upstreamUrl: fake.url, apiKey: fake.apiKey,
    extra: { OPENAI_WRAPI_SESSION_NAMED_ROLES: 'Analysts', OPENAI_ORG_ID: 'org-secret-test' },
  });
  proxy = (await import('../runtime/lambda/proxy.ts')).handler as unknown as Handler;
  admin = (await import('../runtime/lambda/admin.ts')).handler as (event: unknown) => Promise<any>;
  for (const project of ['research', 'streams', 'roles', 'sessions', 'b64', 'spoof', 'upstream429', 'disconnect', 'broken', 'empty']) {
    const set = await admin({ action: 'setLimit', project, limit: 5 });
    assert.ok(set.ok, JSON.stringify(set));
  }
  assert.ok((await admin({ action: 'setLimit', project: 'tiny', limit: 0.000001 })).ok);
});

test.after(async () => {
  await fake?.close();
  await dynamo?.close();
});

test('non-streamed chat: 200, OpenAI JSON, cost header, usage recorded for the IAM user', async () => {
  const before = fake.requests.length;
  const body = chat('fake:words=5');
  const r = await invokeStreaming(proxy, event({ body }));
  assert.is(r.statusCode, 200, r.body);
  assert.match(r.headers['content-type'], 'application/json');
  const completion = json(r);
  assert.is(completion.object, 'chat.completion');
  assert.is(completion.choices[0].message.content.split(' ').length, 5);
  assert.is(fake.requests.length, before + 1);
  // The stage's key and org went up; none of it comes back down.
  const sent = fake.requests.at(-1)!;
  assert.is(sent.headers.authorization, `Bearer ${fake.apiKey}`);
  assert.is(sent.headers['openai-organization'], 'org-secret-test');
  assert.is(sent.body.messages[0].content, contentOf(body));
  assert.not.ok(JSON.stringify(r.headers).includes('org-secret-test'));
  assert.is(r.headers['content-length'], undefined);
  assert.is(r.headers['content-encoding'], undefined);
  assert.is(r.headers['openai-proxy-cache'], 'miss');

  const usage = completion.usage;
  const nano = usage.prompt_tokens * NANO_IN + usage.completion_tokens * NANO_OUT;
  assert.is(Number(r.headers['openai-proxy-cost']), nano / 1e9);
  // Settled before the handler returned (Lambda may freeze the instance right after).
  const rows = await usageRows('research');
  assert.equal(rows.map((x) => x.user), ['alice']);
  assert.is(rows[0].model, MODEL);
  assert.is(rows[0].requests, 1);
  assert.is(rows[0].inputTokens, usage.prompt_tokens);
  assert.is(rows[0].outputTokens, usage.completion_tokens);
  assert.is(rows[0].estimated, 0);
  assert.is(rows[0].spend, nano / 1e9);
});

test('the same call again is a cache hit: replayed, not forwarded, no spend', async () => {
  const body = chat('fake:words=3');
  const first = await invokeStreaming(proxy, event({ body, headers: { 'openai-proxy-project': 'research' } }));
  assert.is(first.statusCode, 200);
  const before = fake.requests.length;
  const again = await invokeStreaming(proxy, event({ body, headers: { 'openai-proxy-project': 'research' } }));
  assert.is(again.statusCode, 200);
  assert.is(again.headers['openai-proxy-cache'], 'hit');
  assert.is(again.headers['openai-proxy-cost'], '0');
  assert.equal(json(again).choices, json(first).choices);
  assert.is(fake.requests.length, before);
  const [row] = await usageRows('research');
  assert.is(row.cacheHits, 1);
  assert.is(row.requests, 2);
});

test('an assumed role is billed as the role, whatever session name its caller chose; usage chunk kept when asked', async () => {
  const body = chat('fake:words=4', { stream: true, stream_options: { include_usage: true } });
  const r = await invokeStreaming(proxy, event({ base: ROLE_EVENT, body, headers: { 'openai-proxy-project': 'roles' } }));
  assert.is(r.statusCode, 200, r.body);
  const usageChunk = r.body.split('\n\n').find((f) => f.includes('"choices":[]'));
  assert.ok(usageChunk, 'the usage chunk the client asked for is passed on');
  const usage = JSON.parse(usageChunk!.slice('data: '.length)).usage;
  const rows = await usageRows('roles');
  // The reference event's session name "alice-session" was picked by whoever called AssumeRole.
  assert.equal(rows.map((x) => x.user), ['DataScientist/*']);
  assert.is(rows[0].inputTokens, usage.prompt_tokens);
  assert.is(rows[0].outputTokens, usage.completion_tokens);
});

test('session names count as the user where AWS sets them (Identity Center) or the stack lists the role', async () => {
  const as = (userArn: string) => {
    const base = structuredClone(ROLE_EVENT);
    base.requestContext.authorizer!.iam!.userArn = userArn;
    return base;
  };
  for (const arn of [
    'arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Dev_0123abcd/carol@example.com',
    'arn:aws:sts::123456789012:assumed-role/Analysts/dan',
  ]) {
    const r = await invokeStreaming(proxy, event({ base: as(arn), body: chat('fake:words=2'), headers: { 'openai-proxy-project': 'sessions' } }));
    assert.is(r.statusCode, 200, r.body);
  }
  assert.equal((await usageRows('sessions')).map((x) => x.user).sort(), ['AWSReservedSSO_Dev_0123abcd/carol@example.com', 'Analysts/dan']);
});

test('project members over DynamoDB: a granted role admits its callers and session users; others get 403, nothing recorded', async () => {
  assert.ok((await admin({ action: 'setLimit', project: 'members', limit: 5 })).ok);
  for (const role of ['DataScientist', 'Analysts']) assert.ok((await admin({ action: 'grantMember', project: 'members', role })).ok);
  const as = (userArn: string) => {
    const base = structuredClone(ROLE_EVENT);
    base.requestContext.authorizer!.iam!.userArn = userArn;
    return base;
  };
  const headers = { 'openai-proxy-project': 'members' };
  const before = fake.requests.length;
  // alice (an IAM user) and a role never granted.
  for (const base of [IAM_EVENT, as('arn:aws:sts::123456789012:assumed-role/Ops/dan')]) {
    const r = await invokeStreaming(proxy, event({ base, body: chat('fake:words=2'), headers }));
    assert.is(r.statusCode, 403, r.body);
    assert.is(json(r).error.code, 'project_access_denied');
  }
  assert.is(fake.requests.length, before);
  for (const base of [ROLE_EVENT, as('arn:aws:sts::123456789012:assumed-role/Analysts/dan')]) {
    const r = await invokeStreaming(proxy, event({ base, body: chat('fake:words=2'), headers }));
    assert.is(r.statusCode, 200, r.body);
  }
  assert.equal((await usageRows('members')).map((x) => x.user).sort(), ['Analysts/dan', 'DataScientist/*']);
});

test('streamed chat: bytes arrive as the upstream sends them, [DONE], no usage chunk, exact usage', async () => {
  const words = 6;
  const body = chat(`fake:words=${words} fake:slow=30`, { stream: true });
  const r = await invokeStreaming(proxy, event({ body, headers: { 'openai-proxy-project': 'streams', 'openai-proxy-caching': '0' } }));
  assert.is(r.statusCode, 200, r.body);
  assert.match(r.headers['content-type'], 'text/event-stream');
  assert.is(r.headers['openai-proxy-cache'], 'bypass');
  // role + 7 content pieces + finish + [DONE], 30 ms apart upstream: many writes spread over time.
  assert.ok(r.chunks.length >= 8, `only ${r.chunks.length} writes`);
  const spread = r.chunks.at(-1)!.at - r.chunks[0].at;
  assert.ok(spread >= 150, `chunks arrived within ${spread} ms: buffered, not streamed`);
  assert.ok(r.body.endsWith('data: [DONE]\n\n'));
  assert.not.ok(r.body.includes('"usage"'), 'no usage chunk or usage key the client did not ask for');
  const text = r.body
    .split('\n\n')
    .filter((f) => f.startsWith('data: {'))
    .map((f) => JSON.parse(f.slice(6)).choices[0]?.delta?.content ?? '')
    .join('');
  assert.is(text.split(' ').length, words);
  // The proxy asked the upstream for usage on the client's behalf.
  assert.equal(fake.requests.at(-1)!.body.stream_options, { include_usage: true });

  const [row, ...others] = await usageRows('streams');
  assert.is(others.length, 0);
  assert.is(row.user, 'alice');
  assert.is(row.estimated, 0);
  assert.is(row.inputTokens, promptTokens(contentOf(body)));
  assert.is(row.outputTokens, words + 1); // each word is one token, plus the final "."
  assert.is(row.spend, (row.inputTokens * NANO_IN + row.outputTokens * NANO_OUT) / 1e9);
});

test('a base64-encoded body (isBase64Encoded) is decoded', async () => {
  const body = chat('fake:words=2');
  const e = event({ body, base64: true, headers: { 'openai-proxy-project': 'b64' } });
  assert.not.ok(e.body!.startsWith('{'));
  const r = await invokeStreaming(proxy, e);
  assert.is(r.statusCode, 200, r.body);
  assert.is(json(r).object, 'chat.completion');
  assert.is(fake.requests.at(-1)!.body.messages[0].content, contentOf(body));
  assert.is((await usageRows('b64'))[0].requests, 1);
});

test('no authorizer (anonymous caller): 403, nothing forwarded', async () => {
  const before = fake.requests.length;
  const r = await invokeStreaming(proxy, event({ body: chat(''), authorizer: null }));
  assert.is(r.statusCode, 403);
  assert.is(json(r).error.code, 'unsigned_request');
  assert.is(r.headers['x-should-retry'], 'false');
  assert.is(fake.requests.length, before);
});

test('a spoofed openai-proxy-user header is ignored: billed to the verified caller only', async () => {
  const r = await invokeStreaming(
    proxy,
    event({ body: chat('fake:words=2'), headers: { 'openai-proxy-project': 'spoof', 'openai-proxy-user': 'mallory' } }),
  );
  assert.is(r.statusCode, 200, r.body);
  assert.is(fake.requests.at(-1)!.headers['openai-proxy-user'], undefined);
  assert.equal((await usageRows('spoof')).map((x) => x.user), ['alice']);
  const all = await admin({ action: 'usage' });
  assert.not.ok(all.rows.some((x: { user: string }) => x.user === 'mallory'));
});

test('a project without a limit: 403 refusal, x-should-retry false, nothing forwarded', async () => {
  const before = fake.requests.length;
  const r = await invokeStreaming(proxy, event({ body: chat(''), headers: { 'openai-proxy-project': 'nolimit' } }));
  assert.is(r.statusCode, 403);
  assert.is(r.headers['x-should-retry'], 'false');
  const { error } = json(r);
  assert.is(error.code, 'project_not_allowed');
  assert.is(error.type, 'permission_denied');
  assert.match(error.message, 'nolimit');
  assert.is(fake.requests.length, before);
  assert.equal(await usageRows('nolimit'), []);
});

test('over the limit: 429 budget refusal, not retried, nothing forwarded', async () => {
  const before = fake.requests.length;
  const r = await invokeStreaming(proxy, event({ body: chat(''), headers: { 'openai-proxy-project': 'tiny' } }));
  assert.is(r.statusCode, 429);
  assert.is(r.headers['x-should-retry'], 'false');
  assert.is(json(r).error.code, 'budget_exceeded');
  assert.is(fake.requests.length, before);
});

test('an upstream 429 passes through with its body and retry-after, at no cost', async () => {
  const r = await invokeStreaming(
    proxy,
    event({ body: chat('fake:error=429 fake:retry_after_ms=2000'), headers: { 'openai-proxy-project': 'upstream429' } }),
  );
  assert.is(r.statusCode, 429);
  assert.is(r.headers['retry-after'], '2');
  assert.is(r.headers['retry-after-ms'], '2000');
  assert.is(r.headers['x-should-retry'], undefined);
  assert.is(json(r).error.code, 'rate_limit_exceeded');
  const [row] = await usageRows('upstream429');
  assert.is(row.spend, 0);
  assert.is(row.estimated, 0);
});

test('client disconnect mid-stream: the rest is read, unsent, and the exact usage settled before the handler returns', async () => {
  const aborted = fake.aborted;
  const body = chat('fake:words=200 fake:slow=2', { stream: true });
  const r = await invokeStreaming(proxy, event({ body, headers: { 'openai-proxy-project': 'disconnect' } }), {
    disconnectAfterBytes: 1,
  });
  assert.ok(r.disconnected);
  assert.not.ok(r.body.includes('[DONE]'));
  const [row] = await usageRows('disconnect');
  assert.ok(row, 'a row was settled before the handler returned');
  assert.is(row.requests, 1);
  assert.is(row.estimated, 0, 'OpenAI\'s own usage, read after the client left');
  assert.is(row.outputTokens, 201);
  assert.is(fake.aborted, aborted, 'the upstream call ran to its end');
  assert.is(fake.inFlight(), 0);
});

test('upstream stream breaks: the client gets an error event, an estimate is recorded', async () => {
  const body = chat('fake:words=20 fake:break=3', { stream: true });
  const r = await invokeStreaming(proxy, event({ body, headers: { 'openai-proxy-project': 'broken' } }));
  assert.is(r.statusCode, 200);
  const last = r.body.trimEnd().split('\n\n').at(-1)!;
  assert.is(JSON.parse(last.slice('data: '.length)).error.code, 'upstream_stream_interrupted');
  const [row] = await usageRows('broken');
  assert.is(row.estimated, 1);
  assert.ok(row.outputTokens > 0);
});

test('an upstream error with an empty body keeps its status and headers', async () => {
  // The runtime sends the status/headers prelude on the first write() only, never on end().
  const r = await invokeStreaming(proxy, event({ body: chat('fake:empty=502'), headers: { 'openai-proxy-project': 'empty' } }));
  assert.is(r.statusCode, 502);
  assert.match(r.headers['x-request-id'], /^req_/);
  assert.is(r.body, '');
});

test('an unknown route is a 404 in the OpenAI envelope', async () => {
  const e = event({ body: chat('') });
  e.rawPath = e.requestContext.http.path = '/v1/fine_tuning/jobs';
  const r = await invokeStreaming(proxy, e);
  assert.is(r.statusCode, 404);
  assert.is(json(r).error.type, 'invalid_request_error');
});

test('admin: setLimit, listLimits, usage', async () => {
  const set = await admin({ action: 'setLimit', project: 'admin-p', user: 'alice', limit: 2.5 });
  assert.equal(set, { ok: true, stage: 'dev', limit: { project: 'admin-p', user: 'alice', model: '*', limit: 2.5 } });
  const list = await admin({ action: 'listLimits', project: 'research' });
  assert.ok(list.ok);
  assert.is(list.limits.length, 1);
  const [limit] = list.limits;
  assert.is(limit.limit, 5);
  const [row] = await usageRows('research');
  assert.is(limit.spend, row.spend);
  assert.ok(limit.spend > 0);
  const byProject = await admin({ action: 'usage', by: 'project' });
  assert.ok(byProject.ok);
  assert.ok(byProject.groups.some((g: { key: string; requests: number }) => g.key === 'research' && g.requests === 2));
  assert.ok(byProject.totals.requests >= 6);
});

test('admin: bad input is { ok:false, error:{message,type,code} }', async () => {
  const cases: [unknown, string][] = [
    [{ action: 'explode' }, 'unknown_action'],
    [{ action: 'setLimit', project: 'p', limit: -1 }, 'invalid_amount'],
    [{ action: 'setLimit', project: 'a#b', limit: 1 }, 'invalid_name'],
    [{ action: 'usage', month: '2026-13' }, 'invalid_month'],
    [{ action: 'removeLimit', project: 'never-limited' }, 'limit_not_found'],
  ];
  for (const [request, code] of cases) {
    const out = await admin(request);
    assert.is(out.ok, false, JSON.stringify(request));
    assert.is(out.error.code, code);
    assert.is(out.error.type, 'invalid_request_error');
    assert.type(out.error.message, 'string');
  }
  const none = await admin(null);
  assert.is(none.ok, false);
  assert.type(none.error.message, 'string');
});

test('admin: an unexpected failure is logged and answered with the invocation\'s awsRequestId, and nothing of the error', async () => {
  // A fresh instance of the function whose table does not exist: DynamoDB's refusal is no admin error.
  const saved = process.env.OPENAI_WRAPI_TABLE;
  process.env.OPENAI_WRAPI_TABLE = 'openai-wrapi-no-such-table';
  // The Powertools logger writes to stderr itself (not through the global console).
  const lines: string[] = [];
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string) => lines.push(...String(chunk).split('\n').filter(Boolean)) > 0) as typeof write;
  let out: any;
  try {
    const fresh: typeof import('../runtime/lambda/admin.ts') = await import(new URL('../runtime/lambda/admin.ts?table=missing', import.meta.url).href);
    const broken = fresh.handler;
    out = await broken({ action: 'listLimits' }, { awsRequestId: '3f2b6a52-8f0e-4c1d-9d43-2f1c8e6b7a10' });
  } finally {
    process.stderr.write = write;
    process.env.OPENAI_WRAPI_TABLE = saved;
  }
  assert.is(out.ok, false);
  assert.is(out.error.code, 'admin_error');
  assert.match(out.error.message, 'request 3f2b6a52-8f0e-4c1d-9d43-2f1c8e6b7a10');
  const logged = lines.map((line) => JSON.parse(line));
  assert.equal(logged.map((l) => [l.level, l.message, l.action, l.requestId]), [['ERROR', 'admin error', 'listLimits', '3f2b6a52-8f0e-4c1d-9d43-2f1c8e6b7a10']]);
  assert.is(logged[0].function_request_id, '3f2b6a52-8f0e-4c1d-9d43-2f1c8e6b7a10', 'every line of the invocation carries its request id');
  assert.type(logged[0].error, 'string');
  assert.not.match(JSON.stringify(out), /no-such-table|ResourceNotFound|at .*\.ts/);
});

test.run();

// The stub itself must behave like the runtime, or the tests above prove nothing.
const stub = suite('awslambda stub');

const streaming = (fn: (stream: import('node:stream').Writable) => Promise<void>) =>
  awslambda.streamifyResponse(async (_event: unknown, stream) => fn(stream));

stub('the prelude goes out on the first write(), then the body bytes', async () => {
  const r = await invokeStreaming(
    streaming(async (stream) => {
      const out = awslambda.HttpResponseStream.from(stream, { statusCode: 201, headers: { a: 'b' } });
      out.write('hello ');
      out.end('world');
    }),
    {},
  );
  assert.is(r.statusCode, 201);
  assert.equal(r.headers, { a: 'b' });
  assert.is(r.body, 'hello world');
  assert.is(r.chunks.length, 2);
});

stub('end() without write() sends no prelude, as in the runtime', async () => {
  const ended = streaming(async (stream) => {
    awslambda.HttpResponseStream.from(stream, { statusCode: 204 }).end();
  });
  try {
    await invokeStreaming(ended, {});
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, 'no prelude');
  }
});

stub('an unfinished stream and an unmarked handler are errors', async () => {
  const open = streaming(async (stream) => {
    awslambda.HttpResponseStream.from(stream, { statusCode: 200 }).write('x');
  });
  try {
    await invokeStreaming(open, {}, { finishTimeoutMs: 20 });
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, 'not finished');
  }
  try {
    await invokeStreaming(async () => undefined, {});
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, 'streamifyResponse');
  }
});

stub.run();
