// Property-based tests of the ledger's money invariants on both stores (SQLite, DynamoDB on dynalite).
// Each run: random limits on some scopes of a few projects, users and models; batches of random calls
// (worst case, exact cost <= worst case, day, outcome: settled exact / settled as an upstream error /
// released / never settled), each call's operations driven the way the core drives them (reserve and
// once more on a throw, release if that throws too; settle up to three tries), with random faults on
// individual writes (DynamoDB) or ledger calls (SQLite): failing before the store, landing with the
// reply lost, landing twice, landing late (after the batch's calls are done: after the release or
// settlement that followed it; on SQLite, whose calls cannot be late, a lost reply); now and then an outage that meets every try of a call's reserve or
// settle. The calls of a batch run at once; fast-check's scheduler picks the order in which their
// writes (DynamoDB) or ledger calls (SQLite) go out. Checked:
//   while a batch runs:  committed <= limit on every limited scope, nothing negative;
//   after each batch:    the same, committed == spent + the holds still in flight on every row, each
//                        call's holds as its fate says (none once refused, released or settled; all
//                        of them while it is never settled; a refused call whose duplicate landed
//                        later may hold, see checkQuiescent), the detail rows' days sum to the month,
//                        and, for a call alone in its batch, refused exactly when a hold did not fit;
//   at the end:          after charging every expired hold, committed == spent on every row and each
//                        row's counters are the sum of its calls' (exact costs; holds charged at their
//                        deadline at their full amount), per month and per day; and budget alerts:
//                        each threshold handed on at most once, marked only when reached and
//                        always when a row's whole spend came through settlements (checkAlerts).
// FC_SEED / FC_PATH replay a failure (fast-check prints both; exactly on SQLite, while on dynalite the
// network still adds its own timing); FC_RUNS overrides the run counts.
import fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { reached, thresholdNano, type BudgetAlert } from '../runtime/core/alerts.ts';
import { chargeExpired, settlementOf } from '../runtime/core/bill.ts';
import { callScopes, holdsFor } from '../runtime/core/limits.ts';
import type { Ledger, Nano, Reservation, ReserveResult, Scope, UsageDelta, UsageRow } from '../runtime/core/ports.ts';
import { ensureLedgerTable } from '../runtime/store/dynamo-ledger.ts';
import { startDynalite } from './helpers/dynalite.ts';
import { SCHEDULED_FAULT_KINDS, type ScheduledFaultKind } from './helpers/faults.ts';
import { scheduledDynamoLedger, scheduledSqliteLedger, type ScheduledLedger } from './helpers/scheduled-ledger.ts';

const RUNS = { sqlite: 300, dynamodb: 25 };

// ---------------------------------------------------------------------------------------------------
// The world: two projects, two users, three model ids of which two are one model (family)

const PROJECTS = ['a', 'b'];
const USERS = ['arn:aws:iam::123456789012:user/alice', 'arn:aws:sts::123456789012:assumed-role/dev/bob'];
const MODELS = ['gpt-4o', 'gpt-4o-2024-08-06', 'o1'];
const FAMILIES = ['gpt-4o', 'o1'];
/** Every row a call can count into. */
const UNIVERSE: Scope[] = PROJECTS.flatMap((project) =>
  ['*', ...USERS].flatMap((user) => ['*', ...FAMILIES].map((model) => ({ project, user, model }))),
);
const keyOf = (s: Scope) => `${s.project}|${s.user}|${s.model}`;
const DEADLINE = Date.parse('2100-01-01T00:00:00Z');
const AFTER = DEADLINE + 1;

const ZERO: UsageDelta = {
  requests: 0, errors: 0, inputTokens: 0, cachedTokens: 0, outputTokens: 0, spent: 0, cacheHits: 0, saved: 0, estimated: 0,
};
const COUNTED = ['requests', 'errors', 'inputTokens', 'outputTokens', 'spent', 'estimated'] as const;

// ---------------------------------------------------------------------------------------------------
// Arbitraries

const KINDS = SCHEDULED_FAULT_KINDS;
type Kind = ScheduledFaultKind;
interface FaultSpec {
  kind: Kind;
  /** Which write of the ledger call (DynamoDB); SQLite faults the whole call. */
  index: number;
}
/** The ledger calls the core may make for one call, in order; each may carry a fault. */
const LABELS = ['reserve#1', 'reserve#2', 'release#1', 'settle#1', 'settle#2', 'settle#3'] as const;
type Label = (typeof LABELS)[number];
type Outcome = 'exact' | 'error' | 'release' | 'never';

interface CallSpec {
  project: string;
  user: string;
  model: string;
  amount: Nano;
  /** Exact cost = amount × share / 1000 (0 and the whole amount included). */
  share: number;
  day: number;
  outcome: Outcome;
  faults: (FaultSpec | null)[];
  /** The ledger stays down for this call: every try of its reserve, or of its settle, meets this fault. */
  outage: (FaultSpec & { on: 'reserve' | 'settle' }) | null;
}

interface RunSpec {
  /** Limit per UNIVERSE scope, or null. */
  limits: (Nano | null)[];
  /** Alert thresholds (percent) of every limit of the run. */
  alerts: number[];
  batches: CallSpec[][];
}

const faultArb: fc.Arbitrary<FaultSpec | null> = fc.oneof(
  { weight: 5, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constantFrom(...KINDS), index: fc.nat({ max: 6 }) }) },
);

const callArb: fc.Arbitrary<CallSpec> = fc.record({
  project: fc.constantFrom(...PROJECTS),
  user: fc.constantFrom(...USERS),
  model: fc.constantFrom(...MODELS),
  amount: fc.integer({ min: 1, max: 1_000 }),
  // Often the whole hold, so that settled spend reaches alert thresholds of the limits.
  share: fc.oneof({ weight: 2, arbitrary: fc.integer({ min: 0, max: 1_000 }) }, { weight: 1, arbitrary: fc.constant(1_000) }),
  day: fc.integer({ min: 1, max: 3 }),
  outcome: fc.constantFrom<Outcome>('exact', 'error', 'release', 'never'),
  faults: fc.array(faultArb, { minLength: LABELS.length, maxLength: LABELS.length }),
  outage: fc.oneof(
    { weight: 8, arbitrary: fc.constant(null) },
    {
      weight: 1,
      arbitrary: fc.record({
        on: fc.constantFrom<'reserve' | 'settle'>('reserve', 'settle'),
        kind: fc.constantFrom<Kind>('fail', 'lost', 'late'),
        index: fc.nat({ max: 4 }),
      }),
    },
  ),
});

const runArb: fc.Arbitrary<RunSpec> = fc.record({
  limits: fc.array(
    fc.oneof(
      { weight: 4, arbitrary: fc.constant(null) },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: 4_000 }) },
      // Small enough for a few calls to reach its alert thresholds.
      { weight: 1, arbitrary: fc.integer({ min: 100, max: 1_500 }) },
    ),
    { minLength: UNIVERSE.length, maxLength: UNIVERSE.length },
  ),
  alerts: fc.uniqueArray(fc.integer({ min: 1, max: 100 }), { minLength: 1, maxLength: 4 }),
  batches: fc.array(fc.array(callArb, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 5 }),
});

// ---------------------------------------------------------------------------------------------------
// Faults and the scheduler around the stores

interface Call {
  n: number;
  spec: CallSpec;
  scopes: Scope[];
  reservation: Reservation;
  delta: UsageDelta;
  /** What the core saw. */
  reserved?: ReserveResult | 'failed';
  released?: boolean;
  settled?: boolean;
  /** The budget alerts the successful settle try answered: what the core hands on. */
  handed?: BudgetAlert[];
  /** Rows (index into scopes) whose hold outlived the call's operations: charged at the deadline. */
  kept: Set<number>;
}

interface Harness {
  /** No faults, no scheduler: setup and reading the state back. */
  raw: Ledger;
  /** One ledger call of `call` under its fault for `label`, its writes (or itself) scheduled. */
  run<T>(call: Call, label: Label, op: (ledger: Ledger) => Promise<T>): Promise<T>;
  /** Every write sent so far has finished. Call through `scheduler.waitFor`. */
  idle(): Promise<void>;
  close(): Promise<void>;
}

function faultOf(call: Call, label: Label): FaultSpec | undefined {
  const { outage } = call.spec;
  if (outage && label.startsWith(outage.on)) return outage;
  return call.spec.faults[LABELS.indexOf(label)] ?? undefined;
}

const server = await startDynalite();
// The table is made with the SDK client; the ledger runs over the lean one, as in the Lambdas.
const sdkClient = server.client();
// Faults here are the harness's own, planned and modelled. A real timeout against the in-process
// dynalite on a loaded machine would be one the model does not know: a hold that lands after the
// release meant to undo it stays until its deadline charges it (over-counted, never under).
const client = server.lean({ connectTimeoutMs: 10_000, requestTimeoutMs: 10_000 });
const TABLE = 'properties';
await ensureLedgerTable(sdkClient, TABLE);
sdkClient.destroy();

/** A store under the scheduler, its calls named and faulted by the call they belong to. */
function harness(ledger: ScheduledLedger): Harness {
  return { ...ledger, run: (call, label, op) => ledger.run(`c${call.n} ${label}`, faultOf(call, label), op) };
}
const dynamoHarness = (s: fc.Scheduler) => harness(scheduledDynamoLedger(s, client, TABLE));
const sqliteHarness = (s: fc.Scheduler) => harness(scheduledSqliteLedger(s));

// ---------------------------------------------------------------------------------------------------
// One call, driven like the core (proxy.ts reserveOnce/releaseQuietly, bill.ts Bill.write)

async function drive(h: Harness, call: Call): Promise<void> {
  const r = call.reservation;
  const release = () =>
    h.run(call, 'release#1', (l) => l.release(r)).then(
      () => true,
      () => false,
    );
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
  if (!call.reserved.ok) return;
  switch (call.spec.outcome) {
    case 'never':
      return;
    case 'release':
      call.released = await release();
      return;
    default: {
      const settlement = settlementOf(r, call.delta);
      call.settled = false;
      for (const label of ['settle#1', 'settle#2', 'settle#3'] as const) {
        try {
          call.handed = (await h.run(call, label, (l) => l.settle(settlement))) ?? [];
          call.settled = true;
          return;
        } catch {
          // tried again, up to three tries
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Checks

/** What the runs exercised, printed once per store: a property that never refuses proves little. */
const seen = {
  calls: 0, alerts: 0, batchesInParallel: 0, refused: 0, reserveFailed: 0, settled: 0, settleGaveUp: 0, released: 0, charged: 0, faults: 0,
  lateDuplicates: 0,
};
function tally(calls: Call[]): void {
  for (const call of calls) {
    seen.calls++;
    if (call.reserved === 'failed') seen.reserveFailed++;
    else if (call.reserved?.ok === false) seen.refused++;
    if (call.settled === true) seen.settled++;
    if (call.settled === false) seen.settleGaveUp++;
    if (call.released !== undefined) seen.released++;
    seen.charged += call.kept.size;
    seen.faults += LABELS.filter((label) => faultOf(call, label)).length;
  }
}

interface Snapshot {
  rows: Map<string, UsageRow>;
  /** callId → row key → amount held. */
  holds: Map<string, Map<string, Nano>>;
}

async function snapshot(ledger: Ledger, month: string): Promise<Snapshot> {
  const rows = new Map((await ledger.usage(month)).map((r) => [keyOf(r), r]));
  const holds = new Map<string, Map<string, Nano>>();
  for (const m of await ledger.expired(month, AFTER)) {
    const mine = holds.get(m.callId) ?? new Map<string, Nano>();
    assert.not.ok(mine.has(keyOf(m.scope)), `two markers of ${m.callId} on one row`);
    holds.set(m.callId, mine.set(keyOf(m.scope), m.amount));
  }
  return { rows, holds };
}

const committedOf = (snap: Snapshot, s: Scope) => snap.rows.get(keyOf(s))?.committed ?? 0;

/** What holds at every instant: no limit passed, nothing negative, no row outside the universe. */
function checkRows(rows: Iterable<UsageRow>, limits: Map<string, Nano>, when: string): void {
  for (const row of rows) {
    const key = keyOf(row);
    assert.ok(UNIVERSE.some((s) => keyOf(s) === key), `${when}: unexpected row ${key}`);
    const limit = limits.get(key);
    if (limit !== undefined) assert.ok(row.committed <= limit, `${when}: ${key} committed ${row.committed} > limit ${limit}`);
    for (const [name, value] of Object.entries(row)) {
      if (typeof value === 'number') assert.ok(value >= 0, `${when}: ${key} ${name} is negative (${value})`);
    }
  }
}

async function checkQuiescent(
  h: Harness,
  month: string,
  limits: Map<string, Nano>,
  calls: Call[],
  batch: Call[],
  before: Snapshot,
  when: string,
): Promise<Snapshot> {
  const snap = await snapshot(h.raw, month);
  checkRows(snap.rows.values(), limits, when);
  const known = new Map(calls.map((c) => [c.reservation.callId, c]));
  for (const [callId, rows] of snap.holds) {
    const call = known.get(callId);
    assert.ok(call, `${when}: a marker of an unknown call ${callId}`);
    for (const [key, amount] of rows) {
      assert.ok(call.scopes.some((s) => keyOf(s) === key), `${when}: c${call.n} holds ${key}, not one of its rows`);
      assert.is(amount, call.spec.amount, `${when}: c${call.n} holds ${amount} on ${key}, its worst case is ${call.spec.amount}`);
    }
  }
  // committed == spent + holds in flight, on every row (so committed >= holds in flight).
  for (const s of UNIVERSE) {
    const row = snap.rows.get(keyOf(s));
    let held = 0;
    for (const rows of snap.holds.values()) held += rows.get(keyOf(s)) ?? 0;
    assert.is(row?.committed ?? 0, (row?.spent ?? 0) + held, `${when}: ${keyOf(s)} committed must be spent + holds in flight`);
  }
  // Each call of the batch holds what its fate says.
  for (const call of batch) {
    const mine = snap.holds.get(call.reservation.callId) ?? new Map<string, Nano>();
    const fate = describe(call);
    const heldRows = call.scopes.flatMap((s, i) => (mine.has(keyOf(s)) ? [i] : []));
    if (call.reserved !== 'failed' && call.reserved?.ok === false) {
      // A duplicate of a refused reservation that lands after budget freed up takes the holds the
      // caller was told it did not get: nothing can tell it apart from a first try, so they stay
      // until the deadline and are charged then (never more than the limit, never lost).
      if (!duplicated(call, 'reserve#1') && !duplicated(call, 'reserve#2')) {
        assert.equal(heldRows, [], `${when}: c${call.n} (${fate}) was refused but holds rows`);
      } else if (heldRows.length > 0) seen.lateDuplicates++;
    } else if (call.reserved !== 'failed' && call.spec.outcome === 'never') {
      assert.equal(heldRows, [0, 1, 2, 3], `${when}: c${call.n} (${fate}) is in flight and must hold every row`);
    } else if (call.released === true || call.settled === true) {
      assert.equal(heldRows, [], `${when}: c${call.n} (${fate}) must hold nothing any more`);
    }
    call.kept = new Set(heldRows);
  }
  // Alone in its batch, a call is refused exactly when one of its limited holds did not fit.
  const [call] = batch;
  const result = call.reserved;
  if (batch.length === 1 && result !== undefined && result !== 'failed') {
    const misfit = call.reservation.holds.findIndex(
      (hold) => hold.limit !== undefined && committedOf(before, hold.scope) + hold.amount > hold.limit,
    );
    if (misfit < 0) {
      assert.ok(result.ok, `${when}: c${call.n} alone was refused though every hold fit`);
      assert.equal(
        (result as ReserveResult & { ok: true }).committed,
        call.reservation.holds.map((hold) => committedOf(before, hold.scope) + hold.amount),
        `${when}: c${call.n} committed totals`,
      );
    } else {
      assert.equal(
        result,
        { ok: false, index: misfit, committed: committedOf(before, call.reservation.holds[misfit].scope) },
        `${when}: c${call.n} alone must be refused on its first hold that does not fit`,
      );
    }
  }
  // The detail rows' days sum to the month.
  const daily = await h.raw.daily(month);
  for (const row of snap.rows.values()) {
    if (row.user === '*' || row.model === '*') {
      assert.not.ok(daily.some((d) => keyOf(d) === keyOf(row)), `${when}: an aggregate row ${keyOf(row)} has days`);
      continue;
    }
    for (const counter of COUNTED) {
      const days = daily.filter((d) => keyOf(d) === keyOf(row)).reduce((sum, d) => sum + d[counter], 0);
      assert.is(days, row[counter], `${when}: ${keyOf(row)} days of ${counter} must sum to the month`);
    }
  }
  return snap;
}

const duplicated = (call: Call, label: Label) => faultOf(call, label)?.kind === 'dup';

function describe(call: Call): string {
  const reserved = call.reserved === 'failed' ? 'reserve failed' : call.reserved?.ok ? 'reserved' : 'refused';
  const faults = LABELS.flatMap((label) => {
    const f = faultOf(call, label);
    return f ? [`${label}:${f.kind}@${f.index}`] : [];
  });
  return [reserved, call.spec.outcome, `released=${call.released}`, `settled=${call.settled}`, ...faults].join(' ');
}

/** After every hold is charged: counters per row and per day are exactly the sum of the calls'. */
/**
 * Budget alerts: the core is handed each (scope, threshold) at most once over all calls, and only
 * what is marked; every mark is against the scope's limit and at a spend that reached it; and a row
 * whose whole spend came from successful settlements has every threshold its spend reached marked.
 */
async function checkAlerts(h: Harness, month: string, limits: Map<string, Nano>, thresholds: number[], calls: Call[]): Promise<void> {
  const id = (a: BudgetAlert) => `${keyOf(a.scope)}|${a.period}|${a.threshold}`;
  const marks = await h.raw.alerts(month);
  const handed = calls.flatMap((c) => c.handed ?? []);
  assert.is(new Set(handed.map(id)).size, handed.length, `alerts: one handed on per threshold (${handed.map(id)})`);
  assert.is(new Set(marks.map(id)).size, marks.length, 'alerts: one mark per threshold');
  for (const a of handed) assert.ok(marks.some((m) => id(m) === id(a) && m.callId === a.callId), `alerts: ${id(a)} handed on but not marked`);
  const rows = new Map((await h.raw.usage(month)).map((r) => [keyOf(r), r]));
  for (const m of marks) {
    assert.is(m.limit, limits.get(keyOf(m.scope)), `alerts: ${id(m)} made against the scope's limit`);
    assert.ok(m.spent >= thresholdNano(m.limit, m.threshold), `alerts: ${id(m)} made at ${m.spent}, below its threshold`);
    assert.ok(m.spent <= (rows.get(keyOf(m.scope))?.spent ?? 0), `alerts: ${id(m)} made at more than the row spent`);
  }
  for (const [key, limit] of limits) {
    const spent = rows.get(key)?.spent ?? 0;
    const bySettlements = calls
      .filter((c) => c.settled === true && c.scopes.some((sc) => keyOf(sc) === key))
      .reduce((sum, c) => sum + c.delta.spent, 0);
    if (spent !== bySettlements) continue; // part of it was charged at a deadline: no settlement saw it
    for (const t of reached({ period: 'month', limit, thresholds }, spent)) {
      assert.ok(marks.some((m) => keyOf(m.scope) === key && m.threshold === t), `alerts: ${key} spent ${spent} of ${limit}: ${t}% not marked`);
    }
  }
  seen.alerts += marks.length;
}

async function checkFinal(h: Harness, month: string, limits: Map<string, Nano>, thresholds: number[], calls: Call[]): Promise<void> {
  await checkAlerts(h, month, limits, thresholds, calls);
  await chargeExpired(h.raw, month, AFTER);
  const snap = await snapshot(h.raw, month);
  assert.equal([...snap.holds.keys()], [], 'after charging at the deadline no marker is left');
  const expected = new Map<string, UsageDelta>();
  const expectedDays = new Map<string, UsageDelta>();
  const add = (into: Map<string, UsageDelta>, key: string, d: UsageDelta) => {
    const sum = { ...(into.get(key) ?? ZERO) };
    for (const c of COUNTED) sum[c] += d[c];
    into.set(key, sum);
  };
  for (const call of calls) {
    // A settlement was tried: it landed on every row where no hold is left.
    const landedSettlement = call.settled !== undefined;
    call.scopes.forEach((scope, i) => {
      let d: UsageDelta | undefined;
      if (call.kept.has(i)) d = { ...ZERO, requests: 1, spent: call.spec.amount, estimated: 1 };
      else if (landedSettlement) d = call.delta;
      if (!d) return;
      add(expected, keyOf(scope), d);
      if (i === 3) add(expectedDays, `${call.reservation.day}|${keyOf(scope)}`, d);
    });
  }
  for (const s of UNIVERSE) {
    const row = snap.rows.get(keyOf(s));
    const want = expected.get(keyOf(s)) ?? ZERO;
    assert.is(row?.committed ?? 0, row?.spent ?? 0, `final: ${keyOf(s)} committed == spent`);
    for (const c of COUNTED) assert.is(row?.[c] ?? 0, want[c], `final: ${keyOf(s)} ${c}`);
  }
  const daily = await h.raw.daily(month);
  assert.equal(
    daily.map((d) => `${d.day}|${keyOf(d)}`).sort(),
    [...expectedDays.keys()].filter((k) => COUNTED.some((c) => expectedDays.get(k)![c] !== 0)).sort(),
    'final: the days with counts',
  );
  for (const d of daily) {
    const want = expectedDays.get(`${d.day}|${keyOf(d)}`) ?? ZERO;
    for (const c of COUNTED) assert.is(d[c], want[c], `final: ${d.day} ${keyOf(d)} ${c}`);
  }
}

// ---------------------------------------------------------------------------------------------------
// The property

let runs = 0;

function property(open: (s: fc.Scheduler) => Harness) {
  return fc.asyncProperty(fc.scheduler(), runArb, async (s, spec) => {
    const month = `${4000 + ++runs}-07`;
    const h = open(s);
    try {
      const limits = new Map<string, Nano>();
      spec.limits.forEach((limit, i) => limit !== null && limits.set(keyOf(UNIVERSE[i]), limit));
      let n = 0;
      const calls: Call[] = [];
      let before = await snapshot(h.raw, month);
      for (const [b, batchSpec] of spec.batches.entries()) {
        const batch = batchSpec.map((c): Call => {
          const scopes = callScopes(c.project, c.user, c.model);
          const cost = Math.floor((c.amount * c.share) / 1_000);
          const id = ++n;
          return {
            n: id,
            spec: c,
            scopes,
            delta:
              c.outcome === 'error'
                ? { ...ZERO, errors: 1 }
                : { ...ZERO, requests: 1, inputTokens: c.amount, outputTokens: c.share, spent: cost },
            reservation: {
              callId: `c${id}-${month}`,
              month,
              day: `${month}-0${c.day}`,
              expiresAt: DEADLINE,
              holds: holdsFor(scopes, scopes.map((sc) => limits.get(keyOf(sc))), c.amount, [], { alerts: scopes.map(() => spec.alerts) }),
            },
            kept: new Set(),
          };
        });
        calls.push(...batch);
        if (batch.length > 1) seen.batchesInParallel++;
        const when = `batch ${b + 1}`;
        // An observer among the writes: what it sees must hold at every instant.
        const observe = async () => {
          for (let i = 0; i < 3; i++) {
            await s.schedule(Promise.resolve(), 'observe');
            checkRows(await h.raw.usage(month), limits, `${when}, in flight`);
          }
        };
        await s.waitFor(Promise.all([...batch.map((call) => drive(h, call)), observe()]));
        await s.waitFor(h.idle());
        before = await checkQuiescent(h, month, limits, calls, batch, before, when);
      }
      await checkFinal(h, month, limits, spec.alerts, calls);
      tally(calls);
    } finally {
      await s.waitFor(h.idle());
      await h.close();
    }
  });
}

const env = (name: string) => (process.env[name] ? process.env[name] : undefined);
const options = <T>(numRuns: number): fc.Parameters<T> => ({
  numRuns: Number(env('FC_RUNS') ?? numRuns),
  // The failed check's message with the counterexample, not only the counterexample.
  includeErrorInReport: true,
  ...(env('FC_SEED') ? { seed: Number(env('FC_SEED')) } : {}),
  ...(env('FC_PATH') ? { path: env('FC_PATH') } : {}),
});

const test = suite('ledger properties');

for (const [store, open] of [['sqlite', sqliteHarness], ['dynamodb', dynamoHarness]] as const) {
  test(`${store}: money invariants under random calls, faults and interleavings (${RUNS[store]} runs)`, async () => {
    for (const k of Object.keys(seen) as (keyof typeof seen)[]) seen[k] = 0;
    const started = Date.now();
    await fc.assert(property(open), options(RUNS[store]));
    console.log(`${store}: ${JSON.stringify(seen)} in ${Date.now() - started} ms`);
  });
}

test.after(async () => {
  client.destroy();
  await server.close();
});
test.run();
