// Limits and reservations through the local stack: refusals are OpenAI-shaped, never retried, and
// concurrent calls cannot push spend past a limit.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import OpenAI from 'openai';
import { startTestStack, settled, type TestStack } from './helpers/stack.ts';

let t: TestStack;
const say = (content: string) => [{ role: 'user' as const, content }];

test.before(async () => {
  t = await startTestStack();
});
test.after(() => t.close());

const forwarded = () => t.fake.requests.length;

test('a project without any limit is refused, with how to fix it, and nothing is forwarded', async () => {
  const before = forwarded();
  const c = t.client({ project: 'no-limit', maxRetries: 2 });
  const err = await c.chat.completions.create({ model: 'gpt-4o-mini', messages: say('hi') }).catch((e) => e);
  assert.instance(err, OpenAI.PermissionDeniedError);
  assert.is(err.status, 403);
  assert.is(err.code, 'project_not_allowed');
  assert.match(err.message, /no spending limit/);
  assert.match(err.message, /openai-wrapi limits set --stage dev --project "no-limit"/);
  assert.is(err.headers.get('x-should-retry'), 'false');
  assert.is(forwarded(), before, 'refused calls never reach OpenAI');
});

test('the default project is N/A and is refused too unless limited', async () => {
  const err = await t.client().chat.completions.create({ model: 'gpt-4o-mini', messages: say('hi') }).catch((e) => e);
  assert.match(err.message, /Project "N\/A"/);
});

test('a limit hit exactly: the call that fits passes, the next is refused with scope, limit and spend', async () => {
  // Reserve exactly: prompt estimate + max_tokens at output price. Learn the reservation size by
  // spending: set the limit so that exactly one call with max_tokens fits.
  await t.admin({ action: 'setPrice', model: 'flat-model', input: 0, output: 1000 }); // $0.001 per output token
  const limit = 0.002; // two output tokens' worth
  await t.admin({ action: 'setLimit', project: 'exact', limit });
  const c = t.client({ project: 'exact', caching: false });
  // max_tokens 2 → worst case exactly $0.002 = the limit: allowed.
  const ok = await c.chat.completions.create({ model: 'flat-model', max_tokens: 2, messages: say('x fake:words=1') });
  assert.is(ok.usage!.completion_tokens, 2);
  await settled(t, async () => {
    const l = (await t.admin({ action: 'listLimits', project: 'exact' })).limits[0];
    return Math.abs(l.spend - limit) < 1e-12;
  });
  const before = forwarded();
  const err = await c.chat.completions.create({ model: 'flat-model', max_tokens: 1, messages: say('x') }).catch((e) => e);
  assert.instance(err, OpenAI.RateLimitError);
  assert.is(err.code, 'budget_exceeded');
  assert.is(err.type, 'insufficient_quota');
  assert.match(err.message, /Monthly limit of \$0\.002000 for project "exact"/);
  assert.match(err.message, /\$0\.002000 is spent or reserved/);
  assert.is(err.headers.get('x-should-retry'), 'false');
  assert.is(forwarded(), before);
});

test('user and model limits apply on top of the project limit', async () => {
  await t.user('ursula');
  await t.admin({ action: 'setLimit', project: 'layered', limit: 100 });
  await t.admin({ action: 'setLimit', project: 'layered', user: 'ursula', model: 'gpt-4o', limit: 0.00001 });
  const c = t.client({ user: 'ursula', project: 'layered', caching: false });
  const err = await c.chat.completions.create({ model: 'gpt-4o', messages: say('hello') }).catch((e) => e);
  assert.is(err.code, 'budget_exceeded');
  assert.match(err.message, /project "layered", user "ursula", model "gpt-4o"/);
  assert.match(err.message, /--user "ursula" --model "gpt-4o"/);
  // Another model of the same user is only bounded by the project limit.
  const ok = await c.chat.completions.create({ model: 'gpt-4o-mini', messages: say('hello') });
  assert.ok(ok.id);
});

test('32 concurrent calls against a small limit never spend past it', async () => {
  await t.admin({ action: 'setPrice', model: 'tiny-model', input: 0, output: 1000 });
  await t.admin({ action: 'setLimit', project: 'race', limit: 0.05 }); // room for 10 calls of max 5 tokens
  const c = t.client({ project: 'race', caching: false });
  const before = forwarded();
  const results = await Promise.allSettled(
    Array.from({ length: 32 }, (_, i) =>
      c.chat.completions.create({ model: 'tiny-model', max_tokens: 5, messages: say(`call ${i} fake:words=4 fake:slow=20`) }),
    ),
  );
  const passed = results.filter((r) => r.status === 'fulfilled').length;
  const refused = results.filter((r) => r.status === 'rejected' && (r.reason as any).code === 'budget_exceeded').length;
  assert.is(passed, 10);
  assert.is(refused, 22);
  assert.is(forwarded() - before, 10);
  await settled(t, async () => {
    const l = (await t.admin({ action: 'listLimits', project: 'race' })).limits[0];
    return Math.abs(l.committed - l.spend) < 1e-12;
  });
  const l = (await t.admin({ action: 'listLimits', project: 'race' })).limits[0];
  assert.ok(l.spend <= 0.05 + 1e-12, `spent ${l.spend}`);
  assert.ok(Math.abs(l.spend - 10 * 5 * 0.001) < 1e-12);
});

test('an unknown model is refused with how to price it; a price override works at once', async () => {
  await t.admin({ action: 'setLimit', project: 'pricing', limit: 10 });
  const c = t.client({ project: 'pricing', caching: false });
  const before = forwarded();
  const err = await c.chat.completions.create({ model: 'my-finetune-x', messages: say('hi') }).catch((e) => e);
  assert.instance(err, OpenAI.BadRequestError);
  assert.is(err.code, 'model_not_priced');
  assert.match(err.message, /openai-wrapi prices set --stage dev --model "my-finetune-x"/);
  assert.is(forwarded(), before);
  await t.admin({ action: 'setPrice', model: 'my-finetune-x', input: 1, output: 2 });
  const { data, response } = await c.chat.completions.create({ model: 'my-finetune-x', messages: say('hi') }).withResponse();
  const expected = data.usage!.prompt_tokens * 1000 + data.usage!.completion_tokens * 2000;
  assert.is(Math.round(Number(response.headers.get('openai-proxy-cost')) * 1e9), expected);
});

test('dated models resolve to their family price', async () => {
  await t.admin({ action: 'setLimit', project: 'family', limit: 10 });
  const c = t.client({ project: 'family', caching: false });
  const { data, response } = await c.chat.completions.create({ model: 'gpt-4o-2099-01-01', messages: say('hi') }).withResponse();
  const expected = data.usage!.prompt_tokens * 2500 + data.usage!.completion_tokens * 10000;
  assert.is(Math.round(Number(response.headers.get('openai-proxy-cost')) * 1e9), expected);
});

test('budget headers tell the caller what is left in the tightest scope', async () => {
  await t.admin({ action: 'setLimit', project: 'headers', limit: 1 });
  await t.admin({ action: 'setLimit', project: 'headers', model: 'gpt-4o-mini', limit: 0.5 });
  const c = t.client({ project: 'headers', caching: false });
  const { response } = await c.chat.completions.create({ model: 'gpt-4o-mini', messages: say('hi') }).withResponse();
  const cost = Number(response.headers.get('openai-proxy-cost'));
  assert.ok(cost > 0);
  assert.is(response.headers.get('openai-proxy-budget-limit'), '0.500000');
  assert.is(response.headers.get('openai-proxy-budget-scope'), 'project=headers user=* model=gpt-4o-mini');
  assert.ok(Math.abs(Number(response.headers.get('openai-proxy-budget-remaining')) - (0.5 - cost)) < 1e-6);
});

test("a stream's budget headers do not count its own worst-case reservation as spent", async () => {
  await t.admin({ action: 'setLimit', project: 'stream-headers', limit: 0.05 });
  const c = t.client({ project: 'stream-headers', caching: false });
  const { data: stream, response } = await c.chat.completions
    .create({ model: 'gpt-4o', stream: true, max_completion_tokens: 4000, messages: say('hi fake:words=5') })
    .withResponse();
  for await (const _ of stream);
  // The call holds up to $0.04 while it runs; nothing of this project was spent before it.
  assert.is(response.headers.get('openai-proxy-budget-remaining'), '0.050000');
});

test('a stack default limit lets unlimited projects in', async () => {
  const d = await startTestStack({ env: { OPENAI_WRAPI_DEFAULT_PROJECT_LIMIT: '0.00001' } });
  try {
    const c = d.client({ project: 'anything', caching: false });
    const ok = await c.embeddings.create({ model: 'text-embedding-3-small', input: 'a' });
    assert.ok(ok.data.length === 1);
    const err = await c.chat.completions.create({ model: 'gpt-4o', messages: say('hi') }).catch((e) => e);
    assert.is(err.code, 'budget_exceeded', 'the default limit is a real limit');
  } finally {
    await d.close();
  }
});

test('the default limit is one budget per user across projects without their own: a new name is not a new budget', async () => {
  // gpt-4o-mini with max 100 output tokens: about $0.00007 at most per call.
  const d = await startTestStack({ env: { OPENAI_WRAPI_DEFAULT_PROJECT_LIMIT: '0.0002' } });
  try {
    await d.user('bob');
    const call = (user: string, project: string) =>
      d.client({ user, project, caching: false }).chat.completions
        .create({ model: 'gpt-4o-mini', max_completion_tokens: 100, messages: say('hi fake:words=20') })
        .then(() => 'ok', (e) => e);
    const outcomes: any[] = [];
    for (let i = 0; i < 12; i++) outcomes.push(await call('default', `scratch-${i}`));
    const refused = outcomes.filter((o) => o !== 'ok');
    assert.ok(refused.length > 0, 'inventing project names ran out of the default budget');
    const err = refused[0];
    assert.is(err.code, 'budget_exceeded');
    assert.match(err.message, /user "default" across the projects without a limit of their own/);
    assert.match(err.message, /limits set --stage dev --project "scratch-\d+" --limit <usd>/);
    // What was spent across those projects stays within the one default.
    await settled(d, async () => (await d.admin({ action: 'usage' })).rows.every((r: any) => r.requests > 0));
    const spent = (await d.admin({ action: 'usage' })).rows.filter((r: any) => r.user === 'default').reduce((n: number, r: any) => n + r.spend, 0);
    assert.ok(spent > 0 && spent <= 0.0002, `spent $${spent}`);
    // Another user has a default budget of their own, and a project with its own limit is not pooled.
    assert.is(await call('bob', 'scratch-0'), 'ok');
    await d.admin({ action: 'setLimit', project: 'listed', limit: 1 });
    assert.is(await call('default', 'listed'), 'ok');
  } finally {
    await d.close();
  }
});

test.run();
