// One behaviour for every Ledger implementation: each test gets a fresh, empty ledger from `open`.
import { suite, type Test } from 'uvu';
import * as assert from 'uvu/assert';
import { chargeExpired, settlementOf } from '../runtime/core/bill.ts';
import type { BudgetAlert } from '../runtime/core/alerts.ts';
import type { Hold, Ledger, PriceOverride, RateHold, Reservation, Scope, UsageDelta } from '../runtime/core/ports.ts';

export interface OpenedLedger {
  ledger: Ledger;
  close(): Promise<void>;
}

const M = '2026-11';
const ALICE = 'arn:aws:iam::123456789012:user/alice@example.com';
const BOB = 'arn:aws:sts::123456789012:assumed-role/dev/bob';
const FAR = Date.parse('2027-01-01T00:00:00Z');
const scope = (project: string, user = '*', model = '*'): Scope => ({ project, user, model });
/** The four scopes a call by `user` on `model` counts into: project, project+model, user, detail. */
const scopesOf = (project: string, user: string, model: string) => [
  scope(project),
  scope(project, '*', model),
  scope(project, user),
  scope(project, user, model),
];

const ZERO: UsageDelta = {
  requests: 0, errors: 0, inputTokens: 0, cachedTokens: 0, outputTokens: 0, spent: 0, cacheHits: 0, saved: 0, estimated: 0,
};
const call = (d: Partial<UsageDelta>): UsageDelta => ({ ...ZERO, requests: 1, ...d });

let seq = 0;
/** A reservation of a fresh call: `amount` held on each scope, limited where `limit` is given. */
function reservation(scopes: Scope[], amount = 0, limit?: number, extra: Partial<Reservation> = {}): Reservation {
  const holds: Hold[] = scopes.map((s) => (limit === undefined ? { scope: s, amount } : { scope: s, amount, limit }));
  return { callId: `call-${++seq}`, month: M, day: `${M}-26`, expiresAt: FAR, holds, ...extra };
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

  /** A whole call: reserve (unlimited holds) and settle. */
  async function spend(scopes: Scope[], delta: UsageDelta, extra: Partial<Reservation> & { priceVersion?: string } = {}) {
    const { priceVersion, ...rest } = extra;
    const r = reservation(scopes, 0, undefined, rest);
    assert.ok((await ledger.reserve(r)).ok);
    await ledger.settle(settlementOf(r, delta, priceVersion));
    return r;
  }

  test('an empty ledger reads empty', async () => {
    assert.equal(await ledger.read([], []), { limits: [], dayLimits: [], rateLimits: [], alerts: [], dayAlerts: [], prices: [], members: new Map() });
    assert.equal(await ledger.read([scope('p'), scope('p', ALICE, 'gpt-4o')], ['gpt-4o']), {
      limits: [undefined, undefined],
      dayLimits: [undefined, undefined],
      rateLimits: [undefined, undefined],
      alerts: [undefined, undefined],
      dayAlerts: [undefined, undefined],
      prices: [undefined],
      members: new Map(),
    });
    assert.equal(await ledger.usage(M), []);
    assert.equal(await ledger.daily(M), []);
    assert.equal(await ledger.listLimits(), []);
    assert.equal(await ledger.listPrices(), []);
    assert.equal(await ledger.listMembers(), []);
    assert.equal(await ledger.reserve(reservation([])), { ok: true, committed: [] });
    assert.equal(await ledger.expired(M, FAR * 2), []);
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

  test('price overrides keep every rate they set: cache write, long context and audio, each optional', async () => {
    const longContext = { thresholdInputTokens: 272_000, input: 5, cachedInput: null, output: 22.5 };
    const full = price('gpt-5.4', { cacheWrite: 3.125, longContext, audio: { input: 40, cachedInput: 2.5, output: 80 } });
    const partial = price('gpt-audio', { cachedInput: null, audio: { output: 64 } });
    const lcCached = price('gpt-5.5', { longContext: { ...longContext, cachedInput: 0.5 } });
    for (const p of [full, partial, lcCached]) await ledger.setPrice(p);
    assert.equal((await ledger.read([], ['gpt-audio', 'gpt-5.4', 'gpt-5.5'])).prices, [partial, full, lcCached]);
    assert.equal(await ledger.listPrices(), [full, lcCached, partial]);
    // Replacing an override replaces all of it: rates the new one leaves out are gone.
    const plain = price('gpt-5.4', { input: 3, updatedAt: '2026-11-28T00:00:00.000Z' });
    await ledger.setPrice(plain);
    assert.equal((await ledger.read([], ['gpt-5.4'])).prices, [plain]);
  });

  test('members: add (once), read with the limits of the projects the scopes name, list, remove', async () => {
    assert.is(await ledger.addMember('p', 'bob'), true);
    assert.is(await ledger.addMember('p', 'alice'), true);
    assert.is(await ledger.addMember('p', 'alice'), false, 'already a member');
    assert.is(await ledger.addMember('p', 'data-science/*'), true);
    assert.is(await ledger.addMember('q', 'AWSReservedSSO_Dev_0a1b/carol@example.com'), true);
    await ledger.setLimit(scope('p'), 5);
    const read = await ledger.read([scope('p'), scope('p', 'alice'), scope('open')], ['gpt-4o']);
    assert.equal(read.limits, [5, undefined, undefined]);
    // Sorted, and a project without members is absent (open) rather than an empty list.
    assert.equal(read.members, new Map([['p', ['alice', 'bob', 'data-science/*']]]));
    assert.equal(await ledger.listMembers(), [
      { project: 'p', members: ['alice', 'bob', 'data-science/*'] },
      { project: 'q', members: ['AWSReservedSSO_Dev_0a1b/carol@example.com'] },
    ]);
    assert.is(await ledger.removeMember('p', 'bob'), true);
    assert.is(await ledger.removeMember('p', 'bob'), false, 'not a member any more');
    assert.is(await ledger.removeMember('nope', 'bob'), false);
    assert.is(await ledger.removeMember('q', 'AWSReservedSSO_Dev_0a1b/carol@example.com'), true);
    // The last member revoked: the project is open again, and not listed.
    assert.equal((await ledger.read([scope('q')], [])).members, new Map());
    assert.equal(await ledger.listMembers(), [{ project: 'p', members: ['alice', 'data-science/*'] }]);
    assert.equal(await ledger.listLimits(), [{ scope: scope('p'), limit: 5 }], 'members are not limits');
    // The revoked one can be added again.
    assert.is(await ledger.addMember('q', 'AWSReservedSSO_Dev_0a1b/carol@example.com'), true);
    assert.equal((await ledger.read([scope('q')], [])).members, new Map([['q', ['AWSReservedSSO_Dev_0a1b/carol@example.com']]]));
  });

  test('reserve under the limit returns committed totals', async () => {
    const holds = (id: string) => reservation([scope('p'), scope('p', ALICE, 'gpt-4o')], 300, undefined, { callId: id });
    const limited = (id: string): Reservation => {
      const r = holds(id);
      return { ...r, holds: [{ ...r.holds[0], limit: 10_000 }, { ...r.holds[1], limit: 1_000 }] };
    };
    assert.equal(await ledger.reserve(limited('a')), { ok: true, committed: [300, 300] });
    assert.equal(await ledger.reserve(limited('b')), { ok: true, committed: [600, 600] });
    assert.is(await committedOf(ledger, scope('p')), 600);
  });

  test('reserving exactly up to the limit succeeds; one nano more refuses', async () => {
    const hold = (amount: number) => reservation([scope('p')], amount, 100);
    assert.equal(await ledger.reserve(hold(60)), { ok: true, committed: [60] });
    assert.equal(await ledger.reserve(hold(40)), { ok: true, committed: [100] });
    assert.equal(await ledger.reserve(hold(1)), { ok: false, index: 0, committed: 100 });
    assert.is(await committedOf(ledger, scope('p')), 100);
    // A fresh scope: more than the limit refuses even with nothing committed.
    assert.equal(await ledger.reserve(reservation([scope('q')], 101, 100)), { ok: false, index: 0, committed: 0 });
  });

  test('unlimited holds count in committed and never refuse', async () => {
    assert.equal(await ledger.reserve(reservation([scope('p'), scope('p', ALICE)], 5e12)), { ok: true, committed: [5e12, 5e12] });
    assert.equal(await ledger.reserve(reservation([scope('p')], 5e12)), { ok: true, committed: [1e13] });
  });

  test('a refusal undoes the holds already taken and names the lowest refusing hold', async () => {
    await ledger.reserve(reservation([scope('p', BOB)], 90, 100));
    await ledger.reserve(reservation([scope('p', '*', 'o1')], 95, 100));
    const r = reservation([], 20);
    r.holds = [
      { scope: scope('p'), amount: 20, limit: 1_000 },
      { scope: scope('p', BOB), amount: 20, limit: 100 },
      { scope: scope('p', '*', 'o1'), amount: 20, limit: 100 },
      { scope: scope('p', BOB, 'o1'), amount: 20 },
    ];
    assert.equal(await ledger.reserve(r), { ok: false, index: 1, committed: 90 });
    assert.is(await committedOf(ledger, scope('p')), 0);
    assert.is(await committedOf(ledger, scope('p', BOB)), 90);
    assert.is(await committedOf(ledger, scope('p', '*', 'o1')), 95);
    assert.is(await committedOf(ledger, scope('p', BOB, 'o1')), 0);
    // The undone holds leave no rows behind.
    assert.equal((await ledger.usage(M)).map((r) => [r.user, r.model]), [['*', 'o1'], [BOB, '*']]);
  });

  test('reserve is idempotent: a retry after a lost reply holds once, and a refusal stays one', async () => {
    const r = reservation(scopesOf('p', ALICE, 'o1'), 40, 100);
    assert.equal(await ledger.reserve(r), { ok: true, committed: [40, 40, 40, 40] });
    assert.equal(await ledger.reserve(r), { ok: true, committed: [40, 40, 40, 40] });
    assert.is(await committedOf(ledger, scope('p')), 40);
    const big = reservation([scope('p')], 70, 100);
    assert.equal(await ledger.reserve(big), { ok: false, index: 0, committed: 40 });
    assert.equal(await ledger.reserve(big), { ok: false, index: 0, committed: 40 });
    assert.is(await committedOf(ledger, scope('p')), 40);
  });

  test('settle is idempotent: a duplicate or a retry applies once, an unknown call not at all', async () => {
    const scopes = scopesOf('p', ALICE, 'gpt-4o');
    const r = reservation(scopes, 500, 10_000);
    await ledger.reserve(r);
    const s = settlementOf(r, call({ spent: 321, inputTokens: 9 }));
    await ledger.settle(s);
    await ledger.settle(s);
    await ledger.settle(settlementOf(reservation(scopes, 500), call({ spent: 1_000 })));
    for (const sc of scopes) {
      const row = await rowOf(ledger, sc);
      assert.equal([row?.requests, row?.spent, row?.committed, row?.inputTokens], [1, 321, 321, 9], JSON.stringify(sc));
    }
    assert.equal((await ledger.daily(M)).map((d) => [d.requests, d.spent]), [[1, 321]]);
  });

  test('release gives the holds back once; after a settlement it changes nothing', async () => {
    const scopes = scopesOf('p', ALICE, 'o1');
    const kept = reservation(scopes, 30, 100);
    await ledger.reserve(kept);
    const r = reservation(scopes, 50, 100);
    await ledger.reserve(r);
    await ledger.release(r);
    await ledger.release(r);
    assert.is(await committedOf(ledger, scope('p')), 30);
    await ledger.settle(settlementOf(kept, call({ spent: 10 })));
    await ledger.release(kept);
    assert.equal([(await rowOf(ledger, scope('p')))?.spent, await committedOf(ledger, scope('p'))], [10, 10]);
  });

  test('holds past their deadline are listed and charged in full once; a late settlement is ignored', async () => {
    const scopes = scopesOf('p', ALICE, 'o1');
    const stale = reservation(scopes, 70, 1_000, { expiresAt: 1_000, day: `${M}-03` });
    const live = reservation(scopes, 20, 1_000, { expiresAt: FAR });
    await ledger.reserve(stale);
    await ledger.reserve(live);
    const expired = await ledger.expired(M, 2_000);
    assert.equal(
      expired.map((e) => [e.callId, e.amount, e.day, e.scope.project, e.scope.user, e.scope.model]).sort(),
      scopes.map((s) => [stale.callId, 70, `${M}-03`, s.project, s.user, s.model]).sort(),
    );
    assert.is(await chargeExpired(ledger, M, 2_000), 4);
    assert.is(await chargeExpired(ledger, M, 2_000), 0);
    await ledger.settle(settlementOf(stale, call({ spent: 1 })));
    for (const s of scopes) {
      const row = await rowOf(ledger, s);
      assert.equal([row?.requests, row?.spent, row?.estimated, row?.committed], [1, 70, 1, 90], JSON.stringify(s));
    }
    assert.equal((await ledger.daily(M)).map((d) => [d.day, d.spent, d.estimated]), [[`${M}-03`, 70, 1]]);
  });

  test('settle releases reservations: spent exact, committed = spent once all settled', async () => {
    const scopes = scopesOf('p', ALICE, 'gpt-4o');
    const first = reservation(scopes, 500, 10_000);
    const second = reservation(scopes, 500, 10_000);
    await ledger.reserve(first);
    await ledger.reserve(second);
    assert.is(await committedOf(ledger, scope('p')), 1_000);
    await ledger.settle(settlementOf(first, call({ spent: 321 })));
    assert.is(await committedOf(ledger, scope('p')), 821);
    await ledger.settle(settlementOf(second, call({ spent: 7 })));
    await spend(scopes, call({ spent: 2 }));
    for (const s of scopes) {
      const row = await rowOf(ledger, s);
      assert.is(row?.spent, 330, `spent of ${JSON.stringify(s)}`);
      assert.is(row?.committed, 330, `committed of ${JSON.stringify(s)}`);
    }
  });

  test('settle counts aggregates, detail rows and the detail scope per day; hits and errors too', async () => {
    const a = call({ inputTokens: 1_000, cachedTokens: 200, outputTokens: 50, spent: 3_000 });
    const hit = { ...ZERO, cacheHits: 1, saved: 3_000 };
    const est = call({ inputTokens: 10, outputTokens: 5, spent: 40, estimated: 1 });
    const err = { ...ZERO, errors: 1 };
    await spend(scopesOf('p', ALICE, 'gpt-4o'), a);
    await ledger.recordHit(M, `${M}-27`, scope('p', ALICE, 'gpt-4o'), 3_000);
    await spend(scopesOf('p', BOB, 'gpt-4o'), est, { day: `${M}-27` });
    await spend(scopesOf('p', BOB, 'gpt-4o'), err, { day: `${M}-27` });
    // Aggregates only (no detail scope): no daily row.
    await spend([scope('q')], call({ spent: 1 }));

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
    // Hits count on the detail row only: the aggregates are for budgets, and a hit spends nothing.
    assert.equal(counters(scope('p')), sum(a, est, err));
    assert.equal(counters(scope('p', '*', 'gpt-4o')), sum(a, est, err));
    assert.equal(counters(scope('p', ALICE)), sum(a));
    assert.equal(counters(scope('p', ALICE, 'gpt-4o')), sum(a, hit));
    assert.equal(counters(scope('p', BOB, 'gpt-4o')), sum(est, err));
    assert.equal(counters(scope('q')), sum(call({ spent: 1 })));
    for (const row of usage) for (const v of Object.values(row)) if (typeof v !== 'string') assert.type(v, 'number');

    assert.equal(await ledger.daily(M), [
      { day: `${M}-26`, project: 'p', user: ALICE, model: 'gpt-4o', ...a },
      { day: `${M}-27`, project: 'p', user: ALICE, model: 'gpt-4o', ...hit },
      { day: `${M}-27`, project: 'p', user: BOB, model: 'gpt-4o', ...sum(est, err) },
    ]);
  });

  test('priceVersion is stored on the rows and kept when a settlement has none', async () => {
    const scopes = scopesOf('p', ALICE, 'gpt-4o');
    await spend(scopes, call({ spent: 1 }));
    assert.is((await rowOf(ledger, scope('p')))?.priceVersion, undefined);
    await spend(scopes, call({ spent: 1 }), { priceVersion: 'v1' });
    await spend(scopes, call({ spent: 1 }));
    for (const s of scopes) assert.is((await rowOf(ledger, s))?.priceVersion, 'v1');
    await spend([scope('p')], call({ spent: 1 }), { priceVersion: 'v2@2026-11-26T10:00:00Z' });
    assert.is((await rowOf(ledger, scope('p')))?.priceVersion, 'v2@2026-11-26T10:00:00Z');
    assert.is((await rowOf(ledger, scope('p', ALICE)))?.priceVersion, 'v1');
  });

  test('32 concurrent reservations never exceed the limit', async () => {
    const results = await Promise.all(Array.from({ length: 32 }, () => ledger.reserve(reservation([scope('p')], 7, 100))));
    const taken = results.flatMap((r) => (r.ok ? r.committed : [])).sort((x, y) => x - y);
    assert.equal(taken, Array.from({ length: 14 }, (_, i) => 7 * (i + 1)));
    for (const r of results) if (!r.ok && 'committed' in r) assert.ok(r.committed + 7 > 100 && r.committed <= 100);
    assert.is(await committedOf(ledger, scope('p')), 98);
  });

  test('32 concurrent two-scope reservations stay all-or-none', async () => {
    const results = await Promise.all(
      Array.from({ length: 32 }, () => {
        const r = reservation([], 7);
        r.holds = [
          { scope: scope('p'), amount: 7, limit: 1_000_000 },
          { scope: scope('p', ALICE, 'o1'), amount: 7, limit: 100 },
        ];
        return ledger.reserve(r);
      }),
    );
    assert.is(results.filter((r) => r.ok).length, 14);
    for (const r of results) if (!r.ok) assert.is('index' in r && r.index, 1);
    assert.is(await committedOf(ledger, scope('p')), 98);
    assert.is(await committedOf(ledger, scope('p', ALICE, 'o1')), 98);
  });

  // ---- per-day USD limits and requests/tokens per minute ----

  const W = Date.parse('2026-11-26T10:15:00Z');
  /** A reservation with rate holds in window `window` (and USD holds when given). */
  function rated(rates: RateHold[], holds: Hold[] = [], window = W, extra: Partial<Reservation> = {}): Reservation {
    return { ...reservation([]), holds, window, rates, ...extra };
  }
  const useOf = async (s: Scope, window = W, day = `${M}-26`) => (await ledger.limitUse([s], M, day, window))[0];

  test('limits of every kind: set one kind keeping the others, read, list, remove one kind or all', async () => {
    await ledger.setLimit(scope('p'), 5_000);
    await ledger.setLimit(scope('p'), 300, 'day');
    await ledger.setLimit(scope('p'), 3, 'rpm');
    await ledger.setLimit(scope('p', ALICE), 9_000, 'tpm');
    await ledger.setLimit(scope('p', ALICE), 4, 'rpm');
    await ledger.setLimit(scope('p'), 2, 'rpm');
    const read = await ledger.read([scope('p'), scope('p', ALICE), scope('q')], []);
    assert.equal(read.limits, [5_000, undefined, undefined]);
    assert.equal(read.dayLimits, [300, undefined, undefined]);
    assert.equal(read.rateLimits, [{ rpm: 2 }, { rpm: 4, tpm: 9_000 }, undefined]);
    assert.equal(await ledger.listLimits(), [
      { scope: scope('p'), limit: 5_000, dayLimit: 300, rpm: 2 },
      { scope: scope('p', ALICE), rpm: 4, tpm: 9_000 },
    ]);
    assert.is(await ledger.removeLimit(scope('p'), 'rpm'), true);
    assert.is(await ledger.removeLimit(scope('p'), 'rpm'), false);
    assert.is(await ledger.removeLimit(scope('p', ALICE), 'month'), false, 'it has no monthly limit');
    assert.is(await ledger.removeLimit(scope('p'), 'month'), true);
    assert.equal(await ledger.listLimits(), [{ scope: scope('p'), dayLimit: 300 }, { scope: scope('p', ALICE), rpm: 4, tpm: 9_000 }]);
    assert.is(await ledger.removeLimit(scope('p'), 'day'), true);
    assert.is(await ledger.removeLimit(scope('p', ALICE)), true);
    assert.is(await ledger.removeLimit(scope('p', ALICE)), false);
    assert.equal(await ledger.listLimits(), []);
    assert.equal((await ledger.read([scope('p'), scope('p', ALICE)], [])).rateLimits, [undefined, undefined]);
  });

  test('a daily limit refuses past the day total, names the day, and a new day starts fresh', async () => {
    const dayHold = (amount: number): Hold => ({ scope: scope('p'), amount, dayLimit: 100 });
    const first = reservation([], 0, undefined, { holds: [dayHold(60), { scope: scope('p', ALICE), amount: 60 }] });
    assert.equal(await ledger.reserve(first), { ok: true, committed: [60, 60], days: [60, 60] });
    assert.equal(await ledger.reserve(first), { ok: true, committed: [60, 60], days: [60, 60] }, 'a retry answers the same');
    const refused = await ledger.reserve(reservation([], 0, undefined, { holds: [dayHold(41)] }));
    assert.equal(refused, { ok: false, index: 0, committed: 60, period: 'day' });
    assert.ok((await ledger.reserve(reservation([], 0, undefined, { holds: [dayHold(40)] }))).ok, 'exactly up to the limit');
    // The next day of the same month: the month's committed carries on, the day's does not.
    const tomorrow = reservation([], 0, undefined, { day: `${M}-27`, holds: [{ ...dayHold(100), limit: 1_000 }] });
    assert.equal(await ledger.reserve(tomorrow), { ok: true, committed: [200], days: [100] });
    assert.is((await useOf(scope('p'))).day, 100);
    assert.is((await useOf(scope('p'), W, `${M}-27`)).day, 100);
    // A monthly refusal is named before a daily one.
    const both = await ledger.reserve(reservation([], 0, undefined, { day: `${M}-27`, holds: [{ ...dayHold(50), limit: 210 }] }));
    assert.equal(both, { ok: false, index: 0, committed: 200 });
  });

  test('the day total moves like committed: settled to the cost, released, charged at the deadline', async () => {
    const hold: Hold = { scope: scope('p'), amount: 70, dayLimit: 100 };
    const settled = reservation([], 0, undefined, { holds: [hold] });
    assert.ok((await ledger.reserve(settled)).ok);
    await ledger.settle(settlementOf(settled, call({ spent: 25 })));
    await ledger.settle(settlementOf(settled, call({ spent: 25 })));
    assert.is((await useOf(scope('p'))).day, 25);
    const released = reservation([], 0, undefined, { holds: [hold] });
    assert.ok((await ledger.reserve(released)).ok);
    await ledger.release(released);
    await ledger.release(released);
    assert.is((await useOf(scope('p'))).day, 25);
    const lost = reservation([], 0, undefined, { holds: [hold], expiresAt: 1 });
    assert.ok((await ledger.reserve(lost)).ok);
    assert.is(await chargeExpired(ledger, M, 2), 1);
    assert.is((await useOf(scope('p'))).day, 95, 'the hold turned spent in full');
    assert.equal(await ledger.reserve(reservation([], 0, undefined, { holds: [{ ...hold, amount: 6 }] })), {
      ok: false, index: 0, committed: 95, period: 'day',
    });
  });

  test('requests per minute: the window takes N, refuses the next with its use, a new window starts fresh', async () => {
    const rpm = (): RateHold => ({ scope: scope('p'), tokens: 10, rpm: 3 });
    for (let i = 1; i <= 3; i++) assert.equal(await ledger.reserve(rated([rpm()])), { ok: true, committed: [], rates: [{ requests: i, tokens: 10 * i }] });
    assert.equal(await ledger.reserve(rated([rpm()])), { ok: false, rate: 0, use: { requests: 3, tokens: 30 } });
    assert.equal(await useOf(scope('p')), { day: 0, requests: 3, tokens: 30 });
    assert.equal(await ledger.reserve(rated([rpm()], [], W + 60_000)), { ok: true, committed: [], rates: [{ requests: 1, tokens: 10 }] });
    assert.equal(await useOf(scope('p', ALICE)), { day: 0, requests: 0, tokens: 0 }, 'no window where nothing was taken');
  });

  test('tokens per minute: reserved worst case, settled to the actual, given back on release or error', async () => {
    const tpm = (tokens: number): RateHold => ({ scope: scope('p'), tokens, tpm: 1_000 });
    const a = rated([tpm(600)]);
    assert.ok((await ledger.reserve(a)).ok);
    assert.equal(await ledger.reserve(rated([tpm(401)])), { ok: false, rate: 0, use: { requests: 1, tokens: 600 } });
    // Settled at 150 actual tokens (100 in, 50 out): 450 go back.
    await ledger.settle(settlementOf(a, call({ inputTokens: 100, outputTokens: 50 })));
    await ledger.settle(settlementOf(a, call({ inputTokens: 100, outputTokens: 50 })));
    assert.equal(await useOf(scope('p')), { day: 0, requests: 1, tokens: 150 });
    const b = rated([tpm(850)]);
    assert.equal(await ledger.reserve(b), { ok: true, committed: [], rates: [{ requests: 2, tokens: 1_000 }] });
    await ledger.release(b);
    await ledger.release(b);
    assert.equal(await useOf(scope('p')), { day: 0, requests: 1, tokens: 150 }, 'a call that never went out takes nothing');
    const c = rated([tpm(300)]);
    assert.ok((await ledger.reserve(c)).ok);
    await ledger.settle(settlementOf(c, { ...ZERO, errors: 1 }));
    assert.equal(await useOf(scope('p')), { day: 0, requests: 2, tokens: 150 }, 'an upstream error keeps its request, not its tokens');
    await ledger.release(c);
    assert.equal(await useOf(scope('p')), { day: 0, requests: 2, tokens: 150 }, 'release after settlement changes nothing');
  });

  test('rate holds are all or none with the USD holds, and a retry after a lost reply takes once', async () => {
    await spend([scope('p')], call({ spent: 90 }));
    const r = rated([{ scope: scope('p'), tokens: 5, rpm: 10 }], [{ scope: scope('p'), amount: 20, limit: 100 }]);
    assert.equal(await ledger.reserve(r), { ok: false, index: 0, committed: 90 });
    assert.equal(await useOf(scope('p')), { day: 90, requests: 0, tokens: 0 }, 'the refused call took no request');
    const full = rated([{ scope: scope('p'), tokens: 5, rpm: 0 }], [{ scope: scope('p'), amount: 5, limit: 100 }]);
    assert.equal(await ledger.reserve(full), { ok: false, rate: 0, use: { requests: 0, tokens: 0 } });
    assert.is(await committedOf(ledger, scope('p')), 90, 'the USD hold was undone');
    const fits = rated([{ scope: scope('p'), tokens: 5, rpm: 1 }], [{ scope: scope('p'), amount: 5, limit: 100 }]);
    assert.equal(await ledger.reserve(fits), { ok: true, committed: [95], rates: [{ requests: 1, tokens: 5 }] });
    assert.equal(await ledger.reserve(fits), { ok: true, committed: [95], rates: [{ requests: 1, tokens: 5 }] }, 'the retry holds once');
    // A cache hit: a request and no USD hold, idempotent too.
    const hit = rated([{ scope: scope('q'), tokens: 0, rpm: 1 }]);
    assert.ok((await ledger.reserve(hit)).ok);
    assert.ok((await ledger.reserve(hit)).ok);
    assert.equal(await useOf(scope('q')), { day: 0, requests: 1, tokens: 0 });
    assert.equal(await ledger.reserve(rated([{ scope: scope('q'), tokens: 0, rpm: 1 }])), { ok: false, rate: 0, use: { requests: 1, tokens: 0 } });
  });

  test('32 concurrent calls never exceed a requests-per-minute limit', async () => {
    const results = await Promise.all(
      Array.from({ length: 32 }, () =>
        ledger.reserve(rated([{ scope: scope('p'), tokens: 1, rpm: 5 }, { scope: scope('p', ALICE), tokens: 1, rpm: 1_000 }])),
      ),
    );
    assert.is(results.filter((r) => r.ok).length, 5);
    assert.equal(await useOf(scope('p')), { day: 0, requests: 5, tokens: 5 });
    assert.equal(await useOf(scope('p', ALICE)), { day: 0, requests: 5, tokens: 5 }, 'refused calls undo their other rate holds');
  });

  test('32 concurrent calls never exceed a tokens-per-minute limit', async () => {
    const results = await Promise.all(Array.from({ length: 32 }, () => ledger.reserve(rated([{ scope: scope('p'), tokens: 70, tpm: 1_000 }]))));
    assert.is(results.filter((r) => r.ok).length, 14);
    assert.equal(await useOf(scope('p')), { day: 0, requests: 14, tokens: 980 });
  });

  test('32 concurrent calls never exceed a daily limit', async () => {
    const results = await Promise.all(
      Array.from({ length: 32 }, () =>
        ledger.reserve(reservation([], 0, undefined, { holds: [{ scope: scope('p'), amount: 7, dayLimit: 100, limit: 1_000_000 }] })),
      ),
    );
    assert.is(results.filter((r) => r.ok).length, 14);
    for (const r of results) if (!r.ok) assert.is('period' in r && r.period, 'day');
    assert.equal(await useOf(scope('p')), { day: 98, requests: 0, tokens: 0 });
    assert.is(await committedOf(ledger, scope('p')), 98);
  });

  test('months are separate', async () => {
    const hold = (month: string) => reservation([scope('p')], 100, 100, { month });
    assert.ok((await ledger.reserve(hold(M))).ok);
    assert.equal(await ledger.reserve(hold(M)), { ok: false, index: 0, committed: 100 });
    assert.equal(await ledger.reserve(hold('2026-12')), { ok: true, committed: [100] });
    await spend(scopesOf('p', ALICE, 'o1'), call({ spent: 5 }));
    await spend(scopesOf('p', ALICE, 'o1'), call({ spent: 9 }), { month: '2026-12', day: '2026-12-01' });
    assert.is((await rowOf(ledger, scope('p')))?.spent, 5);
    assert.is((await rowOf(ledger, scope('p'), '2026-12'))?.spent, 9);
    assert.equal((await ledger.daily(M)).map((r) => [r.day, r.spent]), [[`${M}-26`, 5]]);
    assert.equal((await ledger.daily('2026-12')).map((r) => [r.day, r.spent]), [['2026-12-01', 9]]);
    assert.equal(await ledger.usage('2026-10'), []);
  });

  test('months lists the months with settled calls, errors or cache hits, newest first, each once', async () => {
    assert.equal(await ledger.months(), []);
    // A reservation alone (a call in flight, or one refused later) is not usage.
    await ledger.reserve(reservation([scope('p')], 5, 100, { month: '2026-09' }));
    assert.equal(await ledger.months(), []);
    await spend(scopesOf('p', ALICE, 'o1'), call({ spent: 5 }));
    await spend(scopesOf('p', BOB, 'o1'), call({ spent: 1 }));
    await spend(scopesOf('p', ALICE, 'o1'), call({ spent: 9 }), { month: '2026-12', day: '2026-12-01' });
    await ledger.recordHit('2025-01', '2025-01-31', scope('q', BOB, 'o1'), 4);
    await spend(scopesOf('p', BOB, 'o1'), { ...ZERO, errors: 1 }, { month: '2024-05', day: '2024-05-02' });
    await spend(scopesOf('p', BOB, 'o1'), call({ spent: 2 }), { month: '2026-12', day: '2026-12-02' });
    assert.equal(await ledger.months(), ['2026-12', M, '2025-01', '2024-05']);
  });

  test('remembered responses: read back in the same round trip as limits, until they expire', async () => {
    const later = Date.now() + 3_600_000;
    await ledger.rememberResponse('resp_a', 1_234, later);
    await ledger.rememberResponse('resp_a', 1_300, later); // a retried write: the same, or the newer, value
    await ledger.rememberResponse('resp_old', 99, Date.now() - 1_000);
    await ledger.setLimit(scope('p'), 5);
    const read = await ledger.read([scope('p')], [], ['resp_a', 'resp_missing', 'resp_old']);
    assert.equal(read.limits, [5]);
    assert.equal(read.responses, [1_300, undefined, undefined]);
    assert.is((await ledger.read([scope('p')], [])).responses, undefined);
  });


  // ------------------------------------------------------------------------------ budget alerts

  /** A whole call on `scopes` holding `amount` under `limit` (with `over` on each hold), settled at `spent`. */
  async function crossing(scopes: Scope[], amount: number, spent: number, holdOver: Partial<Hold>, extra: Partial<Reservation> = {}) {
    const r = reservation(scopes, amount, undefined, extra);
    r.holds = r.holds.map((h) => ({ ...h, ...holdOver }));
    assert.ok((await ledger.reserve(r)).ok);
    const made = (await ledger.settle(settlementOf(r, call({ spent })))) ?? [];
    return { r, made };
  }
  const brief = (alerts: BudgetAlert[]) => alerts.map((a) => `${a.period}:${a.day ?? a.month}:${a.scope.project}/${a.scope.user}/${a.scope.model}:${a.threshold}@${a.limit}`).sort();

  test('alert thresholds: stored with their limit, kept when a limit is set without them, removed with it', async () => {
    await ledger.setLimit(scope('p'), 100, 'month', [50, 90]);
    await ledger.setLimit(scope('p'), 40, 'day', []);
    await ledger.setLimit(scope('q'), 100);
    let read = await ledger.read([scope('p'), scope('q'), scope('r')], []);
    assert.equal(read.alerts, [[50, 90], undefined, undefined]);
    assert.equal(read.dayAlerts, [[], undefined, undefined]);
    await ledger.setLimit(scope('p'), 200, 'month');
    read = await ledger.read([scope('p')], []);
    assert.equal([read.limits, read.alerts], [[200], [[50, 90]]], 'a new value keeps the thresholds');
    const listed = (await ledger.listLimits()).find((l) => l.scope.project === 'p');
    assert.equal([listed?.alerts, listed?.dayAlerts], [[50, 90], []]);
    assert.ok(await ledger.removeLimit(scope('p'), 'month'));
    await ledger.setLimit(scope('p'), 300, 'month');
    read = await ledger.read([scope('p')], []);
    assert.equal([read.alerts, read.dayAlerts], [[undefined], [[]]], 'removed with the monthly limit; the daily one kept its own');
    assert.ok(await ledger.removeLimit(scope('p')));
    await ledger.setLimit(scope('p'), 10, 'day');
    assert.equal((await ledger.read([scope('p')], [])).dayAlerts, [undefined], 'removing every limit removed every threshold');
  });

  test('32 concurrent settlements crossing 80% and 100% of a limit mark each threshold once', async () => {
    // 32 calls of 25 each under a limit of 800: the 26th settled reaches 650 (81%), the 32nd 800.
    const calls = Array.from({ length: 32 }, () => {
      const r = reservation([scope('p'), scope('p', ALICE)], 25);
      r.holds[0].limit = 800;
      return r;
    });
    for (const r of calls) assert.ok((await ledger.reserve(r)).ok);
    const made = (await Promise.all(calls.map((r) => ledger.settle(settlementOf(r, call({ spent: 25 })))))).flatMap((m) => m ?? []);
    assert.equal(brief(made), ['month:2026-11:p/*/*:100@800', 'month:2026-11:p/*/*:80@800'], 'one per threshold, on the limited row only');
    const eighty = made.find((a) => a.threshold === 80)!;
    assert.ok(eighty.spent >= 640 && eighty.spent <= 800, `marked at the spend that reached it (${eighty.spent})`);
    assert.is(made.find((a) => a.threshold === 100)!.spent, 800);
    assert.ok(calls.some((r) => r.callId === eighty.callId));
    assert.equal(brief(await ledger.alerts(M)), brief(made), 'listed as made');
    // More spend past the thresholds marks nothing more.
    const again = await crossing([scope('p')], 0, 0, { limit: 800 });
    assert.equal(again.made, []);
  });

  test('an alert is answered again to a retried settlement of its call, and to no other call', async () => {
    const { r, made } = await crossing([scope('p')], 90, 90, { limit: 100 });
    assert.equal(brief(made), ['month:2026-11:p/*/*:80@100']);
    assert.equal(brief((await ledger.settle(settlementOf(r, call({ spent: 90 })))) ?? []), brief(made), 'the retry after a lost reply gets it');
    assert.is((await rowOf(ledger, scope('p')))?.spent, 90, 'and applies nothing twice');
    const other = await crossing([scope('p')], 5, 5, { limit: 100 });
    assert.equal(other.made, []);
    assert.is((await ledger.alerts(M)).length, 1);
  });

  test('a changed limit re-arms its thresholds; the next month and the next day re-arm theirs', async () => {
    assert.equal(brief((await crossing([scope('p')], 85, 85, { limit: 100 })).made), ['month:2026-11:p/*/*:80@100']);
    // Raised to 200: 80% is 160, not reached by 85 + 10.
    assert.equal((await crossing([scope('p')], 10, 10, { limit: 200 })).made, []);
    assert.equal(brief((await crossing([scope('p')], 70, 70, { limit: 200 })).made), ['month:2026-11:p/*/*:80@200']);
    assert.equal(brief(await ledger.alerts(M)), ['month:2026-11:p/*/*:80@200'], 'the re-armed mark replaces the old one');
    // December starts fresh.
    const dec = await crossing([scope('p')], 81, 81, { limit: 100 }, { month: '2026-12', day: '2026-12-01' });
    assert.equal(brief(dec.made), ['month:2026-12:p/*/*:80@100']);
    // A daily limit's thresholds fire per day, on that day's settled spend.
    const day = (d: string, spent: number) => crossing([scope('d')], spent, spent, { dayLimit: 50, dayAlerts: [50] }, { day: `${M}-${d}` });
    assert.equal(brief((await day('26', 30)).made), ['day:2026-11-26:d/*/*:50@50']);
    assert.equal((await day('26', 10)).made, []);
    assert.equal((await day('27', 20)).made, [], 'the 27th has spent 20 of 50');
    assert.equal(brief((await day('27', 5)).made), ['day:2026-11-27:d/*/*:50@50']);
  });

  test('a hold charged at its deadline can reach a threshold: the limit the row has then is watched', async () => {
    await ledger.setLimit(scope('p'), 100, 'month', [50]);
    const r = reservation([scope('p')], 60, 100, { expiresAt: Date.parse('2026-11-26T10:00:00Z') });
    assert.ok((await ledger.reserve(r)).ok);
    const handed: BudgetAlert[] = [];
    assert.is(await chargeExpired(ledger, M, Date.parse('2026-11-26T11:00:00Z'), (a) => void handed.push(...a)), 1);
    assert.equal(brief(handed), ['month:2026-11:p/*/*:50@100']);
    assert.equal(brief(await ledger.alerts(M)), brief(handed));
  });

  test('no thresholds, no spend or no limit: nothing is marked', async () => {
    assert.equal((await crossing([scope('p')], 100, 100, { limit: 100, alerts: [] })).made, [], 'alerts none');
    assert.equal((await crossing([scope('q')], 100, 0, { limit: 100 })).made, [], 'an error costs nothing');
    assert.equal((await crossing([scope('r')], 100, 100, {})).made, [], 'an unlimited row');
    assert.equal(await ledger.alerts(M), []);
  });

  test('large values round-trip exactly', async () => {
    const big = 9e12;
    const max = Number.MAX_SAFE_INTEGER;
    await ledger.setLimit(scope('p'), max);
    assert.equal((await ledger.read([scope('p')], [])).limits, [max]);
    const r = reservation([scope('p')], big, 2 * big);
    assert.equal(await ledger.reserve(r), { ok: true, committed: [big] });
    await ledger.settle(settlementOf(r, call({ spent: big + 123, saved: big, inputTokens: 4_000_000_000 })));
    const row = await rowOf(ledger, scope('p'));
    assert.is(row?.spent, 9_000_000_000_123);
    assert.is(row?.committed, 9_000_000_000_123);
    assert.is(row?.saved, big);
    assert.is(row?.inputTokens, 4_000_000_000);
  });

  return test;
}
