// The estimate tokenizer on long and hostile text: total time, the longest the event loop was
// held (max gap of a 1 ms ticker while counting) and the count against the library's exact one.
// Run: npx tsx bench/tokenizer.ts   (BENCH_EXACT=0 skips the slow exact counts of long runs)
import { countTokens as exactCount } from 'gpt-tokenizer';
import { countTokens, EXACT_CHARS } from '../runtime/store/tokenizer.ts';

let seed = 7;
const rand = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) % n;
/** `n` characters from `next()`, as one flat string (as a parsed request body is). */
function repeat(n: number, next: () => string): string {
  const parts: string[] = [];
  for (let length = 0; length < n; ) {
    const part = next();
    parts.push(part);
    length += part.length;
  }
  return parts.join('').slice(0, n);
}
const WORDS = 'the quick brown fox jumps over a lazy dog while cached prompts and long answers cost money'.split(' ');
const prose = (n: number) => repeat(n, () => WORDS[rand(WORDS.length)] + (rand(12) ? ' ' : '.\n'));
const cases: [string, (n: number) => string][] = [
  ['prose', prose],
  ['json', (n) => repeat(n, () => JSON.stringify({ id: rand(1e6), name: WORDS[rand(WORDS.length)], tags: [WORDS[rand(5)]] }) + ',\n')],
  ['"a" run', (n) => 'a'.repeat(n)],
  ['letters run', (n) => repeat(n, () => String.fromCharCode(97 + rand(26)))],
  ['base64 run', (n) => repeat(n, () => 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'[rand(64)])],
  ['CJK run', (n) => repeat(n, () => String.fromCharCode(0x4e00 + rand(20000)))],
  ['emoji run', (n) => repeat(n, () => String.fromCodePoint(0x1f600 + rand(80)))],
  ['spaces', (n) => ' '.repeat(n)],
];

/** Runs `work` while a 1 ms interval ticks; returns its result, wall time and the longest tick gap. */
async function watch<T>(work: () => Promise<T>): Promise<{ value: T; ms: number; maxGap: number }> {
  let last = performance.now();
  let maxGap = 0;
  const ticker = setInterval(() => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
  }, 1);
  await new Promise((r) => setTimeout(r, 5));
  const start = performance.now();
  last = start;
  const value = await work();
  const ms = performance.now() - start;
  maxGap = Math.max(maxGap, performance.now() - last);
  clearInterval(ticker);
  return { value, ms, maxGap };
}

const exactToo = process.env.BENCH_EXACT !== '0';
console.log(`exact tokenizing up to ${EXACT_CHARS.toLocaleString('en-US')} characters, then 1 token per UTF-8 byte\n`);
console.log('text'.padEnd(12) + 'chars'.padStart(10) + 'ms'.padStart(9) + 'max gap ms'.padStart(12) + 'tokens'.padStart(11) + 'exact'.padStart(11) + 'exact ms'.padStart(10));
for (const [name, make] of cases) {
  for (const n of [20_000, 40_000, 1_000_000, 6_000_000]) {
    const text = make(n);
    const r = await watch(() => countTokens(text));
    // The library on one whole run is what froze the stack: only measured where it ends in seconds.
    const small = n <= 40_000 || (n <= 1_000_000 && !/run|spaces/.test(name));
    let exact = '';
    let exactMs = '';
    if (exactToo && small) {
      const t = performance.now();
      exact = exactCount(text, { allowedSpecial: 'all' }).toLocaleString('en-US');
      exactMs = (performance.now() - t).toFixed(0);
    }
    console.log(name.padEnd(12) + n.toLocaleString('en-US').padStart(10) + r.ms.toFixed(0).padStart(9) + r.maxGap.toFixed(1).padStart(12) +
      r.value.toLocaleString('en-US').padStart(11) + exact.padStart(11) + exactMs.padStart(10));
  }
}
