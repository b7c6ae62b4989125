// A ledger whose store calls fast-check's scheduler orders, with one fault injected per call: the
// property suites (test/ledger-properties.test.ts, test/ledger-rate-properties.test.ts) drive both
// stores through it. On DynamoDB each write of a ledger call is scheduled and may fail, land with its
// reply lost, land twice or land late (its `index`-th write: the reply is lost at once and the write
// lands once the batch's calls are all done, after the release or settlement that followed it); SQLite applies a ledger call at once, so the whole call is
// scheduled and faulted, and a late call is a lost one (it cannot land after its caller moved on).
import { AsyncLocalStorage } from 'node:async_hooks';
import type fc from 'fast-check';
import type { Ledger } from '../../runtime/core/ports.ts';
import { createDynamoLedger, type LedgerClient } from '../../runtime/store/dynamo-ledger.ts';
import { openSqliteLedger } from '../../runtime/store/sqlite-ledger.ts';
import { inject, LostReply, type ScheduledFaultKind } from './faults.ts';

export interface WriteFault {
  /** Which write of the ledger call (DynamoDB; SQLite faults the call itself). */
  index: number;
  kind: ScheduledFaultKind;
}

export interface ScheduledLedger {
  /** No faults, no scheduler: setup and reading the state back. */
  raw: Ledger;
  /** One ledger call, named `label` in the scheduler's report, under `fault`. */
  run<T>(label: string, fault: WriteFault | undefined, op: (ledger: Ledger) => Promise<T>): Promise<T>;
  /** Every write sent so far has finished. Call through `scheduler.waitFor`. */
  idle(): Promise<void>;
  close(): Promise<void>;
}

const WRITES = new Set(['UpdateItemCommand', 'PutItemCommand', 'DeleteItemCommand']);
const als = new AsyncLocalStorage<{ label: string; fault: WriteFault | undefined; writes: number }>();

export function scheduledDynamoLedger(s: fc.Scheduler, client: LedgerClient, tableName: string): ScheduledLedger {
  const inflight = new Set<Promise<unknown>>();
  /** Late writes, sent by `idle`: the most the core can have done meanwhile is all of it. */
  const late: (() => unknown)[] = [];
  const track = (p: Promise<unknown>) => {
    inflight.add(p);
    void p.catch(() => undefined).finally(() => inflight.delete(p));
  };
  const scheduled = new Proxy(client, {
    get(target, prop) {
      if (prop !== 'send') return Reflect.get(target, prop);
      return (command: { constructor: { name: string } }) => {
        const context = als.getStore();
        if (!context) return target.send(command as never);
        const name = command.constructor.name.replace(/Command$/, '');
        const send = () => {
          const sent = s.schedule(Promise.resolve(), `${context.label} ${name}`).then(() => target.send(command as never));
          track(sent);
          return sent;
        };
        if (!WRITES.has(command.constructor.name)) return send();
        const index = context.writes++;
        const kind = context.fault?.index === index ? context.fault.kind : undefined;
        if (kind === 'late') {
          late.push(send);
          return Promise.reject(new LostReply('injected: the reply was lost; the write lands after the batch'));
        }
        const faulted = inject(kind, send);
        track(faulted);
        return faulted;
      };
    },
  });
  const ledger = createDynamoLedger({ tableName, client: scheduled });
  return {
    raw: createDynamoLedger({ tableName, client }),
    run: (label, fault, op) => als.run({ label, fault, writes: 0 }, () => op(ledger)),
    async idle() {
      for (const send of late.splice(0)) send();
      while (inflight.size > 0) await Promise.allSettled([...inflight]);
    },
    async close() {},
  };
}

export function scheduledSqliteLedger(s: fc.Scheduler): ScheduledLedger {
  const ledger = openSqliteLedger(':memory:');
  return {
    raw: ledger,
    run(label, fault, op) {
      const send = () => s.schedule(Promise.resolve(), label).then(() => op(ledger));
      return inject(fault?.kind === 'late' ? 'lost' : fault?.kind, send);
    },
    async idle() {},
    close: () => ledger.close!(),
  };
}
