// One behaviour for every Ledger implementation: each test gets a fresh, empty ledger from `open`.
import { suite, type Test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Ledger, PriceOverride, Scope, Settlement, UsageDelta } from '../runtime/core/ports.ts';

export interface OpenedLedger {
  ledger: Ledger;
  close(): Promise<void>;
}

const M = '2026-11';
const ALICE = 'arn:aws:iam::123456789012:user/alice@example.com';
const BOB = 'arn:aws:sts::123456789012:assumed-role/dev/bob';
const scope = (project: string, user = '*', model = '*'): Scope => ({ project, user, model });
/** The four scopes a call by `user` on `model` counts into: project, project+model, user, detail. */
const scopesOf = (project: string, user: string, model: string) => [
  scope(project),
  scope(project, '*', model),
  scope(project, user),
  scope(project, user, model),
];

const ZERO: UsageDelta = {
  requests: 0, inputTokens: 0, cachedTokens: 0, outputTokens: 0, spent: 0, cacheHits: 0, saved: 0, estimated: 0,
};
const call = (d: Partial<UsageDelta>): UsageDelta => ({ ...ZERO, requests: 1, ...d });

function settlement(scopes: Scope[], delta: UsageDelta, extra: Partial<Settlement> = {}): Settlement {
  return { month: M, day: `${M}-26`, scopes: scopes.map((s) => ({ scope: s, release: 0 })), delta, ...extra };
}

async function rowOf(ledger: Ledger, s: Scope, month = M) {
  const rows = await ledger.usage(month);
  return rows.find((r) => r.project === s.project && r.user === s.user && r.model === s.model);
}
const committedOf = async (ledger: Ledger, s: Scope, month = M) => (await rowOf(ledger, s, month))?.committed ?? 0;

const price = (model: string, over: Partial<PriceOverride> = {}): PriceOverride => ({
  model, input: 2.5, cachedInput: 1.25, output: 10, updatedAt: '2026-11-26T10:00:00.000Z', ...over,
});

export function ledgerConformance(name: string, open: () => Promise<OpenedLedger>): Test {
  const test = suite(`ledger conformance: ${name}`);
  let opened: OpenedLedger | undefined;
  let ledger: Ledger;
  test.before.each(async () => {
    opened = await open();
    ledger = opened.ledger;
  });
  test.after.each(async () => {
    await opened?.close();
    opened = undefined;
  });

  test('an empty ledger reads empty', async () => {
    assert.equal(await ledger.read([], []), { limits: [], prices: [] });
    assert.equal(await ledger.read([scope('p'), scope('p', ALICE, 'gpt-4o')], ['gpt-4o']), {
      limits: [undefined, undefined],
      prices: [undefined],
    });
    assert.equal(await ledger.usage(M), []);
    assert.equal(await ledger.daily(M), []);
    assert.equal(await ledger.listLimits(), []);
    assert.equal(await ledger.listPrices(), []);
    assert.equal(await ledger.reserve(M, []), { ok: true, committed: [] });
  });

  test('limits: set (upsert), read aligned with duplicates, list, remove', async () => {
    await ledger.setLimit(scope('p'), 5_000);
    await ledger.setLimit(scope('p', ALICE, 'gpt-4o'), 700);
    await ledger.setLimit(scope('a', '*', 'o1'), 1);
    await ledger.setLimit(scope('p'), 6_000);
    const asked = [scope('p'), scope('p', ALICE), scope('p', ALICE, 'gpt-4o'), scope('p')];
    assert.equal((await ledger.read(asked, [])).limits, [6_000, undefined, 700, 6_000]);
    assert.equal(await ledger.listLimits(), [
      { scope: scope('a', '*', 'o1'), limit: 1 },
      { scope: scope('p'), limit: 6_000 },
      { scope: scope('p', ALICE, 'gpt-4o'), limit: 700 },
    ]);
    assert.is(await ledger.removeLimit(scope('p', ALICE, 'gpt-4o')), true);
    assert.is(await ledger.removeLimit(scope('p', ALICE, 'gpt-4o')), false);
    assert.is(await ledger.removeLimit(scope('nope')), false);
    assert.equal((await ledger.read([scope('p', ALICE, 'gpt-4o')], [])).limits, [undefined]);
    assert.is((await ledger.listLimits()).length, 2);
  });

  test('price overrides: set, read, list, replace, remove', async () => {
    await ledger.setPrice(price('gpt-4o'));
    await ledger.setPrice(price('my-model', { cachedInput: null, input: 0.15, output: 0.6 }));
    const read = await ledger.read([], ['my-model', 'missing', 'gpt-4o', 'my-model']);
    assert.equal(read.prices, [
      price('my-model', { cachedInput: null, input: 0.15, output: 0.6 }),
      undefined,
      price('gpt-4o'),
      price('my-model', { cachedInput: null, input: 0.15, output: 0.6 }),
    ]);
    await ledger.setPrice(price('gpt-4o', { input: 3, updatedAt: '2026-11-27T00:00:00.000Z' }));
    assert.equal(await ledger.listPrices(), [
      price('gpt-4o', { input: 3, updatedAt: '2026-11-27T00:00:00.000Z' }),
      price('my-model', { cachedInput: null, input: 0.15, output: 0.6 }),
    ]);
    assert.is(await ledger.removePrice('gpt-4o'), true);
    assert.is(await ledger.removePrice('gpt-4o'), false);
    assert.equal((await ledger.read([], ['gpt-4o'])).prices, [undefined]);
  });

  test('reserve under the limit returns committed totals', async () => {
    const holds = [
      { scope: scope('p'), amount: 300, limit: 10_000 },
      { scope: scope('p', ALICE, 'gpt-4o'), amount: 300, limit: 1_000 },
    ];
    assert.equal(await ledger.reserve(M, holds), { ok: true, committed: [300, 300] });
    assert.equal(await ledger.reserve(M, holds), { ok: true, committed: [600, 600] });
    assert.is(await committedOf(ledger, scope('p')), 600);
  });

  test('reserving exactly up to the limit succeeds; one nano more refuses', async () => {
    const hold = (amount: number) => [{ scope: scope('p'), amount, limit: 100 }];
    assert.equal(await ledger.reserve(M, hold(60)), { ok: true, committed: [60] });
    assert.equal(await ledger.reserve(M, hold(40)), { ok: true, committed: [100] });
    assert.equal(await ledger.reserve(M, hold(1)), { ok: false, index: 0, committed: 100 });
    assert.is(await committedOf(ledger, scope('p')), 100);
    // A fresh scope: more than the limit refuses even with nothing committed.
    assert.equal(await ledger.reserve(M, [{ scope: scope('q'), amount: 101, limit: 100 }]), {
      ok: false,
      index: 0,
      committed: 0,
    });
  });

  test('a refusal undoes the holds already taken and names the lowest refusing hold', async () => {
    await ledger.reserve(M, [{ scope: scope('p', BOB), amount: 90, limit: 100 }]);
    await ledger.reserve(M, [{ scope: scope('p', '*', 'o1'), amount: 95, limit: 100 }]);
    const result = await ledger.reserve(M, [
      { scope: scope('p'), amount: 20, limit: 1_000 },
      { scope: scope('p', BOB), amount: 20, limit: 100 },
      { scope: scope('p', '*', 'o1'), amount: 20, limit: 100 },
      { scope: scope('p', BOB, 'o1'), amount: 20, limit: 1_000 },
    ]);
    assert.equal(result, { ok: false, index: 1, committed: 90 });
    assert.is(await committedOf(ledger, scope('p')), 0);
    assert.is(await committedOf(ledger, scope('p', BOB)), 90);
    assert.is(await committedOf(ledger, scope('p', '*', 'o1')), 95);
    assert.is(await committedOf(ledger, scope('p', BOB, 'o1')), 0);
    // The undone holds leave no rows behind.
    assert.equal((await ledger.usage(M)).map((r) => [r.user, r.model]), [['*', 'o1'], [BOB, '*']]);
  });

  test('settle releases reservations: spent exact, committed = spent once all released', async () => {
    const scopes = scopesOf('p', ALICE, 'gpt-4o');
    const reserve = () => ledger.reserve(M, scopes.map((s) => ({ scope: s, amount: 500, limit: 10_000 })));
    await reserve();
    await reserve();
    assert.is(await committedOf(ledger, scope('p')), 1_000);
    await ledger.settle({ ...settlement(scopes, call({ spent: 321 })), scopes: scopes.map((s) => ({ scope: s, release: 500 })) });
    assert.is(await committedOf(ledger, scope('p')), 821);
    await ledger.settle({ ...settlement(scopes, call({ spent: 7 })), scopes: scopes.map((s) => ({ scope: s, release: 500 })) });
    await ledger.settle(settlement(scopes, call({ spent: 2 })));
    for (const s of scopes) {
      const row = await rowOf(ledger, s);
      assert.is(row?.spent, 330, `spent of ${JSON.stringify(s)}`);
      assert.is(row?.committed, 330, `committed of ${JSON.stringify(s)}`);
    }
  });

  test('settle counts aggregates, detail rows and the detail scope per day', async () => {
    const a = call({ inputTokens: 1_000, cachedTokens: 200, outputTokens: 50, spent: 3_000 });
    const hit = { ...ZERO, cacheHits: 1, saved: 3_000 };
    const est = call({ inputTokens: 10, outputTokens: 5, spent: 40, estimated: 1 });
    await ledger.settle(settlement(scopesOf('p', ALICE, 'gpt-4o'), a));
    await ledger.settle(settlement(scopesOf('p', ALICE, 'gpt-4o'), hit, { day: `${M}-27` }));
    await ledger.settle(settlement(scopesOf('p', BOB, 'gpt-4o'), est, { day: `${M}-27` }));
    // Aggregates only (no detail scope): no daily row.
    await ledger.settle(settlement([scope('q')], call({ spent: 1 })));

    const usage = await ledger.usage(M);
    const counters = (s: Scope) => {
      const row = usage.find((r) => r.project === s.project && r.user === s.user && r.model === s.model);
      assert.ok(row, `row ${JSON.stringify(s)}`);
      const { month, project, user, model, committed, priceVersion, ...rest } = row;
      assert.is(month, M);
      return rest;
    };
    const sum = (...ds: UsageDelta[]) =>
      Object.fromEntries(Object.keys(ZERO).map((k) => [k, ds.reduce((n, d) => n + d[k as keyof UsageDelta], 0)]));
    assert.is(usage.length, 7);
    assert.equal(counters(scope('p')), sum(a, hit, est));
    assert.equal(counters(scope('p', '*', 'gpt-4o')), sum(a, hit, est));
    assert.equal(counters(scope('p', ALICE)), sum(a, hit));
    assert.equal(counters(scope('p', ALICE, 'gpt-4o')), sum(a, hit));
    assert.equal(counters(scope('p', BOB, 'gpt-4o')), sum(est));
    assert.equal(counters(scope('q')), sum(call({ spent: 1 })));
    for (const row of usage) for (const v of Object.values(row)) if (typeof v !== 'string') assert.type(v, 'number');

    assert.equal(await ledger.daily(M), [
      { day: `${M}-26`, project: 'p', user: ALICE, model: 'gpt-4o', ...a },
      { day: `${M}-27`, project: 'p', user: ALICE, model: 'gpt-4o', ...hit },
      { day: `${M}-27`, project: 'p', user: BOB, model: 'gpt-4o', ...est },
    ]);
  });

  test('priceVersion is stored on the rows and kept when a settlement has none', async () => {
    const scopes = scopesOf('p', ALICE, 'gpt-4o');
    await ledger.settle(settlement(scopes, call({ spent: 1 })));
    assert.is((await rowOf(ledger, scope('p')))?.priceVersion, undefined);
    await ledger.settle(settlement(scopes, call({ spent: 1 }), { priceVersion: 'v1' }));
    await ledger.settle(settlement(scopes, call({ spent: 1 })));
    for (const s of scopes) assert.is((await rowOf(ledger, s))?.priceVersion, 'v1');
    await ledger.settle(settlement([scope('p')], call({ spent: 1 }), { priceVersion: 'v2@2026-11-26T10:00:00Z' }));
    assert.is((await rowOf(ledger, scope('p')))?.priceVersion, 'v2@2026-11-26T10:00:00Z');
    assert.is((await rowOf(ledger, scope('p', ALICE)))?.priceVersion, 'v1');
  });

  test('32 concurrent reservations never exceed the limit', async () => {
    const results = await Promise.all(
      Array.from({ length: 32 }, () => ledger.reserve(M, [{ scope: scope('p'), amount: 7, limit: 100 }])),
    );
    const taken = results.flatMap((r) => (r.ok ? r.committed : [])).sort((x, y) => x - y);
    assert.equal(taken, Array.from({ length: 14 }, (_, i) => 7 * (i + 1)));
    for (const r of results) if (!r.ok) assert.ok(r.committed + 7 > 100 && r.committed <= 100);
    assert.is(await committedOf(ledger, scope('p')), 98);
  });

  test('32 concurrent two-scope reservations stay all-or-none', async () => {
    const holds = [
      { scope: scope('p'), amount: 7, limit: 1_000_000 },
      { scope: scope('p', ALICE, 'o1'), amount: 7, limit: 100 },
    ];
    const results = await Promise.all(Array.from({ length: 32 }, () => ledger.reserve(M, holds)));
    assert.is(results.filter((r) => r.ok).length, 14);
    for (const r of results) if (!r.ok) assert.is(r.index, 1);
    assert.is(await committedOf(ledger, scope('p')), 98);
    assert.is(await committedOf(ledger, scope('p', ALICE, 'o1')), 98);
  });

  test('months are separate', async () => {
    const hold = [{ scope: scope('p'), amount: 100, limit: 100 }];
    assert.ok((await ledger.reserve(M, hold)).ok);
    assert.equal(await ledger.reserve(M, hold), { ok: false, index: 0, committed: 100 });
    assert.equal(await ledger.reserve('2026-12', hold), { ok: true, committed: [100] });
    await ledger.settle(settlement(scopesOf('p', ALICE, 'o1'), call({ spent: 5 })));
    await ledger.settle(settlement(scopesOf('p', ALICE, 'o1'), call({ spent: 9 }), { month: '2026-12', day: '2026-12-01' }));
    assert.is((await rowOf(ledger, scope('p')))?.spent, 5);
    assert.is((await rowOf(ledger, scope('p'), '2026-12'))?.spent, 9);
    assert.equal((await ledger.daily(M)).map((r) => [r.day, r.spent]), [[`${M}-26`, 5]]);
    assert.equal((await ledger.daily('2026-12')).map((r) => [r.day, r.spent]), [['2026-12-01', 9]]);
    assert.equal(await ledger.usage('2026-10'), []);
  });

  test('months lists the months with settled calls or cache hits, newest first, each once', async () => {
    assert.equal(await ledger.months(), []);
    // A reservation alone (a call in flight, or one refused later) is not usage.
    await ledger.reserve('2026-09', [{ scope: scope('p'), amount: 5, limit: 100 }]);
    assert.equal(await ledger.months(), []);
    await ledger.settle(settlement(scopesOf('p', ALICE, 'o1'), call({ spent: 5 })));
    await ledger.settle(settlement(scopesOf('p', BOB, 'o1'), call({ spent: 1 })));
    await ledger.settle(settlement(scopesOf('p', ALICE, 'o1'), call({ spent: 9 }), { month: '2026-12', day: '2026-12-01' }));
    await ledger.settle(
      settlement(scopesOf('q', BOB, 'o1'), { ...ZERO, cacheHits: 1, saved: 4 }, { month: '2025-01', day: '2025-01-31' }),
    );
    await ledger.settle(settlement(scopesOf('p', BOB, 'o1'), call({ spent: 2 }), { month: '2026-12', day: '2026-12-02' }));
    assert.equal(await ledger.months(), ['2026-12', M, '2025-01']);
  });

  test('large values round-trip exactly', async () => {
    const big = 9e12;
    const max = Number.MAX_SAFE_INTEGER;
    await ledger.setLimit(scope('p'), max);
    assert.equal((await ledger.read([scope('p')], [])).limits, [max]);
    assert.equal(await ledger.reserve(M, [{ scope: scope('p'), amount: big, limit: 2 * big }]), { ok: true, committed: [big] });
    await ledger.settle({
      ...settlement([scope('p')], call({ spent: big + 123, saved: big, inputTokens: 4_000_000_000 })),
      scopes: [{ scope: scope('p'), release: big }],
    });
    const row = await rowOf(ledger, scope('p'));
    assert.is(row?.spent, 9_000_000_000_123);
    assert.is(row?.committed, 9_000_000_000_123);
    assert.is(row?.saved, big);
    assert.is(row?.inputTokens, 4_000_000_000);
  });

  return test;
}
