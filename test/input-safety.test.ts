// Hostile input: long prompts the estimate tokenizer must count without holding the event loop,
// model ids and names that must not carry control characters into the ledger, logs or terminals.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { countTokens as exactTokens } from 'gpt-tokenizer';
import { countTokens, EXACT_CHARS } from '../runtime/store/tokenizer.ts';

const root = new URL('..', import.meta.url).pathname;

/** Pseudo-random text from `alphabet` (a fixed seed: the same text every run), as one flat string. */
function noise(length: number, alphabet: string): string {
  let seed = 42;
  const parts: string[] = [];
  for (let i = 0; i < length; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    parts.push(alphabet[(seed >>> 8) % alphabet.length]);
  }
  return parts.join('');
}
const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** The longest the event loop went without running a 1 ms ticker while `work` ran. */
async function longestStall<T>(work: () => Promise<T>): Promise<{ value: T; stall: number }> {
  let last = performance.now();
  let stall = 0;
  const ticker = setInterval(() => {
    const now = performance.now();
    stall = Math.max(stall, now - last);
    last = now;
  }, 1);
  await new Promise((r) => setTimeout(r, 5));
  last = performance.now();
  stall = 0;
  const value = await work();
  stall = Math.max(stall, performance.now() - last);
  clearInterval(ticker);
  return { value, stall };
}

/**
 * The machine running the suite is shared, so one slow tick may be someone else's; a stall of our
 * own shows in every attempt. Passes when one of three attempts stays under `boundMs`.
 */
async function assertNoStall<T>(boundMs: number, work: () => Promise<T>): Promise<T> {
  const stalls: number[] = [];
  for (let attempt = 0; attempt < 3; attempt++) {
    const { value, stall } = await longestStall(work);
    stalls.push(Math.round(stall));
    if (stall < boundMs) return value;
  }
  assert.unreachable(`the event loop stalled for ${stalls.join(', ')} ms (bound ${boundMs} ms)`);
  throw new Error('unreachable');
}

test('tokenizer: a 40k-character run without whitespace does not hold the event loop', async () => {
  const run = noise(40_000, 'abcdefghijklmnopqrstuvwxyz');
  const tokens = await assertNoStall(50, () => countTokens(run));
  assert.ok(tokens >= exactTokens(run), 'at least the exact count');
});

test('tokenizer: a 6 MB prompt without whitespace is counted without an event-loop stall, conservatively', async () => {
  const prompt = noise(6 * 1024 * 1024, BASE64);
  const tokens = await assertNoStall(50, () => countTokens(prompt));
  // Beyond EXACT_CHARS every byte counts as a token: no tokenizer makes more tokens than bytes.
  assert.ok(tokens >= prompt.length - EXACT_CHARS, `${tokens}`);
  assert.ok(tokens <= prompt.length + prompt.length / 64, 'and not wildly more than one per byte');
});

test('tokenizer: never below the exact count; exact on ordinary text', async () => {
  const texts: Record<string, string> = {
    readme: readFileSync(`${root}README.md`, 'utf8'),
    code: readFileSync(`${root}runtime/core/proxy.ts`, 'utf8'),
    json: readFileSync(`${root}runtime/data/prices.json`, 'utf8'),
    french: 'Le renard brun saute par-dessus le chien paresseux. Ça coûte cher, n’est-ce pas ?\n'.repeat(300),
    special: 'hello <|endoftext|> world '.repeat(200),
  };
  for (const [name, text] of Object.entries(texts)) {
    assert.is(await countTokens(text), exactTokens(text, { allowedSpecial: 'all' }), name);
  }
  const runs: Record<string, string> = {
    chinese: '敏捷的棕色狐狸跳过了懒狗这是一个测试看看分词器如何处理中文文本'.repeat(200),
    base64: noise(20_000, BASE64),
    emoji: '😀🙂🙃😉'.repeat(2_000),
    spaces: ' '.repeat(10_000) + 'x' + '\n'.repeat(3_000),
  };
  for (const [name, text] of Object.entries(runs)) {
    const [ours, exact] = [await countTokens(text), exactTokens(text, { allowedSpecial: 'all' })];
    assert.ok(ours >= exact, `${name}: ${ours} < ${exact}`);
    assert.ok(ours <= exact * 1.25 + 10, `${name}: ${ours} is far above ${exact}`);
  }
  assert.is(await countTokens(''), 0);
});

test.run();
