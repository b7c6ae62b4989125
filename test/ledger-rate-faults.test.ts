// Fault injection on the writes the per-minute and per-day limits add, on both stores: every write
// (DynamoDB) or ledger call (SQLite) of a reserve, a refused reserve, a release and a settlement,
// under each fault (never reaches the store, lands with its reply lost, lands twice). The call is
// driven like the core drives it; each case says exactly what the rate windows and day totals hold.
import { AsyncLocalStorage } from 'node:async_hooks';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { settlementOf } from '../runtime/core/bill.ts';
import { callScopes } from '../runtime/core/limits.ts';
import type { Ledger, LimitUse, Reservation, UsageDelta } from '../runtime/core/ports.ts';
import { createDynamoLedger, ensureLedgerTable, type LedgerClient } from '../runtime/store/dynamo-ledger.ts';
import { openSqliteLedger } from '../runtime/store/sqlite-ledger.ts';
import { startDynalite } from './helpers/dynalite.ts';
import { FAULT_KINDS, inject, LostReply, type FaultKind } from './helpers/faults.ts';

const WRITES = new Set(['UpdateItemCommand', 'PutItemCommand', 'DeleteItemCommand']);
/** A late write: its reply is lost at once, and it is queued to land when the case says so. */
type Late = { index: number; queue: (() => void)[] };
const als = new AsyncLocalStorage<{ fault?: { index: number; kind: FaultKind }; writes: number; late?: Late }>();

/** Every write sent, so a case can wait for those its caller stopped waiting for (Promise.all). */
const inflight = new Set<Promise<unknown>>();
function track<T>(p: Promise<T>): Promise<T> {
  inflight.add(p);
  void p.catch(() => undefined).finally(() => inflight.delete(p));
  return p;
}
async function idle(): Promise<void> {
  while (inflight.size > 0) await Promise.allSettled([...inflight]);
}

function faultyClient(client: LedgerClient): LedgerClient {
  return new Proxy(client, {
    get(target, prop) {
      if (prop !== 'send') return Reflect.get(target, prop);
      return (command: { constructor: { name: string } }) => {
        const send = () => track(target.send(command as never) as Promise<unknown>);
        const context = als.getStore();
        if (!context || !WRITES.has(command.constructor.name)) return send();
        const index = context.writes++;
        if (context.late?.index === index) {
          context.late.queue.push(() => void send());
          return Promise.reject(new LostReply('injected: the reply was lost; the write lands later'));
        }
        return track(inject(context.fault?.index === index ? context.fault.kind : undefined, send));
      };
    },
  });
}

interface Harness {
  raw: Ledger;
  /** A ledger call under a fault on its write `index` (DynamoDB) or on the whole call (SQLite). */
  run<T>(fault: { index: number; kind: FaultKind } | undefined, op: (l: Ledger) => Promise<T>): Promise<T>;
  /** How many faultable units a call has: its writes, or 1 for a SQLite call. */
  units: number;
}

const server = await startDynalite();
const client = server.lean();
const TABLE = 'rate-faults';
{
  const sdk = server.client();
  await ensureLedgerTable(sdk, TABLE);
  sdk.destroy();
}
const dynamo = (): Harness => {
  const ledger = createDynamoLedger({ tableName: TABLE, client: faultyClient(client) });
  return {
    raw: createDynamoLedger({ tableName: TABLE, client }),
    run: (fault, op) => als.run({ fault, writes: 0 }, () => op(ledger)),
    // 4 USD holds and 2 rate holds; a refusal's undo adds up to 5 more; a settlement adds the month mark.
    units: 11,
  };
};
const sqlite = (): Harness => {
  const ledger = openSqliteLedger(':memory:');
  return { raw: ledger, run: (fault, op) => inject(fault?.index === 0 ? fault.kind : undefined, () => op(ledger)), units: 1 };
};

let cases = 0;
const ZERO: UsageDelta = {
  requests: 0, errors: 0, inputTokens: 0, cachedTokens: 0, outputTokens: 0, spent: 0, cacheHits: 0, saved: 0, estimated: 0,
};

/** A fresh world: one call by alice on gpt-4o, RPM on the project, TPM on alice, a daily limit on the project. */
function world() {
  const n = ++cases;
  const month = `${5000 + n}-01`;
  const scopes = callScopes(`p${n}`, 'alice', 'gpt-4o');
  const call = (id: string, tokens = 100, amount = 40): Reservation => ({
    callId: `${id}-${n}`, month, day: `${month}-09`, expiresAt: Date.parse('2100-01-01T00:00:00Z'), window: 60_000 * n,
    holds: scopes.map((scope, i) => (i === 0 ? { scope, amount, dayLimit: 100 } : { scope, amount })),
    rates: [{ scope: scopes[0], tokens, rpm: 2 }, { scope: scopes[2], tokens, tpm: 250 }],
  });
  const use = async (h: Harness): Promise<LimitUse[]> => {
    await idle();
    return h.raw.limitUse(scopes, month, `${month}-09`, 60_000 * n);
  };
  return { call, use };
}

const held = (requests: number, tokens: number, day: number) => ({ requests, tokens, day });
/** Project and alice rows: [day, requests, tokens] as the checks read them. */
const picked = (u: LimitUse[]) => [
  { day: u[0].day, requests: u[0].requests, tokens: u[0].tokens },
  { day: u[2].day, requests: u[2].requests, tokens: u[2].tokens },
];

async function reserveLikeCore(h: Harness, r: Reservation, fault?: { index: number; kind: FaultKind }) {
  try {
    return await h.run(fault, (l) => l.reserve(r));
  } catch {
    try {
      return await h.run(undefined, (l) => l.reserve(r));
    } catch {
      await h.run(undefined, (l) => l.release(r)).catch(() => undefined);
      return 'failed' as const;
    }
  }
}

async function settleLikeCore(h: Harness, r: Reservation, delta: UsageDelta, fault?: { index: number; kind: FaultKind }) {
  for (let attempt = 1; attempt <= 3; attempt++) {
    try {
      await h.run(attempt === 1 ? fault : undefined, (l) => l.settle(settlementOf(r, delta)));
      return;
    } catch {
      // tried again
    }
  }
}

for (const [name, open] of [['sqlite', sqlite], ['dynamodb', dynamo]] as const) {
  const test = suite(`ledger rate faults: ${name}`);
  const units = open().units;
  for (const kind of FAULT_KINDS) {
    test(`reserve, each unit ${kind}: held once (the core's retry finds it taken)`, async () => {
      for (let index = 0; index < units; index++) {
        const h = open();
        const w = world();
        const result = await reserveLikeCore(h, w.call('a'), { index, kind });
        assert.ok(result !== 'failed' && result.ok, `unit ${index}`);
        assert.equal(picked(await w.use(h)), [held(1, 100, 40), held(1, 100, 40)], `unit ${index}`);
      }
    });

    test(`a refused reserve (RPM full), each unit ${kind}: nothing stays held, the refusal is kept`, async () => {
      for (let index = 0; index < units; index++) {
        const h = open();
        const w = world();
        for (const id of ['x', 'y']) assert.ok(((await h.raw.reserve(w.call(id, 10, 5))) as { ok: boolean }).ok);
        const result = await reserveLikeCore(h, w.call('a'), { index, kind });
        assert.ok(result === 'failed' || (!result.ok && 'rate' in result), `unit ${index}`);
        assert.equal(picked(await w.use(h)), [held(2, 20, 10), held(2, 20, 10)], `unit ${index}`);
      }
    });

    test(`settle, each unit ${kind}: tokens and the day total move to the actual once`, async () => {
      for (let index = 0; index < units; index++) {
        const h = open();
        const w = world();
        const r = w.call('a');
        await h.raw.reserve(r);
        await settleLikeCore(h, r, { ...ZERO, requests: 1, inputTokens: 30, outputTokens: 12, spent: 9 }, { index, kind });
        await settleLikeCore(h, r, { ...ZERO, requests: 1, inputTokens: 30, outputTokens: 12, spent: 9 });
        assert.equal(picked(await w.use(h)), [held(1, 42, 9), held(1, 42, 9)], `unit ${index}`);
      }
    });

    test(`release, each unit ${kind}: given back once; a failed write keeps only its own row, until a retry`, async () => {
      for (let index = 0; index < units; index++) {
        const h = open();
        const w = world();
        const r = w.call('a');
        await h.raw.reserve(r);
        const released = await h.run({ index, kind }, (l) => l.release(r)).then(() => true, () => false);
        await idle();
        assert.is(released, kind === 'dup' || index >= (name === 'sqlite' ? 1 : 6), `unit ${index}`);
        // DynamoDB's release writes the four USD rows, then the project's and alice's rate windows.
        const kept = (unit: number) => kind === 'fail' && (name === 'sqlite' ? index === 0 : index === unit);
        assert.equal(
          picked(await w.use(h)),
          [
            held(kept(4) ? 1 : 0, kept(4) ? 100 : 0, kept(0) ? 40 : 0),
            held(kept(5) ? 1 : 0, kept(5) ? 100 : 0, kept(2) ? 40 : 0),
          ],
          `unit ${index}`,
        );
        await h.run(undefined, (l) => l.release(r));
        await h.run(undefined, (l) => l.release(r));
        assert.equal(picked(await w.use(h)), [held(0, 0, 0), held(0, 0, 0)], `unit ${index}: retries give the rest back, once`);
      }
    });
  }
  if (name === 'dynamodb') {
    // The four USD takes are writes 0-3, the two rate takes 4-5 (see `units`).
    test('reserve, each take lost on both tries and landing after the release: nothing stays held', async () => {
      for (let index = 0; index < 6; index++) {
        const ledger = createDynamoLedger({ tableName: TABLE, client: faultyClient(client) });
        const late: Late = { index, queue: [] };
        let runs = 0;
        // The two reserve tries lose the reply of write `index`; the release that follows has no fault.
        const h = {
          ...dynamo(),
          run: <T>(_: unknown, op: (l: Ledger) => Promise<T>) => als.run({ writes: 0, ...(++runs <= 2 ? { late } : {}) }, () => op(ledger)),
        };
        const w = world();
        const r = w.call('a');
        assert.is(await reserveLikeCore(h, r), 'failed', `unit ${index}: both tries lose a reply`);
        for (const send of late.queue.splice(0)) send();
        assert.equal(picked(await w.use(h)), [held(0, 0, 0), held(0, 0, 0)], `unit ${index}: the late takes are refused`);
      }
    });
  }
  test.run();
}

const after = suite('ledger rate faults: teardown');
after('closes dynalite', async () => {
  client.destroy();
  await server.close();
});
after.run();
