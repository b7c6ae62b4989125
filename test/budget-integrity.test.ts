// Budget integrity, tried as an adversarial user would through the local stack with the official
// client: no way past a limit, and no call billed below what OpenAI bills.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import OpenAI from 'openai';
import { startTestStack, settled, type TestStack } from './helpers/stack.ts';

let t: TestStack;
const say = (content: string) => [{ role: 'user' as const, content }];
const forwarded = () => t.fake.requests.length;

test.before(async () => {
  t = await startTestStack();
});
test.after(() => t.close());

/** This month's detail row of a project once a call has settled on it. */
async function rowOf(s: TestStack, project: string, until = (r: any) => r.requests + r.errors > 0, ms = 5_000) {
  let row: any;
  await settled(s, async () => {
    row = (await s.admin({ action: 'usage' })).rows.find((r: any) => r.project === project);
    return !!row && until(row);
  }, ms);
  return row;
}

/** The "may cost up to $X" of a refusal, in USD. */
const worstOf = (err: any) => Number(/may cost up to \$(\d+(?:\.\d+)?)/.exec(err.message)?.[1]);

test('n multiplies the reservation: n=128 is refused with the output tokens that would fit, and that advice works', async () => {
  await t.admin({ action: 'setLimit', project: 'many', limit: 1 });
  const c = t.client({ project: 'many', caching: false });
  const before = forwarded();
  const err = await c.chat.completions
    .create({ model: 'gpt-4o', n: 128, max_tokens: 4096, messages: say('hi') })
    .catch((e) => e);
  assert.instance(err, OpenAI.RateLimitError);
  assert.is(err.code, 'budget_exceeded');
  assert.ok(worstOf(err) > 5, err.message); // 128 x 4096 output tokens at $10/1M
  const fit = Number(/At most (\d+) output tokens would fit: set max_completion_tokens to \d+ or less/.exec(err.message)?.[1]);
  assert.ok(fit > 0 && fit < 4096, err.message);
  assert.is(forwarded(), before, 'a refused call never reaches OpenAI');
  // Taking the advice fits exactly: reserved, forwarded, settled.
  const ok = await c.chat.completions.create({ model: 'gpt-4o', n: 128, max_completion_tokens: fit, messages: say('hi') });
  assert.ok(ok.id);
  assert.is(forwarded(), before + 1);
});

test("a reasoning model with no max is reserved at its own output cap, not 4,096 tokens", async () => {
  await t.admin({ action: 'setLimit', project: 'thinker', limit: 1 });
  const err = await t.client({ project: 'thinker', caching: false }).chat.completions
    .create({ model: 'o1', messages: say('think hard') })
    .catch((e) => e);
  assert.is(err.code, 'budget_exceeded');
  // o1: 100,000 output tokens at $60/1M.
  assert.ok(worstOf(err) >= 6, err.message);
});

test('every input sent counts: tool schemas raise the reservation; stored history counts at the input cap', async () => {
  await t.admin({ action: 'setLimit', project: 'tools', limit: 0.000001 });
  const c = t.client({ project: 'tools', caching: false });
  const plain = await c.chat.completions.create({ model: 'gpt-4o', max_tokens: 10, messages: say('hi') }).catch((e) => e);
  const description = 'x'.repeat(30_000);
  const tools = [{ type: 'function' as const, function: { name: 'lookup', description, parameters: { type: 'object', properties: {} } } }];
  const withTools = await c.chat.completions.create({ model: 'gpt-4o', max_tokens: 10, messages: say('hi'), tools }).catch((e) => e);
  // 30,000 more bytes of input at gpt-4o's $2.50/1M: at least $0.075 more.
  assert.ok(worstOf(withTools) - worstOf(plain) >= 0.075, `${worstOf(plain)} → ${worstOf(withTools)}`);
  const history = await c.responses
    .create({ model: 'gpt-4o', input: 'and then?', previous_response_id: 'resp_123', max_output_tokens: 10 })
    .catch((e) => e);
  // gpt-4o's 128,000 input tokens at $2.50/1M.
  assert.ok(worstOf(history) >= 0.32, history.message);
});

test('a continued response is reserved by the size the proxy recorded for it; one it never saw, by the input cap', async () => {
  // gpt-4o's whole input window alone would be $0.32: far above this limit.
  await t.admin({ action: 'setLimit', project: 'convo', limit: 0.05 });
  const c = t.client({ project: 'convo', caching: false });
  const first = await c.responses.create({ model: 'gpt-4o', input: 'hello fake:words=20', max_output_tokens: 50 });
  await rowOf(t, 'convo');
  const next = await c.responses.create({ model: 'gpt-4o', input: 'and then?', previous_response_id: first.id, max_output_tokens: 50 });
  assert.ok(next.id);
  const unseen = await c.responses
    .create({ model: 'gpt-4o', input: 'and then?', previous_response_id: 'resp_0123456789abcdef', max_output_tokens: 50 })
    .catch((e) => e);
  assert.is(unseen.code, 'budget_exceeded');
  assert.ok(worstOf(unseen) >= 0.32, unseen.message);
});

test('audio asked for is reserved at the audio output rate, not the text rate', async () => {
  await t.admin({ action: 'setLimit', project: 'voice', limit: 0.000001 });
  const err = await t.client({ project: 'voice', caching: false }).chat.completions
    .create({
      model: 'gpt-4o-audio-preview', modalities: ['text', 'audio'], audio: { voice: 'alloy', format: 'wav' },
      max_completion_tokens: 1000, messages: say('say hi'),
    })
    .catch((e) => e);
  assert.is(err.code, 'budget_exceeded');
  // 1,000 output tokens at the table's $80/1M audio rate (text would be $10/1M).
  assert.ok(worstOf(err) >= 0.08, err.message);
});

test('a model limit binds its dated snapshots; a limit set on a snapshot binds the family', async () => {
  await t.admin({ action: 'setLimit', project: 'snap', limit: 10 });
  const set = await t.admin({ action: 'setLimit', project: 'snap', model: 'gpt-4o-2024-08-06', limit: 0.05 });
  assert.is(set.limit.model, 'gpt-4o');
  const c = t.client({ project: 'snap', caching: false });
  let refused: any;
  for (let i = 0; i < 20 && !refused; i++) {
    const id = i % 2 ? 'gpt-4o-2024-08-06' : 'gpt-4o-2024-11-20';
    await c.chat.completions
      .create({ model: id, max_completion_tokens: 1000, messages: say('fake:words=900') })
      .catch((e) => (refused = e));
  }
  assert.ok(refused, 'the model limit refused a snapshot');
  assert.match(refused.message, /model "gpt-4o"/);
  const limit = (await t.admin({ action: 'listLimits', project: 'snap' })).limits.find((l: any) => l.model === 'gpt-4o');
  assert.ok(limit.committed <= 0.05 && limit.spend > 0.03, JSON.stringify(limit));
});

test('a reasoning stream the client leaves before the usage chunk is billed at OpenAI\'s usage', async () => {
  await t.admin({ action: 'setLimit', project: 'leaver', limit: 5 });
  const c = t.client({ project: 'leaver', caching: false });
  const ac = new AbortController();
  const stream = await c.chat.completions.create(
    { model: 'o3', stream: true, messages: say('fake:words=60 fake:reasoning=50000 fake:slow=2') },
    { signal: ac.signal },
  );
  let chunks = 0;
  await (async () => {
    for await (const _ of stream) if (++chunks === 55) ac.abort();
  })().catch(() => undefined);
  const row = await rowOf(t, 'leaver');
  assert.is(row.estimated, 0);
  assert.is(row.outputTokens, 50_061, 'reasoning and every word, not what the client saw');
  // o3: $8/1M output.
  assert.ok(row.spend >= 0.4, JSON.stringify(row));
});

test('a non-streamed call whose client times out is still billed at OpenAI\'s usage', async () => {
  await t.admin({ action: 'setLimit', project: 'impatient', limit: 5 });
  const c = t.client({ project: 'impatient', caching: false });
  const err = await c.chat.completions
    .create({ model: 'o3', messages: say('fake:words=10 fake:reasoning=20000 fake:slow=400') }, { timeout: 100 })
    .catch((e) => e);
  assert.instance(err, OpenAI.APIConnectionTimeoutError);
  const row = await rowOf(t, 'impatient');
  assert.is(row.estimated, 0);
  assert.is(row.outputTokens, 20_011);
});

test('a connection reset after the request was sent is billed conservatively; a refused connection costs nothing', async () => {
  const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
  const refused = Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } });
  let failure: Error = reset;
  const s = await startTestStack({ stack: { upstream: async () => { throw failure; } } });
  try {
    await s.admin({ action: 'setLimit', project: 'reset', limit: 1 });
    await s.admin({ action: 'setLimit', project: 'refused', limit: 1 });
    const err = await s.client({ project: 'reset', caching: false }).chat.completions
      .create({ model: 'gpt-4o-mini', messages: say('hello') })
      .catch((e) => e);
    assert.is(err.status, 502);
    const row = await rowOf(s, 'reset');
    assert.is(row.estimated, 1);
    assert.is(row.outputTokens, 16_384, "gpt-4o-mini's own output cap: OpenAI may have finished the call");
    assert.ok(row.spend > 0.0098, JSON.stringify(row));
    failure = refused;
    await s.client({ project: 'refused', caching: false }).chat.completions
      .create({ model: 'gpt-4o-mini', messages: say('hello') })
      .catch((e) => e);
    const none = await rowOf(s, 'refused');
    assert.equal([none.requests, none.errors, none.spend], [0, 1, 0]);
  } finally {
    await s.close();
  }
});

test("one instant decides a call's month and day: reserved on 30 Nov, settled on 1 Dec", async () => {
  let clock = Date.parse('2026-11-30T23:59:59.900Z');
  const s = await startTestStack({ stack: { now: () => clock } });
  try {
    await s.admin({ action: 'setLimit', project: 'midnight', limit: 1 });
    const call = s.client({ project: 'midnight', caching: false }).chat.completions
      .create({ model: 'gpt-4o-mini', messages: say('fake:delay_first=300') });
    setTimeout(() => (clock = Date.parse('2026-12-01T00:00:00.200Z')), 100);
    await call;
    await settled(s, async () => (await s.admin({ action: 'usage', month: '2026-11' })).totals.requests === 1);
    const november = await s.admin({ action: 'usage', month: '2026-11', daily: true });
    assert.equal(november.days.map((d: any) => d.day), ['2026-11-30']);
    const december = await s.admin({ action: 'usage', month: '2026-12', daily: true });
    assert.equal([december.rows.length, december.days.length], [0, 0]);
  } finally {
    await s.close();
  }
});

test.run();
