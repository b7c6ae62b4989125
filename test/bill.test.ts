// A call's bill over a real ledger (SQLite): settled once, whatever the ledger's replies do.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Bill, type BillInit } from '../runtime/core/bill.ts';
import { callScopes, holdsFor } from '../runtime/core/limits.ts';
import type { Ledger, Reservation } from '../runtime/core/ports.ts';
import { resolvePrice } from '../runtime/core/pricing.ts';
import { openSqliteLedger } from '../runtime/store/sqlite-ledger.ts';

const price = resolvePrice('gpt-4o-mini')!;
const silent = { info() {}, error() {} };

function billOn(ledger: Ledger, held: boolean, over: Partial<BillInit> = {}, callId = 'call-1'): { bill: Bill; reservation: Reservation } {
  const reservation: Reservation = {
    callId, month: '2026-11', day: '2026-11-30', expiresAt: Date.now() + 60_000,
    holds: holdsFor(callScopes('p', 'alice', 'gpt-4o-mini'), [undefined, undefined, undefined, undefined], 900_000),
  };
  const init: BillInit = {
    ledger, log: silent, reservation, held, price,
    worst: { inputTokens: 100, outputTokens: 1_000, predictedTokens: 0, loadedTokens: 0, choices: 1, audio: { input: false, output: false }, cost: 900_000 },
    kind: 'chat', reasoning: false, facts: { model: 'gpt-4o-mini', inputText: 'hi', tokenIds: 0, images: 0, opaqueInput: false, contexts: 1 },
    countTokens: async (text) => text.length, tags: {}, ...over,
  };
  return { bill: new Bill(init), reservation };
}

test('failed open (no holds yet): a settlement whose reply is lost is not applied twice', async () => {
  const ledger = openSqliteLedger(':memory:');
  let lost = 1;
  const flaky: Ledger = {
    ...ledger,
    async settle(s) {
      await ledger.settle(s);
      if (lost-- > 0) throw new Error('TimeoutError: the reply was lost');
    },
  };
  const { bill } = billOn(flaky, false);
  const settled = await bill.settle({ kind: 'exact', usage: { input: 10, cached: 0, output: 20 } }, 200);
  const rows = await ledger.usage('2026-11');
  assert.is(rows.length, 4);
  for (const row of rows) {
    assert.equal([row.requests, row.spent, row.committed], [1, settled.cost, settled.cost], JSON.stringify(row));
  }
  assert.equal(await ledger.expired('2026-11', Number.MAX_SAFE_INTEGER), []);
});

test('an error answer is free: the holds are released and it counts as an error, not a request', async () => {
  const ledger = openSqliteLedger(':memory:');
  const { bill, reservation } = billOn(ledger, true);
  await ledger.reserve(reservation);
  assert.equal((await bill.settle({ kind: 'free' }, 500)).cost, 0);
  for (const row of await ledger.usage('2026-11')) assert.equal([row.requests, row.errors, row.spent, row.committed], [0, 1, 0, 0]);
});

test('an estimate is never below the reserved output for a reasoning model, nor for an answer never seen', async () => {
  const ledger = openSqliteLedger(':memory:');
  const a = await billOn(ledger, false, { reasoning: true }).bill.settle({ kind: 'estimate', relayed: 'short' }, 200);
  const b = await billOn(ledger, false, {}, 'call-2').bill.settle({ kind: 'estimate' }, 0);
  const c = await billOn(ledger, false, {}, 'call-3').bill.settle({ kind: 'estimate', relayed: 'short' }, 200);
  const full = price.output * 1_000 * 1_000; // 1,000 reserved output tokens, nano-USD per token × 1,000
  assert.ok(a.estimated && a.cost >= full, `${a.cost}`);
  assert.ok(b.estimated && b.cost >= full, `${b.cost}`);
  // Text seen, not a reasoning model: what was relayed with a margin, well below the worst case.
  assert.ok(c.estimated && c.cost > 0 && c.cost < full / 10, `${c.cost}`);
});

test('an estimate of a call that asked for audio prices its output as audio', async () => {
  const ledger = openSqliteLedger(':memory:');
  const audioPrice = resolvePrice('gpt-4o-audio-preview')!;
  const worst = { inputTokens: 100, outputTokens: 1_000, predictedTokens: 0, loadedTokens: 0, choices: 1, audio: { input: false, output: true }, cost: 0 };
  const { cost } = await billOn(ledger, false, { price: audioPrice, worst }).bill.settle({ kind: 'estimate' }, 0);
  // 1,000 reserved output tokens at $80/1M audio (as text, $10/1M), plus the input.
  assert.ok(cost > 80 * 1_000 * 1_000, `${cost}`);
});

test('an estimate for a model with another encoding counts bytes, not the o200k tokenizer\'s count', async () => {
  const ledger = openSqliteLedger(':memory:');
  // 60 characters of Devanagari: 180 UTF-8 bytes; the stand-in tokenizer counts characters, as o200k
  // comes close to for such text, while cl100k_base (gpt-3.5's) makes many more tokens of it.
  const text = 'नमस्ते'.repeat(10);
  const words = text.length;
  const bytes = Buffer.byteLength(text);
  const on = (model: string, callId: string) => {
    const p = resolvePrice(model)!;
    const facts = { model, inputText: text, tokenIds: 0, images: 0, opaqueInput: false, contexts: 1 };
    const worst = { inputTokens: 100_000, outputTokens: 100_000, predictedTokens: 0, loadedTokens: 0, choices: 1, audio: { input: false, output: false }, cost: 0 };
    return billOn(ledger, false, { price: p, facts, worst }, callId).bill.settle({ kind: 'estimate', relayed: text }, 200).then((s) => ({ s, p }));
  };
  const legacy = await on('gpt-3.5-turbo', 'call-old');
  const input = bytes + 64; // bytes plus the framing allowance
  const output = Math.ceil(bytes * 1.1) + 16; // relayed bytes with the estimate's margin
  assert.is(legacy.s.cost, Math.round(input * legacy.p.input * 1000 + output * legacy.p.output * 1000));
  const current = await on('gpt-4o', 'call-new');
  assert.is(current.s.cost, Math.round((words + 64) * current.p.input * 1000 + (Math.ceil(words * 1.1) + 16) * current.p.output * 1000));
});

test('an estimate takes the reserved output wherever the text seen may be less than what was generated', async () => {
  const ledger = openSqliteLedger(':memory:');
  const worst = { inputTokens: 100, outputTokens: 1_000, predictedTokens: 0, loadedTokens: 0, choices: 1, audio: { input: false, output: false }, cost: 0 };
  const outputOf = async (over: Partial<BillInit>, callId: string) => {
    let usage: any;
    const spy = { ...ledger, settle: (s: any) => ((usage = s.delta), ledger.settle(s)) } as Ledger;
    await billOn(spy, false, over, callId).bill.settle({ kind: 'estimate', relayed: 'short' }, 200);
    return usage.outputTokens as number;
  };
  // One written answer: what was relayed, with the margin ('short' is 5 tokens here).
  assert.is(await outputOf({ worst }, 'e-1'), Math.ceil(5 * 1.1) + 16);
  // A predicted output: its rejected tokens on top, shown or not.
  assert.is(await outputOf({ worst: { ...worst, outputTokens: 1_400, predictedTokens: 400 } }, 'e-2'), Math.ceil(5 * 1.1) + 16 + 400);
  // Several choices (best_of's are never sent), or a spoken answer (its audio is not text): the reserved output.
  assert.is(await outputOf({ worst: { ...worst, choices: 3 } }, 'e-3'), 3_000);
  assert.is(await outputOf({ worst: { ...worst, audio: { input: false, output: true } }, price: resolvePrice('gpt-4o-audio-preview')! }, 'e-4'), 1_000);
});

test('an estimate on a model whose cache writes cost more than input prices its input as writes', async () => {
  const ledger = openSqliteLedger(':memory:');
  const p = resolvePrice('gpt-6-sol')!; // input $2, writes $2.50, output $10
  const facts = { model: 'gpt-6-sol', inputText: 'x'.repeat(936), tokenIds: 0, images: 0, opaqueInput: false, contexts: 1 };
  const worst = { inputTokens: 10_000, outputTokens: 10, predictedTokens: 0, loadedTokens: 0, choices: 1, audio: { input: false, output: false }, cost: 0 };
  const { cost } = await billOn(ledger, false, { price: p, facts, worst, reasoning: true }, 'w-1').bill.settle({ kind: 'estimate' }, 0);
  // 936 characters (the stand-in tokenizer) + 64 framing = 1,000 input tokens, all at the write rate.
  assert.is(cost, 1_000 * 2.5 * 1000 + 10 * 10 * 1000);
});

test('an estimate keeps the whole input bound when the call loaded input from OpenAI\'s store', async () => {
  const ledger = openSqliteLedger(':memory:');
  let usage: any;
  const spy = { ...ledger, settle: (s: any) => ((usage = s.delta), ledger.settle(s)) } as Ledger;
  // E.g. two spoken answers sent back by id: 32,768 tokens the text 'hi' does not show.
  const worst = { inputTokens: 32_900, outputTokens: 10, predictedTokens: 0, loadedTokens: 32_768, choices: 1, audio: { input: false, output: false }, cost: 0 };
  await billOn(spy, false, { worst }, 'l-1').bill.settle({ kind: 'estimate', relayed: 'ok' }, 200);
  assert.is(usage.inputTokens, 32_900);
});

test.run();
