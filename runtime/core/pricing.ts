import table from '../data/prices.json' with { type: 'json' };
import type { Nano, PriceOverride } from './ports.ts';

/** USD per 1M tokens, as published. `cachedInput` null: cached tokens bill at the input rate. */
export interface Price {
  model: string;
  input: number;
  cachedInput: number | null;
  output: number;
  longContext?: { thresholdInputTokens: number; input: number; cachedInput: number | null; output: number };
  /** `table@<as_of>` or `override@<updatedAt>`: recorded with the usage it priced. */
  version: string;
}

/** Token counts as OpenAI reports them: cached ⊂ input, reasoning ⊂ output. */
export interface TokenUsage {
  input: number;
  cached: number;
  output: number;
}

interface TableEntry {
  input: number | null;
  cached_input?: number | null;
  output?: number | null;
  long_context?: { threshold_input_tokens: number; input: number; cached_input?: number | null; output: number };
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
 * The price of a model: an admin's override beats the table, an exact id beats its family.
 * `overrides[i]` belongs to `modelCandidates(model)[i]`. Undefined when nothing prices it.
 */
export function resolvePrice(model: string, overrides: (PriceOverride | undefined)[] = []): Price | undefined {
  const candidates = modelCandidates(model);
  for (let i = 0; i < candidates.length; i++) {
    const override = overrides[i];
    if (override) return fromOverride(model, override);
    const entry = MODELS[candidates[i]];
    if (entry && typeof entry.input === 'number') return fromTable(model, entry);
  }
  return undefined;
}

function fromOverride(model: string, o: PriceOverride): Price {
  return { model, input: o.input, cachedInput: o.cachedInput, output: o.output, version: `override@${o.updatedAt}` };
}

function fromTable(model: string, e: TableEntry): Price {
  const lc = e.long_context;
  return {
    model,
    input: e.input ?? 0,
    cachedInput: e.cached_input ?? null,
    output: e.output ?? 0,
    longContext: lc && {
      thresholdInputTokens: lc.threshold_input_tokens,
      input: lc.input,
      cachedInput: lc.cached_input ?? null,
      output: lc.output,
    },
    version: TABLE_VERSION,
  };
}

/** USD per 1M tokens → nano-USD per token. */
const perToken = (usdPerMillion: number): number => usdPerMillion * 1000;

/**
 * Exact cost in nano-USD. Cached tokens are part of input tokens and reasoning tokens part of
 * output tokens, so neither is counted twice. Above a long-context threshold the whole request
 * is repriced, as OpenAI bills it.
 */
export function costOf(price: Price, usage: TokenUsage): Nano {
  const rates = price.longContext && usage.input > price.longContext.thresholdInputTokens ? price.longContext : price;
  const cached = Math.min(usage.cached, usage.input);
  const cachedRate = rates.cachedInput ?? rates.input;
  const nano =
    (usage.input - cached) * perToken(rates.input) + cached * perToken(cachedRate) + usage.output * perToken(rates.output);
  return Math.round(nano);
}

/** List the shipped table (for the admin's price listing). */
export function tablePrices(): Price[] {
  return Object.entries(MODELS)
    .filter(([, e]) => typeof e.input === 'number')
    .map(([model, e]) => fromTable(model, e));
}

export const nanoToUsd = (nano: Nano): number => nano / 1e9;
export const usdToNano = (usd: number): Nano => Math.round(usd * 1e9);
