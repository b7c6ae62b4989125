// Property-based tests of the one pricing promise: a call is never priced below what OpenAI bills for
// its usage. The bill is computed here independently of runtime/core/pricing.ts (only the table row's
// type is shared): straight from the table file's rates, in integer pico-USD, for every model the table lists (and the ids that resolve
// to them: unlisted newer snapshots, fine-tunes), over random usage blocks (cached, cache writes,
// audio, long context on either side of the threshold). Where the usage leaves a choice open (how
// cached tokens split between text and audio), the bill is the dearest choice. With no audio and no
// cache writes nothing is open and the price must be exact. Overrides: a family override never prices
// a snapshot the table lists below the table, and inherited long-context rates never make a long
// prompt cheaper than a short one. FC_SEED replays a failure; FC_RUNS overrides the run counts.
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { costOf, resolvePrice, type TableEntry as Row, type TokenUsage } from '../runtime/core/pricing.ts';
import type { PriceOverride } from '../runtime/core/ports.ts';

const RUNS = Number(process.env.FC_RUNS ?? 3000);
const SEED = process.env.FC_SEED === undefined ? {} : { seed: Number(process.env.FC_SEED) };

const TABLE = JSON.parse(readFileSync(new URL('../runtime/data/prices.json', import.meta.url), 'utf8')).models as Record<string, Row>;
const LISTED = Object.entries(TABLE).filter(([, r]) => typeof r.input === 'number');

/** USD per 1M tokens → pico-USD per token, exactly (the table has at most 6 decimals). */
const pico = (usdPerMillion: number): bigint => BigInt(Math.round(usdPerMillion * 1e6));

/**
 * What OpenAI bills for `u` at a table row's rates, in pico-USD: above the long-context threshold
 * every text rate is the long one; cache writes at the write rate (scaled like input above the
 * threshold), else at input; audio at the audio rates. Cached tokens whose text/audio split the usage
 * does not give: the dearer split.
 */
function bill(r: Row, u: TokenUsage): bigint {
  const lc = r.long_context;
  const long = !!lc && u.input > lc.threshold_input_tokens;
  const input = long ? lc!.input : r.input!;
  const cached = long ? (lc!.cached_input ?? lc!.input) : (r.cached_input ?? r.input!);
  const output = long ? lc!.output : (r.output ?? 0);
  const write = r.cache_write == null ? input : long ? (r.cache_write * lc!.input) / r.input! : r.cache_write;
  const audioIn = u.audioInput ?? 0;
  const audioOut = u.audioOutput ?? 0;
  const textIn = u.input - audioIn;
  const writes = u.cacheWrite ?? 0;
  const splits = u.audioCached !== undefined
    ? [u.audioCached]
    : [Math.max(0, u.cached - (textIn - writes)), Math.min(audioIn, u.cached)];
  let dearest = 0n;
  for (const audioCached of splits) {
    const textCached = u.cached - audioCached;
    const cost =
      BigInt(textIn - textCached - writes) * pico(input) +
      BigInt(textCached) * pico(cached) +
      BigInt(writes) * pico(write) +
      BigInt(u.output - audioOut) * pico(output) +
      BigInt(audioIn - audioCached) * pico(r.audio_input ?? input) +
      BigInt(audioCached) * pico(r.audio_cached_input ?? r.audio_input ?? input) +
      BigInt(audioOut) * pico(r.audio_output ?? output);
    if (cost > dearest) dearest = cost;
  }
  return dearest;
}

/** costOf answers nano-USD, rounded: at most half a nano-USD (500 pico) below the exact figure. */
const ROUNDING_PICO = 500n;
const asPico = (nano: number): bigint => BigInt(nano) * 1000n;

/** A usage block as OpenAI reports it: every part inside its total. */
function usageFor(r: Row, audio: boolean): fc.Arbitrary<TokenUsage> {
  const threshold = r.long_context?.threshold_input_tokens;
  const inputs = threshold
    ? fc.oneof(fc.integer({ min: 0, max: 20_000 }), fc.integer({ min: threshold - 3, max: threshold + 3 }), fc.integer({ min: threshold, max: 1_100_000 }))
    : fc.integer({ min: 0, max: 400_000 });
  return fc
    .record({ input: inputs, output: fc.integer({ min: 0, max: 200_000 }), a: fc.double({ min: 0, max: 1, noNaN: true }), b: fc.double({ min: 0, max: 1, noNaN: true }), c: fc.double({ min: 0, max: 1, noNaN: true }), d: fc.double({ min: 0, max: 1, noNaN: true }), split: fc.boolean() })
    .map(({ input, output, a, b, c, d, split }) => {
      const audioInput = audio ? Math.floor(input * a) : 0;
      const cached = Math.floor(input * b);
      const cacheWrite = Math.floor((input - cached) * c);
      const audioOutput = audio ? Math.floor(output * d) : 0;
      const u: TokenUsage = { input, cached, output };
      if (cacheWrite > 0 && cacheWrite <= input - audioInput - Math.max(0, cached - audioInput)) u.cacheWrite = cacheWrite;
      if (audio) {
        u.audioInput = audioInput;
        u.audioOutput = audioOutput;
        if (split) u.audioCached = Math.min(audioInput, cached, Math.floor(cached * a));
      }
      return u;
    });
}

test('every listed model, and the ids that resolve to it, is priced at no less than its bill', () => {
  const ids = fc.constantFrom(...LISTED.map(([id]) => id));
  fc.assert(
    fc.property(ids.chain((id) => fc.tuple(fc.constant(id), usageFor(TABLE[id], TABLE[id].audio_input != null))), ([id, usage]) => {
      const expected = bill(TABLE[id], usage);
      for (const model of [id, `${id}-2099-01-01`]) {
        const price = resolvePrice(model);
        assert.ok(price, `${model} has a price`);
        const cost = asPico(costOf(price!, usage));
        assert.ok(cost + ROUNDING_PICO >= expected, `${model}: ${cost} pico for a bill of ${expected} (${JSON.stringify(usage)})`);
        // Nothing open (no audio, no writes at a rate the table lacks): the price is the bill.
        if (!usage.audioInput && !usage.audioOutput && (!usage.cacheWrite || TABLE[id].cache_write != null)) {
          assert.ok(cost - expected <= ROUNDING_PICO, `${model}: ${cost} pico, more than the bill of ${expected}`);
        }
      }
    }),
    { numRuns: RUNS, ...SEED },
  );
});

test('fine-tuned models are priced at their base row', () => {
  const bases = LISTED.filter(([id]) => id.startsWith('ft:'));
  fc.assert(
    fc.property(fc.constantFrom(...bases.map(([id]) => id)).chain((id) => fc.tuple(fc.constant(id), usageFor(TABLE[id], false))), ([id, usage]) => {
      const price = resolvePrice(`${id}:acme:team:abc123`)!;
      const cost = asPico(costOf(price, usage));
      assert.ok(cost + ROUNDING_PICO >= bill(TABLE[id], usage), id);
    }),
    { numRuns: Math.ceil(RUNS / 5), ...SEED },
  );
});

test('a family override never prices a listed snapshot below its row; long prompts never bill below short ones', () => {
  const snapshots = LISTED.filter(([id]) => /-\d{4}-\d{2}-\d{2}$/.test(id) && TABLE[id.replace(/-\d{4}-\d{2}-\d{2}$/, '')]?.input != null);
  const rate = fc.oneof(fc.constant(0), fc.double({ min: 0.01, max: 200, noNaN: true }).map((x) => Math.round(x * 100) / 100));
  const override = fc.record({
    input: rate,
    cached: fc.option(rate, { nil: null }),
    output: rate,
    // What an admin may also set: its own long-context tier (any threshold) and audio rates.
    longContext: fc.option(fc.record({ thresholdInputTokens: fc.integer({ min: 1, max: 300_000 }), input: rate, cachedInput: fc.option(rate, { nil: null }), output: rate }), { nil: undefined }),
    audio: fc.option(fc.record({ input: rate, cachedInput: rate, output: rate }, { requiredKeys: [] }), { nil: undefined }),
  });
  fc.assert(
    fc.property(
      fc.constantFrom(...snapshots.map(([id]) => id)).chain((id) => fc.tuple(fc.constant(id), usageFor(TABLE[id], TABLE[id].audio_input != null), override)),
      ([id, usage, o]) => {
        const family = id.replace(/-\d{4}-\d{2}-\d{2}$/, '');
        const set: PriceOverride = {
          model: family, input: o.input, cachedInput: o.cached, output: o.output, updatedAt: 't',
          ...(o.longContext ? { longContext: o.longContext } : {}), ...(o.audio ? { audio: o.audio } : {}),
        };
        const price = resolvePrice(id, [undefined, set])!;
        assert.ok(asPico(costOf(price, usage)) + ROUNDING_PICO >= bill(TABLE[id], usage), `${id} under ${JSON.stringify(o)}`);
        // Long-context rates the override leaves to the table rise with its text rates.
        const own = resolvePrice(family, [{ ...set, longContext: undefined }])!;
        const lc = own.longContext;
        if (lc) {
          const at = { input: lc.thresholdInputTokens, cached: 0, output: usage.output };
          assert.ok(costOf(own, { ...at, input: at.input + 1 }) >= costOf(own, at), `${family}: one more input token made the call cheaper`);
        }
      },
    ),
    { numRuns: Math.ceil(RUNS / 3), ...SEED },
  );
});

test('a model of a generation that bills cache writes bills them above input however it is priced', () => {
  // Listed without a write rate, unlisted with an admin's price, or a fine-tune of one: never as input.
  const o = (model: string): PriceOverride => ({ model, input: 8, cachedInput: 0.4, output: 40, updatedAt: 't' });
  const usage = { input: 1000, cached: 0, output: 0, cacheWrite: 1000 };
  for (const [model, overrides] of [
    ['gpt-6.2-astra', []], ['gpt-6.2-nova', [o('gpt-6.2-nova')]], ['ft:gpt-6.2-sol:acme::x1', [o('ft:gpt-6.2-sol:acme::x1')]],
  ] as const) {
    const price = resolvePrice(model, [...overrides])!;
    assert.is(costOf(price, usage), 1000 * price.input * 1250, model);
  }
});

test.run();
