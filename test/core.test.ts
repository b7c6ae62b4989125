// The pure core: prices, cost arithmetic, stream metering at any chunk boundary, request reading,
// identities, cache keys and configuration.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { costOf, modelCandidates, resolvePrice } from '../runtime/core/pricing.ts';
import { assertBillable } from '../runtime/core/billable.ts';
import { readUsage } from '../runtime/core/usage.ts';
import { OUTPUT_TEXT_MAX_CHARS, StreamMeter } from '../runtime/core/stream-meter.ts';
import { countTokens } from '../runtime/store/tokenizer.ts';
import { countTokens as exactTokens } from 'gpt-tokenizer';
import { requestFacts, upstreamBody, parseJsonBody } from '../runtime/core/request-facts.ts';
import { matchRoute } from '../runtime/core/routes.ts';
import { callerFromArn, identityRules } from '../runtime/core/caller.ts';
import { cacheKey, canonicalJson } from '../runtime/core/cache-key.ts';
import { ConfigError, readProxyConfig } from '../runtime/core/config.ts';
import { callScopes, holdsFor, effectiveLimits, monthOf } from '../runtime/core/limits.ts';
import { WrapiError } from '../runtime/core/errors.ts';
import { callDeadline, isTimeout } from '../runtime/core/forward.ts';

const ref = (name: string) => readFileSync(new URL(`./fixtures/reference/${name}`, import.meta.url), 'utf8');

test('model resolution: exact, then undated family, fine-tunes by base model', () => {
  assert.equal(modelCandidates('gpt-4o-2024-08-06'), ['gpt-4o-2024-08-06', 'gpt-4o']);
  assert.equal(modelCandidates('gpt-4-0613'), ['gpt-4-0613', 'gpt-4']);
  assert.equal(modelCandidates('ft:gpt-4o-mini-2024-07-18:acme::abc123'), [
    'ft:gpt-4o-mini-2024-07-18:acme::abc123', 'ft:gpt-4o-mini-2024-07-18', 'ft:gpt-4o-mini',
  ]);
  assert.is(resolvePrice('gpt-4o-2031-01-01')!.input, 2.5);
  assert.is(resolvePrice('no-such-model'), undefined);
  const override = { model: 'gpt-4o', input: 9, cachedInput: null, output: 9, updatedAt: '2026-11-01T00:00:00.000Z' };
  const p = resolvePrice('gpt-4o-2031-01-01', [undefined, override])!;
  assert.is(p.input, 9);
  assert.is(p.version, 'override@2026-11-01T00:00:00.000Z');
});

test('cost: cached tokens inside input, reasoning inside output, never counted twice', () => {
  const p = resolvePrice('gpt-4o-mini')!; // 0.15 / 0.075 / 0.60
  assert.is(costOf(p, { input: 1000, cached: 0, output: 0 }), 150_000);
  assert.is(costOf(p, { input: 1000, cached: 400, output: 0 }), 600 * 150 + 400 * 75);
  assert.is(costOf(p, { input: 0, cached: 0, output: 1000 }), 600_000);
  const noCache = resolvePrice('gpt-3.5-turbo-instruct')!; // no cached price: cached bills as input
  assert.is(costOf(noCache, { input: 100, cached: 50, output: 0 }), 100 * 1500);
});

test('cost: above a long-context threshold the whole request is repriced', () => {
  const p = resolvePrice('gpt-5.4')!;
  assert.ok(p.longContext, 'table has long-context rates for gpt-5.4');
  const lc = p.longContext!;
  const under = costOf(p, { input: lc.thresholdInputTokens, cached: 0, output: 10 });
  const over = costOf(p, { input: lc.thresholdInputTokens + 1, cached: 0, output: 10 });
  assert.is(under, Math.round(lc.thresholdInputTokens * p.input * 1000 + 10 * p.output * 1000));
  assert.is(over, Math.round((lc.thresholdInputTokens + 1) * lc.input * 1000 + 10 * lc.output * 1000));
});

test('overrides: the most specific override wins; a family one never lowers a listed dated id; left-out rates keep the table', () => {
  const o = (model: string, input: number, extra = {}) => ({ model, input, cachedInput: null, output: 1, updatedAt: `t${input}`, ...extra });
  // gpt-4o-2024-05-13 has its own table row ($5 / $15): the family override may raise it, not cut it.
  assert.is(resolvePrice('gpt-4o-2024-05-13', [undefined, o('gpt-4o', 7)])!.input, 7);
  const cut = resolvePrice('gpt-4o-2024-05-13', [undefined, o('gpt-4o', 3)])!;
  assert.equal([cut.input, cut.output, cut.version], [5, 15, 'override@t3']);
  assert.is(resolvePrice('gpt-4o-2024-05-13', [o('gpt-4o-2024-05-13', 3), o('gpt-4o', 7)])!.input, 3);
  // A dated id the table does not list takes the family override as it is.
  assert.is(resolvePrice('gpt-4o-2031-01-01', [undefined, o('gpt-4o', 1)])!.input, 1);
  const ft = resolvePrice('ft:gpt-4o-mini-2024-07-18:acme::x', [undefined, undefined, o('ft:gpt-4o-mini', 3)])!;
  assert.equal([ft.input, ft.version], [3, 'override@t3']);
  // No long-context or audio rates in the override: the table's for this id stay...
  const same = resolvePrice('gpt-5.4', [o('gpt-5.4', 2, { cachedInput: 0.2, output: 12 })])!;
  assert.equal(same.longContext, { thresholdInputTokens: 272000, input: 5, cachedInput: 0.5, output: 22.5 });
  // ...and rise with the text rates they are multiples of, so a long prompt never bills below a short one.
  const raised = resolvePrice('gpt-5.4', [o('gpt-5.4', 10, { cachedInput: 1, output: 60 })])!;
  assert.equal(raised.longContext, { thresholdInputTokens: 272000, input: 20, cachedInput: 2, output: 90 });
  assert.ok(costOf(raised, { input: 272_001, cached: 0, output: 1000 }) > costOf(raised, { input: 272_000, cached: 0, output: 1000 }));
  const own = { thresholdInputTokens: 1000, input: 9, cachedInput: null, output: 9 };
  assert.equal(resolvePrice('gpt-5.4', [o('gpt-5.4', 2, { longContext: own })])!.longContext, own);
  const audio = resolvePrice('gpt-realtime', [o('gpt-realtime', 2, { audio: { output: 99 } })])!.audio;
  assert.equal(audio, { input: 32, cachedInput: 0.4, output: 99 });
  assert.is(resolvePrice('my-model', [o('my-model', 1)])!.audio, undefined);
});

test('an unlisted snapshot older than one the table lists is not priced by its family; a newer one is', () => {
  // The table lists gpt-4o-audio-preview-2024-12-17 and -2025-06-03; -2024-10-01 billed audio at $100 / $200.
  assert.is(resolvePrice('gpt-4o-audio-preview-2024-10-01'), undefined);
  assert.is(resolvePrice('gpt-4o-2024-06-01'), undefined, 'older than gpt-4o-2024-08-06');
  assert.is(resolvePrice('gpt-4o-2031-01-01')!.input, 2.5, 'newer than every listed one: the family price');
  assert.is(resolvePrice('gpt-4o-2024-05-13')!.input, 5, 'listed itself');
  const o = (model: string) => ({ model, input: 7, cachedInput: null, output: 9, updatedAt: 't' });
  assert.is(resolvePrice('gpt-4o-2024-06-01', [undefined, o('gpt-4o')]), undefined, 'a family override does not price it either');
  assert.is(resolvePrice('gpt-4o-2024-06-01', [o('gpt-4o-2024-06-01'), undefined])!.input, 7, 'an override on the id does');
});

test('cache writes: a model whose write rate the table lacks bills them at its generation\'s premium, not as input', () => {
  // gpt-6.1-terra and gpt-6.2-sol list writes at 1.25x input; gpt-6.1-sol and gpt-6.2-astra have none.
  for (const [model, input] of [['gpt-6.1-sol', 2], ['gpt-6.2-astra', 8], ['gpt-6.1-sol-2026-09-29', 2]] as const) {
    const p = resolvePrice(model)!;
    assert.is(p.cacheWrite, input * 1.25, model);
    assert.is(costOf(p, { input: 1000, cached: 0, output: 0, cacheWrite: 1000 }), 1000 * input * 1250, model);
  }
  // A generation without write rates keeps writes at the input rate (none are reported there).
  assert.is(resolvePrice('gpt-5.5')!.cacheWrite, undefined);
  assert.is(resolvePrice('gpt-4o')!.cacheWrite, undefined);
  // An override's raised input lifts the write rate with it.
  assert.is(resolvePrice('gpt-6.1-terra', [{ model: 'gpt-6.1-terra', input: 2, cachedInput: null, output: 5, updatedAt: 't' }])!.cacheWrite, 2.5);
});

test('cost: audio tokens are parts of the totals and bill at the audio rates', () => {
  const p = resolvePrice('gpt-4o-audio-preview')!; // text 2.5 / 10, audio 40 / 80, no cached rates
  const text = costOf(p, { input: 1000, cached: 0, output: 1000 });
  assert.is(text, 1000 * 2500 + 1000 * 10_000);
  assert.is(costOf(p, { input: 1000, cached: 0, output: 1000, audioInput: 1000, audioOutput: 1000 }), 120_000_000);
  assert.is(costOf(p, { input: 1500, cached: 0, output: 300, audioInput: 1000, audioOutput: 200 }),
    500 * 2500 + 1000 * 40_000 + 100 * 10_000 + 200 * 80_000);
  const rt = resolvePrice('gpt-realtime')!; // text 4 / 0.4 cached / 16, audio 32 / 0.4 cached / 64
  // Cached tokens count as text first when the usage does not split them...
  assert.is(costOf(rt, { input: 300, cached: 150, output: 0, audioInput: 200 }),
    100 * 400 + 200 * 32_000 - 50 * 32_000 + 50 * 400);
  // ...and as reported when it does.
  assert.is(costOf(rt, { input: 300, cached: 150, output: 0, audioInput: 200, audioCached: 150 }),
    100 * 4000 + 50 * 32_000 + 150 * 400);
  // Counts beyond the totals are clamped, never negative.
  assert.is(costOf(rt, { input: 10, cached: 0, output: 0, audioInput: 50 }), 10 * 32_000);
});

test('usage: a block without its totals is no usage (the call is estimated, not billed at zero)', () => {
  assert.is(readUsage('chat', {}), undefined);
  assert.is(readUsage('chat', { prompt_tokens: 8 }), undefined);
  assert.is(readUsage('chat', { prompt_tokens: 8, completion_tokens: '5' }), undefined);
  assert.is(readUsage('responses', { input_tokens: 8, total_tokens: 8 }), undefined);
  assert.equal(readUsage('chat', { prompt_tokens: 8, completion_tokens: 0 }), { input: 8, cached: 0, output: 0 });
  assert.equal(readUsage('embeddings', { prompt_tokens: 5, total_tokens: 5 }), { input: 5, cached: 0, output: 0 });
});

test('stream meter: events it cannot read mark the stream unreadable (lone CR framing)', () => {
  const framed = (end: string) => `data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}${end}data: {"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5000}}${end}data: [DONE]${end}`;
  const lf = meterAll('chat', false, framed('\n\n'), 7);
  assert.equal([lf.outcome.unreadable, lf.outcome.usage?.output], [false, 5000]);
  const cr = meterAll('chat', false, framed('\r\r'), 7);
  assert.equal([cr.outcome.unreadable, cr.outcome.usage], [true, undefined]);
});

test('usage: audio parts read from chat and Responses usage blocks', () => {
  const chat = JSON.parse(ref('openai-chat-completion.json')).usage;
  assert.equal(readUsage('chat', chat), { input: 1418, cached: 1152, output: 5 }, 'zero audio adds no fields');
  assert.equal(readUsage('chat', {
    ...chat,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 40, cached_tokens_details: { audio_tokens: 8 } },
    completion_tokens_details: { audio_tokens: 3 },
  }), { input: 1418, cached: 0, output: 5, audioInput: 40, audioCached: 8, audioOutput: 3 });
  assert.equal(readUsage('responses', { input_tokens: 9, output_tokens: 4, output_tokens_details: { audio_tokens: 2 } }),
    { input: 9, cached: 0, output: 4, audioOutput: 2 });
});

test('billable: token-only tools pass, anything else with a fee or unknown cost is refused', () => {
  const responses = matchRoute('POST', '/v1/responses')!;
  const chat = matchRoute('POST', '/v1/chat/completions')!;
  const price = resolvePrice('gpt-5')!;
  const check = (body: Record<string, unknown>, route = responses) => {
    try {
      assertBillable(route, { model: 'gpt-5', ...body }, price);
      return 'ok';
    } catch (e) {
      return `${(e as WrapiError).status} ${(e as WrapiError).code} ${(e as WrapiError).param}`;
    }
  };
  assert.is(check({ tools: [{ type: 'function' }, { type: 'custom' }, { type: 'mcp' }, { type: 'apply_patch' }, { type: 'local_shell' }], max_tool_calls: 3 }), 'ok');
  // A hosted MCP server runs a loop at OpenAI: bounded only by max_tool_calls.
  assert.is(check({ tools: [{ type: 'mcp' }] }), '400 unpriced_feature max_tool_calls');
  assert.is(check({ tools: [{ type: 'mcp' }], max_tool_calls: 1.5 }), '400 unpriced_feature max_tool_calls');
  // Tools a client-run tool search hands back are tools the model may call.
  assert.is(check({ input: [{ type: 'tool_search_output', tools: [{ type: 'web_search' }] }] }), '400 unpriced_feature tools');
  assert.is(check({ input: [{ type: 'tool_search_output', tools: [{ type: 'mcp' }] }] }), '400 unpriced_feature max_tool_calls');
  assert.is(check({ prompt_cache_options: { ttl: '30m' } }), 'ok');
  assert.is(check({ prompt_cache_options: { ttl: '24h' } }), '400 unpriced_feature prompt_cache_options');
  assert.is(check({ tools: [{ type: 'tool_search', execution: 'client' }] }), 'ok');
  assert.is(check({ tools: [{ type: 'tool_search' }] }), '400 unpriced_feature tools');
  assert.is(check({ tools: [{ type: 'namespace', tools: [{ type: 'function' }, { type: 'custom' }] }] }), 'ok');
  assert.is(check({ tools: [{ type: 'namespace', tools: [{ type: 'web_search' }] }] }), '400 unpriced_feature tools');
  assert.is(check({ tools: [null] }), '400 unpriced_feature tools');
  assert.is(check({ service_tier: null, background: false }), 'ok');
  assert.is(check({ service_tier: 'Priority' }), '400 unpriced_feature service_tier');
  assert.is(check({ background: 'yes' }), '400 unpriced_feature background');
  assert.is(check({ background: true }, chat), 'ok', 'chat has no background runs');
  assert.is(check({ messages: [{ role: 'assistant', audio: { id: 'audio_1' } }] }, chat), '400 unpriced_feature messages',
    'an earlier spoken answer sent back is audio input');
  // Reasoning modes known to bill at the standard rates within the usage block; anything else is refused.
  assert.is(check({ reasoning: { mode: 'pro', effort: 'high' } }), 'ok');
  assert.is(check({ reasoning: { mode: 'standard' } }), 'ok');
  assert.is(check({ reasoning: { mode: 'ultra' } }), '400 unpriced_feature reasoning');
  assert.is(check({ reasoning: { mode: 'Pro' } }, chat), '400 unpriced_feature reasoning');
  // A moderated call names a (free) moderation model, not a second billed model.
  assert.is(check({ moderation: { model: 'omni-moderation-latest' } }), 'ok');
  assert.is(check({ moderation: { model: 'omni-moderation-2024-09-26' } }, chat), 'ok');
  assert.is(check({ moderation: { model: 'gpt-4o' } }), '400 unpriced_feature moderation');
  assert.is(check({ moderation: { policy: {} } }), 'ok', 'the default moderation model');
});

function meterAll(kind: 'chat' | 'completions' | 'responses', strip: boolean, text: string, splitEvery: number) {
  const meter = new StreamMeter(kind, strip);
  const bytes = new TextEncoder().encode(text);
  let out = '';
  const dec = new TextDecoder();
  for (let i = 0; i < bytes.length; i += splitEvery) {
    const chunk = meter.push(bytes.subarray(i, i + splitEvery));
    if (chunk) out += dec.decode(chunk);
  }
  const rest = meter.flush();
  if (rest) out += dec.decode(rest);
  return { out, outcome: meter.outcome };
}

test('stream meter: same result at every chunk boundary (1 byte, 7 bytes, whole)', () => {
  const sse = ref('openai-chat-stream-include-usage.sse');
  const whole = meterAll('chat', false, sse, sse.length);
  assert.is(whole.out, sse, 'passes through untouched when the client asked for usage');
  assert.ok(whole.outcome.usage && whole.outcome.usage.input > 0);
  assert.ok(whole.outcome.complete);
  for (const n of [1, 7, 64]) {
    const split = meterAll('chat', false, sse, n);
    assert.is(split.out, sse);
    assert.equal(split.outcome, whole.outcome);
  }
});

test('stream meter: strips the usage chunk and usage:null when the client did not ask', () => {
  const withUsage = ref('openai-chat-stream-include-usage.sse');
  const { out, outcome } = meterAll('chat', true, withUsage, 5);
  assert.not.match(out, /"usage"/);
  assert.match(out, /data: \[DONE\]/);
  assert.ok(outcome.usage, 'the meter still read it');
  const events = out.split('\n\n').filter(Boolean);
  const original = withUsage.split('\n\n').filter(Boolean);
  assert.is(events.length, original.length - 1, 'exactly one event removed');
});

test('stream meter: CRLF framing, Responses usage from response.completed, text collected', () => {
  const sse = ref('openai-responses-stream.sse');
  const { outcome } = meterAll('responses', false, sse.replace(/\n/g, '\r\n'), 3);
  assert.ok(outcome.complete);
  const final = JSON.parse(ref('openai-responses.json'));
  assert.is(outcome.usage!.input, final.usage.input_tokens);
  assert.is(outcome.usage!.output, final.usage.output_tokens);
  assert.ok(outcome.outputText.length > 0);
});

test('stream meter: a cut-off stream has no usage and is not complete', () => {
  const sse = ref('openai-chat-stream-no-usage.sse');
  const cut = sse.slice(0, Math.floor(sse.length / 2));
  const { outcome } = meterAll('chat', true, cut, 10);
  assert.is(outcome.usage, undefined);
  assert.not.ok(outcome.complete);
  assert.ok(outcome.outputText.length > 0);
});

const errorsRef = () => JSON.parse(ref('openai-errors.json')).streaming;
const sse = (...events: unknown[]) => events.map((e) => `data: ${typeof e === 'string' ? e : JSON.stringify(e)}\n\n`).join('');
const responsesSse = (...events: Record<string, unknown>[]) =>
  events.map((e) => `event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`).join('');

test('stream meter: only [DONE] without an error event, or response.completed, is a success', () => {
  for (const name of ['openai-chat-stream-include-usage.sse', 'openai-chat-stream-no-usage.sse']) {
    const { outcome } = meterAll('chat', false, ref(name), 9);
    assert.ok(outcome.complete && outcome.succeeded, name);
  }
  const responses = meterAll('responses', false, ref('openai-responses-stream.sse'), 9).outcome;
  assert.ok(responses.succeeded);
  assert.is(responses.responseId, 'resp_0123456789abcdef0example0000000000000000000000000001', 'the id a later call may continue');

  // Chat: data {"error"} then [DONE] (the reference capture), and an `event: error` frame.
  const chatError = meterAll('chat', false, errorsRef().chat_completions_mid_stream.sse, 5).outcome;
  assert.ok(chatError.complete, 'it did end with [DONE]');
  assert.not.ok(chatError.succeeded);
  assert.is(chatError.outputText, 'This');
  const framed = `${sse({ choices: [{ index: 0, delta: { content: 'Hi' } }] })}event: error\ndata: {"message":"boom"}\n\n${sse('[DONE]')}`;
  assert.not.ok(meterAll('chat', false, framed, 4).outcome.succeeded);

  // Responses: error + response.failed (the capture); response.incomplete keeps its usage.
  const failed = meterAll('responses', false, errorsRef().responses_mid_stream.sse, 7).outcome;
  assert.ok(failed.complete);
  assert.not.ok(failed.succeeded);
  const usage = { input_tokens: 10, input_tokens_details: { cached_tokens: 0 }, output_tokens: 16, total_tokens: 26 };
  const incomplete = meterAll('responses', false, responsesSse(
    { type: 'response.output_text.delta', delta: 'cut' },
    { type: 'response.incomplete', response: { status: 'incomplete', usage } },
  ), 11).outcome;
  assert.equal([incomplete.complete, incomplete.succeeded, incomplete.usage], [true, false, { input: 10, cached: 0, output: 16 }]);
  // An error event spoils a later response.completed too.
  const late = meterAll('responses', false, responsesSse(
    { type: 'error', code: 'server_error', message: 'x', param: null },
    { type: 'response.completed', response: { status: 'completed', usage } },
  ), 64).outcome;
  assert.not.ok(late.succeeded);
  assert.ok(late.usage, 'usage is still read: the call is billed');
});

test('stream meter: the estimate basis is every kind of generated output', () => {
  const chat = sse(
    { choices: [{ index: 0, delta: { role: 'assistant', content: null, refusal: null,
      tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'lookup', arguments: '' } }] } }] },
    { choices: [{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: '{"q":' } }] } }] },
    { choices: [{ index: 0, delta: { tool_calls: [{ index: 1, type: 'custom', custom: { name: 'sh', input: 'ls' } }] } }] },
    { choices: [{ index: 0, delta: { refusal: 'No.' } }] },
    { choices: [{ index: 0, delta: { function_call: { name: 'old', arguments: '{}' } } }] },
    { choices: [{ index: 0, delta: { audio: { transcript: 'said', data: 'AAAA' } } }] },
    { choices: [{ index: 0, delta: { content: 'text' } }] },
  );
  assert.is(meterAll('chat', false, chat, 13).outcome.outputText, 'lookup{"q":shlsNo.old{}saidtext');
  assert.is(meterAll('completions', false, sse({ choices: [{ index: 0, text: 'legacy' }] }), 3).outcome.outputText, 'legacy');
  const responses = responsesSse(
    { type: 'response.output_item.added', item: { type: 'function_call', name: 'lookup', arguments: '' } },
    { type: 'response.function_call_arguments.delta', delta: '{"q":1}' },
    { type: 'response.output_text.delta', delta: 'a' },
    { type: 'response.refusal.delta', delta: 'b' },
    { type: 'response.reasoning_summary_text.delta', delta: 'c' },
    { type: 'response.audio.transcript.delta', delta: 'd' },
    { type: 'response.custom_tool_call_input.delta', delta: 'e' },
    { type: 'response.audio.delta', delta: 'QUFBQUFB' },
  );
  assert.is(meterAll('responses', false, responses, 17).outcome.outputText, 'lookup{"q":1}abcde');
});

test('stream meter: kept text is capped, and what is dropped still counts, at least as many tokens', async () => {
  const piece = 'Sure, here is the next part of a very long answer with many words in it. ';
  const deltas = Math.ceil((OUTPUT_TEXT_MAX_CHARS * 1.5) / piece.length);
  const meter = new StreamMeter('chat', false);
  for (let i = 0; i < deltas; i++) meter.push(new TextEncoder().encode(sse({ choices: [{ index: 0, delta: { content: piece } }] })));
  const text = meter.outcome.outputText;
  assert.is(text.slice(0, OUTPUT_TEXT_MAX_CHARS), piece.repeat(deltas).slice(0, OUTPUT_TEXT_MAX_CHARS));
  assert.match(text.slice(OUTPUT_TEXT_MAX_CHARS), /^(a1)+a?$/, 'beyond the cap only a stand-in, made when asked');
  const all = piece.repeat(deltas);
  assert.ok(await countTokens(text) >= exactTokens(all), 'never fewer tokens than the real text');
});

test('request facts: model, stream, caps, prompt text; usage injection only where needed', () => {
  const chat = matchRoute('POST', '/v1/chat/completions')!;
  const body = parseJsonBody(new TextEncoder().encode(JSON.stringify({
    model: 'gpt-4o', stream: true, max_completion_tokens: 50,
    messages: [{ role: 'user', content: [{ type: 'text', text: 'look' }, { type: 'image_url', image_url: { url: 'data:' } }] }],
  })));
  const facts = requestFacts(chat, body);
  assert.equal([facts.model, facts.stream, facts.maxOutputTokens, facts.images, facts.opaqueInput, facts.choices], ['gpt-4o', true, 50, 1, false, 1]);
  // Every string sent counts (keys too); binary payloads do not.
  assert.ok(facts.inputText.includes('look') && facts.inputText.includes('content') && !facts.inputText.includes('data:'));
  const sent = upstreamBody(chat, body, facts);
  assert.equal([sent.stream_options, sent.service_tier], [{ include_usage: true }, 'default']);
  // The tier a project defaults to is never left to OpenAI: auto (or none) is sent as default.
  const responses = matchRoute('POST', '/responses')!;
  for (const tier of [undefined, null, 'auto']) {
    assert.equal(upstreamBody(responses, { ...body, service_tier: tier }, requestFacts(responses, body)), { ...body, service_tier: 'default' });
  }
  assert.is(upstreamBody(responses, { ...body, service_tier: 'default' }, requestFacts(responses, body)).service_tier, 'default');
  const embeddings = matchRoute('POST', '/embeddings')!;
  const input = { model: 'text-embedding-3-small', input: 'x' };
  assert.is(upstreamBody(embeddings, input, requestFacts(embeddings, input)), input);
  assert.throws(() => parseJsonBody(new TextEncoder().encode('[1]')), (e: WrapiError) => e.status === 400);
  assert.throws(() => requestFacts(chat, { messages: [] }), (e: WrapiError) => e.param === 'model');
});

test('routes: allow-list with and without /v1; everything else refused', () => {
  assert.is(matchRoute('POST', '/v1/embeddings')!.kind, 'embeddings');
  assert.is(matchRoute('POST', '/embeddings/')!.kind, 'embeddings');
  assert.is(matchRoute('GET', '/v1/models/gpt-4o')!.kind, 'models');
  assert.is(matchRoute('GET', '/v1/chat/completions'), undefined);
  assert.is(matchRoute('POST', '/v1/files'), undefined);
  assert.is(matchRoute('DELETE', '/v1/models/x'), undefined);
  assert.equal(matchRoute('GET', '/v1/responses/resp_0123abc'), { kind: 'retrieve', path: '/responses/resp_0123abc', priced: false, cacheable: false });
  assert.is(matchRoute('GET', '/responses/resp_0123abc')!.kind, 'retrieve');
  for (const [method, path] of [['DELETE', '/v1/responses/resp_1'], ['POST', '/v1/responses/resp_1/cancel'],
    ['GET', '/v1/responses/resp_1/input_items'], ['GET', '/v1/responses/msg_1'], ['GET', '/v1/responses/resp_../x']]) {
    assert.is(matchRoute(method, path), undefined, `${method} ${path}`);
  }
});

test('callers from verified ARNs', () => {
  assert.equal(callerFromArn('arn:aws:iam::123456789012:user/alice')?.user, 'alice');
  assert.equal(callerFromArn('arn:aws:iam::123456789012:user/team/bob')?.user, 'bob');
  // A session name is whatever the caller of AssumeRole chose: it names a user only where AWS sets it
  // (Identity Center) or the stack trusts the role's trust policy to force it.
  const role = 'arn:aws:sts::123456789012:assumed-role/DataSci/carol@example.com';
  assert.equal(callerFromArn(role)?.user, 'DataSci/*');
  assert.equal(callerFromArn('arn:aws:sts::123456789012:assumed-role/DataSci/mallory-2')?.user, 'DataSci/*');
  assert.equal(callerFromArn(role, { sessionNamedRoles: ['DataSci'] })?.user, 'DataSci/carol@example.com');
  assert.equal(callerFromArn('arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Dev_0123abcd/carol')?.user, 'AWSReservedSSO_Dev_0123abcd/carol');
  // Federated users pick their own names (GetFederationToken): all of them are one user.
  assert.equal(callerFromArn('arn:aws:sts::123456789012:federated-user/dave')?.user, 'federated:*');
  assert.equal(callerFromArn('arn:aws:sts::123456789012:federated-user/alice')?.user, 'federated:*');
  assert.equal(callerFromArn('arn:aws:sts::123456789012:assumed-role/federated/dave', { sessionNamedRoles: ['federated'] })?.user, 'federated/dave');
  assert.equal(identityRules({ OPENAI_WRAPI_SESSION_NAMED_ROLES: ' A, B ,,' }), { sessionNamedRoles: ['A', 'B'] });
  assert.equal(callerFromArn('arn:aws:iam::123456789012:root')?.user, 'root');
  assert.is(callerFromArn('not-an-arn'), undefined);
  const event = JSON.parse(ref('lambda-function-url-event-iam-assumed-role.json'));
  assert.ok(callerFromArn(event.requestContext.authorizer.iam.userArn));
});

test('cache keys: key order does not matter; stage, project and body do', async () => {
  assert.is(canonicalJson({ b: 1, a: [{ d: 2, c: 3 }] }), '{"a":[{"c":3,"d":2}],"b":1}');
  const base = { stage: 'dev', project: 'p', method: 'POST', path: '/chat/completions', body: { model: 'm', x: 1 } };
  const k = await cacheKey(base);
  assert.is(k, await cacheKey({ ...base, body: { x: 1, model: 'm' } }));
  assert.is.not(k, await cacheKey({ ...base, stage: 'prod' }));
  assert.is.not(k, await cacheKey({ ...base, project: 'q' }));
  assert.is.not(k, await cacheKey({ ...base, body: { model: 'm', x: 2 } }));
});

test('limits: scopes, defaults, holds and month keys', () => {
  const scopes = callScopes('p', 'u', 'm');
  assert.is(scopes.length, 4);
  assert.equal(effectiveLimits([undefined, 5, undefined, undefined], 7), [7, 5, undefined, undefined]);
  const holds = holdsFor(scopes, [10, undefined, 3, undefined], 2);
  assert.equal(holds.map((h) => [h.scope.user, h.scope.model, h.limit, h.amount]), [
    ['*', '*', 10, 2], ['*', 'm', undefined, 2], ['u', '*', 3, 2], ['u', 'm', undefined, 2],
  ]);
  assert.equal(callScopes('p', 'u', 'gpt-4o-2024-08-06').map((s) => s.model), ['*', 'gpt-4o', '*', 'gpt-4o']);
  assert.is(monthOf(Date.UTC(2026, 0, 31, 23, 59, 59)), '2026-01');
  assert.is(monthOf(Date.UTC(2026, 1, 1, 0, 0, 0)), '2026-02');
});

test('configuration: per-stage keys win; every bad value reported at once', () => {
  const c = readProxyConfig({ OPENAI_API_KEY: 'sk-shared', OPENAI_API_KEY_PROD: 'sk-prod' }, 'prod');
  assert.is(c.apiKey, 'sk-prod');
  assert.is(readProxyConfig({ OPENAI_API_KEY: 'sk-shared' }, 'dev').apiKey, 'sk-shared');
  assert.is(c.defaultProjectLimit, undefined);
  assert.throws(
    () => readProxyConfig({ OPENAI_WRAPI_TIMEOUT_MS: 'soon', OPENAI_WRAPI_CACHE_TTL: '-1' }, 'dev'),
    (e: ConfigError) => e.problems.length === 2,
  );
});

test('a call deadline aborts with a TimeoutError when it passes, and never once cleared', async () => {
  const passing = callDeadline(20);
  const cleared = callDeadline(20);
  cleared.clear();
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.ok(passing.signal.aborted);
  assert.ok(isTimeout(passing.signal.reason), 'read as a timeout: 504, not 502');
  assert.not.ok(cleared.signal.aborted);
});

test.run();
