// Requests and tokens per minute, and USD per day, end to end: the official `openai` client through
// the local stack (SQLite, real SigV4) against the fake upstream. The stack's clock is shifted so
// that a test can sit near the end of a minute (or a day) instead of waiting for one.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import OpenAI from 'openai';
import { startTestStack, settled, type TestStack } from './helpers/stack.ts';

let offset = 0;
const clock = () => Date.now() + offset;
/** Shifts the stack's clock so that it now reads `seconds` into a fresh minute. */
function atSecond(seconds: number): void {
  const real = Date.now();
  offset = Math.ceil(real / 60_000) * 60_000 + seconds * 1000 - real;
}

/** Moves the stack's clock to `seconds` into the minute it is in now (the same rate window). */
function laterInThisMinute(seconds: number): void {
  const minute = Math.floor(clock() / 60_000) * 60_000;
  offset = minute + seconds * 1000 - Date.now();
}

let t: TestStack;
test.before(async () => {
  t = await startTestStack({ stack: { now: clock } });
});
test.after(() => t.close());

const say = (content: string, extra: Record<string, unknown> = {}) => ({
  model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content }], ...extra,
});
const forwarded = () => t.fake.requests.length;

/** A client whose attempts (retries included) are counted. */
function countingClient(project: string, maxRetries: number, caching = false): { client: OpenAI; attempts: () => number } {
  let attempts = 0;
  const signed = t.fetchAs();
  const client = new OpenAI({
    apiKey: 'unused',
    baseURL: `${t.stack.url}/dev/v1`,
    maxRetries,
    fetch: ((input: RequestInfo | URL, init?: RequestInit) => {
      attempts++;
      return signed(input, init);
    }) as typeof fetch,
    defaultHeaders: { 'openai-proxy-project': project, ...(caching ? {} : { 'openai-proxy-caching': '0' }) },
  });
  return { client, attempts: () => attempts };
}

const limitOf = async (project: string) => (await t.admin({ action: 'listLimits', project })).limits[0];

test('an RPM of 3 against 32 concurrent calls: exactly 3 served, the rest refused with OpenAI\'s 429 and headers', async () => {
  atSecond(5);
  await t.admin({ action: 'setLimit', project: 'rpm', limit: 5, rpm: 3 });
  const before = forwarded();
  const client = t.client({ project: 'rpm', caching: false });
  const results = await Promise.all(Array.from({ length: 32 }, (_, i) => client.chat.completions.create(say(`call ${i}`)).then(() => null, (e) => e)));
  const refused = results.filter((r) => r !== null);
  assert.is(results.length - refused.length, 3);
  assert.is(forwarded() - before, 3, 'refused calls never reach OpenAI');
  for (const err of refused) {
    assert.instance(err, OpenAI.RateLimitError);
    assert.is(err.status, 429);
    assert.is(err.code, 'rate_limit_exceeded');
    assert.is(err.type, 'requests');
    assert.match(err.message, /requests per min \(RPM\): Limit 3, Used 3, Requested 1/);
    assert.match(err.message, /openai-wrapi limits set --stage dev --project "rpm" --rpm <n>/);
    const h = err.headers as Headers;
    assert.is(h.get('x-ratelimit-limit-requests'), '3');
    assert.is(h.get('x-ratelimit-remaining-requests'), '0');
    assert.match(h.get('x-ratelimit-reset-requests')!, /^\d+(\.\d+)?(ms|s)$/);
    const wait = Number(h.get('retry-after'));
    assert.ok(wait >= 50 && wait <= 56, `retry-after ${wait}s is the rest of the minute`);
    assert.is(h.get('x-should-retry'), null, 'the client may retry it');
  }
  const use = await limitOf('rpm');
  assert.equal([use.rpm, use.minuteRequests], [3, 3]);
});

test('the client\'s own retry waits for the next window and succeeds', async () => {
  await t.admin({ action: 'setLimit', project: 'rpm-retry', limit: 5, rpm: 3 });
  atSecond(5);
  const { client, attempts } = countingClient('rpm-retry', 2);
  for (let i = 0; i < 3; i++) await client.chat.completions.create(say(`fill ${i}`));
  assert.is(attempts(), 3);
  // 1.5 s before the window ends: the refusal says retry-after 2, and the client waits that long.
  laterInThisMinute(58.5);
  const started = Date.now();
  const answer = await client.chat.completions.create(say('the fourth'));
  assert.ok(answer.choices[0].message.content);
  assert.is(attempts(), 5, 'refused once, then served');
  assert.ok(Date.now() - started >= 900, 'it waited for retry-after');
});

test('a budget refusal stays final: not retried, x-should-retry false', async () => {
  await t.admin({ action: 'setLimit', project: 'broke', limit: 0, rpm: 100 });
  const { client, attempts } = countingClient('broke', 2);
  const err = await client.chat.completions.create(say('hi')).catch((e) => e);
  assert.instance(err, OpenAI.RateLimitError);
  assert.is(err.code, 'budget_exceeded');
  assert.is(err.headers.get('x-should-retry'), 'false');
  assert.is(attempts(), 1);
  assert.is((await limitOf('broke')).minuteRequests, 0, 'a refused call gives its request back');
});

test('TPM: worst case reserved while the call runs, settled to the actual; a call that can never fit is final', async () => {
  atSecond(5);
  await t.admin({ action: 'setLimit', project: 'tpm', limit: 5, tpm: 1_000 });
  const { client, attempts } = countingClient('tpm', 2);
  const { data, response } = await client.chat.completions.create(say('hello fake:words=300', { max_completion_tokens: 400 })).withResponse();
  // Held while it ran: its input (at most its UTF-8 bytes and framing) and 400 output tokens.
  const held = 1_000 - Number(response.headers.get('x-ratelimit-remaining-tokens'));
  assert.ok(held >= 400 && held <= 520, `held ${held}`);
  assert.is(response.headers.get('x-ratelimit-limit-tokens'), '1000');
  const used = data.usage!.prompt_tokens + data.usage!.completion_tokens;
  assert.ok(used > 300 && used < held);
  await settled(t, async () => (await limitOf('tpm')).minuteTokens === used);

  const never = await client.chat.completions.create(say('big', { max_completion_tokens: 5_000 })).catch((e) => e);
  assert.instance(never, OpenAI.RateLimitError);
  assert.is(never.type, 'tokens');
  assert.is(never.headers.get('x-should-retry'), 'false');
  assert.match(never.message, /tokens per min \(TPM\): Limit 1000/);
  assert.is(attempts(), 2, 'not retried');

  const later = await t.client({ project: 'tpm', caching: false }).chat.completions.create(say('later', { max_completion_tokens: 900 })).catch((e) => e);
  assert.instance(later, OpenAI.RateLimitError);
  assert.is(later.headers.get('x-should-retry'), null, 'it fits in a later window: retryable');
  assert.is(later.headers.get('x-ratelimit-remaining-tokens'), String(1_000 - used));
  assert.is((await limitOf('tpm')).minuteTokens, used, 'the refusal took nothing');
});

test('cache hits count toward RPM but not TPM or USD', async () => {
  atSecond(5);
  await t.admin({ action: 'setLimit', project: 'hits', limit: 5, rpm: 2, tpm: 100_000 });
  const client = t.client({ project: 'hits' });
  const first = await client.chat.completions.create(say('same question fake:words=3')).withResponse();
  assert.is(first.response.headers.get('x-ratelimit-remaining-requests'), '1');
  const used = first.data.usage!.prompt_tokens + first.data.usage!.completion_tokens;
  await settled(t, async () => (await limitOf('hits')).minuteTokens === used);
  const hit = await client.chat.completions.create(say('same question fake:words=3')).withResponse();
  assert.is(hit.response.headers.get('openai-proxy-cache'), 'hit');
  assert.is(hit.response.headers.get('x-ratelimit-remaining-requests'), '0');
  assert.is(hit.response.headers.get('x-ratelimit-remaining-tokens'), null, 'no stale window replayed: a hit takes no tokens');
  const third = await client.chat.completions.create(say('same question fake:words=3')).catch((e) => e);
  assert.instance(third, OpenAI.RateLimitError);
  assert.is(third.code, 'rate_limit_exceeded');
  const use = await limitOf('hits');
  assert.equal([use.minuteRequests, use.minuteTokens], [2, used]);
  assert.is(use.committed, (await t.admin({ action: 'listLimits', project: 'hits' })).limits[0].spend, 'the hit spent nothing');
});

test('a daily limit: crossing it refuses for the rest of the day (UTC), finally; the next day it passes again', async () => {
  atSecond(5);
  await t.admin({ action: 'setPrice', model: 'day-model', input: 0, output: 1000 }); // $0.001 per output token
  await t.admin({ action: 'setLimit', project: 'daily', limit: 1 });
  await t.admin({ action: 'setLimit', project: 'daily', limit: 0.005, period: 'day' });
  const { client, attempts } = countingClient('daily', 2);
  const call = () => client.chat.completions.create({ model: 'day-model', messages: [{ role: 'user', content: 'x fake:words=1' }], max_completion_tokens: 2 });
  const { response } = await call().withResponse();
  // The budget headers speak of the tightest limit: today's, not the month's.
  assert.is(response.headers.get('openai-proxy-budget-limit'), '0.005000');
  assert.is(response.headers.get('openai-proxy-budget-scope'), 'project=daily user=* model=* period=day');
  const left = Number(response.headers.get('openai-proxy-budget-remaining'));
  assert.ok(Math.abs(left - (0.005 - Number(response.headers.get('openai-proxy-cost')))) < 1e-6, `remaining ${left}`);
  await call();
  const err = await call().catch((e) => e);
  assert.instance(err, OpenAI.RateLimitError);
  assert.is(err.code, 'budget_exceeded');
  assert.match(err.message, /Daily limit of \$0\.005000 for project "daily" in stage dev would be exceeded/);
  assert.match(err.message, /--limit <usd> --period day/);
  assert.is(err.headers.get('x-should-retry'), 'false');
  assert.is(attempts(), 3, 'a budget refusal is not retried');
  const status = await limitOf('daily');
  assert.equal([status.limit, status.dailyLimit], [1, 0.005]);
  assert.ok(status.today > 0.003 && status.today <= 0.005, `today ${status.today}`);
  offset += 86_400_000;
  await call();
  assert.ok((await limitOf('daily')).today <= 0.002, 'a new day starts from nothing');
});

test.run();
