// Reading OpenAI's usage blocks, whose shape differs per API.
import type { TokenUsage } from './pricing.ts';
import type { RouteKind } from './routes.ts';

type Json = Record<string, any>;

/** Chat/completions/embeddings use prompt/completion names; the Responses API input/output. */
export function readUsage(kind: RouteKind, usage: Json | null | undefined): TokenUsage | undefined {
  if (!usage || typeof usage !== 'object') return undefined;
  if (kind === 'responses') {
    return {
      input: num(usage.input_tokens),
      cached: num(usage.input_tokens_details?.cached_tokens),
      output: num(usage.output_tokens),
    };
  }
  return {
    input: num(usage.prompt_tokens),
    cached: num(usage.prompt_tokens_details?.cached_tokens),
    output: num(usage.completion_tokens),
  };
}

/** Usage of a complete (non-streamed) response body. */
export function usageOfBody(kind: RouteKind, body: Json): TokenUsage | undefined {
  return readUsage(kind, body.usage);
}

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : 0);
