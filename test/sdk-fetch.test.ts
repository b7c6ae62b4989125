// The exported signing fetch with a client that does not use the `openai` package: the Vercel AI
// SDK's @ai-sdk/openai, given `fetch` and `baseURL`, for text, streamed text and embeddings.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createOpenAI } from '@ai-sdk/openai';
import { embed, generateText, streamText } from 'ai';
import { WrapiConfigError, createFetch, proxyBaseURL, resetSettings, setProject, signedFetch } from '../sdk/index.ts';
import { settled } from './helpers/stack.ts';
import { startSdkStack, type SdkStack } from './helpers/sdk.ts';

let t: SdkStack;

test.before(async () => {
  t = await startSdkStack([['vera', false]]);
  for (const project of ['vercel', 'moving']) await t.admin({ action: 'setLimit', project, limit: 5 });
});
test.after(() => t.close());

const requestsOf = async (project: string) =>
  ((await t.admin({ action: 'usage', by: 'project' })).groups as any[]).find((g) => g.key === project)?.requests ?? 0;

test('@ai-sdk/openai with createFetch and proxyBaseURL: chat, streamed chat, responses and embeddings', async () => {
  const openai = createOpenAI({ apiKey: 'not-used', baseURL: proxyBaseURL('dev'), fetch: createFetch({ project: 'vercel', caching: false, profile: 'vera' }) });
  const chat = await generateText({ model: openai.chat('gpt-4o-mini'), prompt: 'vercel chat fake:words=3', maxRetries: 0 });
  assert.is(chat.text, 'This answer comes.');
  assert.ok(chat.usage.outputTokens! > 0);

  const stream = streamText({ model: openai.chat('gpt-4o-mini'), prompt: 'vercel stream fake:words=4', maxRetries: 0 });
  let text = '';
  for await (const piece of stream.textStream) text += piece;
  assert.is(text, 'This answer comes from.');

  const responses = await generateText({ model: openai.responses('gpt-4o-mini'), prompt: 'vercel responses fake:words=2', maxRetries: 0 });
  assert.is(responses.text, 'This answer.');

  const { embedding } = await embed({ model: openai.embedding('text-embedding-3-small'), value: 'vercel embedding', maxRetries: 0 });
  assert.ok(embedding.length > 0);

  await settled(t, async () => (await requestsOf('vercel')) === 4);
  const rows = (await t.admin({ action: 'usage' })).rows as any[];
  assert.ok(rows.filter((r) => r.project === 'vercel').every((r) => r.user === 'vera'), 'signed as the profile given');
});

test('without fixed options the fetch follows the module settings at each call, and reroutes api.openai.com', async () => {
  resetSettings();
  const f = createFetch();
  setProject('moving');
  const res = await f('https://api.openai.com/v1/chat/completions', {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer sk-would-leak' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'plain fetch' }] }),
  });
  assert.is(res.status, 200);
  assert.is(res.headers.get('openai-proxy-budget-scope'), 'project=moving user=* model=*');
  await settled(t, async () => (await requestsOf('moving')) === 1);
});

test('the fetch refuses to sign for any host but the proxy', async () => {
  const err = await createFetch({ project: 'vercel' })('https://example.com/v1/chat/completions', { method: 'POST', body: '{}' }).catch((e) => e);
  assert.instance(err, WrapiConfigError);
  assert.match(err.message, /Refusing to sign a request to https:\/\/example\.com/);
});

test('signedFetch signs a Request object with a form body (the boundary it signs is the one it sends)', async () => {
  const creds = (await import('../runtime/local/credentials.ts')).parseCredentials(
    await (await import('node:fs/promises')).readFile(`${t.home}/credentials`, 'utf8'),
  ).find((u) => u.name === 'vera')!;
  const f = signedFetch({ credentials: { accessKeyId: creds.accessKeyId, secretAccessKey: creds.secretAccessKey }, region: 'us-east-1' });
  const form = new FormData();
  form.set('model', 'whisper-1');
  form.set('file', new Blob([new Uint8Array([1, 2, 3])]), 'a.wav');
  const res = await f(new Request(`${t.stack.url}/dev/v1/audio/transcriptions?x=a b&y=1+1`, { method: 'POST', body: form }));
  assert.is(res.status, 404, 'past the signature check: the route is simply not offered');
  assert.is((await res.json()).error.code, 'unknown_url');
});

test.run();
