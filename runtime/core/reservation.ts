// The most a call can cost, decided before it goes out: everything OpenAI could bill for it, at full
// (uncached) rates. Its holds reserve this much on every limited scope; settlement replaces it with
// the exact cost.
import caps from '../data/model-limits.json' with { type: 'json' };
import type { AudioUse } from './billable.ts';
import type { Nano } from './ports.ts';
import { costOf, modelCandidates, type Price } from './pricing.ts';
import type { RequestFacts } from './request-facts.ts';
import type { RouteKind } from './routes.ts';
import { utf8Length } from './utf8.ts';

/** An image's tokens at most (OpenAI's largest tile or patch budgets stay below this). */
export const IMAGE_TOKENS = 6_000;
/** Per-call framing OpenAI adds around messages and tools, generously. */
export const FRAMING_TOKENS = 64;
/** Caps assumed for a model the table does not know (an admin-priced id): the largest it lists. */
const UNKNOWN_OUTPUT_CAP = 128_000;
const UNKNOWN_INPUT_CAP = 1_050_000;

interface Caps {
  maxOutput?: number;
  maxInput?: number;
}
const CAPS = caps.models as Record<string, { max_output_tokens: number | null; max_input_tokens: number | null }>;

/** The model's own output and input caps: the exact id, else what it resolves to. */
function modelCaps(model: string): Caps {
  for (const id of modelCandidates(model)) {
    const entry = CAPS[id];
    if (entry) return { maxOutput: entry.max_output_tokens ?? undefined, maxInput: entry.max_input_tokens ?? undefined };
  }
  return {};
}

export interface WorstCase {
  inputTokens: number;
  /** Output tokens per choice. */
  outputTokens: number;
  choices: number;
  /** Audio may be in the input or asked for as output: those tokens are then priced as audio. */
  audio: AudioUse;
  cost: Nano;
}

const NO_AUDIO: AudioUse = { input: false, output: false };

/** The cost of a token count, as audio wherever the call may use audio (the dearer rates). */
function worstCost(price: Price, audio: AudioUse, input: number, output: number): Nano {
  const tokens = { input, cached: 0, output };
  if (!audio.input && !audio.output) return costOf(price, tokens);
  const asAudio = { ...tokens, audioInput: audio.input ? input : 0, audioOutput: audio.output ? output : 0 };
  return Math.max(costOf(price, tokens), costOf(price, asAudio));
}

/**
 * `history`: the tokens a continued response carries forward, as the proxy recorded when it settled
 * it; undefined when the call continues none, or one the proxy never saw (then the input cap).
 */
export function worstCase(kind: RouteKind, facts: RequestFacts, price: Price, audio: AudioUse = NO_AUDIO, history?: number): WorstCase {
  const { maxOutput, maxInput } = modelCaps(facts.model);
  const inputCap = maxInput ?? UNKNOWN_INPUT_CAP;
  const continued = facts.previousResponseId === undefined ? 0 : history ?? inputCap;
  // Byte-level BPE never makes more tokens than the text has UTF-8 bytes.
  const measured = utf8Length(facts.inputText) + facts.tokenIds + facts.images * IMAGE_TOKENS + FRAMING_TOKENS + continued;
  const inputTokens = facts.opaqueInput ? inputCap : Math.min(measured, inputCap);
  let outputTokens = 0;
  if (kind !== 'embeddings') {
    const cap = maxOutput ?? UNKNOWN_OUTPUT_CAP;
    outputTokens = facts.maxOutputTokens === undefined ? cap : Math.min(facts.maxOutputTokens, cap);
  }
  const cost = worstCost(price, audio, inputTokens, outputTokens * facts.choices);
  return { inputTokens, outputTokens, choices: facts.choices, audio, cost };
}

/**
 * How many output tokens per choice would fit in `remaining` budget (0 when the input alone may not):
 * what a refusal tells the caller to set, instead of the proxy rewriting the request.
 */
export function outputTokensThatFit(worst: WorstCase, price: Price, remaining: Nano): number {
  const input = worstCost(price, worst.audio, worst.inputTokens, 0);
  const perToken = worstCost(price, worst.audio, worst.inputTokens, 1_000_000) - input;
  if (perToken <= 0) return worst.outputTokens;
  const fit = Math.floor(((remaining - input) * 1_000_000) / (perToken * worst.choices));
  return Math.max(0, Math.min(fit, worst.outputTokens));
}

/**
 * Models that think before they answer: their hidden reasoning is billed as output, so an answer
 * whose usage never arrives is estimated at its reserved output, not at the visible text.
 * Over-inclusive on purpose: a wrong "yes" over-bills an estimate, a wrong "no" under-bills it.
 */
export function isReasoning(model: string, facts: Pick<RequestFacts, 'reasoning'>): boolean {
  const family = modelCandidates(model).at(-1)!.replace(/^ft:/, '');
  return facts.reasoning || /^(o\d|gpt-5|gpt-6|gpt-7|codex|computer-use)/.test(family);
}
