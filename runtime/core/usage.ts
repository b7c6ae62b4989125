// Reading OpenAI's usage blocks, whose shape differs per API.
import type { TokenUsage } from './pricing.ts';
import type { RouteKind } from './routes.ts';

type Json = Record<string, any>;

/** Chat/completions/embeddings use prompt/completion names; the Responses API input/output. */
export function readUsage(kind: RouteKind, usage: Json | null | undefined): TokenUsage | undefined {
  if (!usage || typeof usage !== 'object') return undefined;
  const responses = kind === 'responses';
  // A block without its totals says nothing: the call is then estimated, not billed at zero.
  const totals = responses ? [usage.input_tokens, usage.output_tokens]
    : kind === 'embeddings' ? [usage.prompt_tokens]
    : [usage.prompt_tokens, usage.completion_tokens];
  if (!totals.every((t) => typeof t === 'number' && Number.isFinite(t) && t >= 0)) return undefined;
  const inDetails = (responses ? usage.input_tokens_details : usage.prompt_tokens_details) ?? {};
  const outDetails = (responses ? usage.output_tokens_details : usage.completion_tokens_details) ?? {};
  return {
    input: num(responses ? usage.input_tokens : usage.prompt_tokens),
    cached: num(inDetails.cached_tokens),
    output: num(responses ? usage.output_tokens : usage.completion_tokens),
    // Writes to the prompt cache bill above the input rate on the models that report them.
    ...(num(inDetails.cache_write_tokens) > 0 ? { cacheWrite: num(inDetails.cache_write_tokens) } : {}),
    // Audio tokens are billed at their own rates. Chat reports them as parts of the totals; the
    // Responses API does not report them today, and is read the same way should it start to.
    ...audio({
      audioInput: inDetails.audio_tokens,
      audioCached: inDetails.cached_tokens_details?.audio_tokens,
      audioOutput: outDetails.audio_tokens,
    }),
  };
}

/** Usage of a complete (non-streamed) response body. */
export function usageOfBody(kind: RouteKind, body: Json): TokenUsage | undefined {
  return readUsage(kind, body.usage);
}

/** Only the audio counts a block reports: text-only usage stays `{ input, cached, output }`. */
function audio(counts: Record<'audioInput' | 'audioCached' | 'audioOutput', unknown>): Partial<TokenUsage> {
  return Object.fromEntries(Object.entries(counts).filter(([, v]) => num(v) > 0).map(([k, v]) => [k, num(v)]));
}

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : 0);
