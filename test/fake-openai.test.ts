// The fake OpenAI upstream, driven through the real `openai` client (and raw HTTP where the wire matters).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http from 'node:http';
import OpenAI from 'openai';
import { encode, decode } from 'gpt-tokenizer';
import { startFakeOpenAI, type FakeOpenAI } from '../runtime/local/simulated-openai.ts';

let fake: FakeOpenAI;
let client: OpenAI;

test.before(async () => {
  fake = await startFakeOpenAI();
  client = new OpenAI({ apiKey: fake.apiKey, baseURL: fake.url, maxRetries: 0, organization: 'org-test123' });
});
test.after(() => fake.close());

const user = (content: string) => [{ role: 'user' as const, content }];
const chatTokens = (...msgs: [string, string][]) =>
  msgs.reduce((n, [role, text]) => n + 3 + encode(role).length + encode(text).length, 3);
const waitFor = async (cond: () => boolean, ms = 2000) => {
  for (const end = Date.now() + ms; !cond(); await new Promise((r) => setTimeout(r, 10))) {
    if (Date.now() > end) throw new Error('timed out waiting');
  }
};

test('chat non-stream: shape, dated model, deterministic text, exact usage, headers, recording', async () => {
  const prompt = 'Say something fake:words=5';
  const { data, response } = await client.chat.completions
    .create({ model: 'gpt-4o-mini', messages: [{ role: 'system', content: 'Be brief.' }, ...user(prompt)] })
    .withResponse();
  assert.is(data.object, 'chat.completion');
  assert.is(data.model, 'gpt-4o-mini-2024-07-18');
  assert.match(data.id, /^chatcmpl-[A-Za-z0-9]{29}$/);
  assert.is(data.choices[0].message.content, 'This answer comes from the.');
  assert.is(data.choices[0].finish_reason, 'stop');
  assert.equal(Object.keys(data), ['id', 'object', 'created', 'model', 'choices', 'usage', 'service_tier',
    'system_fingerprint']);
  const u = data.usage!;
  assert.is(u.prompt_tokens, chatTokens(['system', 'Be brief.'], ['user', prompt]));
  assert.is(u.completion_tokens, encode('This answer comes from the.').length);
  assert.is(u.total_tokens, u.prompt_tokens + u.completion_tokens);
  assert.match(response.headers.get('x-request-id')!, /^req_[0-9a-f]{32}$/);
  assert.is(response.headers.get('openai-version'), '2020-10-01');
  assert.ok(response.headers.get('x-ratelimit-remaining-tokens'));
  const again = await client.chat.completions.create({ model: 'gpt-4o-mini',
    messages: [{ role: 'system', content: 'Be brief.' }, ...user(prompt)] });
  assert.is(again.choices[0].message.content, data.choices[0].message.content);
  const rec = fake.requests.at(-1)!;
  assert.is(rec.path, '/v1/chat/completions');
  assert.is(rec.headers.authorization, `Bearer ${fake.apiKey}`);
  assert.is(rec.headers['openai-organization'], 'org-test123');
  assert.is(rec.body.messages[1].content, prompt);
});

test('chat: max_completion_tokens truncates, reasoning and cached tokens sit inside the totals', async () => {
  const r = await client.chat.completions.create({ model: 'gpt-4o-mini', max_completion_tokens: 7,
    messages: user('go fake:words=20 fake:reasoning=3 fake:cached=1000') });
  const u = r.usage!;
  assert.is(r.choices[0].finish_reason, 'length');
  assert.is(u.completion_tokens, 7);
  assert.is(u.completion_tokens_details!.reasoning_tokens, 3);
  assert.is(encode(r.choices[0].message.content!).length, 4, 'visible = limit - reasoning');
  assert.is(u.prompt_tokens_details!.cached_tokens, u.prompt_tokens, 'cached is capped at prompt');
  assert.is(u.total_tokens, u.prompt_tokens + u.completion_tokens);
  const all = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: user('x fake:cached=2') });
  assert.is(all.usage!.prompt_tokens_details!.cached_tokens, 2);
  assert.ok(all.usage!.prompt_tokens > 2);
});

test('chat stream without include_usage: reference chunk shapes, no usage key, obfuscation, [DONE]', async () => {
  const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', stream: true,
    messages: user('stream fake:words=6') });
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  assert.equal(chunks[0].choices[0].delta, { role: 'assistant', content: '', refusal: null });
  assert.is(chunks.at(-1)!.choices[0].finish_reason, 'stop');
  assert.equal(chunks.at(-1)!.choices[0].delta, {});
  assert.ok(chunks.every((c) => !('usage' in c)), 'no usage key without include_usage');
  assert.ok(chunks.every((c) => typeof (c as any).obfuscation === 'string'));
  const text = chunks.map((c) => c.choices[0].delta.content ?? '').join('');
  assert.is(text, 'This answer comes from the fake.');
  assert.is(chunks.length, 2 + encode(text).length, 'role chunk + one chunk per token + finish chunk');
});

test('chat stream with include_usage: usage null on every chunk, then a choices:[] usage chunk', async () => {
  const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', stream: true,
    stream_options: { include_usage: true, include_obfuscation: false } as any,
    messages: user('stream fake:words=4 fake:reasoning=2') });
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  const last = chunks.at(-1)!;
  assert.equal(last.choices, []);
  assert.ok(chunks.slice(0, -1).every((c) => c.usage === null));
  assert.ok(chunks.every((c) => !('obfuscation' in c)), 'include_obfuscation:false removes it');
  const contentChunks = chunks.filter((c) => c.choices[0]?.delta.content);
  assert.is(last.usage!.completion_tokens, contentChunks.length + 2);
  assert.is(last.usage!.completion_tokens_details!.reasoning_tokens, 2);
  assert.is(last.usage!.total_tokens, last.usage!.prompt_tokens + last.usage!.completion_tokens);
});

test('chat stream on the wire: content-type, data frames, [DONE] last', async () => {
  const res = await fetch(`${fake.url}/chat/completions`, { method: 'POST',
    headers: { authorization: `Bearer ${fake.apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', stream: true, messages: user('hi fake:words=2') }) });
  assert.is(res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
  const body = await res.text();
  assert.ok(body.endsWith('data: [DONE]\n\n'));
  assert.ok(body.split('\n\n').filter(Boolean).every((f) => f.startsWith('data: ')));
});

test('legacy completions: non-stream and stream with include_usage', async () => {
  const r = await client.completions.create({ model: 'gpt-3.5-turbo-instruct', prompt: 'Say this fake:words=30' });
  assert.is(r.object, 'text_completion');
  assert.is(r.choices[0].finish_reason, 'length', 'legacy max_tokens defaults to 16');
  assert.is(r.usage!.completion_tokens, 16);
  assert.is(r.usage!.prompt_tokens, encode('Say this fake:words=30').length);
  const stream = await client.completions.create({ model: 'gpt-3.5-turbo-instruct', prompt: 'Hi fake:words=3',
    stream: true, stream_options: { include_usage: true } });
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  const text = chunks.map((c) => c.choices[0]?.text ?? '').join('');
  assert.is(text, '\n\nThis answer comes.');
  assert.equal(chunks.at(-1)!.choices, []);
  assert.is(chunks.at(-1)!.usage!.completion_tokens, encode(text).length);
  assert.ok(chunks.slice(0, -1).every((c) => c.usage === null));
});

test('embeddings: default base64 decodes to the same float32 values as encoding_format float', async () => {
  const input = ['hello world', 'second input'];
  const b64 = await client.embeddings.create({ model: 'text-embedding-3-small', input });
  const floats = await client.embeddings.create({ model: 'text-embedding-3-small', input, encoding_format: 'float' });
  assert.is(fake.requests.at(-2)!.body.encoding_format, 'base64', 'the client asks for base64 by default');
  assert.is(b64.data.length, 2);
  assert.equal(b64.data.map((d) => d.embedding), floats.data.map((d) => d.embedding));
  assert.is(floats.data[0].embedding.length, 8);
  assert.not.equal(floats.data[0].embedding, floats.data[1].embedding);
  const norm = Math.hypot(...floats.data[0].embedding);
  assert.ok(Math.abs(norm - 1) < 1e-6, 'unit length like real embeddings');
  assert.is(floats.usage.prompt_tokens, encode('hello world').length + encode('second input').length);
  assert.is(floats.usage.total_tokens, floats.usage.prompt_tokens);
  const wide = await client.embeddings.create({ model: 'text-embedding-3-small', input: 'hello world', dimensions: 64 });
  assert.is(wide.data[0].embedding.length, 64);
});

test('responses non-stream: shape, output_text, usage arithmetic, reasoning item', async () => {
  const r = await client.responses.create({ model: 'gpt-4.1-mini', instructions: 'Be brief.',
    input: 'Hi fake:words=3 fake:reasoning=5 fake:cached=4' });
  assert.is(r.object, 'response');
  assert.is(r.status, 'completed');
  assert.is(r.model, 'gpt-4.1-mini-2025-04-14');
  assert.is(r.output_text, 'This answer comes.');
  assert.equal(r.output.map((o) => o.type), ['reasoning', 'message']);
  const u = r.usage!;
  assert.is(u.input_tokens, chatTokens(['developer', 'Be brief.'], ['user', 'Hi fake:words=3 fake:reasoning=5 fake:cached=4']));
  assert.is(u.output_tokens, encode('This answer comes.').length + 5);
  assert.is(u.output_tokens_details.reasoning_tokens, 5);
  assert.is(u.input_tokens_details.cached_tokens, 4);
  assert.is(u.total_tokens, u.input_tokens + u.output_tokens);
});

test('responses stream: gapless sequence numbers, event order, usage only at response.completed', async () => {
  const stream = await client.responses.create({ model: 'gpt-4.1-mini', stream: true,
    input: [{ role: 'user', content: [{ type: 'input_text', text: 'Hi fake:words=4' }] }] });
  const events = [];
  for await (const e of stream) events.push(e);
  assert.equal(events.map((e) => e.sequence_number), events.map((_, i) => i));
  const types = events.map((e) => e.type);
  assert.equal(types.filter((t) => t !== 'response.output_text.delta'), ['response.created', 'response.in_progress',
    'response.output_item.added', 'response.content_part.added', 'response.output_text.done',
    'response.content_part.done', 'response.output_item.done', 'response.completed']);
  const deltas = events.flatMap((e) => (e.type === 'response.output_text.delta' ? [e.delta] : []));
  assert.is(deltas.join(''), 'This answer comes from.');
  const first = events[0], last = events.at(-1)!;
  assert.ok(first.type === 'response.created' && first.response.usage === null);
  assert.ok(last.type === 'response.completed');
  if (last.type !== 'response.completed') return;
  assert.is(last.response.usage!.output_tokens, deltas.length);
  assert.is(last.response.usage!.input_tokens_details.cached_tokens, 0);
  assert.is(last.response.usage!.output_tokens_details.reasoning_tokens, 0);
  assert.is(last.response.usage!.total_tokens, last.response.usage!.input_tokens + deltas.length);
});

test('responses: max_output_tokens truncates to status incomplete; below 16 is a 400', async () => {
  const r = await client.responses.create({ model: 'gpt-4.1-mini', max_output_tokens: 16, input: 'x fake:words=40' });
  assert.is(r.status, 'incomplete');
  assert.equal(r.incomplete_details, { reason: 'max_output_tokens' });
  assert.is(r.usage!.output_tokens, 16);
  const err = await client.responses.create({ model: 'gpt-4.1-mini', max_output_tokens: 5, input: 'x' }).catch((e) => e);
  assert.instance(err, OpenAI.BadRequestError);
  assert.is(err.code, 'integer_below_min_value');
  const stream = await client.responses.create({ model: 'gpt-4.1-mini', max_output_tokens: 16, stream: true,
    input: 'x fake:words=40' });
  let lastType = '';
  for await (const e of stream) lastType = e.type;
  assert.is(lastType, 'response.incomplete');
});

test('errors map to the right client classes with OpenAI bodies and headers', async () => {
  const bad = new OpenAI({ apiKey: 'sk-wrong-key-1234', baseURL: fake.url, maxRetries: 0 });
  const auth = await bad.models.list().catch((e) => e);
  assert.instance(auth, OpenAI.AuthenticationError);
  assert.is(auth.code, 'invalid_api_key');
  assert.not.match(auth.message, 'sk-wrong-key-1234', 'the key is masked');
  assert.match(auth.requestID, /^req_[0-9a-f]{32}$/);

  const ask = (directive: string) => client.chat.completions
    .create({ model: 'gpt-4o-mini', messages: user(`hi ${directive}`) }).catch((e) => e);
  const rate = await ask('fake:error=429');
  assert.instance(rate, OpenAI.RateLimitError);
  assert.is(rate.code, 'rate_limit_exceeded');
  assert.is(rate.type, 'tokens');
  assert.is(rate.headers.get('retry-after'), '1');
  assert.is(rate.headers.get('retry-after-ms'), '1000');
  assert.ok(rate.headers.get('x-ratelimit-remaining-tokens'));
  assert.instance(await ask('fake:error=500'), OpenAI.InternalServerError);
  assert.instance(await ask('fake:error=503'), OpenAI.InternalServerError);
  assert.instance(await ask('fake:error=404'), OpenAI.NotFoundError);
  assert.instance(await ask('fake:error=400'), OpenAI.BadRequestError);
  assert.instance(await ask('fake:error=403'), OpenAI.PermissionDeniedError);
  assert.is((await ask('fake:error=quota')).code, 'insufficient_quota');
  const streamed = await client.chat.completions
    .create({ model: 'gpt-4o-mini', stream: true, messages: user('fake:error=500') }).catch((e) => e);
  assert.instance(streamed, OpenAI.InternalServerError, 'errors before the first byte are plain HTTP errors');
  const oSeries = await client.chat.completions
    .create({ model: 'o3-mini', max_tokens: 10, messages: user('hi') }).catch((e) => e);
  assert.is(oSeries.code, 'unsupported_parameter');
});

test('fake:fail_times lets the client retry into a success', async () => {
  const retrying = new OpenAI({ apiKey: fake.apiKey, baseURL: fake.url, maxRetries: 2 });
  const before = fake.requests.length;
  const r = await retrying.chat.completions.create({ model: 'gpt-4o-mini',
    messages: user('retry me fake:error=429 fake:fail_times=1 fake:retry_after_ms=20') });
  assert.is(r.choices[0].finish_reason, 'stop');
  assert.is(fake.requests.length - before, 2);
});

test('a stream cut midway makes the client iterator throw; it is not counted as a client abort', async () => {
  const abortedBefore = fake.aborted;
  const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', stream: true,
    stream_options: { include_usage: true }, messages: user('cut fake:words=10 fake:break=3') });
  const seen: string[] = [];
  const err = await (async () => { for await (const c of stream) seen.push(c.choices[0]?.delta.content ?? ''); })()
    .catch((e) => e);
  assert.instance(err, Error);
  assert.is(seen.join(''), 'This answer comes');
  await waitFor(() => fake.inFlight() === 0);
  assert.is(fake.aborted, abortedBefore);
});

test('mid-stream error: data {"error"} makes the iterator throw APIError', async () => {
  const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', stream: true,
    messages: user('fake:midstream_error=2') });
  const err = await (async () => { for await (const _ of stream); })().catch((e) => e);
  assert.instance(err, OpenAI.APIError);
  assert.is(err.status, undefined);
  assert.is(err.error.type, 'server_error');
  const rs = await client.responses.create({ model: 'gpt-4.1-mini', stream: true, input: 'fake:midstream_error=1' });
  const types = [];
  for await (const e of rs) types.push(e.type);
  assert.equal(types.slice(-2), ['error', 'response.failed'], 'Responses yields error events instead of throwing');
});

test('client disconnect mid-stream is counted in aborted and in-flight drops back', async () => {
  const before = fake.aborted;
  const ac = new AbortController();
  const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', stream: true,
    messages: user('slow fake:words=50 fake:slow=20') }, { signal: ac.signal });
  assert.is(fake.inFlight(), 1);
  let n = 0;
  await (async () => { for await (const _ of stream) if (++n === 3) ac.abort(); })().catch(() => {});
  await waitFor(() => fake.aborted === before + 1 && fake.inFlight() === 0);
});

test('slow and delay_first delay the response', async () => {
  const t0 = Date.now();
  await client.chat.completions.create({ model: 'gpt-4o-mini', messages: user('fake:delay_first=120') });
  assert.ok(Date.now() - t0 >= 115);
  const t1 = Date.now();
  await client.chat.completions.create({ model: 'gpt-4o-mini', messages: user('fake:slow=80') });
  assert.ok(Date.now() - t1 >= 75);
});

test('models, moderations, unknown path, invalid JSON', async () => {
  const list = await client.models.list();
  assert.ok(list.data.some((m) => m.id === 'gpt-4o-mini'));
  assert.is((await client.models.retrieve('gpt-4o-mini')).id, 'gpt-4o-mini');
  assert.instance(await client.models.retrieve('gpt-9-nope').catch((e) => e), OpenAI.NotFoundError);
  const mod = await client.moderations.create({ model: 'omni-moderation-latest', input: ['fine', 'x fake:flag=violence'] });
  assert.equal(mod.results.map((r) => r.flagged), [false, true]);
  assert.is(mod.results[1].categories.violence, true);
  assert.is(mod.results[1].categories.hate, false);
  const headers = { authorization: `Bearer ${fake.apiKey}`, 'content-type': 'application/json' };
  const nf = await fetch(`${fake.url}/nope`, { method: 'POST', headers, body: '{}' });
  assert.is(nf.status, 404);
  assert.equal(await nf.json(), { error: { message: 'Invalid URL (POST /v1/nope)', type: 'invalid_request_error',
    param: null, code: null } });
  const bj = await fetch(`${fake.url}/chat/completions`, { method: 'POST', headers, body: '{nope' });
  assert.is(bj.status, 400);
  assert.is((await bj.json()).error.type, 'invalid_request_error');
});

test('JSON is gzipped only when the client accepts gzip (as api.openai.com does)', async () => {
  const get = (acceptEncoding?: string) => new Promise<http.IncomingMessage>((resolve, reject) => {
    const req = http.request(`${fake.url}/models`, { headers: { authorization: `Bearer ${fake.apiKey}`,
      ...(acceptEncoding ? { 'accept-encoding': acceptEncoding } : {}) } }, (res) => { res.resume(); resolve(res); });
    req.on('error', reject).end();
  });
  assert.is((await get('gzip, deflate')).headers['content-encoding'], 'gzip');
  assert.is((await get()).headers['content-encoding'], undefined);
});

test('token pieces decode back to the text (one chunk per token)', () => {
  const ids = encode('This answer comes from the fake test server.');
  assert.is(ids.map((t) => decode([t])).join(''), 'This answer comes from the fake test server.');
  assert.is(ids.length, 9);
});

test.run();
