// A real tokenizer (o200k_base, the encoding of current OpenAI models) for estimates when a
// call's usage block never arrived. Loaded on first use: building its 200k-entry table would
// otherwise slow every cold start, and only disconnects and cut-off streams need it.
type Count = (text: string, options: { allowedSpecial: 'all' }) => number;

let count: Promise<Count> | undefined;

export async function countTokens(text: string): Promise<number> {
  if (!text) return 0;
  count ??= import('gpt-tokenizer').then((m) => m.countTokens as Count);
  // Prompts may contain special-token text such as "<|endoftext|>"; count it, never throw.
  return (await count)(text, { allowedSpecial: 'all' });
}
