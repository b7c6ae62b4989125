// Fault injection on every store write of reserve, release and settle, on both ledgers, driven the
// way the core drives them (proxy.ts `reserveOnce`/`releaseQuietly`, bill.ts `Bill.write`):
//   DynamoDB: each UpdateItem/PutItem/DeleteItem a ledger call sends, one at a time by its index in
//     that call, (a) fails before reaching the store, (b) lands but its reply is lost, (c) lands twice.
//   SQLite: reserve, release and settle are one transaction each, so the same three faults wrap the
//     ledger call itself.
// After each case the ledger must show: committed == spent + the call's holds on every row, so
// committed == spent once the call is settled (or charged as expired); the call's exact cost spent
// exactly once on each of its rows; no marker left behind; a refused reservation changing nothing;
// no limit exceeded.
import { AsyncLocalStorage } from 'node:async_hooks';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { chargeExpired, settlementOf } from '../runtime/core/bill.ts';
import type { BudgetAlert } from '../runtime/core/alerts.ts';
import type { Ledger, Nano, Reservation, ReserveResult, Scope, UsageDelta } from '../runtime/core/ports.ts';
import { createDynamoLedger, ensureLedgerTable, type LedgerClient } from '../runtime/store/dynamo-ledger.ts';
import { openSqliteLedger } from '../runtime/store/sqlite-ledger.ts';
import { holdName, TOMBSTONE_KEEP_MS, usageKey } from '../runtime/store/dynamo-codec.ts';
import { startDynalite } from './helpers/dynalite.ts';
import { FAULT_KINDS, inject, LostReply, type FaultKind } from './helpers/faults.ts';

// ---------------------------------------------------------------------------------------------------
// Faults

const KINDS = FAULT_KINDS;
type Kind = FaultKind;
/**
 * A fault; or (for the race below) a write held back until `until` settles; or a write whose reply
 * is lost at once and which lands only once the ledger call `after` (`release#1`…) has finished.
 */
type Fault = Kind | { until: Promise<unknown> } | { after: string };
const KIND_TEXT: Record<Kind, string> = {
  fail: 'fails before reaching the store',
  lost: 'lands, reply lost',
  dup: 'lands twice',
};

/** Injects a fault, or (for the race below) holds the write back until `until` settles. */
async function injectFault<T>(fault: Fault | undefined, send: () => Promise<T>): Promise<T> {
  if (fault === undefined || typeof fault === 'string') return inject(fault, send);
  if ('after' in fault) throw new Error('a late write needs the DynamoDB harness');
  await fault.until.catch(() => undefined);
  return send();
}

/** Faults by ledger call (`reserve#2` = the second reserve of the case) and unit index in it. */
type Plan = Map<string, Map<number, Fault>>;
const plan = (...entries: [label: string, index: number, fault: Fault][]): Plan => {
  const p: Plan = new Map();
  for (const [label, index, fault] of entries) p.set(label, (p.get(label) ?? new Map()).set(index, fault));
  return p;
};

// ---------------------------------------------------------------------------------------------------
// Stores under test

/** A store whose ledger calls take faults: on each DynamoDB write, or on the whole SQLite call. */
interface Harness {
  /** A ledger without faults (setup and reading the state back). */
  raw: Ledger;
  /** One ledger call under `plan`'s faults for `label`. */
  run<T>(label: string, plan: Plan, call: (ledger: Ledger) => Promise<T>): Promise<T>;
  /** Units each label has seen so far. */
  units: Map<string, number>;
  /** Every write sent so far has finished (those whose caller gave up on them included). */
  idle(): Promise<void>;
  close(): Promise<void>;
}

const WRITES = new Set(['UpdateItemCommand', 'PutItemCommand', 'DeleteItemCommand']);

interface WriteContext {
  faults: Map<number, Fault> | undefined;
  writes: number;
  /** Runs `send` once the ledger call `label` has finished. */
  later(label: string, send: () => void): void;
}

const als = new AsyncLocalStorage<WriteContext>();

function track<T>(inflight: Set<Promise<unknown>>, p: Promise<T>): Promise<T> {
  inflight.add(p);
  void p.catch(() => undefined).finally(() => inflight.delete(p));
  return p;
}

/** The client's `send`, with the faults of the ledger call it runs in (see ledger.test.ts's Proxy). */
function faultyClient(client: LedgerClient, inflight: Set<Promise<unknown>>): LedgerClient {
  return new Proxy(client, {
    get(target, prop) {
      if (prop !== 'send') return Reflect.get(target, prop);
      return (command: { constructor: { name: string } }) => {
        const send = () => track(inflight, target.send(command as never) as Promise<unknown>);
        const context = als.getStore();
        if (!context || !WRITES.has(command.constructor.name)) return send();
        const index = context.writes++;
        const fault = context.faults?.get(index);
        if (typeof fault === 'object' && 'after' in fault) {
          context.later(fault.after, () => void send());
          return Promise.reject(new LostReply(`injected: the reply was lost; the write lands after ${fault.after}`));
        }
        return track(inflight, injectFault(fault, send));
      };
    },
  });
}

const server = await startDynalite();
// The table is made with the SDK client; the ledger runs over the lean one, as in the Lambdas.
const sdkClient = server.client();
const client = server.lean();
const TABLE = 'faults';
await ensureLedgerTable(sdkClient, TABLE);
sdkClient.destroy();

function dynamoHarness(): Harness {
  const inflight = new Set<Promise<unknown>>();
  const units = new Map<string, number>();
  const waiting = new Map<string, (() => void)[]>();
  const later = (label: string, send: () => void) => waiting.set(label, [...(waiting.get(label) ?? []), send]);
  // A fresh instance per case, so its settlement sends the month mark too (once per instance).
  const ledger = createDynamoLedger({ tableName: TABLE, client: faultyClient(client, inflight) });
  return {
    raw: createDynamoLedger({ tableName: TABLE, client }),
    async run(label, p, call) {
      const context: WriteContext = { faults: p.get(label), writes: 0, later };
      try {
        return await als.run(context, () => call(ledger));
      } finally {
        units.set(label, context.writes);
        // Late writes go out now, in step: the next check's `idle` waits for them.
        for (const send of waiting.get(label) ?? []) send();
        waiting.delete(label);
      }
    },
    units,
    async idle() {
      while (inflight.size > 0) await Promise.allSettled([...inflight]);
    },
    async close() {},
  };
}

function sqliteHarness(): Harness {
  const ledger = openSqliteLedger(':memory:');
  const units = new Map<string, number>();
  return {
    raw: ledger,
    run(label, p, call) {
      units.set(label, 1);
      return injectFault(p.get(label)?.get(0), () => call(ledger));
    },
    units,
    async idle() {},
    close: () => ledger.close!(),
  };
}

// ---------------------------------------------------------------------------------------------------
// The core's way of driving the ledger

type Reserved = ReserveResult | 'failed';

/** proxy.ts: reserve, once more on a throw; if that throws too, release quietly (the call is a 503). */
async function reserveLikeCore(h: Harness, p: Plan, r: Reservation): Promise<Reserved> {
  try {
    return await h.run('reserve#1', p, (l) => l.reserve(r));
  } catch {
    try {
      return await h.run('reserve#2', p, (l) => l.reserve(r));
    } catch {
      await releaseLikeCore(h, p, r);
      return 'failed';
    }
  }
}

/** proxy.ts `releaseQuietly`: one try; what it leaves is charged at the deadline. */
async function releaseLikeCore(h: Harness, p: Plan, r: Reservation): Promise<boolean> {
  return h.run('release#1', p, (l) => l.release(r)).then(
    () => true,
    () => false,
  );
}

const SETTLE_ATTEMPTS = 3;

/** bill.ts `Bill.write`: settle, and again on a throw, three tries in all (without the waits). */
async function settleLikeCore(h: Harness, p: Plan, s: ReturnType<typeof settlementOf>): Promise<boolean> {
  for (let attempt = 1; attempt <= SETTLE_ATTEMPTS; attempt++) {
    try {
      await h.run(`settle#${attempt}`, p, (l) => l.settle(s));
      return true;
    } catch {
      // tried again
    }
  }
  return false;
}

// ---------------------------------------------------------------------------------------------------
// One case's world: four rows (project, project+model, user, detail), the first two limited

const USER = 'arn:aws:iam::123456789012:user/alice';
const MODEL = 'gpt-4o';
/** The call's worst case, held on each of its rows. */
const AMOUNT = 300;
/** Project 1000, project+model 600; user and detail rows are counted, not limited. */
const LIMITS: (Nano | undefined)[] = [1_000, 600, undefined, undefined];
const DEADLINE = Date.parse('2100-01-01T00:00:00Z');
/** Past every deadline: `expired` then lists every hold still on the ledger. */
const AFTER = DEADLINE + 1;

const ZERO: UsageDelta = {
  requests: 0, errors: 0, inputTokens: 0, cachedTokens: 0, outputTokens: 0, spent: 0, cacheHits: 0, saved: 0, estimated: 0,
};

interface World {
  name: string;
  month: string;
  day: string;
  rows: Scope[];
  reservation: Reservation;
}

let worlds = 0;
/** Each case its own month (one DynamoDB partition), so cases cannot see each other. */
function world(name: string): World {
  const month = `${3000 + ++worlds}-11`;
  const day = `${month}-26`;
  const project = 'p';
  const rows: Scope[] = [
    { project, user: '*', model: '*' },
    { project, user: '*', model: MODEL },
    { project, user: USER, model: '*' },
    { project, user: USER, model: MODEL },
  ];
  const holds = rows.map((scope, i) =>
    LIMITS[i] === undefined ? { scope, amount: AMOUNT } : { scope, amount: AMOUNT, limit: LIMITS[i] },
  );
  return { name, month, day, rows, reservation: { callId: `call-${month}`, month, day, expiresAt: DEADLINE, holds } };
}

/** Another call, settled before the case at `cost` on every row: what the rows start with. */
async function prefill(h: Harness, w: World, cost: Nano): Promise<void> {
  const pre: Reservation = {
    callId: `pre-${w.month}`,
    month: w.month,
    day: w.day,
    expiresAt: DEADLINE,
    holds: w.rows.map((scope) => ({ scope, amount: cost })),
  };
  assert.ok((await h.raw.reserve(pre)).ok);
  await h.raw.settle(settlementOf(pre, { ...ZERO, requests: 1, inputTokens: 1, outputTokens: 1, spent: cost }));
}

interface Expected {
  committed: Nano;
  spent: Nano;
  requests: number;
  errors: number;
  estimated: number;
  inputTokens: number;
}

/**
 * The ledger as the case expects it: each row's counters, and the holds (row index → amount) the
 * call still has. Also, whatever the case: committed == spent + holds on every row, no limit
 * exceeded, nothing negative, and the detail row's days sum to its month.
 */
async function expectLedger(h: Harness, w: World, rows: Expected[], holds: Map<number, Nano>, when: string): Promise<void> {
  await h.idle();
  const at = `${w.name} (${when})`;
  const usage = await h.raw.usage(w.month);
  const markers = await h.raw.expired(w.month, AFTER);
  const daily = await h.raw.daily(w.month);
  const key = (s: Scope) => `${s.project}|${s.user}|${s.model}`;
  for (const m of markers) {
    assert.is(m.callId, w.reservation.callId, `${at}: only the call itself may still hold budget, found ${m.callId}`);
  }
  assert.is(usage.length, usage.filter((u) => w.rows.some((s) => key(s) === key(u))).length, `${at}: rows outside the call's scopes`);
  w.rows.forEach((scope, i) => {
    const row = usage.find((u) => key(u) === key(scope)) ?? { ...ZERO, committed: 0 };
    const mine = markers.filter((m) => key(m.scope) === key(scope));
    const held = mine.reduce((sum, m) => sum + m.amount, 0);
    const name = `${at}, row ${i} ${key(scope)}`;
    assert.equal(
      mine.map((m) => m.amount),
      holds.has(i) ? [holds.get(i)] : [],
      `${name}: the call's holds (a marker left behind or missing)`,
    );
    assert.equal(
      {
        committed: row.committed, spent: row.spent, requests: row.requests, errors: row.errors,
        estimated: row.estimated, inputTokens: row.inputTokens,
      },
      rows[i],
      `${name}: counters`,
    );
    assert.is(row.committed, row.spent + held, `${name}: committed must be spent + holds in flight`);
    if (LIMITS[i] !== undefined) assert.ok(row.committed <= LIMITS[i]!, `${name}: committed ${row.committed} over the limit ${LIMITS[i]}`);
    for (const [counter, value] of Object.entries(row)) {
      if (typeof value === 'number') assert.ok(value >= 0, `${name}: ${counter} is negative (${value})`);
    }
  });
  // The detail row (index 3) counts per day too: its days add up to its month.
  const detail = usage.find((u) => key(u) === key(w.rows[3]));
  for (const counter of ['requests', 'errors', 'spent', 'estimated', 'inputTokens', 'outputTokens'] as const) {
    const days = daily.filter((d) => key(d) === key(w.rows[3])).reduce((sum, d) => sum + d[counter], 0);
    assert.is(days, detail?.[counter] ?? 0, `${at}: the detail row's days must sum to its month (${counter})`);
  }
}

const row = (committed: Nano, spent: Nano, requests: number, extra: Partial<Expected> = {}): Expected => ({
  committed, spent, requests, errors: 0, estimated: 0, inputTokens: requests, ...extra,
});
const all = <T>(value: T): T[] => [value, value, value, value];
const heldOn = (rows: number[]) => new Map(rows.map((i) => [i, AMOUNT]));
const NONE = new Map<number, Nano>();
const EXACT = 123;
const exactDelta = (cost: Nano): UsageDelta => ({ ...ZERO, requests: 1, inputTokens: 10, outputTokens: 5, spent: cost });

// ---------------------------------------------------------------------------------------------------
// Scenarios: each drives one call the way the core does, with `p`'s faults, and checks the ledger

type Scenario = (h: Harness, w: World, p: Plan) => Promise<void>;

/** The reservation fits (exactly, on the project+model row) and is then settled. */
const reserveFits: Scenario = async (h, w, p) => {
  await prefill(h, w, 300);
  const result = await reserveLikeCore(h, p, w.reservation);
  assert.equal(result, { ok: true, committed: [600, 600, 600, 600] }, `${w.name}: reserve`);
  await expectLedger(h, w, all(row(600, 300, 1)), heldOn([0, 1, 2, 3]), 'reserved');
  assert.ok(await settleLikeCore(h, plan(), settlementOf(w.reservation, exactDelta(EXACT))), `${w.name}: settle`);
  await expectLedger(h, w, all(row(300 + EXACT, 300 + EXACT, 2, { inputTokens: 11 })), NONE, 'settled');
};

/** The project+model row has 301 of 600: the reservation is refused there and changes nothing. */
const reserveRefused: Scenario = async (h, w, p) => {
  await prefill(h, w, 301);
  const result = await reserveLikeCore(h, p, w.reservation);
  assert.equal(result, { ok: false, index: 1, committed: 301 }, `${w.name}: reserve`);
  await expectLedger(h, w, all(row(301, 301, 1)), NONE, 'refused');
};

/** Both reserve tries throw: the core releases, and the call (a 503) leaves nothing behind. */
const reserveFailsTwice: Scenario = async (h, w, p) => {
  await prefill(h, w, 300);
  const result = await reserveLikeCore(h, p, w.reservation);
  assert.is(result, 'failed', `${w.name}: both reserve tries must throw`);
  await expectLedger(h, w, all(row(300, 300, 1)), NONE, 'released');
};

/**
 * A reservation given back (the call never went out). A release that did not land is not retried by
 * the core: its holds stay until the deadline and are then charged in full, flagged estimated.
 */
function release(kept: number[]): Scenario {
  return async (h, w, p) => {
    await prefill(h, w, 300);
    assert.ok((await h.raw.reserve(w.reservation)).ok);
    await releaseLikeCore(h, p, w.reservation);
    const released = (i: number) => !kept.includes(i);
    await expectLedger(h, w, w.rows.map((_, i) => row(released(i) ? 300 : 600, 300, 1)), heldOn(kept), 'released');
    await chargeExpired(h.raw, w.month, AFTER);
    const charged = row(600, 600, 2, { estimated: 1, inputTokens: 1 });
    await expectLedger(h, w, w.rows.map((_, i) => (released(i) ? row(300, 300, 1) : charged)), NONE, 'charged');
  };
}

const OUTCOMES = {
  'exact below the hold': exactDelta(EXACT),
  'exact at the hold': exactDelta(AMOUNT),
  'an upstream error (free)': { ...ZERO, errors: 1 },
} satisfies Record<string, UsageDelta>;
type OutcomeName = keyof typeof OUTCOMES;

/**
 * Settle a reserved call. `unsettled`: rows the settlement can never land on (faults on every try);
 * they keep their hold until the deadline and are then charged in full. `expectSettled`: whether
 * the core sees a settlement succeed.
 */
function settle(outcome: OutcomeName, unsettled: number[], expectSettled: boolean): Scenario {
  return async (h, w, p) => {
    const delta = OUTCOMES[outcome];
    await prefill(h, w, 300);
    assert.ok((await h.raw.reserve(w.reservation)).ok);
    const settled = await settleLikeCore(h, p, settlementOf(w.reservation, delta));
    assert.is(settled, expectSettled, `${w.name}: whether a settle try succeeds`);
    const landed = row(300 + delta.spent, 300 + delta.spent, 1 + delta.requests, {
      errors: delta.errors,
      inputTokens: 1 + delta.inputTokens,
    });
    const held = (i: number) => unsettled.includes(i);
    await expectLedger(h, w, w.rows.map((_, i) => (held(i) ? row(600, 300, 1) : landed)), heldOn(unsettled), 'settled');
    await chargeExpired(h.raw, w.month, AFTER);
    const charged = row(600, 600, 2, { estimated: 1, inputTokens: 1 });
    await expectLedger(h, w, w.rows.map((_, i) => (held(i) ? charged : landed)), NONE, 'after the deadline');
    // And once more: a late duplicate of the settlement changes nothing.
    await h.raw.settle(settlementOf(w.reservation, delta));
    await expectLedger(h, w, w.rows.map((_, i) => (held(i) ? charged : landed)), NONE, 'a late duplicate');
  };
}

/** bill.ts `Bill.write` again, keeping what the successful try answered: the alerts the core hands on. */
async function settleForAlerts(h: Harness, p: Plan, s: ReturnType<typeof settlementOf>): Promise<BudgetAlert[] | 'failed'> {
  for (let attempt = 1; attempt <= SETTLE_ATTEMPTS; attempt++) {
    try {
      return (await h.run(`settle#${attempt}`, p, (l) => l.settle(s))) ?? [];
    } catch {
      // tried again
    }
  }
  return 'failed';
}

const briefAlerts = (alerts: BudgetAlert[]) => alerts.map((a) => `${a.scope.model}:${a.threshold}@${a.limit}`).sort();
/** Settled at the hold, the project+model row (limit 600) goes from 300 to 600: 80% and 100% reached. */
const CROSSED = ['gpt-4o:100@600', 'gpt-4o:80@600'];

/**
 * Budget alerts under faults: the settlement that reaches 80% and 100% of the project+model limit
 * marks each once and the core is handed each once, whichever write fails, loses its reply or
 * lands twice. When every try fails the marks made (if any) stay single, and a later settlement of
 * the call (or of any call on that row) makes the rest.
 */
function settleCrossing(): Scenario {
  return async (h, w, p) => {
    await prefill(h, w, 300);
    assert.ok((await h.raw.reserve(w.reservation)).ok);
    const handed = await settleForAlerts(h, p, settlementOf(w.reservation, exactDelta(AMOUNT)));
    await h.idle();
    const marked = briefAlerts(await h.raw.alerts(w.month));
    if (handed !== 'failed') {
      assert.equal(briefAlerts(handed), CROSSED, `${w.name}: the alerts handed to the core`);
      assert.equal(marked, CROSSED, `${w.name}: the marks`);
    } else {
      assert.ok(marked.every((m) => CROSSED.includes(m)) && new Set(marked).size === marked.length, `${w.name}: marks ${marked}`);
    }
    // A late settlement (a duplicate, or the expiry sweep's) completes what is missing, once.
    await h.raw.settle(settlementOf(w.reservation, exactDelta(AMOUNT)));
    assert.equal(briefAlerts(await h.raw.alerts(w.month)), CROSSED, `${w.name}: the marks after a late duplicate`);
    await expectLedger(h, w, [row(600, 600, 2, { inputTokens: 11 }), row(600, 600, 2, { inputTokens: 11 }), row(600, 600, 2, { inputTokens: 11 }), row(600, 600, 2, { inputTokens: 11 })], NONE, 'settled');
  };
}

// ---------------------------------------------------------------------------------------------------
// The cases: every unit index of every ledger call × every fault kind, per store

interface Case {
  name: string;
  scenario: Scenario;
  plan: Plan;
}

/**
 * How many units (writes, or 1 for SQLite) each ledger call of a scenario sends without faults. A
 * check failing here is not reported here: the scenario's own "no fault" case reports it.
 */
async function unitsOf(open: () => Harness, scenario: Scenario): Promise<Map<string, number>> {
  const h = open();
  try {
    await scenario(h, world('counting units'), plan());
  } catch {
    // reported by the case
  } finally {
    await h.idle();
    await h.close();
  }
  return new Map(h.units);
}

async function casesFor(
  store: string,
  /** What one fault hits: one DynamoDB write, or one whole SQLite ledger call. */
  unit: 'write' | 'call',
  open: () => Harness,
): Promise<{ cases: Case[]; units: Record<string, number> }> {
  const cases: Case[] = [];
  const of = async (scenario: Scenario, label: string) => {
    const n = (await unitsOf(open, scenario)).get(label) ?? 0;
    // Never a silently shorter enumeration: a call that sent nothing is a failing case of its own.
    if (n === 0) {
      cases.push({
        name: `${store}: counting the ${unit}s of ${label}`,
        scenario: async () => assert.unreachable(`${label} sent no ${unit} in a run without faults (or that run failed)`),
        plan: plan(),
      });
    }
    return n;
  };
  const fitsWrites = await of(reserveFits, 'reserve#1');
  const refusedWrites = await of(reserveRefused, 'reserve#1');
  const releaseWrites = await of(release([]), 'release#1');
  const settleWrites = await of(settle('exact below the hold', [], true), 'settle#1');
  const crossingWrites = await of(settleCrossing(), 'settle#1');
  const at = (i: number, n: number) => `${unit} ${i + 1}/${n}`;
  const rowsOfUnit = (i: number, rows: number) => (unit === 'call' ? [0, 1, 2, 3] : i < rows ? [i] : []);

  cases.push({ name: `${store}: reserve that fits, no fault`, scenario: reserveFits, plan: plan() });
  cases.push({ name: `${store}: reserve refused, no fault`, scenario: reserveRefused, plan: plan() });
  for (let i = 0; i < fitsWrites; i++) {
    for (const kind of KINDS) {
      cases.push({
        name: `${store}: reserve that fits, ${at(i, fitsWrites)} ${KIND_TEXT[kind]}`,
        scenario: reserveFits,
        plan: plan(['reserve#1', i, kind]),
      });
    }
    for (const kind of ['fail', 'lost'] as const) {
      cases.push({
        name: `${store}: reserve, ${at(i, fitsWrites)} ${KIND_TEXT[kind]} on both tries, then released`,
        scenario: reserveFailsTwice,
        plan: plan(['reserve#1', i, kind], ['reserve#2', i, kind]),
      });
    }
  }
  for (let i = 0; i < refusedWrites; i++) {
    for (const kind of KINDS) {
      cases.push({
        name: `${store}: reserve refused, ${at(i, refusedWrites)} ${KIND_TEXT[kind]}`,
        scenario: reserveRefused,
        plan: plan(['reserve#1', i, kind]),
      });
    }
  }
  for (let i = 0; i < releaseWrites; i++) {
    for (const kind of KINDS) {
      cases.push({
        name: `${store}: release, ${at(i, releaseWrites)} ${KIND_TEXT[kind]}`,
        scenario: release(kind === 'fail' ? rowsOfUnit(i, 4) : []),
        plan: plan(['release#1', i, kind]),
      });
    }
  }
  for (const outcome of Object.keys(OUTCOMES) as OutcomeName[]) {
    cases.push({ name: `${store}: settle ${outcome}, no fault`, scenario: settle(outcome, [], true), plan: plan() });
    for (let i = 0; i < settleWrites; i++) {
      for (const kind of KINDS) {
        cases.push({
          name: `${store}: settle ${outcome}, ${at(i, settleWrites)} ${KIND_TEXT[kind]} once`,
          scenario: settle(outcome, [], true),
          plan: plan(['settle#1', i, kind]),
        });
      }
      for (const kind of ['fail', 'lost'] as const) {
        const every = plan(...Array.from({ length: SETTLE_ATTEMPTS }, (_, t) => [`settle#${t + 1}`, i, kind] as [string, number, Fault]));
        cases.push({
          name: `${store}: settle ${outcome}, ${at(i, settleWrites)} ${KIND_TEXT[kind]} on every try`,
          scenario: settle(outcome, kind === 'fail' ? rowsOfUnit(i, 4) : [], false),
          plan: every,
        });
      }
    }
  }
  cases.push({ name: `${store}: settle reaching 80% and 100%, no fault`, scenario: settleCrossing(), plan: plan() });
  for (let i = 0; i < crossingWrites; i++) {
    for (const kind of KINDS) {
      cases.push({
        name: `${store}: settle reaching 80% and 100%, ${at(i, crossingWrites)} ${KIND_TEXT[kind]} once`,
        scenario: settleCrossing(),
        plan: plan(['settle#1', i, kind]),
      });
    }
    for (const kind of ['fail', 'lost'] as const) {
      const every = plan(...Array.from({ length: SETTLE_ATTEMPTS }, (_, t) => [`settle#${t + 1}`, i, kind] as [string, number, Fault]));
      cases.push({
        name: `${store}: settle reaching 80% and 100%, ${at(i, crossingWrites)} ${KIND_TEXT[kind]} on every try`,
        scenario: settleCrossing(),
        plan: every,
      });
    }
  }
  if (unit === 'write') {
    // A write whose reply is lost may land later than anything the core did after it: after the
    // release that gave the call up, after its settlement, after the refusal was answered. The
    // store must refuse it then (SQLite's calls are synchronous in the process: none can be late).
    for (let i = 0; i < fitsWrites; i++) {
      cases.push({
        name: `${store}: reserve, ${at(i, fitsWrites)} lost on both tries and landing after the release`,
        scenario: reserveFailsTwice,
        plan: plan(['reserve#1', i, { after: 'release#1' }], ['reserve#2', i, { after: 'release#1' }]),
      });
      cases.push({
        name: `${store}: reserve that fits, ${at(i, fitsWrites)} of the first try landing after the settlement`,
        scenario: reserveFits,
        plan: plan(['reserve#1', i, { after: 'settle#1' }]),
      });
    }
    for (let i = 0; i < refusedWrites; i++) {
      cases.push({
        name: `${store}: reserve refused, ${at(i, refusedWrites)} of the first try landing after the answer`,
        scenario: reserveRefused,
        plan: plan(['reserve#1', i, { after: 'reserve#2' }]),
      });
    }
  }
  return {
    cases,
    units: {
      'reserve (fits)': fitsWrites, 'reserve (refused)': refusedWrites, release: releaseWrites, settle: settleWrites,
      'settle (alerts)': crossingWrites,
    },
  };
}

function register(title: string, open: () => Harness, built: { cases: Case[]; units: Record<string, number> }) {
  const test = suite(title);
  for (const c of built.cases) {
    test(c.name, async () => {
      const h = open();
      try {
        await c.scenario(h, world(c.name), c.plan);
      } finally {
        await h.idle();
        await h.close();
      }
    });
  }
  return test;
}

const sqlite = await casesFor('sqlite', 'call', sqliteHarness);
const dynamo = await casesFor('dynamodb', 'write', dynamoHarness);
console.log(
  `fault cases: sqlite ${sqlite.cases.length} (units ${JSON.stringify(sqlite.units)}), ` +
    `dynamodb ${dynamo.cases.length} (writes ${JSON.stringify(dynamo.units)})`,
);

register('ledger faults: sqlite (each ledger call)', sqliteHarness, sqlite).run();

const dynamoSuite = register('ledger faults: dynamodb (each write)', dynamoHarness, dynamo);

/**
 * The undo race, driven like the core: another call holds 301 on every row, so the project+model
 * row (600) refuses this call's first try, whose undo meets `p`'s fault; that call then ends as an
 * upstream error (its budget free again) and the retry must fit, keep all four holds through
 * whatever the first try's undo does later, and settle exactly.
 */
async function undoRace(name: string, p: Plan, afterRetry?: () => void): Promise<void> {
  const h = dynamoHarness();
  const w = world(name);
  const other: Reservation = {
    callId: `other-${w.month}`, month: w.month, day: w.day, expiresAt: DEADLINE,
    holds: w.rows.map((scope) => ({ scope, amount: 301 })),
  };
  assert.ok((await h.raw.reserve(other)).ok);
  const first = await h.run('reserve#1', p, (l) => l.reserve(w.reservation)).then(
    () => 'answered',
    () => 'threw',
  );
  assert.is(first, 'threw', 'the refused try fails on its undo');
  await h.raw.settle(settlementOf(other, { ...ZERO, errors: 1 }));
  const second = await h.run('reserve#2', p, (l) => l.reserve(w.reservation));
  afterRetry?.();
  assert.ok(second.ok, 'with the budget free, the retry fits');
  await expectLedger(h, w, all({ ...row(300, 0, 0), errors: 1 }), heldOn([0, 1, 2, 3]), 'reserved by the retry');
  assert.ok(await settleLikeCore(h, plan(), settlementOf(w.reservation, exactDelta(EXACT))));
  await expectLedger(h, w, all(row(EXACT, EXACT, 1, { errors: 1, inputTokens: 10 })), NONE, 'settled');
}

// A refusal undoes the holds it took with one write per row. When one of those writes fails fast
// while another is still on its way, the core retries at once; if budget freed up meanwhile, the
// retry finds the call's marker still on the slow row, counts that hold as taken, and the slow undo
// then lands and takes it away: the call would run without its hold there and its cost would never
// be settled on that row. The store must not answer before its own writes are done.
dynamoSuite('dynamodb: a refusal\'s undo still on its way when the core retries does not take away the retry\'s hold', async () => {
  let retried!: () => void;
  const retry = new Promise<void>((resolve) => (retried = resolve));
  // The slow undo lands once the retry is done, or after 300 ms if the store waits for it.
  const slow = Promise.race([retry, new Promise((resolve) => setTimeout(resolve, 300))]);
  // Writes of the refused try: takes 0-3 (1 refuses), then the undo of holds 0, 2, 3.
  await undoRace('undo race', plan(['reserve#1', 4, 'fail'], ['reserve#1', 5, { until: slow }]), () => retried());
});

// The same race with the undo's reply lost outright: the undo lands only after the retry, which by
// then counts the marker as its own hold. Undos are conditioned on the try that took the hold, and
// the retry made it its own, so the late undo must change nothing.
for (const undo of [4, 5, 6]) {
  dynamoSuite(`dynamodb: a refusal's undo (write ${undo + 1}) landing after the retry does not take away the retry's hold`, () =>
    undoRace(`late undo ${undo}`, plan(['reserve#1', undo, { after: 'reserve#2' }])),
  );
}

// A tombstone is the price of a write that may still land; it must not become every call's price
// (each byte of a usage item is paid on every write to it), and it must not stay for good.
dynamoSuite('dynamodb: only an unsure call leaves a tombstone, and the sweep removes it once its hour is up', async () => {
  const h = dynamoHarness();
  const w = world('tombstones');
  const markersOf = async (callId: string) => {
    await h.idle();
    const out = await client.send(new GetItemCommand({ TableName: TABLE, Key: usageKey(w.month, w.rows[0]), ConsistentRead: true }));
    return Object.entries(out.Item ?? {}).filter(([name]) => name === holdName(callId)).map(([, value]) => Object.keys(value)[0]);
  };
  // A call without doubt: reserved and settled, nothing of it stays on the row.
  const sure: Reservation = { ...w.reservation, callId: `sure-${w.month}` };
  assert.ok((await h.run('sure', plan(), (l) => l.reserve(sure))).ok);
  assert.ok(await settleLikeCore(h, plan(), settlementOf(sure, exactDelta(EXACT))));
  assert.equal(await markersOf(sure.callId), [], 'a settled call leaves no marker');
  // The unsure one: its first write is lost on both tries and lands after the release.
  const p = plan(['reserve#1', 0, { after: 'release#1' }], ['reserve#2', 0, { after: 'release#1' }]);
  assert.is(await reserveLikeCore(h, p, w.reservation), 'failed');
  assert.equal(await markersOf(w.reservation.callId), ['S'], 'the release left a tombstone, and the late hold was refused');
  await h.raw.expired(w.month, Date.now());
  assert.equal(await markersOf(w.reservation.callId), ['S'], 'kept while a late write could still come');
  await h.raw.expired(w.month, Date.now() + TOMBSTONE_KEEP_MS + 60_000);
  assert.equal(await markersOf(w.reservation.callId), [], 'removed by the sweep after its time');
});

dynamoSuite.after(async () => {
  client.destroy();
  await server.close();
});
dynamoSuite.run();
