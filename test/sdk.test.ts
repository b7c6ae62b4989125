// The drop-in client end to end: `import OpenAI from 'openai-wrapi'` against the local stack, found
// through its outputs file and signed with the standard AWS chain reading its credentials file.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import OpenAI, {
  APIConnectionTimeoutError, APIUserAbortError, NotFoundError, PermissionDeniedError, RateLimitError, WrapiConfigError,
  budgetOf, toFile,
} from '../sdk/index.ts';
import { OpenAI as PlainOpenAI } from 'openai';
import { settled } from './helpers/stack.ts';
import { chat, startSdkStack, type SdkStack } from './helpers/sdk.ts';

let t: SdkStack;

test.before(async () => {
  t = await startSdkStack([['ann', false]]);
  for (const project of ['sdk', 'cache', 'other']) await t.admin({ action: 'setLimit', project, limit: 5 });
});
test.after(() => t.close());

/** A fetch that records what leaves the client, then sends it. */
function recording() {
  const sent: { url: string; headers: Headers }[] = [];
  const fetchImpl = (url: string | URL | Request, init?: RequestInit) => {
    sent.push({ url: String(url), headers: new Headers(init?.headers) });
    return fetch(url, init);
  };
  return { sent, fetch: fetchImpl };
}

const usageOf = async (project: string) => ((await t.admin({ action: 'usage', by: 'project' })).rows as any[]).filter((r) => r.project === project);

test('chat, not streamed: the answer, the cost and the budget left, billed to the project and user', async () => {
  const client = new OpenAI({ project: 'sdk', profile: 'ann', caching: false });
  assert.is(client.project, 'sdk');
  assert.is(client.staging, 'dev');
  assert.is(client.baseURL, `${t.stack.url}/dev/v1`);
  const { data, response } = await client.chat.completions.create(chat('hello fake:words=5')).withResponse();
  assert.is(data.choices[0].message.content, 'This answer comes from the.');
  const budget = budgetOf(response)!;
  assert.ok(budget.cost! > 0);
  assert.is(budget.limit, 5);
  assert.ok(Math.abs(budget.remaining! - (5 - budget.cost!)) < 1e-6);
  assert.equal(budget.scope, { project: 'sdk', user: '*', model: '*' });
  assert.is(budget.cache, 'bypass');
  await settled(t, async () => (await usageOf('sdk')).some((r) => r.user === 'ann'));
});

test('chat, streamed: for await, toReadableStream and the stream helper', async () => {
  const client = new OpenAI({ project: 'sdk', caching: false });
  let text = '';
  for await (const chunk of await client.chat.completions.create({ ...chat('stream fake:words=4'), stream: true })) {
    text += chunk.choices[0]?.delta?.content ?? '';
  }
  assert.is(text, 'This answer comes from.');

  const readable = (await client.chat.completions.create({ ...chat('readable fake:words=2'), stream: true })).toReadableStream();
  const body = await new Response(readable).text();
  const lines = body.trim().split('\n').map((l) => JSON.parse(l));
  assert.is(lines.map((l) => l.choices[0]?.delta?.content ?? '').join(''), 'This answer.');

  const helper = client.chat.completions.stream(chat('helper fake:words=3'));
  const final = await helper.finalChatCompletion();
  assert.is(final.choices[0].message.content, 'This answer comes.');
});

test('responses (plain and streamed) and embeddings', async () => {
  const client = new OpenAI({ project: 'sdk', caching: false });
  const res = await client.responses.create({ model: 'gpt-4o-mini', input: 'responses fake:words=3' });
  assert.is(res.output_text, 'This answer comes.');
  const stream = client.responses.stream({ model: 'gpt-4o-mini', input: 'responses stream fake:words=2' });
  assert.is((await stream.finalResponse()).output_text, 'This answer.');
  const emb = await client.embeddings.create({ model: 'text-embedding-3-small', input: ['a', 'b'] });
  assert.is(emb.data.length, 2);
  assert.ok(emb.data[0].embedding.length > 0);
  assert.ok((await client.models.list()).data.length > 0, 'free read-only routes too');
});

test('caching: a repeated call is answered from the cache for free; caching false bypasses it', async () => {
  const client = new OpenAI({ project: 'cache' });
  const first = await client.chat.completions.create(chat('cache me fake:words=3')).withResponse();
  const again = await client.chat.completions.create(chat('cache me fake:words=3')).withResponse();
  assert.is(budgetOf(first.response)!.cache, 'miss');
  assert.is(budgetOf(again.response)!.cache, 'hit');
  assert.is(budgetOf(again.response)!.cost, 0);
  assert.is(again.data.id, first.data.id);
  const off = await new OpenAI({ project: 'cache', caching: false }).chat.completions.create(chat('cache me fake:words=3')).withResponse();
  assert.is(budgetOf(off.response)!.cache, 'bypass');
});

test('every attempt is signed afresh, retries included; no bearer token or OpenAI account header leaves', async () => {
  const rec = recording();
  const client = new OpenAI({ project: 'sdk', caching: false, maxRetries: 2, fetch: rec.fetch, organization: 'org-mine' });
  const out = await client.chat.completions.create(chat('retry fake:error=503 fake:fail_times=1 fake:retry_after_ms=10'));
  assert.ok(out.id);
  assert.is(rec.sent.length, 2);
  const [a, b] = rec.sent.map((s) => s.headers);
  for (const h of [a, b]) {
    assert.match(h.get('authorization')!, /^AWS4-HMAC-SHA256 Credential=AKIA/);
    assert.ok(h.get('x-amz-date'));
    assert.is(h.get('openai-proxy-project'), 'sdk');
    assert.is(h.get('openai-proxy-caching'), '0');
    assert.is(h.get('openai-organization'), null);
    assert.is(h.get('openai-project'), null);
  }
  assert.is(a.get('x-stainless-retry-count'), '0');
  assert.is(b.get('x-stainless-retry-count'), '1');
  assert.is.not(a.get('authorization'), b.get('authorization'));
});

test('a per-request project header wins over the client option; withOptions keeps the wrapi options', async () => {
  const client = new OpenAI({ project: 'sdk', caching: false });
  await client.chat.completions.create(chat('other project'), { headers: { 'openai-proxy-project': 'other' } });
  await settled(t, async () => (await usageOf('other')).length === 1);
  const copy = client.withOptions({ maxRetries: 0 });
  assert.ok(copy instanceof OpenAI);
  assert.is(copy.project, 'sdk');
  assert.is(copy.caching, false);
  assert.is(copy.baseURL, client.baseURL);
  assert.is(copy.withOptions({ staging: 'prod' }).baseURL, `${t.stack.url}/prod/v1`);
});

test('AbortSignal and timeouts work as in openai', async () => {
  const client = new OpenAI({ project: 'sdk', caching: false, maxRetries: 0 });
  const controller = new AbortController();
  const call = client.chat.completions.create(chat('slow fake:delay_first=2000'), { signal: controller.signal });
  setTimeout(() => controller.abort(), 50);
  assert.instance(await call.catch((e) => e), APIUserAbortError);
  const timedOut = await client.chat.completions.create(chat('slow again fake:delay_first=2000'), { timeout: 100 }).catch((e) => e);
  assert.instance(timedOut, APIConnectionTimeoutError);
});

test('refusals are the openai package\'s typed errors', async () => {
  const client = new OpenAI({ project: 'no-limit-here', caching: false, maxRetries: 0 });
  const denied = await client.chat.completions.create(chat('x')).catch((e) => e);
  assert.instance(denied, PermissionDeniedError);
  assert.is(denied.code, 'project_not_allowed');
  await t.admin({ action: 'setLimit', project: 'tiny', limit: 0.000001 });
  const over = await new OpenAI({ project: 'tiny', maxRetries: 0 }).chat.completions.create(chat('x')).catch((e) => e);
  assert.instance(over, RateLimitError);
  assert.is(over.code, 'budget_exceeded');
});

test('multipart bodies are signed as sent (the proxy then refuses the unpriced route, not the signature)', async () => {
  const client = new OpenAI({ project: 'sdk', maxRetries: 0 });
  const err = await client.audio.transcriptions.create({ file: await toFile(Buffer.from('RIFF....WAVE'), 'a.wav'), model: 'whisper-1' }).catch((e) => e);
  assert.instance(err, NotFoundError);
  assert.is(err.code, 'unknown_url');
});

test('unsigned, wrongly signed and unknown-key clients are refused with 403', async () => {
  // Unsigned: a raw request (an openai client pointed at the proxy is signed by the register patch).
  const unsigned = await fetch(`${t.stack.url}/dev/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-nothing' }, body: JSON.stringify(chat('x')),
  });
  assert.is(unsigned.status, 403);
  assert.is((await unsigned.json()).error.code, 'invalid_signature');
  const ann = (await import('../runtime/local/credentials.ts')).parseCredentials(
    await (await import('node:fs/promises')).readFile(`${t.home}/credentials`, 'utf8'),
  ).find((u) => u.name === 'ann')!;
  const wrong = new OpenAI({ project: 'sdk', maxRetries: 0, credentials: { accessKeyId: ann.accessKeyId, secretAccessKey: 'not-the-secret' } });
  const e2 = await wrong.chat.completions.create(chat('x')).catch((e) => e);
  assert.instance(e2, PermissionDeniedError);
  assert.is(e2.code, 'invalid_signature');
  const stranger = new OpenAI({ project: 'sdk', maxRetries: 0, credentials: { accessKeyId: 'AKIAUNKNOWN000000000', secretAccessKey: 'x'.repeat(40) } });
  assert.instance(await stranger.chat.completions.create(chat('x')).catch((e) => e), PermissionDeniedError);
});

test('missing AWS credentials: a WrapiConfigError that says what to set, not a connection error', async () => {
  const client = new OpenAI({ project: 'sdk', maxRetries: 0, profile: 'nobody' });
  const err = await client.chat.completions.create(chat('x')).catch((e) => e);
  assert.instance(err, WrapiConfigError);
  assert.match(err.message, /^No AWS credentials from AWS profile "nobody" in the local stack.s .*credentials/);
  assert.is(err.message.match(/No AWS credentials/g).length, 1);
  assert.match(err.message, /AWS_PROFILE/);
  assert.match(err.message, /AWS_SHARED_CREDENTIALS_FILE/);
});

test('a scope past 80% of its limit is warned about once per process', async () => {
  // A price that makes cost exact: 1000 USD per 1M output tokens = $0.001 a token.
  await t.admin({ action: 'setPrice', model: 'gpt-4.1-nano', input: 0, output: 1000 });
  await t.admin({ action: 'setLimit', project: 'warn', limit: 0.2 });
  const warnings: Error[] = [];
  const onWarning = (w: Error) => w.name === 'OpenAIWrapiBudgetWarning' && warnings.push(w);
  process.on('warning', onWarning);
  try {
    const client = new OpenAI({ project: 'warn', caching: false, maxRetries: 0 });
    const ask = (words: number, max: number) =>
      client.chat.completions.create({ model: 'gpt-4.1-nano', max_tokens: max, messages: [{ role: 'user', content: `fake:words=${words}` }] }).withResponse();
    const first = await ask(169, 200); // 170 tokens: $0.17 of $0.20
    assert.ok(Math.abs(budgetOf(first.response)!.used! - 0.85) < 1e-6);
    await new Promise((r) => setImmediate(r));
    assert.is(warnings.length, 1);
    assert.match(warnings[0].message, /project "warn" \(stage dev\) has used 85% of its \$0\.20 monthly limit; \$0\.03 left/);
    await ask(1, 5);
    await new Promise((r) => setImmediate(r));
    assert.is(warnings.length, 1, 'once per scope');
  } finally {
    process.off('warning', onWarning);
  }
});

test.run();
