// Property-based tests of the per-minute and per-day limits on both stores (SQLite, DynamoDB on
// dynalite through the lean client). Each run: random RPM/TPM limits and daily USD limits on the
// four scopes of one project (two users, one model); batches of random calls (tokens reserved and
// actually used, USD held and spent, outcome: settled exact / upstream error / released / never
// settled), driven like the core drives them (reserve, once more on a throw, release if that throws
// too; settle up to three tries), with random faults on single writes (DynamoDB) or ledger calls
// (SQLite): failing before the store, landing with the reply lost, landing twice, landing late (the
// reply lost, the write sent after the batch's calls are done: after the release or settlement that
// followed; SQLite's calls cannot be late, so there it is a lost reply). The calls of a
// batch run at once and fast-check's scheduler orders their writes. Checked:
//   at every instant:  a window's requests <= RPM and tokens <= TPM, a day's committed <= its limit;
//   after each batch:  each window and day total is what the calls' fates say: exactly, when every
//                      call's fate is known; between the known part and the known part plus the
//                      calls whose holds may or may not have stayed (a reserve or release that
//                      kept failing, a refused reserve whose duplicate landed late), otherwise.
// FC_SEED / FC_PATH replay a failure; FC_RUNS overrides the run counts.
import fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { settlementOf } from '../runtime/core/bill.ts';
import { callScopes } from '../runtime/core/limits.ts';
import type { Ledger, RateLimits, Reservation, ReserveResult, Scope, UsageDelta } from '../runtime/core/ports.ts';
import { ensureLedgerTable } from '../runtime/store/dynamo-ledger.ts';
import { startDynalite } from './helpers/dynalite.ts';
import { SCHEDULED_FAULT_KINDS, type ScheduledFaultKind } from './helpers/faults.ts';
import { scheduledDynamoLedger, scheduledSqliteLedger, type ScheduledLedger } from './helpers/scheduled-ledger.ts';

const RUNS = { sqlite: 200, dynamodb: 30 };
const USERS = ['alice', 'bob'];
const SCOPES: Scope[] = callScopes('p', '*', 'gpt-4o').slice(0, 2).concat(USERS.flatMap((u) => callScopes('p', u, 'gpt-4o').slice(2)));
const keyOf = (s: Scope) => `${s.project}|${s.user}|${s.model}`;
const DEADLINE = Date.parse('2100-01-01T00:00:00Z');
const ZERO: UsageDelta = {
  requests: 0, errors: 0, inputTokens: 0, cachedTokens: 0, outputTokens: 0, spent: 0, cacheHits: 0, saved: 0, estimated: 0,
};
const LABELS = ['reserve#1', 'reserve#2', 'release#1', 'settle#1', 'settle#2', 'settle#3'] as const;
type Label = (typeof LABELS)[number];
type Outcome = 'exact' | 'error' | 'release' | 'never';

interface CallSpec {
  user: number;
  tokens: number;
  /** Tokens actually used = tokens × share / 1000; the same share of `amount` is spent. */
  share: number;
  amount: number;
  outcome: Outcome;
  faults: ({ kind: ScheduledFaultKind; index: number } | null)[];
}
interface ScopeLimits {
  rates: RateLimits | null;
  day: number | null;
}
const limitsArb: fc.Arbitrary<ScopeLimits> = fc.record({
  rates: fc.oneof(
    { weight: 1, arbitrary: fc.constant(null) },
    { weight: 2, arbitrary: fc.record({ rpm: fc.integer({ min: 2, max: 10 }), tpm: fc.integer({ min: 200, max: 1_500 }) }, { requiredKeys: [] }) },
  ),
  day: fc.oneof(fc.constant(null), fc.integer({ min: 60, max: 5_000 })),
});
const callArb: fc.Arbitrary<CallSpec> = fc.record({
  user: fc.nat({ max: 1 }),
  tokens: fc.integer({ min: 0, max: 200 }),
  share: fc.integer({ min: 0, max: 1_000 }),
  amount: fc.integer({ min: 1, max: 60 }),
  outcome: fc.constantFrom<Outcome>('exact', 'error', 'release', 'never'),
  faults: fc.array(
    fc.oneof({ weight: 4, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.record({ kind: fc.constantFrom(...SCHEDULED_FAULT_KINDS), index: fc.nat({ max: 8 }) }) }),
    { minLength: LABELS.length, maxLength: LABELS.length },
  ),
});
const runArb = fc.record({
  limits: fc.array(limitsArb, { minLength: SCOPES.length, maxLength: SCOPES.length }),
  batches: fc.array(fc.array(callArb, { minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 4 }),
});

interface Call {
  n: number;
  spec: CallSpec;
  reservation: Reservation;
  delta: UsageDelta;
  reserved?: ReserveResult | 'failed';
  released?: boolean;
  settled?: boolean;
}

interface Harness {
  raw: Ledger;
  run<T>(call: Call, label: Label, op: (ledger: Ledger) => Promise<T>): Promise<T>;
  idle(): Promise<void>;
  close(): Promise<void>;
}

const server = await startDynalite();
// Faults here are the harness's own, planned and modelled. A real timeout against the in-process
// dynalite on a loaded machine would be one the model does not know: a hold that lands after the
// release meant to undo it stays until its deadline charges it (over-counted, never under).
const client = server.lean({ connectTimeoutMs: 10_000, requestTimeoutMs: 10_000 });
const TABLE = 'rate-properties';
{
  const sdk = server.client();
  await ensureLedgerTable(sdk, TABLE);
  sdk.destroy();
}

/** A store under the scheduler, its calls named and faulted by the call they belong to. */
function harness(ledger: ScheduledLedger): Harness {
  return { ...ledger, run: (call, label, op) => ledger.run(`c${call.n} ${label}`, call.spec.faults[LABELS.indexOf(label)] ?? undefined, op) };
}
const dynamoHarness = (s: fc.Scheduler) => harness(scheduledDynamoLedger(s, client, TABLE));
const sqliteHarness = (s: fc.Scheduler) => harness(scheduledSqliteLedger(s));

/** One call as the core drives it (proxy.ts reserveOnce/releaseQuietly, bill.ts Bill.write). */
async function drive(h: Harness, call: Call): Promise<void> {
  const r = call.reservation;
  const release = () => h.run(call, 'release#1', (l) => l.release(r)).then(() => true, () => false);
  try {
    call.reserved = await h.run(call, 'reserve#1', (l) => l.reserve(r));
  } catch {
    try {
      call.reserved = await h.run(call, 'reserve#2', (l) => l.reserve(r));
    } catch {
      call.reserved = 'failed';
      call.released = await release();
      return;
    }
  }
  if (!call.reserved.ok || call.spec.outcome === 'never') return;
  if (call.spec.outcome === 'release') {
    call.released = await release();
    return;
  }
  call.settled = false;
  for (const label of ['settle#1', 'settle#2', 'settle#3'] as const) {
    try {
      await h.run(call, label, (l) => l.settle(settlementOf(r, call.delta)));
      call.settled = true;
      return;
    } catch {
      // tried again, up to three tries
    }
  }
}

type Totals = { requests: number; tokens: number; day: number };
/**
 * What a call leaves on a row: one of two totals when its fate does not decide which (every row is
 * one conditional write: a hold stayed whole or went whole, a settlement landed or did not).
 */
function fateOn(call: Call, scopeKey: string): { known: Totals; or?: Totals } {
  const r = call.reservation;
  const rate = r.rates?.find((h) => keyOf(h.scope) === scopeKey);
  const hold = r.holds.find((h) => keyOf(h.scope) === scopeKey)!;
  const held: Totals = { requests: rate ? 1 : 0, tokens: rate?.tokens ?? 0, day: hold.amount };
  const none: Totals = { requests: 0, tokens: 0, day: 0 };
  const dup = (label: Label) => call.spec.faults[LABELS.indexOf(label)]?.kind === 'dup';
  if (call.reserved === 'failed') return call.released ? { known: none } : { known: none, or: held };
  if (!call.reserved!.ok) return dup('reserve#1') || dup('reserve#2') ? { known: none, or: held } : { known: none };
  if (call.spec.outcome === 'never') return { known: held };
  if (call.spec.outcome === 'release') return call.released ? { known: none } : { known: none, or: held };
  const used = call.delta.inputTokens + call.delta.outputTokens;
  const settled = { requests: held.requests, tokens: rate ? used : 0, day: call.delta.spent };
  // Settling gave up: a try may have landed with its reply lost.
  return call.settled ? { known: settled } : { known: held, or: settled };
}

async function totals(ledger: Ledger, r: { month: string; day: string; window: number }): Promise<Totals[]> {
  const use = await ledger.limitUse(SCOPES, r.month, r.day, r.window);
  return use.map((u) => ({ requests: u.requests, tokens: u.tokens, day: u.day }));
}

let runs = 0;
const seen = { calls: 0, refusedByRate: 0, refusedByDay: 0, settled: 0, released: 0, maybe: 0 };

function property(open: (s: fc.Scheduler) => Harness) {
  return fc.asyncProperty(fc.scheduler(), runArb, async (s, spec) => {
    const run = ++runs;
    const month = `${3000 + run}-03`;
    const where = { month, day: `${month}-14`, window: Date.parse('2026-01-01T00:00:00Z') + run * 60_000 };
    const h = open(s);
    try {
      const limitOf = (i: number) => spec.limits[i];
      const checkCeilings = (now: Totals[], when: string) =>
        now.forEach((t, i) => {
          const { rates, day } = limitOf(i);
          const label = `${when}: ${keyOf(SCOPES[i])} ${JSON.stringify(t)} vs ${JSON.stringify(limitOf(i))}`;
          if (rates?.rpm !== undefined) assert.ok(t.requests <= rates.rpm, `RPM passed, ${label}`);
          if (rates?.tpm !== undefined) assert.ok(t.tokens <= rates.tpm, `TPM passed, ${label}`);
          if (day !== null) assert.ok(t.day <= day, `daily limit passed, ${label}`);
          assert.ok(t.requests >= 0 && t.tokens >= 0 && t.day >= 0, `negative, ${label}`);
        });
      const calls: Call[] = [];
      let n = 0;
      for (const [b, batchSpec] of spec.batches.entries()) {
        const batch = batchSpec.map((c): Call => {
          const scopes = callScopes('p', USERS[c.user], 'gpt-4o');
          const index = scopes.map((sc) => SCOPES.findIndex((x) => keyOf(x) === keyOf(sc)));
          const used = Math.floor((c.tokens * c.share) / 1_000);
          const id = ++n;
          const rates = scopes.flatMap((scope, i) => {
            const rates = limitOf(index[i]).rates;
            return rates ? [{ scope, tokens: c.tokens, ...rates }] : [];
          });
          return {
            n: id,
            spec: c,
            delta: c.outcome === 'error'
              ? { ...ZERO, errors: 1 }
              : { ...ZERO, requests: 1, inputTokens: used, spent: Math.floor((c.amount * c.share) / 1_000) },
            reservation: {
              callId: `c${id}-${month}`, month, day: where.day, expiresAt: DEADLINE, window: where.window, rates,
              holds: scopes.map((scope, i) => {
                const day = limitOf(index[i]).day;
                return day === null ? { scope, amount: c.amount } : { scope, amount: c.amount, dayLimit: day };
              }),
            },
          };
        });
        calls.push(...batch);
        const when = `batch ${b + 1}`;
        const observe = async () => {
          for (let i = 0; i < 4; i++) {
            await s.schedule(Promise.resolve(), 'observe');
            checkCeilings(await totals(h.raw, where), `${when}, in flight`);
          }
        };
        await s.waitFor(Promise.all([...batch.map((call) => drive(h, call)), observe()]));
        await s.waitFor(h.idle());
        const now = await totals(h.raw, where);
        checkCeilings(now, when);
        SCOPES.forEach((scope, i) => {
          const low: Totals = { requests: 0, tokens: 0, day: 0 };
          const high: Totals = { requests: 0, tokens: 0, day: 0 };
          for (const call of calls) {
            if (!call.reservation.holds.some((hold) => keyOf(hold.scope) === keyOf(scope))) continue;
            const { known, or = known } = fateOn(call, keyOf(scope));
            for (const k of ['requests', 'tokens', 'day'] as const) {
              low[k] += Math.min(known[k], or[k]);
              high[k] += Math.max(known[k], or[k]);
            }
          }
          for (const k of ['requests', 'tokens', 'day'] as const) {
            assert.ok(
              now[i][k] >= low[k] && now[i][k] <= high[k],
              `${when}: ${keyOf(scope)} ${k} ${now[i][k]} is not what the calls left (${low[k]}..${high[k]})`,
            );
          }
        });
      }
      for (const call of calls) {
        seen.calls++;
        if (call.reserved !== 'failed' && call.reserved?.ok === false) {
          if ('rate' in call.reserved) seen.refusedByRate++;
          else seen.refusedByDay++;
        }
        if (call.settled) seen.settled++;
        if (call.released) seen.released++;
        if (SCOPES.some((sc) => call.reservation.holds.some((hold) => keyOf(hold.scope) === keyOf(sc)) && fateOn(call, keyOf(sc)).or)) seen.maybe++;
      }
    } finally {
      await s.waitFor(h.idle());
      await h.close();
    }
  });
}

const env = (name: string) => (process.env[name] ? process.env[name] : undefined);
const test = suite('ledger rate and daily limit properties');
for (const [store, open] of [['sqlite', sqliteHarness], ['dynamodb', dynamoHarness]] as const) {
  test(`${store}: RPM, TPM and daily limits hold under random calls, faults and interleavings (${RUNS[store]} runs)`, async () => {
    for (const k of Object.keys(seen) as (keyof typeof seen)[]) seen[k] = 0;
    await fc.assert(property(open), {
      numRuns: Number(env('FC_RUNS') ?? RUNS[store]),
      includeErrorInReport: true,
      ...(env('FC_SEED') ? { seed: Number(env('FC_SEED')) } : {}),
      ...(env('FC_PATH') ? { path: env('FC_PATH') } : {}),
    });
    console.log(`${store}: ${JSON.stringify(seen)}`);
    assert.ok(seen.refusedByRate > 0 && seen.refusedByDay > 0, 'the runs refused by both kinds of limit');
  });
}
test.after(async () => {
  client.destroy();
  await server.close();
});
test.run();
