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

/** An image's tokens at most on most models (their largest tile or patch budgets stay below this). */
export const IMAGE_TOKENS = 6_000;
/**
 * gpt-4o-mini bills images at 2,833 tokens plus 5,667 per 512-px tile, and a high-detail image has
 * up to 8 tiles (OpenAI's vision guide): 48,169 tokens.
 */
const GPT_4O_MINI_IMAGE_TOKENS = 2_833 + 8 * 5_667;
/** Embeddings take at most 300,000 tokens per request, summed over its inputs (OpenAI's API reference). */
export const EMBEDDINGS_REQUEST_TOKENS = 300_000;
/** Per-call framing OpenAI adds around messages and tools, generously. */
export const FRAMING_TOKENS = 64;
/** Caps assumed for a model the table does not know (an admin-priced id): the largest it lists. */
const UNKNOWN_OUTPUT_CAP = Math.max(...Object.values(caps.models).map((m) => m.max_output_tokens ?? 0));
const UNKNOWN_INPUT_CAP = 1_050_000;
/**
 * An earlier spoken answer sent back by id is at most one answer of a chat model that speaks: 16,384
 * output tokens on each (gpt-4o-audio-preview, gpt-4o-mini-audio-preview, gpt-audio, gpt-audio-mini).
 */
const AUDIO_ANSWER_TOKENS = 16_384;

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

/** What bounds a call's input, besides its text. */
export type InputFacts = Pick<RequestFacts, 'model' | 'tokenIds' | 'images' | 'opaqueInput' | 'contexts'>;

/** The most one image in the prompt can cost in tokens on this model. */
export function imageTokens(model: string): number {
  const family = modelCandidates(model).at(-1)!.replace(/^ft:/, '');
  return /^gpt-4o-mini($|-)/.test(family) ? GPT_4O_MINI_IMAGE_TOKENS : IMAGE_TOKENS;
}

/**
 * The input tokens a call may be billed for, given a bound on its text's tokens (UTF-8 bytes before
 * the call, the tokenizer's count for an estimate after it) and on what it loads from OpenAI's store
 * (`stored`). Each context (a prompt of its own, a turn of a hosted tool loop) holds at most the
 * model's input window; unmeasurable input fills them.
 */
export function inputBound(kind: RouteKind, facts: InputFacts, textTokens: number, stored = 0): number {
  const measured = textTokens + facts.tokenIds + facts.images * imageTokens(facts.model) + FRAMING_TOKENS + stored;
  if (kind === 'embeddings') return Math.min(measured, EMBEDDINGS_REQUEST_TOKENS);
  const windows = modelInputCap(facts.model) * facts.contexts;
  return facts.opaqueInput ? windows : Math.min(measured, windows);
}

const modelInputCap = (model: string): number => modelCaps(model).maxInput ?? UNKNOWN_INPUT_CAP;

export interface WorstCase {
  inputTokens: number;
  /** Output tokens per choice, a predicted output's included. */
  outputTokens: number;
  /** Of those, the predicted output's (billed as output where the answer does not use it). */
  predictedTokens: number;
  /**
   * Of the input, what the call loads from OpenAI's store (a continued response, reasoning items and
   * spoken answers sent back by id): unseen by the proxy, so an estimate keeps the whole input bound.
   */
  loadedTokens: number;
  choices: number;
  /** Audio may be in the input or asked for as output: those tokens are then priced as audio. */
  audio: AudioUse;
  cost: Nano;
}

const NO_AUDIO: AudioUse = { input: false, output: false };

/**
 * The cost of a token count at the dearest rates the call may be billed: as audio wherever it may use
 * audio, and all input as writes to the prompt cache where those cost more than plain input.
 */
function worstCost(price: Price, audio: AudioUse, input: number, output: number): Nano {
  const tokens = { input, cached: 0, output };
  const costs = [costOf(price, tokens)];
  if (audio.input || audio.output) costs.push(costOf(price, { ...tokens, audioInput: audio.input ? input : 0, audioOutput: audio.output ? output : 0 }));
  if (price.cacheWrite !== undefined) costs.push(costOf(price, { ...tokens, cacheWrite: input }));
  return Math.max(...costs);
}

/**
 * `history`: the tokens a continued response carries forward, as the proxy recorded when it settled
 * it; undefined when the call continues none, or one the proxy never saw (then the input cap).
 * `reasoning`: the recorded output of the responses whose reasoning items the call sends back by id
 * (aligned with `facts.storedReasoningIds`); each one not known counts at the largest output cap.
 */
export function worstCase(
  kind: RouteKind, facts: RequestFacts, price: Price, audio: AudioUse = NO_AUDIO, history?: number, reasoning: (number | undefined)[] = [],
): WorstCase {
  const { maxOutput } = modelCaps(facts.model);
  const continued = facts.previousResponseId === undefined ? 0 : history ?? modelInputCap(facts.model);
  // A reasoning item sent back by id is part of one response's output: at most what the proxy
  // recorded for that response, else the largest output cap of any model.
  const known = facts.storedReasoningIds.map((_, i) => Math.min(reasoning[i] ?? UNKNOWN_OUTPUT_CAP, UNKNOWN_OUTPUT_CAP));
  const stored = known.reduce((a, b) => a + b, 0) + (facts.storedReasoning - known.length) * UNKNOWN_OUTPUT_CAP +
    (facts.storedAudio ?? 0) * Math.max(AUDIO_ANSWER_TOKENS, maxOutput ?? 0);
  // Byte-level BPE never makes more tokens than the text has UTF-8 bytes.
  const loadedTokens = continued + stored;
  const inputTokens = inputBound(kind, facts, utf8Length(facts.inputText), loadedTokens);
  let outputTokens = 0;
  if (kind !== 'embeddings') {
    // A Responses call's output cap bounds the whole response; without one each turn may reach the model's.
    const cap = (maxOutput ?? UNKNOWN_OUTPUT_CAP) * (kind === 'responses' ? facts.contexts : 1);
    outputTokens = facts.maxOutputTokens === undefined ? cap : Math.min(facts.maxOutputTokens, cap);
  }
  // Rejected prediction tokens may not count against the output cap: held on top of it.
  const predictedTokens = facts.predictedOutput ?? 0;
  outputTokens += predictedTokens;
  const cost = worstCost(price, audio, inputTokens, outputTokens * facts.choices);
  return { inputTokens, outputTokens, predictedTokens, loadedTokens, choices: facts.choices, audio, cost };
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
  // The cap the caller sets bounds what the answer generates; the prediction is held beside it.
  return Math.max(0, Math.min(fit, worst.outputTokens) - worst.predictedTokens);
}

/**
 * Whether the model counts tokens with o200k_base, the estimates' tokenizer: the gpt-4o generation and
 * everything after it. Older models (gpt-4, gpt-3.5, the legacy completions and embeddings models)
 * use cl100k_base, which makes more tokens of most non-English text: their estimates count bytes.
 */
export function countsLikeEstimates(model: string): boolean {
  const family = modelCandidates(model).at(-1)!.replace(/^ft:/, '');
  return /^(gpt-4o|gpt-4\.[1-9]|gpt-[5-9]|o\d|chatgpt-4o|codex|computer-use|gpt-audio|gpt-realtime|gpt-image)/.test(family);
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
