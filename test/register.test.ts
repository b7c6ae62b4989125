// `openai-wrapi/register`: clients that libraries build themselves (LangChain's ChatOpenAI and
// OpenAIEmbeddings, a bare `new OpenAI()` from the ESM or the CommonJS build of `openai`) go
// through the proxy, signed afresh on every attempt, with the module's current settings.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createRequire } from 'node:module';
import { register, resetSettings, setProject, setStaging, unregister } from '../sdk/register.ts';
import { WrapiConfigError } from '../sdk/errors.ts';
import { proxyBaseURL } from '../sdk/fetch.ts';
import { ChatOpenAI, OpenAIEmbeddings } from '@langchain/openai';
import { OpenAI as EsmOpenAI, APIConnectionError } from 'openai';
import { settled } from './helpers/stack.ts';
import { chat, startSdkStack, type SdkStack } from './helpers/sdk.ts';

const CjsOpenAI = (createRequire(import.meta.url)('openai') as typeof import('openai')).OpenAI;

let t: SdkStack;

test.before(async () => {
  t = await startSdkStack();
  await register(); // the helper cleared OPENAI_API_KEY; register sets its placeholder again
  for (const stage of ['dev', 'prod']) for (const project of ['lc', 'plain']) await t.admin({ action: 'setLimit', project, limit: 5 }, stage);
});
test.after(() => t.close());
test.before.each(() => {
  resetSettings();
  setProject('lc');
});

const spentBy = async (project: string, stage = 'dev') =>
  ((await t.admin({ action: 'usage', by: 'project' }, stage)).groups as any[]).find((g) => g.key === project)?.requests ?? 0;

test('the ESM and the CommonJS OpenAI classes are two classes, both patched', () => {
  assert.is.not(EsmOpenAI, CjsOpenAI);
  for (const C of [EsmOpenAI, CjsOpenAI]) assert.ok(Object.getOwnPropertySymbols(C.prototype).some((s) => s.description === 'openai-wrapi.patched'));
  assert.is(process.env.OPENAI_API_KEY, 'openai-wrapi-signs-requests-with-aws', 'a placeholder key, so libraries construct clients');
});

test('LangChain ChatOpenAI: invoke and stream go through the proxy, billed to the current project', async () => {
  const model = new ChatOpenAI({ model: 'gpt-4o-mini', maxRetries: 0 });
  const answer = await model.invoke('langchain invoke fake:words=3');
  assert.is(answer.content, 'This answer comes.');
  let streamed = '';
  for await (const chunk of await model.stream('langchain stream fake:words=4')) streamed += chunk.content;
  assert.is(streamed, 'This answer comes from.');
  await settled(t, async () => (await spentBy('lc')) >= 2);
  assert.ok(t.fake.requests.every((r) => r.headers.authorization === `Bearer ${t.fake.apiKey}`), 'upstream only ever sees the stage key');
});

test('LangChain OpenAIEmbeddings: documents and queries', async () => {
  const embeddings = new OpenAIEmbeddings({ model: 'text-embedding-3-small', maxRetries: 0 });
  const docs = await embeddings.embedDocuments(['first document', 'second document']);
  assert.is(docs.length, 2);
  assert.ok(docs[0].length > 0 && docs[0].every((x) => typeof x === 'number'));
  assert.ok((await embeddings.embedQuery('a query')).length > 0);
});

test('settings apply to library clients at each request, even ones built earlier', async () => {
  const model = new ChatOpenAI({ model: 'gpt-4o-mini', maxRetries: 0, cache: false });
  setStaging('prod');
  await model.invoke('to prod');
  await settled(t, async () => (await spentBy('lc', 'prod')) === 1);
  setProject('plain');
  await model.invoke('to prod as plain');
  await settled(t, async () => (await spentBy('plain', 'prod')) === 1);
});

test('a bare new OpenAI() of either module format is routed, and every retry is signed afresh', async () => {
  for (const C of [EsmOpenAI, CjsOpenAI]) {
    const sent: Headers[] = [];
    const client = new C({
      maxRetries: 2,
      fetch: (url, init) => {
        sent.push(new Headers(init?.headers));
        assert.ok(String(url).startsWith(`${t.stack.url}/dev/v1/`), String(url));
        return fetch(url, init);
      },
    });
    const out = await client.chat.completions.create(chat(`retry ${C === EsmOpenAI ? 'esm' : 'cjs'} fake:error=503 fake:fail_times=1 fake:retry_after_ms=10`));
    assert.ok(out.id);
    assert.is(sent.length, 2);
    assert.ok(sent.every((h) => /^AWS4-HMAC-SHA256 /.test(h.get('authorization') ?? '')));
    assert.is.not(sent[0].get('authorization'), sent[1].get('authorization'));
    assert.is(sent[1].get('openai-proxy-project'), 'lc');
  }
});

test('a plain client pointed at the proxy itself is signed too, not left to collect 403s', async () => {
  setProject('plain');
  const before = await spentBy('plain');
  for (const [i, C] of [EsmOpenAI, CjsOpenAI].entries()) {
    const sent: Headers[] = [];
    const client = new C({
      apiKey: 'sk-never-sent',
      baseURL: proxyBaseURL('dev'),
      maxRetries: 0,
      fetch: (url, init) => (sent.push(new Headers(init?.headers)), fetch(url, init)),
    });
    const answer = await client.chat.completions.create(chat(`pointed at the proxy ${i} fake:words=2`));
    assert.is(answer.choices[0].message.content, 'This answer.');
    assert.match(sent[0].get('authorization') ?? '', /^AWS4-HMAC-SHA256 /, 'SigV4, not the bearer key');
  }
  await settled(t, async () => (await spentBy('plain')) - before === 2);
});

test('clients pointed elsewhere (Azure, a local model server) are left alone', async () => {
  const sent: { url: string; auth: string | null }[] = [];
  const client = new EsmOpenAI({
    apiKey: 'sk-local',
    baseURL: 'http://127.0.0.1:9/v1',
    maxRetries: 0,
    fetch: async (url, init) => {
      sent.push({ url: String(url), auth: new Headers(init?.headers).get('authorization') });
      return Response.json({ object: 'list', data: [] });
    },
  });
  await client.models.list();
  assert.equal(sent, [{ url: 'http://127.0.0.1:9/v1/models', auth: 'Bearer sk-local' }]);
  const refused = await new EsmOpenAI({ apiKey: 'x', baseURL: 'http://127.0.0.1:9/v1', maxRetries: 0 }).models.list().catch((e) => e);
  assert.instance(refused, APIConnectionError);
});

test("OpenAI's API however spelled (case, :443, a trailing /., a root dot, a regional host) goes to the proxy, signed", async () => {
  setProject('plain');
  const before = await spentBy('plain');
  const spellings = [
    'https://API.OPENAI.COM/v1', 'https://api.openai.com:443/v1', 'https://api.openai.com/v1/.', 'https://api.openai.com./v1',
    'https://us.api.openai.com/v1', 'https://eu.api.openai.com/v1',
  ];
  const send = (C: typeof EsmOpenAI, label: string, baseURL?: string) => {
    const sent: { url: string; auth: string }[] = [];
    const client = new C({
      ...(baseURL ? { baseURL } : {}),
      maxRetries: 0,
      fetch: (url, init) => {
        sent.push({ url: String(url), auth: new Headers(init?.headers).get('authorization') ?? '' });
        // Only the local stack is really called: a request that escaped is recorded, never sent.
        return String(url).startsWith(t.stack.url) ? fetch(url, init) : Promise.resolve(new Response('not sent', { status: 400 }));
      },
    });
    return client.chat.completions.create(chat(`${label} fake:words=2`)).then((answer) => ({ answer, sent }), () => ({ answer: undefined, sent }));
  };
  let calls = 0;
  for (const [i, baseURL] of spellings.entries()) {
    for (const C of [EsmOpenAI, CjsOpenAI]) {
      const { answer, sent } = await send(C, `spelled ${i} ${C === EsmOpenAI ? 'esm' : 'cjs'}`, baseURL);
      calls++;
      assert.ok(sent[0].url.startsWith(`${t.stack.url}/dev/v1/chat/completions`), `${baseURL} -> ${sent[0].url}`);
      assert.match(sent[0].auth, /^AWS4-HMAC-SHA256 /, baseURL);
      assert.is(answer?.choices[0].message.content, 'This answer.', baseURL);
    }
  }
  // The same through OPENAI_BASE_URL, which the client reads when given no baseURL.
  process.env.OPENAI_BASE_URL = 'https://EU.API.OPENAI.COM:443/v1/';
  try {
    const { sent } = await send(EsmOpenAI, 'spelled in OPENAI_BASE_URL');
    calls++;
    assert.ok(sent[0].url.startsWith(`${t.stack.url}/dev/v1/`), sent[0].url);
    assert.match(sent[0].auth, /^AWS4-HMAC-SHA256 /);
  } finally {
    delete process.env.OPENAI_BASE_URL;
  }
  await settled(t, async () => (await spentBy('plain')) - before === calls);
  // Realtime cannot be routed: a client aimed at OpenAI in any spelling is refused, not connected.
  const Realtime = (await import('openai/realtime/websocket')).OpenAIRealtimeWebSocket;
  for (const baseURL of spellings) {
    assert.throws(() => new Realtime({ model: 'gpt-realtime' }, new EsmOpenAI({ baseURL }) as never), (e: Error) => e.name === 'WrapiError', baseURL);
  }
});

test('no proxy for the stage: the call fails with a WrapiConfigError saying what to set', async () => {
  const outputs = process.env.OPENAI_WRAPI_OUTPUTS;
  process.env.OPENAI_WRAPI_OUTPUTS = '/nonexistent/outputs.json';
  try {
    const err = await new EsmOpenAI({ maxRetries: 0 }).models.list().catch((e) => e);
    assert.instance(err, WrapiConfigError);
    assert.match(err.message, /OPENAI_WRAPI_OUTPUTS points at \/nonexistent\/outputs\.json, which does not exist/);
  } finally {
    process.env.OPENAI_WRAPI_OUTPUTS = outputs;
  }
});

test('Realtime under register is refused, from ESM and CommonJS, unless the client points elsewhere', async () => {
  // Loaded after register, as an app loads it: the module hooks guard it (the ws variant needs the
  // optional `ws` package; the WebSocket one shares the guard).
  const esm = (await import('openai/realtime/websocket')).OpenAIRealtimeWebSocket;
  const cjs = (createRequire(import.meta.url)('openai/realtime/websocket') as typeof import('openai/realtime/websocket')).OpenAIRealtimeWebSocket;
  for (const Realtime of [esm, cjs]) {
    for (const client of [undefined, new EsmOpenAI(), new CjsOpenAI()]) {
      assert.throws(() => new Realtime({ model: 'gpt-realtime' }, client as never), (e: Error) => e.name === 'WrapiError' && /Realtime API directly, unmetered/.test(e.message));
    }
    await Realtime.create(new EsmOpenAI() as never, { model: 'gpt-realtime' }).then(
      () => assert.unreachable('create must refuse'),
      (e: Error) => assert.is(e.name, 'WrapiError'),
    );
    // Pointed elsewhere on purpose: not ours to refuse (it fails here only for want of a WebSocket).
    const elsewhere = new EsmOpenAI({ baseURL: 'http://127.0.0.1:1/v1', apiKey: 'k' });
    assert.throws(() => new Realtime({ model: 'gpt-realtime' }, elsewhere as never), (e: Error) => e.name !== 'WrapiError');
  }
});

test('unregister restores plain clients; register patches again', async () => {
  unregister();
  const urls: string[] = [];
  const make = () =>
    new EsmOpenAI({ apiKey: 'sk-real', maxRetries: 0, fetch: async (url) => (urls.push(String(url)), Response.json({ object: 'list', data: [] })) });
  await make().models.list();
  assert.is(urls[0], 'https://api.openai.com/v1/models');
  await register();
  await make().models.list();
  assert.is(urls[1], `${t.stack.url}/dev/v1/models`);
});

test.run();
