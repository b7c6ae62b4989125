import table from '../data/prices.json' with { type: 'json' };
import type { Nano, PriceOverride } from './ports.ts';

/** USD per 1M tokens, as published. `cachedInput` null: cached tokens bill at the input rate. */
export interface Price {
  model: string;
  input: number;
  cachedInput: number | null;
  output: number;
  /**
   * Input written to the prompt cache, on models that bill writes above the input rate. Undefined:
   * writes bill as plain input. Above the long-context threshold it scales as the input rate does.
   */
  cacheWrite?: number;
  longContext?: LongContextRates;
  /** Rates of audio tokens, which OpenAI bills apart from text. A null rate: that direction is not priced. */
  audio?: AudioRates;
  /** `table@<as_of>` or `override@<updatedAt>`: recorded with the usage it priced. */
  version: string;
}

/** Above the threshold the whole request (text input, cached and output) bills at these rates. */
export interface LongContextRates {
  thresholdInputTokens: number;
  input: number;
  cachedInput: number | null;
  output: number;
}

/** `cachedInput` null: cached audio bills at the audio input rate. */
export interface AudioRates {
  input: number | null;
  cachedInput: number | null;
  output: number | null;
}

/**
 * Token counts as OpenAI reports them: cached ⊂ input, cache writes ⊂ input, reasoning ⊂ output. The audio counts are
 * parts of those totals (audio ⊂ input, cached audio ⊂ cached and audio, audio output ⊂ output),
 * present only when the usage block reports them.
 */
export interface TokenUsage {
  input: number;
  cached: number;
  output: number;
  /** Input tokens written to the prompt cache (⊂ input, apart from cached). */
  cacheWrite?: number;
  audioInput?: number;
  audioCached?: number;
  audioOutput?: number;
}

/** A model's row in the shipped price table (`runtime/data/prices.json`), USD per 1M tokens. */
export interface TableEntry {
  input: number | null;
  cached_input?: number | null;
  output?: number | null;
  cache_write?: number | null;
  long_context?: { threshold_input_tokens: number; input: number; cached_input?: number | null; output: number };
  audio_input?: number | null;
  audio_cached_input?: number | null;
  audio_output?: number | null;
}

const TABLE_VERSION = `table@${table.as_of}`;
const MODELS = table.models as Record<string, TableEntry>;

export const priceTableInfo = { asOf: table.as_of, source: table.source, unit: table.unit };

/**
 * Ids to try for a model, most specific first: the exact id, then its undated family
 * (`gpt-4o-2024-08-06` → `gpt-4o`, `gpt-4-0613` → `gpt-4`), and for fine-tunes the base model
 * (`ft:gpt-4o-mini-2024-07-18:org::id` → `ft:gpt-4o-mini-2024-07-18` → `ft:gpt-4o-mini`).
 */
export function modelCandidates(model: string): string[] {
  const out = [model];
  const base = model.startsWith('ft:') ? `ft:${model.slice(3).split(':')[0]}` : model;
  if (base !== model) out.push(base);
  const undated = base.replace(/-(\d{4}-\d{2}-\d{2}|\d{4})$/, '');
  if (undated !== base) out.push(undated);
  return out;
}

/**
 * The price of a model. An admin's override beats the table, and the most specific one wins: an
 * override on the exact id, then on any id it resolves to, then the table's exact id, then its family.
 * A family override binds its dated ids, but where the table lists the dated id itself the override
 * may raise its rates, never lower them: OpenAI keeps an older snapshot at its own price when it
 * cuts the family's, so a cut recorded on the family must not price the dearer snapshot below its
 * bill. An override on the dated id itself sets its rates as given.
 * `overrides[i]` belongs to `modelCandidates(model)[i]`. Undefined when nothing prices it.
 */
export function resolvePrice(model: string, overrides: (PriceOverride | undefined)[] = []): Price | undefined {
  const candidates = modelCandidates(model);
  const listedAt = candidates.findIndex((c) => typeof MODELS[c]?.input === 'number');
  const overrideAt = overrides.findIndex((o) => o !== undefined);
  // An unlisted snapshot older than one the table lists: only a price set for that id prices it.
  if (listedAt > 0 && olderThanListed(model)) return overrideAt === 0 ? fromOverride(model, overrides[0]!, undefined) : undefined;
  const table = listedAt < 0 ? undefined : fromTable(model, candidates[listedAt]);
  if (overrideAt < 0) return table;
  const price = fromOverride(model, overrides[overrideAt]!, table);
  return table && listedAt < overrideAt ? atLeast(price, table) : price;
}

/** `gpt-4o-2024-08-06` → [`gpt-4o`, `2024-08-06`]; undefined for ids without a YYYY-MM-DD date. */
const datedOf = (id: string): [string, string] | undefined => {
  const m = /^(.+)-(\d{4}-\d{2}-\d{2})$/.exec(id);
  return m ? [m[1], m[2]] : undefined;
};

/** Each family's newest snapshot date the table lists (`gpt-4o` → `2024-11-20`). */
const NEWEST_LISTED = (() => {
  const out = new Map<string, string>();
  for (const [id, e] of Object.entries(MODELS)) {
    const dated = datedOf(id);
    if (dated && typeof e.input === 'number' && dated[1] > (out.get(dated[0]) ?? '')) out.set(dated[0], dated[1]);
  }
  return out;
})();

/**
 * Whether `model` is a dated snapshot the table does not list, older than one it lists of the same
 * family. The family's price is its newest snapshot's, and OpenAI keeps an older snapshot at the
 * price it launched with, which has mostly been higher (gpt-4o-audio-preview-2024-10-01 bills audio
 * at 2.5 times gpt-4o-audio-preview's): such an id is not priced by its family. A snapshot newer than
 * every listed one takes the family's price, as the alias moves to it.
 */
export function olderThanListed(model: string): boolean {
  const dated = datedOf(model);
  const newest = dated && NEWEST_LISTED.get(dated[0]);
  return !!newest && dated[1] < newest;
}

/**
 * An override sets the text rates. Cache-write, long-context and audio rates it leaves out come from
 * the table's price for this id: a new input price must not make long prompts, audio or cache writes
 * bill as plain text. Where the override raises a text rate, the table's cache-write and long-context
 * rates rise by the same factor (they are set as multiples of it); they never fall below the table's.
 */
function fromOverride(model: string, o: PriceOverride, table: Price | undefined): Price {
  const inputRise = rise(o.input, table?.input);
  const lc = table?.longContext;
  const longContext = o.longContext ?? (lc && {
    thresholdInputTokens: lc.thresholdInputTokens,
    input: lc.input * inputRise,
    // No cached rate in the override: no cache discount in either tier.
    cachedInput: o.cachedInput === null || lc.cachedInput === null
      ? null
      : lc.cachedInput * rise(o.cachedInput, table!.cachedInput ?? table!.input),
    output: lc.output * rise(o.output, table!.output),
  });
  const audio = {
    input: o.audio?.input ?? table?.audio?.input ?? null,
    cachedInput: o.audio?.cachedInput ?? table?.audio?.cachedInput ?? null,
    output: o.audio?.output ?? table?.audio?.output ?? null,
  };
  const cacheWrite = o.cacheWrite ??
    (table?.cacheWrite !== undefined ? table.cacheWrite * inputRise : generationWritePremium(model) * o.input || undefined);
  return {
    model,
    input: o.input,
    cachedInput: o.cachedInput,
    output: o.output,
    ...(cacheWrite !== undefined ? { cacheWrite } : {}),
    ...(longContext ? { longContext: { ...longContext } } : {}),
    ...(hasAudio(audio) ? { audio } : {}),
    version: `override@${o.updatedAt}`,
  };
}

/** How many times `rate` is `base` when it is more; 1 when it is not, or there is no base. */
const rise = (rate: number, base: number | undefined): number => (base !== undefined && base > 0 && rate > base ? rate / base : 1);

/** Every rate of `price`, but none below `floor`'s for the same tokens, at any prompt size. */
function atLeast(price: Price, floor: Price): Price {
  const short = maxRates(price, floor);
  // Above a threshold each side bills its long-context rates, or its plain ones if it has none.
  const thresholds = [price.longContext, floor.longContext].flatMap((lc) => (lc ? [lc.thresholdInputTokens] : []));
  const long = thresholds.length
    ? { thresholdInputTokens: Math.min(...thresholds), ...maxRates(price.longContext ?? price, floor.longContext ?? floor) }
    : undefined;
  // A null audio rate is unpriced (audio refused there; should some be reported, it bills as costOf
  // bills it: cached at the audio input rate, the rest at the text rate): once either side prices a
  // direction, it costs no less than what the other would charge for it.
  const [pa, fa] = [audioCharged(price), audioCharged(floor)];
  const audio = {
    input: price.audio?.input == null && floor.audio?.input == null ? null : Math.max(pa.input, fa.input),
    cachedInput: price.audio?.cachedInput == null && floor.audio?.cachedInput == null ? null : Math.max(pa.cachedInput, fa.cachedInput),
    output: price.audio?.output == null && floor.audio?.output == null ? null : Math.max(pa.output, fa.output),
  };
  const cacheWrite = price.cacheWrite === undefined && floor.cacheWrite === undefined
    ? undefined
    : Math.max(price.cacheWrite ?? price.input, floor.cacheWrite ?? floor.input);
  return {
    model: price.model,
    ...short,
    ...(cacheWrite !== undefined ? { cacheWrite } : {}),
    ...(long ? { longContext: long } : {}),
    ...(hasAudio(audio) ? { audio } : {}),
    version: price.version,
  };
}

type TextRates = Pick<Price, 'input' | 'cachedInput' | 'output'>;

/** The dearer of two sets of text rates, rate by rate (a null cached rate bills as input). */
function maxRates(a: TextRates, b: TextRates): TextRates {
  return {
    input: Math.max(a.input, b.input),
    cachedInput: a.cachedInput === null && b.cachedInput === null ? null : Math.max(a.cachedInput ?? a.input, b.cachedInput ?? b.input),
    output: Math.max(a.output, b.output),
  };
}

/** The rates costOf charges audio tokens at under `p` (see costOf's fallbacks). */
function audioCharged(p: Price): { input: number; cachedInput: number; output: number } {
  const input = p.audio?.input ?? p.input;
  return { input, cachedInput: p.audio?.cachedInput ?? input, output: p.audio?.output ?? p.output };
}

function fromTable(model: string, id: string): Price {
  const e = MODELS[id];
  const lc = e.long_context;
  const audio = { input: e.audio_input ?? null, cachedInput: e.audio_cached_input ?? null, output: e.audio_output ?? null };
  const input = e.input ?? 0;
  const cacheWrite = typeof e.cache_write === 'number' ? e.cache_write : generationWritePremium(id) * input || undefined;
  return {
    model,
    input,
    cachedInput: e.cached_input ?? null,
    output: e.output ?? 0,
    ...(cacheWrite !== undefined ? { cacheWrite } : {}),
    ...(lc
      ? {
          longContext: {
            thresholdInputTokens: lc.threshold_input_tokens,
            input: lc.input,
            cachedInput: lc.cached_input ?? null,
            output: lc.output,
          },
        }
      : {}),
    ...(hasAudio(audio) ? { audio } : {}),
    version: TABLE_VERSION,
  };
}

/** `gpt-6.2-astra` (or `ft:gpt-6.2-sol:org::id`) → `gpt-6.2`: the generation a model id belongs to, where its id says one. */
const generationOf = (id: string): string | undefined => /^(?:ft:)?(gpt-\d+(?:\.\d+)?)-/.exec(id)?.[1];

/**
 * Cache writes are billed on some generations (gpt-5.6, gpt-6.x) above the input rate, and the table
 * lacks the write rate of a few of their models. Those bill writes at the largest write-to-input ratio
 * of their generation's listed models (1.25 on every one), not at the input rate: never below the bill.
 * 0 for a generation without write rates.
 */
const WRITE_PREMIUMS = (() => {
  const out = new Map<string, number>();
  for (const [id, e] of Object.entries(MODELS)) {
    const generation = generationOf(id);
    if (generation && typeof e.cache_write === 'number' && typeof e.input === 'number' && e.input > 0) {
      out.set(generation, Math.max(out.get(generation) ?? 0, e.cache_write / e.input));
    }
  }
  return out;
})();
const generationWritePremium = (id: string): number => WRITE_PREMIUMS.get(generationOf(id) ?? '') ?? 0;

const hasAudio = (a: AudioRates): boolean => a.input !== null || a.cachedInput !== null || a.output !== null;

/** USD per 1M tokens → nano-USD per token. */
const perToken = (usdPerMillion: number): number => usdPerMillion * 1000;

/**
 * Exact cost in nano-USD. Cached tokens are part of input tokens, reasoning and audio tokens part
 * of output tokens, so nothing is counted twice. Above a long-context threshold the whole request
 * is repriced, as OpenAI bills it; audio tokens bill at the audio rates.
 */
export function costOf(price: Price, usage: TokenUsage): Nano {
  const long = price.longContext !== undefined && usage.input > price.longContext.thresholdInputTokens;
  const rates = long ? price.longContext! : price;
  const cached = clamp(usage.cached, usage.input);
  const audioIn = clamp(usage.audioInput ?? 0, usage.input);
  const textIn = usage.input - audioIn;
  // Chat usage does not say whether cached tokens were text or audio. Counting them as text first
  // never bills less than OpenAI: audio's cache discount is the larger one on every listed model.
  const audioCached = clamp(usage.audioCached ?? Math.max(0, cached - textIn), Math.min(audioIn, cached));
  const textCached = Math.min(cached - audioCached, textIn);
  const writes = clamp(usage.cacheWrite ?? 0, textIn - textCached);
  const audioOut = clamp(usage.audioOutput ?? 0, usage.output);
  const textOut = usage.output - audioOut;

  // Audio with no audio rate is refused before forwarding (billable.ts); should some still be
  // reported, it bills at the text rate rather than at nothing.
  const a = price.audio;
  const audioInRate = a?.input ?? rates.input;
  const audioCachedRate = a?.cachedInput ?? audioInRate;
  const audioOutRate = a?.output ?? rates.output;
  const nano =
    (textIn - textCached - writes) * perToken(rates.input) +
    textCached * perToken(rates.cachedInput ?? rates.input) +
    writes * perToken(cacheWriteRate(price, long)) +
    textOut * perToken(rates.output) +
    (audioIn - audioCached) * perToken(audioInRate) +
    audioCached * perToken(audioCachedRate) +
    audioOut * perToken(audioOutRate);
  return Math.round(nano);
}

const clamp = (n: number, max: number): number => Math.max(0, Math.min(n, max));

/**
 * A cache write's rate: the price's, else the input rate. The table has no long-context write rate:
 * it is taken to scale with the input rate (as every long-context input rate does), never below it.
 */
function cacheWriteRate(price: Price, long: boolean): number {
  const input = long ? price.longContext!.input : price.input;
  if (price.cacheWrite === undefined) return input;
  const scaled = long && price.input > 0 ? (price.cacheWrite * price.longContext!.input) / price.input : price.cacheWrite;
  return Math.max(scaled, input);
}

/** List the shipped table (for the admin's price listing). */
export function tablePrices(): Price[] {
  return Object.entries(MODELS)
    .filter(([, e]) => typeof e.input === 'number')
    .map(([model]) => fromTable(model, model));
}

export const nanoToUsd = (nano: Nano): number => nano / 1e9;
export const usdToNano = (usd: number): Nano => Math.round(usd * 1e9);
