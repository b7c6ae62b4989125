// A cache hit's counts on DynamoDB carry no call marker (one per hit would grow the item without
// end), so they must not be resent: a write whose reply was lost (it landed after the client's
// timeout) would be counted again by every retry. Through the lean client the Lambdas use, against
// dynalite answering late.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createDynamoLedger, ensureLedgerTable } from '../runtime/store/dynamo-ledger.ts';
import { startDynalite, type DynaliteServer } from './helpers/dynalite.ts';

let dyn: DynaliteServer;
/** While set, dynalite answers every UpdateItem this late: after the write landed. */
let lateMs = 0;

test.before(async () => {
  dyn = await startDynalite();
  const [handler] = dyn.server.listeners('request') as ((req: IncomingMessage, res: ServerResponse) => void)[];
  dyn.server.removeAllListeners('request');
  dyn.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const delay = String(req.headers['x-amz-target']).endsWith('.UpdateItem') ? lateMs : 0;
    if (delay) {
      const end = res.end.bind(res) as (...a: unknown[]) => ServerResponse;
      res.end = ((...a: unknown[]) => (setTimeout(() => end(...a), delay), res)) as typeof res.end;
    }
    handler(req, res);
  });
});
test.after(() => dyn.close());

test('a cache hit whose reply is lost is counted once, not once per retry', async () => {
  await ensureLedgerTable(dyn.client(), 'hits');
  const ledger = createDynamoLedger({ tableName: 'hits', client: dyn.lean({ requestTimeoutMs: 100 }) });
  const scope = { project: 'p', user: 'alice', model: 'gpt-4o' };
  lateMs = 300;
  const sent = await ledger.recordHit('2026-12', '2026-12-01', scope, 1_000).then(() => 'answered', (e) => e.name);
  assert.is.not(sent, 'answered', 'the reply came after the client gave up');
  await new Promise((r) => setTimeout(r, 2 * lateMs));
  lateMs = 0;
  const row = (await ledger.usage('2026-12')).find((r) => r.user === 'alice' && r.model === 'gpt-4o');
  assert.is(row?.cacheHits, 1);
  assert.is(row?.saved, 1_000);
});

test.run();
