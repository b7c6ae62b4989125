// Request shapes whose bill is larger than their body looks, tried as an adversarial user would
// through the local stack with the official client: each is reserved at what OpenAI could bill for
// it (or refused when nothing bounds it), and billed at every rate its usage reports.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import OpenAI from 'openai';
import { startTestStack, settled, type TestStack } from './helpers/stack.ts';

let t: TestStack;
const forwarded = () => t.fake.requests.length;

test.before(async () => {
  t = await startTestStack();
});
test.after(() => t.close());

/** The "may cost up to $X" of a budget refusal, in USD (to the cent from $0.01 up). */
const worstOf = (err: any) => Number(/may cost up to \$(\d+(?:\.\d+)?)/.exec(err?.message ?? '')?.[1]);

/** A refusal's worst case covers `usd`, as far as its message's rounding tells. */
function covers(worst: number, usd: number): void {
  const shown = usd >= 0.01 ? Math.floor(usd * 100) / 100 : usd * 0.999_999;
  assert.ok(worst >= shown, `reserved $${worst}, OpenAI could bill $${usd.toFixed(6)}`);
}

/** Limits `project` to `usd`, and a client of it without the cache. */
async function limited(project: string, usd: number) {
  await t.admin({ action: 'setLimit', project, limit: usd });
  return t.client({ project, caching: false });
}

/** A call that must be refused for its worst case, before it reaches OpenAI: that worst case in USD. */
async function refusedWorst(call: () => Promise<unknown>): Promise<number> {
  const before = forwarded();
  const err: any = await call().then(() => undefined, (e) => e);
  assert.instance(err, OpenAI.RateLimitError, `expected a budget refusal, got ${err?.message ?? 'a 200'}`);
  assert.is(err.code, 'budget_exceeded');
  assert.is(forwarded(), before, 'a refused call never reaches OpenAI');
  return worstOf(err);
}

test('a Responses item_reference is stored input the proxy cannot see: reserved at the input window', async () => {
  const c = await limited('refs', 0.05);
  const worst = await refusedWorst(() =>
    c.responses.create({ model: 'gpt-4o', max_output_tokens: 16, input: [{ type: 'item_reference', id: 'msg_0123456789' }] } as any));
  // gpt-4o's 128,000 input tokens at $2.50/1M.
  covers(worst, 0.32);
  // A reasoning item sent back without its content is loaded from OpenAI's store too.
  const reasoning = await refusedWorst(() =>
    c.responses.create({ model: 'gpt-4o', max_output_tokens: 16, input: [{ type: 'reasoning', id: 'rs_0123', summary: [] }, { role: 'user', content: 'go on' }] } as any));
  covers(reasoning, 0.32);
});

test('an item reference without its optional type is still stored input; a reasoning item by id is one output at most', async () => {
  const c = await limited('refs-untyped', 0.05);
  const untyped = await refusedWorst(() =>
    c.responses.create({ model: 'gpt-4o', max_output_tokens: 16, input: [{ id: 'msg_0123456789' }, { id: 'msg_1', type: null }] } as any));
  covers(untyped, 0.32);
  // Sent back by id, a reasoning item is held at the largest output cap (128,000 tokens), not the window.
  await t.admin({ action: 'setLimit', project: 'refs-untyped', limit: 1 });
  const turn = await c.responses.create({
    model: 'gpt-5', max_output_tokens: 16, input: [{ type: 'reasoning', id: 'rs_0123', summary: [] }, { role: 'user', content: 'go on' }],
  } as any);
  assert.ok(turn.id, 'a second turn of a reasoning model fits a $1 limit');
});

test('a reasoning item the proxy settled is held at what its response output, when sent back by id', async () => {
  const c = await limited('turns', 0.05);
  for (const stream of [false, true]) {
    const first: any = stream
      ? await (async () => {
        let done: any;
        for await (const e of await c.responses.create({ model: 'gpt-5', max_output_tokens: 200, stream: true, input: 'think fake:reasoning=60 fake:words=5' })) {
          if (e.type === 'response.completed') done = e.response;
        }
        return done;
      })()
      : await c.responses.create({ model: 'gpt-5', max_output_tokens: 200, input: 'think fake:reasoning=60 fake:words=5' });
    const reasoning = first.output.find((o: any) => o.type === 'reasoning');
    assert.ok(reasoning?.id?.startsWith('rs_'), 'the answer has a reasoning item');
    // Sent back by id: held at that response's output (about 66 tokens), not 128,000 ($0.16 on gpt-5).
    let next: any;
    for (let i = 0; i < 50 && !next; i++) {
      next = await c.responses
        .create({ model: 'gpt-5', max_output_tokens: 200, input: [{ type: 'reasoning', id: reasoning.id, summary: [] }, { role: 'user', content: 'go on' }] } as any)
        .catch(async (e) => {
          // Until the first turn's settlement (after its response) has recorded it, the item counts at the cap.
          if (e.code !== 'budget_exceeded') throw e;
          await new Promise((r) => setTimeout(r, 20));
        });
    }
    assert.ok(next?.id, `the next turn fits $0.05 (${stream ? 'streamed' : 'buffered'} first turn)`);
  }
  // One the proxy never settled still counts at the largest output cap.
  const unknown = await refusedWorst(() =>
    c.responses.create({ model: 'gpt-5', max_output_tokens: 16, input: [{ type: 'reasoning', id: 'rs_neverseen', summary: [] }, { role: 'user', content: 'go on' }] } as any));
  covers(unknown, 128_000 * 1.25e-6);
});

test('tools inside the input are vetted like declared ones, and stored prompts (which may carry tools) are refused', async () => {
  const c = await limited('inner-tools', 100);
  const before = forwarded();
  for (const input of [
    [{ type: 'additional_tools', role: 'developer', tools: [{ type: 'web_search' }] }, { role: 'user', content: 'hi' }],
    [{ type: 'additional_tools', role: 'developer', tools: [{ type: 'mcp', server_label: 'x', server_url: 'https://x.example/mcp' }] }, { role: 'user', content: 'hi' }],
  ]) {
    const err: any = await c.responses.create({ model: 'gpt-4.1', max_output_tokens: 16, input } as any).catch((e) => e);
    assert.instance(err, OpenAI.BadRequestError);
    assert.is(err.code, 'unpriced_feature');
  }
  const stored: any = await c.responses.create({ model: 'gpt-4.1', prompt: { id: 'pmpt_123' }, input: 'hi' } as any).catch((e) => e);
  assert.is(stored.status, 400);
  assert.is(stored.param, 'prompt');
  assert.is(forwarded(), before);
});

test('counts beyond OpenAI\'s own maxima are refused, so a worst case is always a finite amount', async () => {
  const c = await limited('huge', 100);
  const before = forwarded();
  const mcp = { type: 'mcp', server_label: 'docs', server_url: 'https://mcp.example.com/sse', require_approval: 'never' };
  const calls = [
    () => c.responses.create({ model: 'gpt-6-astra', max_tool_calls: 1e308, input: 'hi', tools: [mcp] } as any),
    () => c.chat.completions.create({ model: 'gpt-4o', n: 1e308, messages: [{ role: 'user', content: 'hi' }] }),
    () => c.completions.create({ model: 'davinci-002', prompt: 'hi', best_of: 21 }),
  ];
  for (const call of calls) {
    const err: any = await call().catch((e) => e);
    assert.is(err.status, 400, err.message);
    assert.not.match(err.message, /NaN|Infinity/);
  }
  assert.is(forwarded(), before);
});

test('legacy completions: each prompt of a list gets its own completions and its own context', async () => {
  const c = await limited('batch', 0.05);
  const prompts = Array.from({ length: 20 }, (_, i) => `prompt ${i}`);
  // One prompt fits: 4,096 output tokens at $2/1M is $0.0082.
  const one = await c.completions.create({ model: 'gpt-3.5-turbo-instruct', prompt: prompts[0], max_tokens: 4096 });
  assert.ok(one.id);
  const worst = await refusedWorst(() => c.completions.create({ model: 'gpt-3.5-turbo-instruct', prompt: prompts, max_tokens: 4096 }));
  // 20 prompts x 4,096 output tokens at $2/1M.
  covers(worst, 20 * 4096 * 2e-6);
  const bestOf = await refusedWorst(() => c.completions.create({ model: 'gpt-3.5-turbo-instruct', prompt: prompts.slice(0, 3), best_of: 3, max_tokens: 4096 }));
  covers(bestOf, 3 * 3 * 4096 * 2e-6);
});

test('a hosted MCP tool needs max_tool_calls, and each turn it allows holds an input window', async () => {
  const c = await limited('mcp', 1);
  const mcp = { type: 'mcp', server_label: 'docs', server_url: 'https://mcp.example.com/sse', require_approval: 'never' };
  const before = forwarded();
  const err: any = await c.responses.create({ model: 'gpt-4.1', max_output_tokens: 100, input: 'look it up', tools: [mcp] } as any).catch((e) => e);
  assert.instance(err, OpenAI.BadRequestError);
  assert.is(err.code, 'unpriced_feature');
  assert.is(err.param, 'max_tool_calls');
  assert.match(err.message, /max_tool_calls/);
  assert.is(forwarded(), before);
  const worst = await refusedWorst(() =>
    c.responses.create({ model: 'gpt-4.1', max_output_tokens: 100, max_tool_calls: 2, input: 'look it up', tools: [mcp] } as any));
  // Three turns of gpt-4.1's 1,047,576-token window at $2/1M: the server's answers are unseen input.
  covers(worst, 3 * 1_047_576 * 2e-6);
});

test('cache writes bill at the cache-write rate, and the reservation holds input at it', async () => {
  const c = await limited('writes', 100);
  const words = Array.from({ length: 400 }, (_, i) => `word${i}`).join(' ');
  const res = await c.chat.completions.create({
    model: 'gpt-6-astra', max_completion_tokens: 50, messages: [{ role: 'user', content: `${words} fake:cache_write=300 fake:words=5` }],
  });
  const usage: any = res.usage;
  const written = usage.prompt_tokens_details.cache_write_tokens;
  assert.is(written, 300);
  // gpt-6-astra: $10 input, $12.50 cache write, $50 output per 1M tokens; nano-USD per token x1000.
  const expected = (usage.prompt_tokens - written) * 10_000 + written * 12_500 + usage.completion_tokens * 50_000;
  let row: any;
  await settled(t, async () => {
    row = (await t.admin({ action: 'usage' })).rows.find((r: any) => r.project === 'writes');
    return row?.requests === 1;
  });
  assert.ok(Math.abs(row.spend - expected / 1e9) < 1e-12, `booked $${row.spend}, billed $${expected / 1e9}`);
  // The same call, refused: its worst input is priced as cache writes.
  await t.admin({ action: 'setLimit', project: 'writes', limit: 0.000001 });
  const worst = await refusedWorst(() =>
    c.chat.completions.create({ model: 'gpt-6-astra', max_completion_tokens: 1, messages: [{ role: 'user', content: 'x'.repeat(100_000) }] }));
  // 100,000 bytes of input at $12.50/1M, not $10.
  covers(worst, 100_000 * 12.5e-6);
});

test('embeddings: a request may sum 300,000 tokens over its inputs, not one input\'s 8,191', async () => {
  const c = await limited('vectors', 0.01);
  const inputs = Array.from({ length: 36 }, (_, i) => `${i} ${'lorem ipsum '.repeat(2_700)}`);
  const worst = await refusedWorst(() => c.embeddings.create({ model: 'text-embedding-3-large', input: inputs }));
  // 300,000 tokens at $0.13/1M.
  covers(worst, 300_000 * 0.13e-6);
  const small = await c.embeddings.create({ model: 'text-embedding-3-large', input: ['one', 'two'] });
  assert.is(small.data.length, 2);
});

test('images: gpt-4o-mini is reserved at its own image rate; an image at original detail at the input window', async () => {
  const c = await limited('vision', 0.005);
  const image = (name: string, detail: 'high' | 'original' = 'high') =>
    ({ type: 'image_url' as const, image_url: { url: `https://example.com/${name}.png`, detail: detail as 'high' } });
  const mini = await refusedWorst(() =>
    c.chat.completions.create({ model: 'gpt-4o-mini', max_completion_tokens: 1, messages: [{ role: 'user', content: [image('a'), image('b')] }] }));
  // 2 x (2,833 + 8 x 5,667) tokens at $0.15/1M.
  covers(mini, 2 * 48_169 * 0.15e-6);
  const original = await refusedWorst(() =>
    c.chat.completions.create({ model: 'gpt-4o', max_completion_tokens: 1, messages: [{ role: 'user', content: [image('c', 'original')] }] }));
  covers(original, 128_000 * 2.5e-6);
});

test('the output cap is read where the route reads it: chat takes the larger of its two fields', async () => {
  const c = await limited('caps', 0.01);
  // gpt-4o: 1,000 vs 16,384 output tokens at $10/1M; max_completion_tokens alone would fit.
  const worst = await refusedWorst(() =>
    c.chat.completions.create({ model: 'gpt-4o', max_completion_tokens: 1_000, max_tokens: 16_384, messages: [{ role: 'user', content: 'hi' }] } as any));
  covers(worst, 16_384 * 10e-6);
  // Legacy completions stop at 16 tokens by default: that is the hold without max_tokens (2 x 16 at $2/1M).
  await t.admin({ action: 'setLimit', project: 'caps', limit: 0.000001 });
  const fallback = await refusedWorst(() => c.completions.create({ model: 'davinci-002', prompt: 'hi', n: 2 }));
  assert.ok(fallback > 0 && fallback < 0.0003, `reserved $${fallback}`);
  await t.admin({ action: 'setLimit', project: 'caps', limit: 0.01 });
  // Legacy completions has no max_completion_tokens: it caps nothing there.
  const legacy = await refusedWorst(() =>
    c.completions.create({ model: 'davinci-002', prompt: 'hi', max_completion_tokens: 1, max_tokens: 4096, n: 2 } as any));
  covers(legacy, 2 * 4096 * 2e-6);
  // An explicit null is not the default's 16: it may mean no cap, so the model's own is held.
  covers(await refusedWorst(() => c.completions.create({ model: 'davinci-002', prompt: 'hi', max_tokens: null, n: 2 })), 2 * 4096 * 2e-6);
});

test('a predicted output is held as output too: its rejected tokens are billed as completion tokens', async () => {
  const c = await limited('predicted', 0.1);
  // 20,000 bytes: at most 20,000 tokens, each billed at gpt-4o's $10/1M output if the answer rejects it.
  const prediction = '!?'.repeat(10_000);
  const worst = await refusedWorst(() =>
    c.chat.completions.create({
      model: 'gpt-4o', max_completion_tokens: 10, prediction: { type: 'content', content: prediction },
      messages: [{ role: 'user', content: 'Fix the typo.' }],
    }));
  covers(worst, (20_000 + 10) * 10e-6);
  // Without it the same call fits.
  const before = forwarded();
  await c.chat.completions.create({ model: 'gpt-4o', max_completion_tokens: 10, messages: [{ role: 'user', content: `Fix the typo. ${prediction.slice(0, 100)}` }] });
  assert.is(forwarded(), before + 1);
});

const PNG = 'data:image/png;base64,' + 'iVBORw0KGgo'.repeat(10);

test('a computer_call_output screenshot has no detail to bound it: held at the input window', async () => {
  const c = await limited('screenshot', 0.01);
  const shot = [
    { type: 'computer_call', id: 'cu_0', call_id: 'call_0', action: { type: 'screenshot' }, pending_safety_checks: [], status: 'completed' },
    { type: 'computer_call_output', call_id: 'call_0', output: { type: 'computer_screenshot', image_url: PNG } },
  ];
  // gpt-4o-mini: 128,000 tokens at $0.15/1M.
  covers(await refusedWorst(() => c.responses.create({ model: 'gpt-4o-mini', max_output_tokens: 16, input: [...shot, { role: 'user', content: 'what changed?' }] } as any)), 128_000 * 0.15e-6);
});

test('a chat image asking for original detail in either field is held at the input window', async () => {
  const c = await limited('detail', 1);
  // gpt-5.4: 1,050,000 tokens, above 272,000 at its long-context $5/1M.
  covers(await refusedWorst(() => c.chat.completions.create({
    model: 'gpt-5.4', max_completion_tokens: 16,
    messages: [{ role: 'user', content: [{ type: 'image_url', detail: 'high', image_url: { url: PNG, detail: 'original' } }, { type: 'text', text: 'what is it?' }] }],
  } as any)), 1_050_000 * 5e-6);
});

test('each spoken answer sent back by id is held at one answer of a speaking model', async () => {
  const c = await limited('audio-by-id', 0.01);
  const turns = Array.from({ length: 3 }, (_, i) => [{ role: 'user', content: 'tell me more' }, { role: 'assistant', audio: { id: `audio_6a1b${i}` } }]).flat();
  // 16,384 audio tokens each, at gpt-audio's $32/1M audio input.
  covers(await refusedWorst(() => c.chat.completions.create({
    model: 'gpt-audio', max_completion_tokens: 1, modalities: ['text', 'audio'], audio: { voice: 'alloy', format: 'wav' },
    messages: [...turns, { role: 'user', content: 'and?' }],
  } as any)), 3 * 16_384 * 32e-6);
});

test('a generated image sent back in the input is held as an image, not as its base64 bytes', async () => {
  const c = await limited('generated-image', 0.005);
  // gpt-4o-mini: 48,169 tokens an image at $0.15/1M, for 200 bytes of base64.
  const item = { type: 'image_generation_call', id: 'ig_0', status: 'completed', result: 'iVBORw0KGgo'.repeat(18) };
  covers(await refusedWorst(() => c.responses.create({ model: 'gpt-4o-mini', max_output_tokens: 16, input: [item, { role: 'user', content: 'again, bluer' }] } as any)), 48_169 * 0.15e-6);
});

test.run();
