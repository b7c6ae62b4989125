/**
 * What the DynamoDB ledger costs per call, in write request units, as a month fills up.
 *
 *   npx tsx bench/ledger-units.ts        (about 10 s)
 *
 * DynamoDB bills a write by the size of the item it changes (the larger of before and after), in
 * 1 KB units. A call takes a hold on four usage rows (the project, its user, its model, and the
 * user's use of the model) and settles each of them: eight writes. The detail row also keeps the
 * month's per-day counters (the daily chart), so it grows with every day that has calls. This runs
 * real reservations and settlements through the ledger on dynalite, three calls a day for 30 days,
 * and sizes the rows the way DynamoDB does (attribute names and values; numbers by their digits).
 */
import { QueryCommand } from '@aws-sdk/client-dynamodb';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import type { Reservation, Scope, Settlement } from '../runtime/core/ports.ts';
import { usagePk } from '../runtime/store/dynamo-codec.ts';
import { createDynamoLedger, ensureLedgerTable } from '../runtime/store/dynamo-ledger.ts';
import { startDynalite } from '../test/helpers/dynalite.ts';

/** On-demand write request units, us-east-1, since the price cut of November 2024 (USD per million). */
const USD_PER_MILLION_WRU = 0.625;
const MONTH = '2026-11';
const TABLE = 'ledger-units';
const CALLS_PER_DAY = 3;

const scopes: Scope[] = [
  { project: 'research', user: '*', model: '*' },
  { project: 'research', user: 'alice', model: '*' },
  { project: 'research', user: '*', model: 'gpt-4o-mini' },
  { project: 'research', user: 'alice', model: 'gpt-4o-mini' },
];

/** DynamoDB's item size rules: names and values in bytes; a number about one byte per two digits, plus one. */
function valueSize(v: AttributeValue): number {
  if (v.S !== undefined) return Buffer.byteLength(v.S);
  if (v.N !== undefined) {
    const digits = v.N.replace(/^-/, '').replace('.', '').replace(/^0+/, '').replace(/0+$/, '');
    return Math.ceil(digits.length / 2) + 1;
  }
  if (v.M !== undefined) return 3 + Object.entries(v.M).reduce((n, [k, x]) => n + Buffer.byteLength(k) + valueSize(x) + 1, 0);
  if (v.SS !== undefined) return v.SS.reduce((n, s) => n + Buffer.byteLength(s), 0);
  return 1;
}
const itemSize = (item: Record<string, AttributeValue>) =>
  Object.entries(item).reduce((n, [name, v]) => n + Buffer.byteLength(name) + valueSize(v), 0);

const server = await startDynalite();
try {
  const client = server.client();
  await ensureLedgerTable(client, TABLE);
  const ledger = createDynamoLedger({ tableName: TABLE, client });
  console.log(`DynamoDB ledger: write request units per call as a month fills up (${CALLS_PER_DAY} calls a day, one user and model)`);
  console.log('day  project  user  model  user×model   write units per call   USD per million calls');
  for (let d = 1; d <= 30; d++) {
    const day = `${MONTH}-${String(d).padStart(2, '0')}`;
    for (let c = 0; c < CALLS_PER_DAY; c++) {
      const callId = `call-${d}-${c}`;
      const reservation: Reservation = {
        callId, month: MONTH, day, expiresAt: Date.now() + 600_000,
        holds: scopes.map((scope, i) => ({ scope, amount: 123_456_789, ...(i === 0 ? { limit: 1e15 } : {}) })),
      };
      const reserved = await ledger.reserve(reservation);
      if (!reserved.ok) throw new Error('the reservation was refused');
      const settlement: Settlement = {
        callId, month: MONTH, day, priceVersion: '2026-11-30',
        rows: scopes.map((scope, i) => ({ scope, committed: 98_765 - 123_456_789, daily: i === 3 })),
        delta: { requests: 1, errors: 0, inputTokens: 1_234, cachedTokens: 512, outputTokens: 345, spent: 98_765, cacheHits: 0, saved: 0, estimated: 0 },
      };
      await ledger.settle(settlement);
    }
    if (d !== 1 && d % 5 !== 0) continue;
    const out = await client.send(new QueryCommand({ TableName: TABLE, KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': { S: usagePk(MONTH) } } }));
    const bySk = new Map((out.Items ?? []).map((item) => [item.sk.S!, itemSize(item)]));
    const sizes = scopes.map((s) => [...bySk].find(([sk]) => sk.endsWith(`#${s.project}#${s.user}#${s.model}`))?.[1] ?? 0);
    // Each row is written twice per call (its hold, its settlement); a hold's marker adds a little.
    const units = sizes.reduce((n, bytes) => n + 2 * Math.ceil((bytes + 60) / 1024), 0);
    console.log(
      `${String(d).padStart(3)}  ${sizes.map((b, i) => `${b} B`.padStart([7, 6, 6, 11][i])).join('  ')}   ${String(units).padStart(20)}   ${(units * USD_PER_MILLION_WRU).toFixed(2).padStart(21)}`,
    );
  }
} finally {
  await server.close();
}
