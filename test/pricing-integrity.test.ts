// Nothing OpenAI bills passes unpriced: audio tokens at audio rates, refusals (nothing forwarded,
// nothing recorded) for tiers, per-call tool fees and background runs, free reads of stored
// responses, and price overrides that bind every id resolving to them with every rate they set.
// End to end through the local stack with the official `openai` client.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import OpenAI from 'openai';
import { openSqliteLedger } from '../runtime/store/sqlite-ledger.ts';
import { settled } from './helpers/stack.ts';
import { childEnv, startSdkStack, type SdkStack } from './helpers/sdk.ts';

let t: SdkStack;
const PROJECT = 'pricing';
const REFUSED = 'refused';
const root = new URL('..', import.meta.url).pathname;

test.before(async () => {
  t = await startSdkStack();
  await t.admin({ action: 'setLimit', project: PROJECT, limit: 100 });
  await t.admin({ action: 'setLimit', project: REFUSED, limit: 100 });
});
test.after(() => t.close());

/** USD per 1M tokens → nano-USD per token. */
const nano = (usdPerMillion: number) => usdPerMillion * 1000;

async function rowFor(user: string, model: string, until = (r: any) => r.requests > 0) {
  let row: any;
  await settled(t, async () => {
    const report = await t.admin({ action: 'usage' });
    row = report.rows.find((r: any) => r.user === user && r.model === model && r.project === PROJECT);
    return !!row && until(row);
  });
  return row;
}

const SILENCE = Buffer.alloc(64).toString('base64');
const audioPrompt = (text: string) => [
  { role: 'user', content: [{ type: 'text', text }, { type: 'input_audio', input_audio: { data: SILENCE, format: 'wav' } }] },
] as any;

// ---------------------------------------------------------------- audio

test('audio: a spoken answer to an audio prompt is booked at the audio rates, to the nano-USD', async () => {
  await t.user('ada');
  const c = t.client({ user: 'ada', project: PROJECT, caching: false });
  const { data, response } = await c.chat.completions
    .create({
      model: 'gpt-4o-audio-preview', modalities: ['text', 'audio'], audio: { voice: 'alloy', format: 'wav' },
      messages: audioPrompt('Listen fake:audio=1000 fake:words=5'),
    })
    .withResponse();
  const u = data.usage!;
  assert.is(u.prompt_tokens_details?.audio_tokens, 1000);
  assert.is(u.completion_tokens_details?.audio_tokens, 1000);
  assert.ok(data.choices[0].message.audio?.transcript, 'the fake answers with audio and its transcript');
  // gpt-4o-audio-preview: text $2.50 in / $10 out, audio $40 in / $80 out per 1M tokens.
  const audio = 1000 * nano(40) + 1000 * nano(80);
  assert.is(audio, 120_000_000, '1k audio tokens in and out are $0.12');
  const expected = (u.prompt_tokens - 1000) * nano(2.5) + (u.completion_tokens - 1000) * nano(10) + audio;
  assert.is(Math.round(Number(response.headers.get('openai-proxy-cost')) * 1e9), expected);
  const row = await rowFor('ada', 'gpt-4o-audio-preview');
  assert.is(Math.round(row.spend * 1e9), expected);
  assert.is(row.inputTokens, u.prompt_tokens, 'token totals are the totals OpenAI reports, audio included');
});

test('audio: a streamed call is booked from the usage chunk at the audio rates', async () => {
  await t.user('abe');
  const c = t.client({ user: 'abe', project: PROJECT, caching: false });
  const stream = await c.chat.completions.create({
    model: 'gpt-audio-mini', stream: true, modalities: ['text', 'audio'], audio: { voice: 'alloy', format: 'pcm16' },
    messages: audioPrompt('Listen fake:audio=500 fake:words=4'),
  });
  let sawUsage = false;
  for await (const chunk of stream) if (chunk.usage) sawUsage = true;
  assert.not.ok(sawUsage, 'the usage chunk the proxy asked for is stripped again');
  const sent = t.fake.requests.at(-1)!.body;
  // Same prompt, not streamed: the usage the stream had.
  const plain = await c.chat.completions.create({ ...sent, stream: false, stream_options: undefined });
  const u = plain.usage!;
  // gpt-audio-mini: text $0.60 in / $2.40 out, audio $10 in / $20 out per 1M tokens.
  const each = (u.prompt_tokens - 500) * nano(0.6) + 500 * nano(10) + (u.completion_tokens - 500) * nano(2.4) + 500 * nano(20);
  const row = await rowFor('abe', 'gpt-audio-mini', (r) => r.requests === 2);
  assert.is(Math.round(row.spend * 1e9), 2 * each);
  assert.is(row.estimated, 0);
});

// ---------------------------------------------------------------- refusals

/** The call is refused with a 400 naming `param`, and nothing reaches the upstream. */
async function refused(call: () => Promise<unknown>, param: string, code = 'unpriced_feature'): Promise<string> {
  const before = t.fake.requests.length;
  const err: any = await call().then(() => undefined, (e) => e);
  assert.instance(err, OpenAI.BadRequestError, `expected a 400 for ${param}, got ${err}`);
  assert.is(err.status, 400);
  assert.is(err.code, code);
  assert.is(err.param, param);
  assert.is(t.fake.requests.length, before, `nothing forwarded (${param})`);
  assert.not.match(err.message, /\bat \w+ \(|sk-test/, 'no stack trace or key in the message');
  return err.message;
}

/** After refusals: the project has no usage rows and nothing reserved. */
async function nothingRecorded(): Promise<void> {
  const report = await t.admin({ action: 'usage' });
  assert.equal(report.rows.filter((r: any) => r.project === REFUSED), []);
  const limits = await t.admin({ action: 'listLimits', project: REFUSED });
  assert.is(limits.limits[0].committed, 0);
}

test('audio is refused where it cannot be priced: no audio rate, or the Responses API', async () => {
  const c = t.client({ project: REFUSED, caching: false });
  let msg = await refused(() => c.chat.completions.create({ model: 'gpt-4o', messages: audioPrompt('hear this') }), 'messages');
  assert.match(msg, /gpt-4o.*no audio input price/);
  msg = await refused(
    () => c.chat.completions.create({ model: 'gpt-4o-mini', modalities: ['text', 'audio'], audio: { voice: 'alloy', format: 'wav' }, messages: [{ role: 'user', content: 'speak' }] }),
    'modalities',
  );
  assert.match(msg, /no audio output price/);
  await refused(() => c.chat.completions.create({ model: 'gpt-4o-mini', audio: { voice: 'alloy', format: 'wav' }, messages: [{ role: 'user', content: 'speak' }] } as any), 'audio');
  // The transcription model prices audio input only: asking it to speak is refused.
  await refused(() => c.chat.completions.create({ model: 'gpt-4o-transcribe', modalities: ['audio'], messages: [{ role: 'user', content: 'x' }] } as any), 'modalities');
  msg = await refused(
    () => c.responses.create({ model: 'gpt-audio', input: [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: SILENCE, format: 'wav' } }] }] } as any),
    'input',
  );
  assert.match(msg, /Send audio through \/chat\/completions/);
  await nothingRecorded();
});

test('service tiers other than the standard one are refused; auto and default pass', async () => {
  const c = t.client({ project: REFUSED, caching: false });
  for (const tier of ['priority', 'flex', 'scale'] as const) {
    const msg = await refused(() => c.chat.completions.create({ model: 'gpt-4o-mini', service_tier: tier, messages: [{ role: 'user', content: 'hi' }] }), 'service_tier');
    assert.match(msg, new RegExp(`service_tier "${tier}".*no exact rates`));
    await refused(() => c.responses.create({ model: 'gpt-5', service_tier: tier, input: 'hi' }), 'service_tier');
  }
  await nothingRecorded();
  const ok = t.client({ project: PROJECT, caching: false });
  for (const tier of ['auto', 'default', undefined] as const) {
    const before = t.fake.requests.length;
    await ok.chat.completions.create({ model: 'gpt-4o-mini', service_tier: tier, messages: [{ role: 'user', content: 'hi' }] });
    await ok.responses.create({ model: 'gpt-5', service_tier: tier, input: 'hi' });
    assert.is(t.fake.requests.length, before + 2);
    // auto would let OpenAI use the tier set on its project, which may be priority: default is sent.
    assert.equal(t.fake.requests.slice(before).map((r) => r.body.service_tier), ['default', 'default'], String(tier));
  }
});

test('built-in tools with per-call fees, search models and web_search_options are refused', async () => {
  const c = t.client({ project: REFUSED, caching: false });
  const fee = [
    { type: 'web_search' },
    { type: 'web_search_2025_08_26' },
    { type: 'web_search_preview' },
    { type: 'web_search_preview_2025_03_11' },
    { type: 'file_search', vector_store_ids: ['vs_1'] },
    { type: 'code_interpreter', container: { type: 'auto' } },
    { type: 'image_generation' },
  ];
  for (const tool of fee) {
    const msg = await refused(() => c.responses.create({ model: 'gpt-5', input: 'hi', tools: [{ type: 'function', name: 'f', parameters: {}, strict: false }, tool] } as any), 'tools');
    assert.match(msg, new RegExp(`"${tool.type}".*per call.*cannot be bounded`));
  }
  for (const tool of [{ type: 'computer_use_preview', display_width: 1024, display_height: 768, environment: 'browser' }, { type: 'shell', environment: { type: 'container_auto' } }, { type: 'some_new_tool' }]) {
    const msg = await refused(() => c.responses.create({ model: 'computer-use-preview', input: 'hi', tools: [tool] } as any), 'tools');
    assert.match(msg, /not known to be billed as tokens only/);
  }
  let msg = await refused(() => c.chat.completions.create({ model: 'gpt-4o-mini', web_search_options: {}, messages: [{ role: 'user', content: 'news?' }] }), 'web_search_options');
  assert.match(msg, /bills each web search/);
  for (const model of ['gpt-4o-search-preview', 'gpt-4o-mini-search-preview-2025-03-11', 'gpt-5-search-api']) {
    msg = await refused(() => c.chat.completions.create({ model, messages: [{ role: 'user', content: 'news?' }] }), 'model');
    assert.match(msg, new RegExp(`"${model}" searches the web`));
  }
  await nothingRecorded();
});

test('a tool_choice cannot force an undeclared built-in tool, and server-side compaction is refused', async () => {
  const c = t.client({ project: REFUSED, caching: false });
  const fn = { type: 'function', name: 'f', parameters: {}, strict: false };
  let msg = await refused(() => c.responses.create({ model: 'gpt-5', input: 'hi', tool_choice: { type: 'web_search_preview' } } as any), 'tool_choice');
  assert.match(msg, /"web_search_preview".*per call/);
  msg = await refused(() => c.responses.create({ model: 'gpt-5', input: 'hi', tool_choice: { type: 'programmatic_tool_calling' } } as any), 'tool_choice');
  assert.match(msg, /not known to be billed as tokens only/);
  await refused(() => c.responses.create({
    model: 'gpt-5', input: 'hi', tools: [fn],
    tool_choice: { type: 'allowed_tools', mode: 'auto', tools: [{ type: 'function', name: 'f' }, { type: 'image_generation' }] },
  } as any), 'tool_choice');
  await refused(() => c.chat.completions.create({
    model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }],
    tool_choice: { type: 'allowed_tools', allowed_tools: { mode: 'auto', tools: [{ type: 'code_interpreter' }] } },
  } as any), 'tool_choice');
  // Every shape an allowed_tools list may take, on either route; unknown string forms; a namespace's own tools.
  for (const choice of [
    'web_search',
    { type: 'allowed_tools', tools: {}, allowed_tools: { tools: [{ type: 'web_search' }] } },
    { type: 'allowed_tools', mode: 'auto', tools: [{ type: 'namespace', name: 'n', tools: [{ type: 'web_search' }] }] },
  ]) {
    await refused(() => c.responses.create({
      model: 'gpt-5', input: 'hi', tools: [{ type: 'namespace', name: 'n', tools: [{ type: 'function', name: 'g' }] }], tool_choice: choice,
    } as any), 'tool_choice');
  }
  msg = await refused(() => c.responses.create({ model: 'gpt-5', input: 'hi', context_management: [{ type: 'compaction', compact_threshold: 1000 }] } as any), 'context_management');
  assert.match(msg, /compaction.*could not be metered/i);
  await refused(() => c.responses.create({ model: 'gpt-5', input: [{ role: 'user', content: 'hi' }, { type: 'compaction_trigger' }] } as any), 'input');
  await nothingRecorded();

  // What the call declares (and was vetted) may be chosen, by name or by type.
  await t.user('tc');
  const ok = t.client({ user: 'tc', project: PROJECT, caching: false });
  const before = t.fake.requests.length;
  await ok.responses.create({ model: 'gpt-5', input: 'hi', tools: [fn], tool_choice: { type: 'function', name: 'f' } } as any);
  await ok.responses.create({ model: 'gpt-5', input: 'hi', tools: [{ type: 'shell', environment: { type: 'local' } }], tool_choice: { type: 'shell' } } as any);
  await ok.responses.create({ model: 'gpt-5', input: 'hi', tools: [fn], tool_choice: { type: 'allowed_tools', mode: 'required', tools: [{ type: 'function', name: 'f' }] }, context_management: [] } as any);
  await ok.chat.completions.create({
    model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], tool_choice: 'auto',
    tools: [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: {} } } }],
  });
  assert.is(t.fake.requests.length, before + 4);
});

test('function, custom and MCP tools pass: they are billed as tokens (MCP with max_tool_calls)', async () => {
  await t.user('fay');
  const c = t.client({ user: 'fay', project: PROJECT, caching: false });
  const before = t.fake.requests.length;
  await c.responses.create({
    model: 'o4-mini-deep-research',
    input: 'hi',
    max_tool_calls: 2,
    tools: [
      { type: 'function', name: 'lookup', parameters: { type: 'object', properties: {} }, strict: false },
      { type: 'custom', name: 'grammar' },
      { type: 'mcp', server_label: 'docs', server_url: 'https://mcp.example.com/sse', require_approval: 'never' },
      { type: 'namespace', name: 'crm', description: 'CRM', tools: [{ type: 'function', name: 'find' }] },
      { type: 'shell', environment: { type: 'local' } },
    ],
  } as any);
  await c.chat.completions.create({
    model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }],
    tools: [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: {} } } }],
  });
  assert.is(t.fake.requests.length, before + 2);
  assert.is((await rowFor('fay', 'o4-mini-deep-research')).requests, 1, 'a "research" model is not a search model');
});

test('background responses are refused: their run is billed where the proxy never sees it', async () => {
  const c = t.client({ project: REFUSED, caching: false });
  const msg = await refused(() => c.responses.create({ model: 'gpt-5', input: 'long job', background: true }), 'background');
  assert.match(msg, /bills the run later.*never sees/);
  await nothingRecorded();
});

// ---------------------------------------------------------------- GET /responses/{id}

test('GET /responses/{id} is forwarded unmetered; other methods and odd ids are not forwarded', async () => {
  await t.user('rex');
  const c = t.client({ user: 'rex', project: PROJECT, caching: false });
  const created = await c.responses.create({ model: 'gpt-4.1-mini', input: 'Keep this fake:words=3' });
  await rowFor('rex', 'gpt-4.1-mini');
  const before = t.fake.requests.length;
  const read = await c.responses.retrieve(created.id);
  assert.is(t.fake.requests.length, before + 1);
  const sent = t.fake.requests.at(-1)!;
  assert.equal([sent.method, sent.path], ['GET', `/v1/responses/${created.id}`]);
  assert.equal([read.id, read.output_text, read.usage], [created.id, created.output_text, created.usage]);
  const missing: any = await c.responses.retrieve('resp_0000000000000000').then(() => undefined, (e) => e);
  assert.instance(missing, OpenAI.NotFoundError, 'the upstream 404 for an unknown id comes back as it is');
  assert.is(t.fake.requests.length, before + 2);

  const raw = t.fetchAs('rex');
  for (const [method, path] of [
    ['GET', `/responses/not-an-id`],
    ['GET', `/responses/${created.id}/input_items`],
    ['DELETE', `/responses/${created.id}`],
    ['POST', `/responses/${created.id}/cancel`],
  ]) {
    const res = await raw(`${t.stack.url}/dev/v1${path}`, { method, headers: { 'openai-proxy-project': PROJECT } });
    assert.is(res.status, 404, `${method} ${path}`);
    assert.is((await res.json()).error.code, 'unknown_url');
  }
  assert.is(t.fake.requests.length, before + 2, 'none of those was forwarded');
  const row = await rowFor('rex', 'gpt-4.1-mini');
  assert.is(row.requests, 1, 'reading a response back costs nothing');
});

// ---------------------------------------------------------------- overrides

test('a family override binds a dated id that has its own table row', async () => {
  await t.user('otto');
  await t.admin({ action: 'setPrice', model: 'gpt-4o', input: 5, output: 20 });
  try {
    const c = t.client({ user: 'otto', project: PROJECT, caching: false });
    const data = await c.chat.completions.create({ model: 'gpt-4o-2024-08-06', messages: [{ role: 'user', content: 'hi fake:words=7' }] });
    const u = data.usage!;
    const row = await rowFor('otto', 'gpt-4o'); // usage counts under the model's family
    // The table's own row for the dated id says $2.50 / $10; the family override must win.
    assert.is(Math.round(row.spend * 1e9), u.prompt_tokens * nano(5) + u.completion_tokens * nano(20));
    assert.match(row.priceVersion, /^override@/);
  } finally {
    await t.admin({ action: 'removePrice', model: 'gpt-4o' });
  }
});

test("an override's long-context rates apply above its threshold", async () => {
  await t.user('lena');
  const model = 'my-long-model';
  await t.admin({
    action: 'setPrice', model, input: 1, output: 2,
    longContext: { thresholdInputTokens: 40, input: 3, cachedInput: 1.5, output: 7 },
  });
  const c = t.client({ user: 'lena', project: PROJECT, caching: false });
  const short = await c.chat.completions.create({ model, messages: [{ role: 'user', content: 'short fake:words=2' }] });
  const long = await c.chat.completions.create({ model, messages: [{ role: 'user', content: `${'word '.repeat(60)} fake:words=2 fake:cached=10` }] });
  assert.ok(short.usage!.prompt_tokens <= 40 && long.usage!.prompt_tokens > 40);
  const expected =
    short.usage!.prompt_tokens * nano(1) + short.usage!.completion_tokens * nano(2) +
    (long.usage!.prompt_tokens - 10) * nano(3) + 10 * nano(1.5) + long.usage!.completion_tokens * nano(7);
  const row = await rowFor('lena', model, (r) => r.requests === 2);
  assert.is(Math.round(row.spend * 1e9), expected);
});

test("an override's audio rates are used, and rates it leaves out keep the table's", async () => {
  await t.user('aud');
  // Sets audio rates on gpt-audio; the family override on gpt-4o-audio-preview raises text only.
  await t.admin({ action: 'setPrice', model: 'gpt-audio', input: 1, output: 2, audio: { input: 100, output: 200 } });
  await t.admin({ action: 'setPrice', model: 'gpt-4o-audio-preview', input: 3, output: 12 });
  const c = t.client({ user: 'aud', project: PROJECT, caching: false });
  const ask = (model: string) => c.chat.completions.create({
    model, modalities: ['text', 'audio'], audio: { voice: 'alloy', format: 'wav' }, messages: audioPrompt('Talk fake:audio=300 fake:words=3'),
  });
  const a = (await ask('gpt-audio')).usage!;
  const b = (await ask('gpt-4o-audio-preview-2024-12-17')).usage!;
  const cost = (u: OpenAI.CompletionUsage, input: number, output: number, audioIn: number, audioOut: number) =>
    (u.prompt_tokens - 300) * nano(input) + 300 * nano(audioIn) + (u.completion_tokens - 300) * nano(output) + 300 * nano(audioOut);
  assert.is(Math.round((await rowFor('aud', 'gpt-audio')).spend * 1e9), cost(a, 1, 2, 100, 200));
  // The dated id's table audio rates ($40 / $80) stay under the family's text-only override.
  // (usage counts under the model's family)
  assert.is(Math.round((await rowFor('aud', 'gpt-4o-audio-preview')).spend * 1e9), cost(b, 3, 12, 40, 80));
  const listed = await t.admin({ action: 'listPrices', model: 'gpt-4o-audio-preview-2024-12-17' });
  assert.equal(listed.prices[0], {
    model: 'gpt-4o-audio-preview-2024-12-17', input: 3, cachedInput: null, output: 12,
    audio: { input: 40, cachedInput: null, output: 80 }, source: 'override', overrideModel: 'gpt-4o-audio-preview',
  });
});

test('an older snapshot than the table lists is refused as unpriced, until an admin prices that id', async () => {
  await t.user('old');
  const c = t.client({ user: 'old', project: PROJECT, caching: false });
  const model = 'gpt-4o-audio-preview-2024-10-01';
  const msg = await refused(() => c.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }] }), 'model', 'model_not_priced');
  assert.match(msg, /older snapshot than the price table lists/);
  await t.admin({ action: 'setPrice', model, input: 5, output: 20, audio: { input: 100, output: 200 } });
  try {
    const u = (await c.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi fake:words=4' }] })).usage!;
    const row = await rowFor('old', 'gpt-4o-audio-preview');
    assert.is(Math.round(row.spend * 1e9), u.prompt_tokens * nano(5) + u.completion_tokens * nano(20));
  } finally {
    await t.admin({ action: 'removePrice', model });
  }
});

test('a price cut set on a family does not lower a dated id the table prices higher; an override on that id does', async () => {
  await t.user('snap');
  // gpt-4o's own rates; the table lists gpt-4o-2024-05-13 at $5 / $15, as OpenAI still bills it.
  await t.admin({ action: 'setPrice', model: 'gpt-4o', input: 2.5, cachedInput: 1.25, output: 10 });
  try {
    const c = t.client({ user: 'snap', project: PROJECT, caching: false });
    const ask = (model: string) => c.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi fake:words=9 fake:cached=4' }] });
    const old = (await ask('gpt-4o-2024-05-13')).usage!;
    let row = await rowFor('snap', 'gpt-4o');
    // No cached rate in the snapshot's row: cached tokens bill at its input rate, not the family's $1.25.
    assert.is(Math.round(row.spend * 1e9), old.prompt_tokens * nano(5) + old.completion_tokens * nano(15));
    const listed = await t.admin({ action: 'listPrices', model: 'gpt-4o-2024-05-13' });
    assert.equal([listed.prices[0].input, listed.prices[0].cachedInput, listed.prices[0].output], [5, 5, 15]);

    await t.admin({ action: 'setPrice', model: 'gpt-4o-2024-05-13', input: 4, output: 12 });
    const cut = (await ask('gpt-4o-2024-05-13')).usage!;
    row = await rowFor('snap', 'gpt-4o', (r) => r.requests === 2);
    const first = old.prompt_tokens * nano(5) + old.completion_tokens * nano(15);
    assert.is(Math.round(row.spend * 1e9), first + cut.prompt_tokens * nano(4) + cut.completion_tokens * nano(12));
  } finally {
    await t.admin({ action: 'removePrice', model: 'gpt-4o' });
    await t.admin({ action: 'removePrice', model: 'gpt-4o-2024-05-13' });
  }
});

test('setPrice refuses malformed long-context and audio rates with an OpenAI-shaped error', async () => {
  const bad = async (extra: Record<string, unknown>, code: string, param: string) => {
    const out = await t.admin({ action: 'setPrice', model: 'x-model', input: 1, output: 1, ...extra });
    assert.is(out.ok, false, JSON.stringify(extra));
    assert.equal([out.error.type, out.error.code, out.error.param], ['invalid_request_error', code, param]);
    assert.ok(out.error.message.length > 20);
  };
  await bad({ longContext: { thresholdInputTokens: 0, input: 1, output: 1 } }, 'invalid_amount', 'longContext.thresholdInputTokens');
  await bad({ longContext: { thresholdInputTokens: 1.5, input: 1, output: 1 } }, 'invalid_amount', 'longContext.thresholdInputTokens');
  await bad({ longContext: { thresholdInputTokens: 1000, input: 1 } }, 'invalid_amount', 'longContext.output');
  await bad({ longContext: { thresholdInputTokens: 1000, input: -1, output: 1 } }, 'invalid_amount', 'longContext.input');
  await bad({ longContext: 5 }, 'invalid_price', 'longContext');
  await bad({ audio: { inptu: 3 } }, 'invalid_price', 'audio.inptu');
  await bad({ audio: {} }, 'invalid_price', 'audio');
  await bad({ audio: { output: 'lots' } }, 'invalid_amount', 'audio.output');
  assert.equal((await t.admin({ action: 'listPrices' })).prices.filter((p: any) => p.model === 'x-model'), []);
});

test('CLI: prices set takes cache-write, long-context and audio flags, prices ls shows them', async () => {
  const cli = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', 'sdk/cli.ts', ...args], { cwd: root, env: childEnv(t.env) }, (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
    });
  const set = await cli([
    'prices', 'set', '--model', 'cli-model', '--input', '2', '--output', '8', '--cache-write', '2.5',
    '--long-context-threshold', '128000', '--long-context-input', '4', '--long-context-output', '16', '--audio-output', '64',
  ]);
  assert.is(set.code, 0, set.stderr);
  assert.match(set.stdout, /Price of cli-model in stage dev: input \$2, cached input \(as input\), output \$8 per 1M tokens; cache writes \$2.5; above 128,000 input tokens \$4 input, \$16 output; audio \$64 output\./);
  const ls = await cli(['prices', 'ls', '--model', 'cli-model']);
  assert.match(ls.stdout, /cli-model +2 +- +8 +override/);
  assert.match(ls.stdout, /MODEL +CACHE WRITE +THRESHOLD +LC INPUT +LC CACHED +LC OUTPUT +AUDIO INPUT +AUDIO CACHED +AUDIO OUTPUT\n[- ]+\ncli-model +2.5 +128,000 +4 +- +16 +- +- +64/);
  const usage = await cli(['prices', 'set', '--model', 'cli-model', '--input', '2', '--output', '8', '--long-context-input', '4']);
  assert.is(usage.code, 2);
  assert.match(usage.stderr, /--long-context-threshold must be a whole number/);
});

// ---------------------------------------------------------------- storage

test('an SQLite ledger made before these rates existed gains them on open, and keeps its prices', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'wrapi-price-migration-'));
  try {
    const file = join(dir, 'old.sqlite');
    const old = new Database(file);
    old.exec(`CREATE TABLE prices (model TEXT PRIMARY KEY NOT NULL, input REAL NOT NULL, cachedInput REAL, output REAL NOT NULL, updatedAt TEXT NOT NULL);
      INSERT INTO prices VALUES ('legacy', 1, NULL, 2, '2026-01-01T00:00:00.000Z');`);
    old.close();
    for (let open = 0; open < 2; open++) {
      const ledger = openSqliteLedger(file);
      const prices = await ledger.listPrices();
      assert.equal(prices[0], { model: 'legacy', input: 1, cachedInput: null, output: 2, updatedAt: '2026-01-01T00:00:00.000Z' });
      const audio = { model: 'new', input: 1, cachedInput: null, output: 2, audio: { input: 9 }, updatedAt: '2026-11-01T00:00:00.000Z' };
      await ledger.setPrice(audio);
      assert.equal((await ledger.read([], ['new'])).prices, [audio]);
      await ledger.close!();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
