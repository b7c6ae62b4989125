// A client that stops reading a stream must not stop the proxy from reading it: OpenAI generates
// and bills the whole answer either way. Tried as an adversarial user would: read a little, then
// hold the connection open without reading, so that the proxy's deadline would cut a stalled read.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startTestStack, settled, type TestStack } from './helpers/stack.ts';
import { meteredStream } from '../runtime/core/metered-stream.ts';
import { StreamMeter } from '../runtime/core/stream-meter.ts';
import { matchRoute } from '../runtime/core/routes.ts';

let t: TestStack;
test.before(async () => {
  t = await startTestStack();
});
test.after(() => t.close());

test('a client that stops reading is dropped past its lag, and the rest is read for the usage', async () => {
  const events = Array.from({ length: 200 }, (_, i) => `data: {"choices":[{"index":0,"delta":{"content":" w${i}"}}]}\n\n`);
  events.push('data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":200,"total_tokens":207}}\n\n', 'data: [DONE]\n\n');
  const bytes = new TextEncoder().encode(events.join(''));
  let pulled = 0;
  const source = new ReadableStream<Uint8Array>({
    pull(c) {
      if (pulled >= bytes.length) return c.close();
      c.enqueue(bytes.subarray(pulled, (pulled += 100)));
    },
  });
  const meter = new StreamMeter('chat', false);
  const ended = new Promise<string>((resolve) => {
    const body = meteredStream(source, meter, matchRoute('POST', '/v1/chat/completions')!, {
      keepTranscript: false, waitUntil: () => undefined, maxLagBytes: 1_000, onEnd: (how) => resolve(how),
    });
    // The client reads one chunk and then nothing more.
    void body.getReader().read();
  });
  assert.is(await ended, 'complete');
  assert.is(pulled >= bytes.length, true, 'the upstream was read to its end');
  assert.equal(meter.outcome.usage, { input: 7, cached: 0, output: 200 });
});

test('through the stack: a stalled stream is billed at OpenAI\'s usage, not by the text it was sent', async () => {
  await t.admin({ action: 'setLimit', project: 'stall', limit: 10 });
  const words = 30_000;
  const res = await t.fetchAs()(`${t.stack.url}/dev/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'openai-proxy-project': 'stall', 'openai-proxy-caching': '0' },
    body: JSON.stringify({ model: 'gpt-4.1', stream: true, max_completion_tokens: words + 100, messages: [{ role: 'user', content: `fake:words=${words}` }] }),
  });
  assert.is(res.status, 200);
  // Read a little, then stall with the connection open.
  const reader = res.body!.getReader();
  await reader.read();
  let row: any;
  await settled(t, async () => {
    row = (await t.admin({ action: 'usage' })).rows.find((r: any) => r.project === 'stall');
    return row?.requests === 1;
  }, 20_000);
  // The fake's answer: the words and a final "." (each one token), all of it billed exactly.
  assert.is(row.outputTokens, words + 1);
  assert.is(row.estimated, 0);
  // The client was dropped: what reaches it ends cut off, not as a whole answer.
  let text = '';
  const decoder = new TextDecoder();
  const end = await (async () => {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return 'ended';
      text += decoder.decode(value, { stream: true });
    }
  })().catch(() => 'cut');
  assert.is(end, 'cut');
  assert.not.match(text, /\[DONE\]/);
});

test.run();
