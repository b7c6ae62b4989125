// A real tokenizer (o200k_base, the encoding of current OpenAI models) for estimates when a
// call's usage block never arrived. Loaded on first use: building its 200k-entry table would
// otherwise slow every cold start, and only disconnects and cut-off streams need it (in the Lambda
// bundle, o200k-tokenizer.ts is a chunk of its own, not even parsed until then).
//
// BPE time grows with the square of a whitespace-free run (80k characters: seconds), and a prompt
// may be megabytes. So the text is counted in pieces of at most PIECE_CHARS, yielding to the event
// loop between slices of a few ms, and only its first EXACT_CHARS are tokenized at all: the rest
// counts one token per UTF-8 byte, which no tokenizer exceeds. Every approximation errs upwards.
type Count = (text: string, options: { allowedSpecial: 'all' }) => number;

/** Longest text the BPE sees at once: a worst-case piece (random CJK) takes a millisecond or two. */
export const PIECE_CHARS = 256;
/**
 * Characters tokenized exactly (about 128k tokens of prose, in ~20 ms); beyond them, UTF-8 bytes,
 * which overstates prose about fourfold. Hostile text (random CJK) costs the library ~5 µs a
 * character, so this bounds an estimate's CPU to a few seconds, in slices.
 */
export const EXACT_CHARS = 512 * 1024;
/** Characters whose UTF-8 size is measured in one go (a millisecond or two). */
const BYTES_CHUNK = 256 * 1024;
/** Longest the counting holds the event loop before yielding (plus at most one piece). */
const SLICE_MS = 4;
/**
 * The library caches each distinct multi-token word (100k by default); with pieces up to
 * PIECE_CHARS long that is a lot of memory and garbage-collection pauses, for little gain.
 */
const MERGE_CACHE_ENTRIES = 5_000;

let loaded: Promise<Count> | undefined;

const load = (): Promise<Count> =>
  (loaded ??= import('./o200k-tokenizer.ts').then((m) => {
    m.setMergeCacheSize(MERGE_CACHE_ENTRIES);
    return m.countTokens as Count;
  }));

const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

export async function countTokens(text: string): Promise<number> {
  if (!text) return 0;
  const count = await load();
  const exactEnd = safeCut(text, Math.min(text.length, EXACT_CHARS));
  let tokens = 0;
  let sliceStart = performance.now();
  for (let start = 0; start < exactEnd; ) {
    const { end, exact } = nextCut(text, start, exactEnd);
    // Prompts may contain special-token text such as "<|endoftext|>"; count it, never throw.
    tokens += count(text.slice(start, end), { allowedSpecial: 'all' });
    // A cut inside a word may change how BPE merges next to it: one token of margin covers that.
    if (!exact) tokens++;
    start = end;
    if (performance.now() - sliceStart >= SLICE_MS) {
      await yieldToLoop();
      sliceStart = performance.now();
    }
  }
  for (let start = exactEnd; start < text.length; start += BYTES_CHUNK) {
    await yieldToLoop();
    tokens += Buffer.byteLength(text.slice(start, start + BYTES_CHUNK), 'utf8');
  }
  return tokens;
}

/**
 * Where the piece starting at `start` ends. Preferably just before a space that starts a word:
 * o200k's pre-tokenizer splits there anyway (" word" is one pre-token), so the sum of the pieces
 * is the exact count. Otherwise at any whitespace boundary, else mid-run (`exact` false).
 */
function nextCut(text: string, start: number, limit: number): { end: number; exact: boolean } {
  const max = start + PIECE_CHARS;
  if (limit <= max) return { end: limit, exact: true };
  for (let i = max; i > start; i--) {
    if (text.charCodeAt(i) === 0x20 && !isSpace(text.charCodeAt(i + 1))) return { end: i, exact: true };
  }
  for (let i = max; i > start; i--) {
    if (isSpace(text.charCodeAt(i - 1)) !== isSpace(text.charCodeAt(i))) return { end: i, exact: false };
  }
  return { end: safeCut(text, max), exact: false };
}

/** `at`, or one less so that a surrogate pair is not split. */
function safeCut(text: string, at: number): number {
  const high = text.charCodeAt(at - 1);
  const low = text.charCodeAt(at);
  return high >= 0xd800 && high <= 0xdbff && low >= 0xdc00 && low <= 0xdfff ? at - 1 : at;
}

/** Whitespace as the pre-tokenizer's `\s` sees it (NaN past the end counts as not space). */
function isSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d) || c === 0xa0 || c === 0x85 || c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f ||
    c === 0x3000 || c === 0xfeff;
}
