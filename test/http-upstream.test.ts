// The node:http transport to OpenAI: what fetch would give, faster.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHttpUpstream } from '../runtime/store/http-upstream.ts';
import { startFakeOpenAI, type FakeOpenAI } from '../runtime/local/simulated-openai.ts';

let fake: FakeOpenAI;
const upstream = createHttpUpstream();
const chat = (content: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }], ...extra });

test.before(async () => {
  fake = await startFakeOpenAI();
});
test.after(() => fake.close());

const headers = (extra: Record<string, string> = {}) => ({ authorization: `Bearer ${fake.apiKey}`, 'content-type': 'application/json', ...extra });

test('same answer as fetch, decoded when the server compresses anyway', async () => {
  const init = { method: 'POST', headers: headers({ 'accept-encoding': 'gzip' }), body: chat('hi') };
  const ours = await upstream(`${fake.url}/chat/completions`, init);
  const theirs = await fetch(`${fake.url}/chat/completions`, init);
  assert.is(ours.status, 200);
  assert.is(ours.headers.get('content-encoding'), null);
  const [a, b] = [await ours.json(), await theirs.json()];
  assert.equal(a.choices, b.choices);
  assert.equal(a.usage, b.usage);
});

test('streams arrive frame by frame', async () => {
  const res = await upstream(`${fake.url}/chat/completions`, {
    method: 'POST', headers: headers(), body: chat('fake:words=5 fake:slow=20', { stream: true }),
  });
  const reader = res.body!.getReader();
  let reads = 0;
  let text = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    reads++;
    text += new TextDecoder().decode(value);
  }
  assert.ok(reads >= 5, `${reads} reads`);
  assert.match(text, /data: \[DONE\]/);
});

test('a timeout rejects with TimeoutError, before and during the body', async () => {
  const before = await upstream(`${fake.url}/chat/completions`, {
    method: 'POST', headers: headers(), body: chat('fake:delay_first=1000'), signal: AbortSignal.timeout(100),
  }).catch((e) => e);
  assert.is(before.name, 'TimeoutError');
  const res = await upstream(`${fake.url}/chat/completions`, {
    method: 'POST', headers: headers(), body: chat('fake:words=50 fake:slow=50', { stream: true }), signal: AbortSignal.timeout(200),
  });
  const during = await res.text().catch((e) => e);
  assert.is(during.name, 'TimeoutError');
});

test('a connection cut mid-stream errors the body', async () => {
  const res = await upstream(`${fake.url}/chat/completions`, {
    method: 'POST', headers: headers(), body: chat('fake:words=20 fake:break=3', { stream: true }),
  });
  const err = await res.text().catch((e) => e);
  assert.instance(err, Error);
});

test('connection refused rejects', async () => {
  const err = await upstream('http://127.0.0.1:1/v1/models', { method: 'GET', headers: {} }).catch((e) => e);
  assert.match(String(err.code), /ECONNREFUSED/);
});

test.run();
