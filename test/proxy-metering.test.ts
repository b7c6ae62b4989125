// Exact metering through the local stack with the official client: every API, streamed and not.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startTestStack, settled, type TestStack } from './helpers/stack.ts';

let t: TestStack;
const PROJECT = 'metering';
// gpt-4o-mini: $0.15 input, $0.075 cached input, $0.60 output per 1M tokens = nano-USD per token x1000.
const MINI = { input: 150, cached: 75, output: 600 };
const costNano = (input: number, cached: number, output: number, p = MINI) =>
  (input - cached) * p.input + cached * p.cached + output * p.output;

test.before(async () => {
  t = await startTestStack();
  await t.admin({ action: 'setLimit', project: PROJECT, limit: 100 });
});
test.after(() => t.close());

/** The detail row of a user/model in this month's report, once settlement has landed. */
async function rowFor(user: string, model: string, project = PROJECT, until = (r: any) => r.requests > 0) {
  let row: any;
  await settled(t, async () => {
    const report = await t.admin({ action: 'usage' });
    row = report.rows.find((r: any) => r.user === user && r.model === model && r.project === project);
    return !!row && until(row);
  });
  return row;
}

test('non-streamed chat: exact cost from the usage block, cost header, forwarded with the stage key', async () => {
  await t.user('nina');
  const c = t.client({ user: 'nina', project: PROJECT, caching: false });
  const { data, response } = await c.chat.completions
    .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hello fake:words=20 fake:cached=4' }] })
    .withResponse();
  const u = data.usage!;
  assert.is(u.prompt_tokens_details?.cached_tokens, 4);
  const expected = costNano(u.prompt_tokens, 4, u.completion_tokens);
  assert.is(Number(response.headers.get('openai-proxy-cost')), expected / 1e9);
  assert.is(response.headers.get('openai-proxy-cache'), 'bypass');
  assert.is(response.headers.get('openai-organization'), null, 'upstream org must not leak');
  const row = await rowFor('nina', 'gpt-4o-mini');
  assert.is(row.requests, 1);
  assert.is(row.inputTokens, u.prompt_tokens);
  assert.is(row.cachedTokens, 4);
  assert.is(row.outputTokens, u.completion_tokens);
  assert.is(Math.round(row.spend * 1e9), expected);
  assert.is(row.estimated, 0);
  assert.is(row.priceVersion, 'table@2026-11-17');
  const sent = t.fake.requests.at(-1)!;
  assert.is(sent.headers.authorization, `Bearer ${t.fake.apiKey}`);
  assert.is(sent.headers['openai-organization'], 'org-test');
});

test('reasoning tokens are billed once, as output', async () => {
  await t.user('rita');
  const c = t.client({ user: 'rita', project: PROJECT, caching: false });
  const data = await c.chat.completions.create({
    model: 'o3', messages: [{ role: 'user', content: 'Think fake:reasoning=50 fake:words=3' }],
  });
  assert.is(data.usage!.completion_tokens_details?.reasoning_tokens, 50);
  const row = await rowFor('rita', 'o3');
  // o3: $2 input, $0.50 cached, $8 output per 1M.
  const expected = costNano(data.usage!.prompt_tokens, 0, data.usage!.completion_tokens, { input: 2000, cached: 500, output: 8000 });
  assert.is(Math.round(row.spend * 1e9), expected);
  assert.is(row.outputTokens, data.usage!.completion_tokens);
});

test('streamed chat without include_usage: client sees no usage chunk, cost still exact', async () => {
  await t.user('sam');
  const c = t.client({ user: 'sam', project: PROJECT, caching: false });
  const prompt = 'Stream please fake:words=12';
  const stream = await c.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: prompt }] });
  let text = '';
  let sawUsage = false;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? '';
    if (chunk.usage || (chunk as any).usage === null) sawUsage = true;
  }
  assert.ok(text.length > 20);
  assert.not.ok(sawUsage, 'the injected usage chunk (and usage:null) must be stripped');
  assert.is((t.fake.requests.at(-1)!.body as any).stream_options.include_usage, true, 'proxy asks upstream for usage');
  // The same prompt non-streamed reports the usage the stream had.
  const plain = await c.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: prompt }] });
  const row = await rowFor('sam', 'gpt-4o-mini', PROJECT, (r) => r.requests === 2);
  assert.is(row.inputTokens, 2 * plain.usage!.prompt_tokens);
  assert.is(row.outputTokens, 2 * plain.usage!.completion_tokens);
  assert.is(Math.round(row.spend * 1e9), 2 * costNano(plain.usage!.prompt_tokens, 0, plain.usage!.completion_tokens));
});

test('streamed chat with include_usage: the client gets its usage chunk', async () => {
  const c = t.client({ project: PROJECT, caching: false });
  const stream = await c.chat.completions.create({
    model: 'gpt-4o-mini', stream: true, stream_options: { include_usage: true },
    messages: [{ role: 'user', content: 'with usage' }],
  });
  let usage: any;
  for await (const chunk of stream) if (chunk.usage) usage = chunk.usage;
  assert.ok(usage && usage.total_tokens === usage.prompt_tokens + usage.completion_tokens);
});

test('Responses API, streamed and not: usage from the body and from response.completed', async () => {
  await t.user('rhea');
  const c = t.client({ user: 'rhea', project: PROJECT, caching: false });
  const plain = await c.responses.create({ model: 'gpt-4.1', input: 'Answer me fake:words=6 fake:cached=2' });
  assert.ok(plain.output_text.length > 0);
  const stream = await c.responses.create({ model: 'gpt-4.1', input: 'Answer me fake:words=6 fake:cached=2', stream: true });
  let completed: any;
  for await (const event of stream) if (event.type === 'response.completed') completed = event.response.usage;
  assert.equal(completed, plain.usage);
  const u = plain.usage!;
  const row = await rowFor('rhea', 'gpt-4.1', PROJECT, (r) => r.requests === 2);
  // gpt-4.1: $2 input, $0.50 cached, $8 output.
  const each = costNano(u.input_tokens, 2, u.output_tokens, { input: 2000, cached: 500, output: 8000 });
  assert.is(Math.round(row.spend * 1e9), 2 * each);
  assert.is(row.cachedTokens, 4);
});

test('legacy completions (streamed and not) and embeddings are metered', async () => {
  await t.user('leo');
  const c = t.client({ user: 'leo', project: PROJECT, caching: false });
  const done = await c.completions.create({ model: 'gpt-3.5-turbo-instruct', prompt: 'Once upon a time fake:words=4' });
  const stream = await c.completions.create({ model: 'gpt-3.5-turbo-instruct', prompt: 'Once upon a time fake:words=4', stream: true });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
  assert.is(text, done.choices[0].text);
  const row = await rowFor('leo', 'gpt-3.5-turbo-instruct', PROJECT, (r) => r.requests === 2);
  // gpt-3.5-turbo-instruct: $1.50 input, $2 output.
  const each = done.usage!.prompt_tokens * 1500 + done.usage!.completion_tokens * 2000;
  assert.is(Math.round(row.spend * 1e9), 2 * each);

  const emb = await c.embeddings.create({ model: 'text-embedding-3-small', input: ['one text', 'another text'] });
  assert.is(emb.data.length, 2);
  assert.is(emb.data[0].embedding.length, 8);
  const erow = await rowFor('leo', 'text-embedding-3-small');
  assert.is(Math.round(erow.spend * 1e9), emb.usage.prompt_tokens * 20); // $0.02 per 1M
  assert.is(erow.outputTokens, 0);
});

test('GET models and moderations pass through unmetered', async () => {
  const c = t.client({ project: 'unlimited-project' });
  const models = await c.models.list();
  assert.ok(models.data.length > 0);
  const mod = await c.moderations.create({ model: 'omni-moderation-latest', input: 'hello' });
  assert.is(mod.results.length, 1);
});

test('two concurrent streams are both streamed and both metered', async () => {
  await t.user('cora');
  const c = t.client({ user: 'cora', project: PROJECT, caching: false });
  const run = async (n: number) => {
    const s = await c.chat.completions.create({
      model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: `stream ${n} fake:words=10 fake:slow=5` }],
    });
    let chunks = 0;
    for await (const _ of s) chunks++;
    return chunks;
  };
  const [a, b] = await Promise.all([run(1), run(2)]);
  assert.ok(a > 10 && b > 10);
  const row = await rowFor('cora', 'gpt-4o-mini', PROJECT, (r) => r.requests === 2);
  assert.is(row.estimated, 0);
  assert.ok(row.outputTokens === 22, `got ${row.outputTokens}`);
});

test('aggregates: the project total equals the sum of its rows', async () => {
  const report = await t.admin({ action: 'usage', by: 'project' });
  const group = report.groups.find((g: any) => g.key === PROJECT);
  const sum = report.rows.filter((r: any) => r.project === PROJECT).reduce((s: number, r: any) => s + r.spend, 0);
  assert.ok(Math.abs(group.spend - sum) < 1e-9);
  const limits = await t.admin({ action: 'listLimits' });
  const lim = limits.limits.find((l: any) => l.project === PROJECT);
  assert.ok(Math.abs(lim.spend - group.spend) < 1e-9, 'the project scope row counts every call');
  assert.ok(Math.abs(lim.committed - lim.spend) < 1e-9, 'all reservations released after settlement');
});

test.run();
