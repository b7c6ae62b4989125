// The Lambda adapter when the caller is gone before the answer's first byte: the body is still
// cancelled, so the proxy reads OpenAI's answer to its end (unsent) and settles the exact usage before
// the handler returns, instead of leaving the call's worst-case hold to be charged at its deadline.
import type { Writable } from 'node:stream';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { invokeStreaming } from './helpers/awslambda-stub.ts';
import { setDeployedEnv } from './helpers/deployed-env.ts';
import { startDynalite, type DynaliteServer } from './helpers/dynalite.ts';
import { startFakeOpenAI, type FakeOpenAI } from '../runtime/local/simulated-openai.ts';
import { ensureLedgerTable } from '../runtime/store/dynamo-ledger.ts';
import type { FunctionUrlEvent } from '../runtime/lambda/function-url.ts';

import { IAM_EVENT, jsonEvent } from './helpers/url-events.ts';
const TABLE = 'openai-wrapi-lambda-client-gone';

type Handler = (event: FunctionUrlEvent, stream: Writable, context: unknown) => Promise<void>;
let dynamo: DynaliteServer;
let fake: FakeOpenAI;
let proxy: Handler;
let admin: (event: unknown) => Promise<any>;

let seq = 0;
function streamEvent(project: string, directives: string): FunctionUrlEvent {
  return jsonEvent(IAM_EVENT, { model: 'o3', stream: true, messages: [{ role: 'user', content: `Gone ${++seq}. ${directives}` }] }, project);
}

async function limitOf(project: string): Promise<any> {
  const r = await admin({ action: 'listLimits', project });
  assert.ok(r.ok, JSON.stringify(r));
  return r.limits.find((l: any) => l.user === '*' && l.model === '*');
}

async function rowOf(project: string): Promise<any> {
  const r = await admin({ action: 'usage' });
  assert.ok(r.ok, JSON.stringify(r));
  return r.rows.find((row: any) => row.project === project && row.user !== '*');
}

/** The fake's usage for the same prompt, asked directly (not streamed). */
async function upstreamUsage(e: FunctionUrlEvent): Promise<{ prompt_tokens: number; completion_tokens: number }> {
  const body = { ...JSON.parse(e.body!), stream: false };
  const res = await fetch(`${fake.url}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${fake.apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return (await res.json()).usage;
}

const within = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
  Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms`)), ms).unref())]);

const test = suite('lambda: client gone before the first byte');

test.before(async () => {
  dynamo = await startDynalite();
  fake = await startFakeOpenAI();
  await ensureLedgerTable(dynamo.client(), TABLE);
  setDeployedEnv({ table: TABLE, dynamodbEndpoint: dynamo.endpoint, upstreamUrl: fake.url, apiKey: fake.apiKey });
  proxy = (await import('../runtime/lambda/proxy.ts')).handler as unknown as Handler;
  admin = (await import('../runtime/lambda/admin.ts')).handler as (event: unknown) => Promise<any>;
  for (const project of ['gone-at-start', 'gone-while-waiting']) assert.ok((await admin({ action: 'setLimit', project, limit: 5 })).ok);
});

test.after(async () => {
  await fake?.close();
  await dynamo?.close();
});

async function assertSettledExactly(project: string, e: FunctionUrlEvent): Promise<void> {
  const usage = await upstreamUsage(e);
  const row = await rowOf(project);
  assert.ok(row, 'a usage row was settled before the handler returned');
  assert.is(row.requests, 1);
  assert.is(row.estimated, 0, 'OpenAI\'s own usage, read after the client left');
  assert.is(row.inputTokens, usage.prompt_tokens);
  assert.is(row.outputTokens, usage.completion_tokens);
  const limit = await limitOf(project);
  assert.ok(limit.spend > 0 && limit.spend < 0.01, `charged the real cost, not the worst case: ${limit.spend}`);
  assert.is(limit.committed, limit.spend, 'the worst-case hold was released');
  assert.is(fake.inFlight(), 0, 'the upstream call ran to its end');
}

test('the response stream fails on its first write (the prelude), before any body byte', async () => {
  // `slow`: frames 20 ms apart, so the stub's disconnect (on the prelude's write) comes before the first one.
  const e = streamEvent('gone-at-start', 'fake:words=20 fake:reasoning=100 fake:delay_first=300 fake:slow=20');
  const r = await within(invokeStreaming(proxy, e, { disconnectAfterBytes: 0 }), 3_000, 'the handler');
  assert.ok(r.disconnected);
  assert.is(r.body, '', 'nothing of the answer was sent');
  await assertSettledExactly('gone-at-start', e);
});

test('the response stream is destroyed while the handler still waits for OpenAI\'s headers', async () => {
  const e = streamEvent('gone-while-waiting', 'fake:words=20 fake:reasoning=100 fake:delay_first=300');
  // The client leaves 100 ms in, before the proxy has anything to write.
  const leaving: Handler = (event, stream, context) => {
    setTimeout(() => stream.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET' })), 100);
    return proxy(event, stream, context);
  };
  (leaving as any)[Symbol.for('aws.lambda.runtime.handler.streaming')] = 'response';
  const started = Date.now();
  // The stub reports a stream neither finished nor cut by itself: expected here, the test destroyed it.
  const err = await within(invokeStreaming(leaving, e).then(() => undefined, (x: Error) => x), 3_000, 'the handler');
  assert.ok(!err || /not finished/.test(err.message), String(err));
  assert.ok(Date.now() - started < 3_000);
  await assertSettledExactly('gone-while-waiting', e);
});

test.run();
