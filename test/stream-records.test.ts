// What the proxy records about streams, through the local stack with the official client: only
// whole, successful streams are cached; a stream cut off during a tool call is estimated from
// everything the model generated, not only from its text content.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import OpenAI from 'openai';
import { encode } from 'gpt-tokenizer';
import { startTestStack, settled, type TestStack } from './helpers/stack.ts';

let t: TestStack;
test.before(async () => {
  t = await startTestStack();
});
test.after(() => t.close());

const say = (content: string) => [{ role: 'user' as const, content }];

async function rowOf(project: string, until: (row: any) => boolean): Promise<any> {
  let row: any;
  await settled(t, async () => {
    row = (await t.admin({ action: 'usage' })).rows.find((r: any) => r.project === project);
    return !!row && until(row);
  });
  return row;
}

/**
 * Makes the same streamed call twice, the second after the first was settled (and any cache
 * write would have landed), and returns the second call's cache header and the upstream count.
 */
async function twice(project: string, call: () => Promise<{ cache: string | null }>) {
  await t.admin({ action: 'setLimit', project, limit: 10 });
  const before = t.fake.requests.length;
  const first = await call();
  assert.is(first.cache, 'miss');
  await rowOf(project, (r) => r.requests === 1);
  await new Promise((r) => setTimeout(r, 100));
  const second = await call();
  const row = await rowOf(project, (r) => r.requests === 2 || r.cacheHits > 0);
  return { second: second.cache, forwarded: t.fake.requests.length - before, row };
}

async function chatStream(c: OpenAI, content: string) {
  const { data, response } = await c.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: say(content) }).withResponse();
  const error = await (async () => {
    for await (const _ of data);
  })().then(() => undefined, (e) => e);
  return { cache: response.headers.get('openai-proxy-cache'), error };
}

async function responsesStream(c: OpenAI, body: { input: string; max_output_tokens?: number }) {
  const { data, response } = await c.responses.create({ model: 'gpt-4.1-mini', stream: true, ...body }).withResponse();
  const types: string[] = [];
  for await (const event of data) types.push(event.type);
  return { cache: response.headers.get('openai-proxy-cache'), last: types.at(-1) };
}

test('a chat stream that ends in an error event and [DONE] is billed, never cached', async () => {
  const c = t.client({ project: 'err-chat' });
  const r = await twice('err-chat', async () => {
    const s = await chatStream(c, 'fail me fake:words=12 fake:midstream_error=4');
    assert.instance(s.error, OpenAI.APIError, 'the client saw the error event');
    return s;
  });
  assert.is(r.second, 'miss', 'the second call is not a replay');
  assert.is(r.forwarded, 2);
  assert.is(r.row.cacheHits, 0);
  assert.is(r.row.saved, 0);
  assert.is(r.row.requests, 2);
  assert.ok(r.row.spend > 0, 'an error mid-stream still cost tokens');
});

test('a Responses stream that ends in response.failed is billed, never cached', async () => {
  const c = t.client({ project: 'err-responses' });
  const r = await twice('err-responses', async () => {
    const s = await responsesStream(c, { input: 'fail me fake:words=12 fake:midstream_error=3' });
    assert.is(s.last, 'response.failed');
    return s;
  });
  assert.is(r.second, 'miss');
  assert.is(r.forwarded, 2);
  assert.is(r.row.cacheHits, 0);
  assert.is(r.row.requests, 2);
});

test('a Responses stream that ends in response.incomplete is not cached; response.completed is', async () => {
  const c = t.client({ project: 'cut-responses' });
  const cut = await twice('cut-responses', async () => {
    const s = await responsesStream(c, { input: 'long fake:words=40', max_output_tokens: 16 });
    assert.is(s.last, 'response.incomplete');
    return s;
  });
  assert.is(cut.second, 'miss');
  assert.is(cut.row.cacheHits, 0);

  // The control: the same path does cache a whole answer, so the misses above mean something.
  const ok = t.client({ project: 'good-responses' });
  const good = await twice('good-responses', async () => {
    const s = await responsesStream(ok, { input: 'fine fake:words=5' });
    assert.is(s.last, 'response.completed');
    return s;
  });
  assert.is(good.second, 'hit');
  assert.is(good.forwarded, 1);
  assert.is(good.row.cacheHits, 1);
});

/** The arguments `fake:tool_args=BYTES` produces, asked of the fake directly (not metered). */
async function toolArguments(bytes: number): Promise<string> {
  const direct = new OpenAI({ apiKey: t.fake.apiKey, baseURL: t.fake.url, maxRetries: 0 });
  const plain = await direct.chat.completions.create({ model: 'gpt-4o-mini', messages: say(`fake:tool_args=${bytes}`) });
  const call = plain.choices[0].message.tool_calls![0];
  return call.type === 'function' ? call.function.arguments : '';
}

test('chat: a stream cut off after 6 KB of tool-call arguments is estimated from the arguments', async () => {
  const project = 'tool-chat';
  await t.admin({ action: 'setLimit', project, limit: 10 });
  const args = await toolArguments(6000);
  assert.ok(args.length >= 6000);
  const argTokens = encode(args).length;
  const c = t.client({ project, caching: false });
  // The upstream breaks after the last argument delta: no finish chunk, no usage, no [DONE].
  const stream = await c.chat.completions.create({
    model: 'gpt-4o-mini', stream: true, messages: say(`fake:tool_args=6000 fake:break=${argTokens}`),
    tools: [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: {} } } }],
  });
  let received = '';
  const err = await (async () => {
    for await (const chunk of stream) received += chunk.choices[0]?.delta?.tool_calls?.[0]?.function?.arguments ?? '';
  })().then(() => undefined, (e) => e);
  assert.instance(err, OpenAI.APIError, 'the client heard the stream broke');
  assert.is(received, args);
  const row = await rowOf(project, (r) => r.requests === 1);
  assert.is(row.estimated, 1);
  assert.ok(row.outputTokens >= argTokens, `${row.outputTokens} output tokens booked for ${argTokens} tokens of arguments`);
});

test('Responses: a stream cut off after 6 KB of function-call arguments is estimated from them', async () => {
  const project = 'tool-responses';
  await t.admin({ action: 'setLimit', project, limit: 10 });
  const argTokens = encode(await toolArguments(6000)).length;
  const c = t.client({ project, caching: false });
  const stream = await c.responses.create({ model: 'gpt-4.1-mini', stream: true, input: `fake:tool_args=6000 fake:break=${argTokens}` });
  let received = '';
  await (async () => {
    for await (const event of stream) if (event.type === 'response.function_call_arguments.delta') received += event.delta;
  })().catch(() => undefined);
  assert.ok(received.length >= 6000);
  const row = await rowOf(project, (r) => r.requests === 1);
  assert.is(row.estimated, 1);
  assert.ok(row.outputTokens >= argTokens, `${row.outputTokens} output tokens booked for ${argTokens} tokens of arguments`);
});

test.run();
