// A real tokenizer (o200k_base, the encoding of current OpenAI models) for estimates when a
// call's usage block never arrived. Off the hot path: only disconnects and cut-off streams use it.
import { countTokens as count } from 'gpt-tokenizer';

const ALL = { allowedSpecial: 'all' as const };

export function countTokens(text: string): number {
  if (!text) return 0;
  // Prompts may contain special-token text such as "<|endoftext|>"; count it, never throw.
  return count(text, ALL);
}
