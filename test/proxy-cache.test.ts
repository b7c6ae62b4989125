// The response cache through the local stack: in-process LRU and a real memcached, which may die.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startTestStack, settled, type TestStack } from './helpers/stack.ts';
import { startMemcached, type MemcachedServer } from './helpers/memcached.ts';
import { hasMemcached } from './helpers/binaries.ts';

const say = (content: string) => [{ role: 'user' as const, content }];

async function cacheCase(t: TestStack, project: string) {
  await t.admin({ action: 'setLimit', project, limit: 10 });
  const c = t.client({ project });
  const body = { model: 'gpt-4o-mini', messages: say(`cache me ${project}`) };
  const before = t.fake.requests.length;
  const first = await c.chat.completions.create(body).withResponse();
  assert.is(first.response.headers.get('openai-proxy-cache'), 'miss');
  const cost = Number(first.response.headers.get('openai-proxy-cost'));
  // The cache write happens after the response; wait for the hit.
  let second: Awaited<ReturnType<typeof first.data extends never ? never : any>>;
  await settled(t, async () => {
    second = await c.chat.completions.create({ messages: body.messages, model: body.model }).withResponse();
    return second.response.headers.get('openai-proxy-cache') === 'hit';
  });
  assert.equal(second.data, first.data, 'a hit replays the body byte for byte');
  assert.is(second.response.headers.get('openai-proxy-cost'), '0');
  assert.is(second.response.headers.get('x-request-id'), first.response.headers.get('x-request-id'));
  const upstreamCalls = t.fake.requests.length - before;
  const bypass = await t.client({ project, caching: false }).chat.completions.create(body).withResponse();
  assert.is(bypass.response.headers.get('openai-proxy-cache'), 'bypass');
  assert.is(t.fake.requests.length - before, upstreamCalls + 1, 'bypass goes upstream');
  await settled(t, async () => {
    const row = (await t.admin({ action: 'usage' })).rows.find((r: any) => r.project === project);
    return row?.cacheHits >= 1 && row?.requests === upstreamCalls + 1;
  });
  const row = (await t.admin({ action: 'usage' })).rows.find((r: any) => r.project === project);
  assert.ok(Math.abs(row.saved - row.cacheHits * cost) < 1e-12, 'hits count the cost they saved');
  assert.ok(Math.abs(row.spend - (upstreamCalls + 1) * cost) < 1e-12, 'hits spend nothing');
}

async function streamCase(t: TestStack, project: string) {
  await t.admin({ action: 'setLimit', project, limit: 10 });
  const c = t.client({ project });
  const read = async () => {
    const { data: stream, response } = await c.chat.completions
      .create({ model: 'gpt-4o-mini', stream: true, messages: say(`stream cache ${project} fake:words=9`) })
      .withResponse();
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    return { text, cache: response.headers.get('openai-proxy-cache') };
  };
  const first = await read();
  assert.is(first.cache, 'miss');
  let again = first;
  await settled(t, async () => (again = await read()).cache === 'hit');
  assert.is(again.text, first.text, 'an SSE transcript replays');
}

test('LRU: miss, hit (byte-identical, free, counted with its saving), bypass; streams too', async () => {
  const t = await startTestStack();
  try {
    await cacheCase(t, 'lru');
    await streamCase(t, 'lru-stream');
    const flushed = await t.admin({ action: 'flushCache' });
    assert.ok(flushed.ok);
    const after = await t.client({ project: 'lru' }).chat.completions
      .create({ model: 'gpt-4o-mini', messages: say('cache me lru') }).withResponse();
    assert.is(after.response.headers.get('openai-proxy-cache'), 'miss', 'flush empties the cache');
  } finally {
    await t.close();
  }
});

test('errors are never cached', async () => {
  const t = await startTestStack();
  try {
    await t.admin({ action: 'setLimit', project: 'err', limit: 10 });
    const c = t.client({ project: 'err' });
    for (let i = 0; i < 2; i++) {
      const e = await c.chat.completions.create({ model: 'gpt-4o-mini', messages: say('fake:error=400') }).catch((x) => x);
      assert.is(e.status, 400);
    }
    await new Promise((r) => setTimeout(r, 50));
    const e = await c.chat.completions.create({ model: 'gpt-4o-mini', messages: say('fake:error=400') }).catch((x) => x);
    assert.is(e.headers.get('openai-proxy-cache'), 'miss');
    assert.is(t.fake.requests.length, 3);
  } finally {
    await t.close();
  }
});

let mc: MemcachedServer;
(hasMemcached() ? test : test.skip)('memcached: hits through a real server; killed mid-test, calls still succeed uncached', async () => {
  mc = await startMemcached();
  const t = await startTestStack({ env: { OPENAI_WRAPI_MEMCACHED: mc.servers } });
  try {
    await cacheCase(t, 'mc');
    await streamCase(t, 'mc-stream');
    mc.kill();
    const c = t.client({ project: 'mc' });
    for (let i = 0; i < 3; i++) {
      const started = Date.now();
      const r = await c.chat.completions.create({ model: 'gpt-4o-mini', messages: say(`after the cache died ${i}`) }).withResponse();
      assert.ok(r.data.id);
      assert.is(r.response.headers.get('openai-proxy-cache'), 'miss');
      assert.ok(Date.now() - started < 2000, 'a dead cache does not hang calls');
    }
    const flush = await t.admin({ action: 'flushCache' });
    assert.is(flush.ok, false, 'flushing a dead cache is reported to the admin');
  } finally {
    await t.close();
    mc.kill();
  }
});

test.run();
