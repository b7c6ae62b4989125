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

interface TableEntry {
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
 * override on the exact id, then on any id it resolves to (so a family override binds its dated
 * ids even where the table lists them), then the table's exact id, then its family.
 * `overrides[i]` belongs to `modelCandidates(model)[i]`. Undefined when nothing prices it.
 */
export function resolvePrice(model: string, overrides: (PriceOverride | undefined)[] = []): Price | undefined {
  const table = tablePrice(model);
  const override = overrides.find((o) => o !== undefined);
  return override ? fromOverride(model, override, table) : table;
}

/** The shipped table's price of a model: its exact id, else its family. */
function tablePrice(model: string): Price | undefined {
  for (const candidate of modelCandidates(model)) {
    const entry = MODELS[candidate];
    if (entry && typeof entry.input === 'number') return fromTable(model, entry);
  }
  return undefined;
}

/**
 * An override sets the text rates. Cache-write, long-context and audio rates it leaves out stay as the
 * table has them for this id: a new input price must not make long prompts, audio or cache writes
 * bill as plain text.
 */
function fromOverride(model: string, o: PriceOverride, table: Price | undefined): Price {
  const longContext = o.longContext ?? table?.longContext;
  const audio = {
    input: o.audio?.input ?? table?.audio?.input ?? null,
    cachedInput: o.audio?.cachedInput ?? table?.audio?.cachedInput ?? null,
    output: o.audio?.output ?? table?.audio?.output ?? null,
  };
  const cacheWrite = o.cacheWrite ?? table?.cacheWrite;
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

function fromTable(model: string, e: TableEntry): Price {
  const lc = e.long_context;
  const audio = { input: e.audio_input ?? null, cachedInput: e.audio_cached_input ?? null, output: e.audio_output ?? null };
  return {
    model,
    input: e.input ?? 0,
    cachedInput: e.cached_input ?? null,
    output: e.output ?? 0,
    ...(typeof e.cache_write === 'number' ? { cacheWrite: e.cache_write } : {}),
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
    .map(([model, e]) => fromTable(model, e));
}

export const nanoToUsd = (nano: Nano): number => nano / 1e9;
export const usdToNano = (usd: number): Nano => Math.round(usd * 1e9);
