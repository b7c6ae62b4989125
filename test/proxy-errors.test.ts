// Bad input, bad signatures and upstream trouble: each a clear OpenAI-shaped error, nothing
// recorded that should not be, and every call that reached OpenAI billed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import OpenAI from 'openai';
import { startTestStack, settled, type TestStack } from './helpers/stack.ts';
import { startDynalite } from './helpers/dynalite.ts';
import { signedFetch } from '../sdk/sign.ts';

let t: TestStack;
const PROJECT = 'errors';
const say = (content: string) => [{ role: 'user' as const, content }];
const forwarded = () => t.fake.requests.length;

test.before(async () => {
  t = await startTestStack();
  await t.admin({ action: 'setLimit', project: PROJECT, limit: 10 });
});
test.after(() => t.close());

async function usageRows() {
  return (await t.admin({ action: 'usage' })).rows as any[];
}

async function post(path: string, body: string, opts: { user?: string; headers?: Record<string, string> } = {}) {
  const res = await t.fetchAs(opts.user)(`${t.stack.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'openai-proxy-project': PROJECT, ...opts.headers },
    body,
  });
  return { status: res.status, headers: res.headers, body: await res.json() };
}

test('invalid JSON: 400 invalid_request_error, nothing forwarded or recorded', async () => {
  const before = [forwarded(), (await usageRows()).length];
  const r = await post('/dev/v1/chat/completions', '{"model": "gpt-4o-mini", messages: [');
  assert.is(r.status, 400);
  assert.is(r.body.error.type, 'invalid_request_error');
  assert.is(r.body.error.code, 'invalid_json');
  const missing = await post('/dev/v1/chat/completions', '{"messages": []}');
  assert.is(missing.status, 400);
  assert.is(missing.body.error.param, 'model');
  assert.equal([forwarded(), (await usageRows()).length], before);
});

test('a body over 6 MB is refused with 413 before anything else', async () => {
  const before = forwarded();
  const big = JSON.stringify({ model: 'gpt-4o-mini', messages: say('x'.repeat(6 * 1024 * 1024 + 10)) });
  const r = await post('/dev/v1/chat/completions', big);
  assert.is(r.status, 413);
  assert.is(r.body.error.code, 'request_too_large');
  assert.is(forwarded(), before);
});

test('what a function URL cannot carry is refused locally as on AWS: headers and base64 count toward its 6 MB', async () => {
  const before = forwarded();
  // Under 6 MB of JSON, but not once the event's headers and frame are added.
  const nearly = JSON.stringify({ model: 'no-such-model', messages: say('x'.repeat(6 * 1024 * 1024 - 1_500)) });
  const r = await post('/dev/v1/chat/completions', nearly, { headers: { 'x-padding': 'p'.repeat(4_000) } });
  assert.is(r.status, 413);
  assert.is(r.body.error.code, 'request_too_large');
  assert.match(r.body.error.message, /too large for a Lambda function URL: about \d+ bytes .* 6291456-byte limit/);
  // 4.8 MB: fits as JSON (it reaches the proxy, which refuses the unpriced model), not as a binary
  // type, which arrives base64-encoded.
  const body = JSON.stringify({ model: 'no-such-model', messages: say('y'.repeat(4_800_000)) });
  const asJson = await post('/dev/v1/chat/completions', body);
  assert.is(asJson.status, 400);
  assert.is(asJson.body.error.code, 'model_not_priced');
  const asBinary = await post('/dev/v1/chat/completions', body, { headers: { 'content-type': 'application/octet-stream' } });
  assert.is(asBinary.status, 413);
  assert.is(forwarded(), before);
});

test('unknown routes are refused: an unpriced endpoint would escape the limits', async () => {
  for (const path of ['/dev/v1/files', '/dev/v1/fine_tuning/jobs', '/dev/v1/assistants', '/nope/v1/chat/completions']) {
    const r = await post(path, '{}');
    assert.is(r.status, 404, path);
    assert.is(r.body.error.type, 'invalid_request_error');
  }
});

test('paths without the /v1 prefix work too', async () => {
  const r = await post('/dev/chat/completions', JSON.stringify({ model: 'gpt-4o-mini', messages: say('no prefix') }));
  assert.is(r.status, 200);
  assert.is(r.body.object, 'chat.completion');
});

test('unsigned, tampered and wrongly signed requests: 403, nothing forwarded', async () => {
  const before = forwarded();
  const body = JSON.stringify({ model: 'gpt-4o-mini', messages: say('hi') });
  const unsigned = await fetch(`${t.stack.url}/dev/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-anything' }, body,
  });
  assert.is(unsigned.status, 403);
  assert.is((await unsigned.json()).error.code, 'invalid_signature');

  // Sign one body, send another.
  const tampering: typeof fetch = (url, init) => fetch(url, { ...init, body: body.replace('hi', 'bye') });
  const creds = (await import('../runtime/local/credentials.ts')).loadOrCreateCredentials;
  const admin = (await creds(t.home)).users.find((u) => u.name === 'default')!;
  const tampered = await signedFetch({ credentials: admin, region: 'us-east-1', fetch: tampering })(
    `${t.stack.url}/dev/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body },
  );
  assert.is(tampered.status, 403);
  const wrongSecret = await signedFetch({ credentials: { ...admin, secretAccessKey: 'x'.repeat(40) }, region: 'us-east-1' })(
    `${t.stack.url}/dev/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body },
  );
  assert.is(wrongSecret.status, 403);
  const client = new OpenAI({ apiKey: 'sk-x', baseURL: `${t.stack.url}/dev/v1`, maxRetries: 0 });
  const err = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: say('hi') }).catch((e) => e);
  assert.instance(err, OpenAI.PermissionDeniedError);
  assert.is(forwarded(), before);
});

test('a spoofed openai-proxy-user header is ignored: spend goes to the signer', async () => {
  await t.user('victim');
  await t.user('mallory');
  const c = t.client({ user: 'mallory', project: PROJECT, caching: false, headers: { 'openai-proxy-user': 'victim' } });
  await c.chat.completions.create({ model: 'gpt-4o-mini', messages: say('spoof') });
  await settled(t, async () => (await usageRows()).some((r) => r.user === 'mallory'));
  assert.not.ok((await usageRows()).some((r) => r.user === 'victim'));
  assert.is(t.fake.requests.at(-1)!.headers['openai-proxy-user'], undefined, 'not forwarded either');
});

test('upstream 429 passes through with retry-after; nothing spent, counted as errors, reservation released', async () => {
  await t.user('rl');
  const c = t.client({ user: 'rl', project: PROJECT, caching: false });
  const err = await c.chat.completions.create({ model: 'gpt-4o-mini', messages: say('fake:error=429') }).catch((e) => e);
  assert.instance(err, OpenAI.RateLimitError);
  assert.is(err.headers.get('retry-after'), '1');
  assert.match(err.headers.get('x-request-id') ?? '', /^req_/);
  const e500 = await c.chat.completions.create({ model: 'gpt-4o-mini', messages: say('fake:error=500') }).catch((e) => e);
  assert.instance(e500, OpenAI.InternalServerError);
  await settled(t, async () => (await usageRows()).find((r) => r.user === 'rl')?.errors === 2);
  const row = (await usageRows()).find((r) => r.user === 'rl');
  assert.is(row.spend, 0);
  assert.is(row.requests, 0, 'errors are not requests OpenAI answered');
  const limit = (await t.admin({ action: 'listLimits', project: PROJECT })).limits[0];
  assert.ok(Math.abs(limit.committed - limit.spend) < 1e-12, 'no reservation left behind');
});

test('a stream that breaks upstream: the client gets an error, the call is billed by estimate', async () => {
  await t.user('brk');
  const c = t.client({ user: 'brk', project: PROJECT, caching: false });
  const stream = await c.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: say('tell fake:words=30 fake:break=5') });
  let text = '';
  const err = await (async () => {
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
  })().catch((e) => e);
  assert.instance(err, OpenAI.APIError);
  assert.match(err.message, /interrupted/);
  assert.ok(text.length > 0);
  await settled(t, async () => (await usageRows()).some((r) => r.user === 'brk'));
  const row = (await usageRows()).find((r) => r.user === 'brk');
  assert.is(row.estimated, 1);
  assert.ok(row.outputTokens >= 4 && row.inputTokens > 0, JSON.stringify(row));
  assert.ok(row.spend > 0);
});

test('a client that disconnects mid-stream: the rest is read without sending, and the exact usage recorded', async () => {
  await t.user('quitter');
  const c = t.client({ user: 'quitter', project: PROJECT, caching: false });
  const abortedBefore = t.fake.aborted;
  const ac = new AbortController();
  const stream = await c.chat.completions.create(
    { model: 'gpt-4o-mini', stream: true, messages: say('long fake:words=200 fake:slow=10') },
    { signal: ac.signal },
  );
  let chunks = 0;
  await (async () => {
    for await (const _ of stream) if (++chunks === 5) ac.abort();
  })().catch(() => undefined);
  await settled(t, async () => (await usageRows()).some((r) => r.user === 'quitter'), 10_000);
  const row = (await usageRows()).find((r) => r.user === 'quitter');
  assert.is(t.fake.aborted, abortedBefore, 'the upstream call was not cut');
  assert.is(row.estimated, 0);
  assert.is(row.outputTokens, 201, 'every word OpenAI generated, not the 5 chunks the client saw');
});

test('upstream too slow for the proxy timeout: 504, billed by a conservative estimate (the reserved output)', async () => {
  const s = await startTestStack({ env: { OPENAI_WRAPI_TIMEOUT_MS: '300' } });
  try {
    await s.admin({ action: 'setLimit', project: 'slow', limit: 1 });
    const c = s.client({ project: 'slow', caching: false });
    const err = await c.chat.completions.create({ model: 'gpt-4o-mini', messages: say('fake:delay_first=2000') }).catch((e) => e);
    assert.is(err.status, 504);
    assert.is(err.code, 'upstream_timeout');
    await settled(s, async () => (await s.admin({ action: 'usage' })).rows.length === 1);
    const row = (await s.admin({ action: 'usage' })).rows[0];
    assert.is(row.estimated, 1);
    // OpenAI may have finished the call: the most it could have produced is billed (gpt-4o-mini's cap).
    assert.ok(row.inputTokens > 0 && row.outputTokens === 16_384, JSON.stringify(row));
  } finally {
    await s.close();
  }
});

test('no stack traces or keys in any error body', async () => {
  const bodies = [
    (await post('/dev/v1/chat/completions', '{bad')).body,
    (await post('/dev/v1/unknown', '{}')).body,
    (await post('/dev/v1/chat/completions', JSON.stringify({ model: 'gpt-4o-mini', messages: say('fake:error=401') }))).body,
  ];
  for (const b of bodies) {
    const text = JSON.stringify(b);
    assert.not.match(text, /at .*\.ts:\d+/);
    assert.not.match(text, new RegExp(t.fake.apiKey));
  }
});

test('DynamoDB unreachable: 503 and nothing forwarded; fail-open forwards', async () => {
  const dyn = await startDynalite();
  const closed = await startTestStack({ env: { OPENAI_WRAPI_DYNAMODB_ENDPOINT: dyn.endpoint } });
  const open = await startTestStack({ env: { OPENAI_WRAPI_DYNAMODB_ENDPOINT: dyn.endpoint, OPENAI_WRAPI_FAIL_OPEN: '1', OPENAI_WRAPI_TABLE_PREFIX: 'open' } });
  try {
    await closed.admin({ action: 'setLimit', project: 'p', limit: 1 });
    const c = closed.client({ project: 'p', caching: false });
    const ok = await c.chat.completions.create({ model: 'gpt-4o-mini', messages: say('works on dynamo') });
    assert.ok(ok.id, 'works while DynamoDB is up');
    await dyn.close();
    const before = closed.fake.requests.length;
    const started = Date.now();
    const err = await c.chat.completions.create({ model: 'gpt-4o-mini', messages: say('ledger gone') }).catch((e) => e);
    assert.is(err.status, 503);
    assert.is(err.code, 'ledger_unavailable');
    assert.ok(Date.now() - started < 5000, 'fails fast');
    assert.is(closed.fake.requests.length, before);
    const r = await open.client({ project: 'p', caching: false }).chat.completions.create({ model: 'gpt-4o-mini', messages: say('fail open') });
    assert.ok(r.id);
  } finally {
    await closed.close();
    await open.close();
  }
});

test('fail-open covers outages only: a request the ledger refuses is not forwarded unmetered', async () => {
  // What DynamoDB answers a key it finds invalid: a client fault, not an outage.
  const invalid = Object.assign(new Error('One or more parameter values were invalid'), { name: 'ValidationException', $fault: 'client' });
  // What SQLite answers a value the request made invalid (a NOT NULL column given nothing).
  const constraint = Object.assign(new Error('NOT NULL constraint failed'), { name: 'SqliteError', code: 'SQLITE_CONSTRAINT_NOTNULL' });
  let reads = 0;
  const s = await startTestStack({
    env: { OPENAI_WRAPI_FAIL_OPEN: '1' },
    stack: { wrapLedger: (ledger) => ({ ...ledger, read: () => Promise.reject(reads++ % 2 ? constraint : invalid) }) },
  });
  try {
    const c = s.client({ project: 'members-only', caching: false });
    const before = s.fake.requests.length;
    const err = await c.chat.completions.create({ model: 'gpt-4o-mini', messages: say('skip the checks') }).catch((e) => e);
    assert.is(err.status, 503);
    assert.is(err.code, 'ledger_unavailable');
    assert.is(s.fake.requests.length, before, 'nothing went out unmetered');
    const again = await c.chat.completions.create({ model: 'gpt-4o-mini', messages: say('skip the checks') }).catch((e) => e);
    assert.is(again.status, 503, 'a SQLite constraint failure is no outage either');
    assert.is(s.fake.requests.length, before);
    // A response id that is not one never reaches the ledger as a key.
    const odd = await c.responses.create({ model: 'gpt-4o-mini', input: 'hi', previous_response_id: `resp_${'x'.repeat(3000)}` }).catch((e) => e);
    assert.is(odd.status, 400);
    assert.is(odd.param, 'previous_response_id');
    assert.not.match(odd.message, /xxxx/);
    assert.is(s.fake.requests.length, before);
  } finally {
    await s.close();
  }
});

test('a ledger hiccup at settlement is retried: the call is still recorded', async () => {
  let failures = 1;
  const s = await startTestStack({
    stack: {
      // The ledgers are plain objects of functions, so a spread keeps every other method.
      wrapLedger: (ledger) => ({
        ...ledger,
        settle: (x) => (failures-- > 0 ? Promise.reject(new Error('ProvisionedThroughputExceeded')) : ledger.settle(x)),
      }),
    },
  });
  try {
    await s.admin({ action: 'setLimit', project: 'flaky', limit: 1 });
    const r = await s.client({ project: 'flaky', caching: false }).chat.completions.create({ model: 'gpt-4o-mini', messages: say('hi') });
    await settled(s, async () => (await s.admin({ action: 'usage' })).totals.requests === 1, 3000);
    const row = (await s.admin({ action: 'usage' })).rows[0];
    assert.is(row.inputTokens, r.usage!.prompt_tokens);
    assert.is(failures, -1, 'the first settle failed and the second landed');
  } finally {
    await s.close();
  }
});

test('a non-streamed answer cut off upstream: 502 to the client, the prompt billed by estimate', async () => {
  const cutOff = async () =>
    new Response(
      new ReadableStream({
        start(c) {
          c.enqueue(new TextEncoder().encode('{"id":"chatcmpl-1","choices":['));
          c.error(new Error('socket hang up'));
        },
      }),
      { status: 200, headers: { 'content-type': 'application/json' } },
    );
  const s = await startTestStack({ stack: { upstream: cutOff } });
  try {
    await s.admin({ action: 'setLimit', project: 'cut', limit: 1 });
    const err = await s.client({ project: 'cut', caching: false }).chat.completions
      .create({ model: 'gpt-4o-mini', messages: say('a prompt that was sent') }).catch((e) => e);
    assert.is(err.status, 502);
    assert.is(err.code, 'upstream_interrupted');
    await settled(s, async () => (await s.admin({ action: 'usage' })).rows.length === 1);
    const row = (await s.admin({ action: 'usage' })).rows[0];
    assert.is(row.estimated, 1);
    assert.ok(row.inputTokens > 0);
  } finally {
    await s.close();
  }
});

test.run();
