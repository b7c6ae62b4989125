// Request bodies the `openai` client accepts beyond strings and bytes (issue 12, defect 8): async
// generators and streams that yield strings as well as bytes are signed over exactly what is sent.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import OpenAI, { NotFoundError, createFetch, toFile } from '../sdk/index.ts';
import { chat, startSdkStack, type SdkStack } from './helpers/sdk.ts';

let t: SdkStack;

test.before(async () => {
  t = await startSdkStack();
  await t.admin({ action: 'setLimit', project: 'bodies', limit: 5 });
});
test.after(() => t.close());

/** A chat request body in pieces of every kind a generator may yield. */
async function* pieces(content: string) {
  const json = JSON.stringify(chat(content));
  const third = Math.floor(json.length / 3);
  yield json.slice(0, third);
  yield new TextEncoder().encode(json.slice(third, 2 * third));
  yield Buffer.from(json.slice(2 * third));
}

const post = { method: 'POST', headers: { 'content-type': 'application/json', 'openai-proxy-project': 'bodies' }, duplex: 'half' };

test('signedFetch: an async-generator body and a stream of strings are signed and sent', async () => {
  const f = t.fetchAs();
  const res = await f(`${t.stack.url}/dev/v1/chat/completions`, { ...post, body: pieces('generator fake:words=2') } as never);
  assert.is(res.status, 200, await res.clone().text());
  assert.is((await res.json()).choices[0].message.content, 'This answer.');

  const parts = pieces('stream fake:words=3');
  const stream = new ReadableStream({
    async pull(controller) {
      const { done, value } = await parts.next();
      if (done) controller.close();
      else controller.enqueue(value);
    },
  });
  const again = await f(`${t.stack.url}/dev/v1/chat/completions`, { ...post, body: stream } as never);
  assert.is(again.status, 200, await again.clone().text());
  assert.is((await again.json()).choices[0].message.content, 'This answer comes.');
});

test('createFetch: an async-generator body', async () => {
  const res = await createFetch({ project: 'bodies' })(`${t.stack.url}/dev/v1/chat/completions`, { ...post, body: pieces('fetch fake:words=1') } as never);
  assert.is(res.status, 200, await res.clone().text());
});

test('the drop-in client: a raw async-generator body (openai wraps it in a stream) and a file from an async iterable', async () => {
  const client = new OpenAI({ project: 'bodies', caching: false, maxRetries: 0 });
  const answer = await client.post<{ choices: { message: { content: string } }[] }>('/chat/completions', {
    body: pieces('drop-in fake:words=2'),
    headers: { 'content-type': 'application/json' },
  });
  assert.is(answer.choices[0].message.content, 'This answer.');

  async function* wav() {
    yield 'RIFF';
    yield new Uint8Array([1, 2, 3, 4]);
  }
  for (const file of [await toFile(wav(), 'a.wav'), wav()]) {
    const err = await client.audio.transcriptions.create({ file: file as never, model: 'whisper-1' }).catch((e) => e);
    // Past the signature check: the route is simply not offered.
    assert.instance(err, NotFoundError);
    assert.is(err.code, 'unknown_url');
  }
});

test.run();
