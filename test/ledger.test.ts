// The ledger conformance suite against SQLite and against DynamoDB (dynalite, in process) through both
// clients (the AWS SDK's and the lean one the Lambdas use), plus the DynamoDB-only concerns: the table
// definition, and failing fast when DynamoDB is unreachable.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Ledger, Scope, Settlement, UsageDelta } from '../runtime/core/ports.ts';
import {
  LEDGER_CLIENT_CONFIG,
  LEDGER_TABLE,
  createDynamoLedger,
  ensureLedgerTable,
} from '../runtime/store/dynamo-ledger.ts';
import { openSqliteLedger } from '../runtime/store/sqlite-ledger.ts';
import { settlementOf } from '../runtime/core/bill.ts';
import { dynamoClient, leanClient, startDynalite } from './helpers/dynalite.ts';
import { ledgerConformance } from './ledger-conformance.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'wrapi-ledger-'));
let files = 0;
const sqlite = ledgerConformance('sqlite', async () => {
  const ledger = openSqliteLedger(path.join(dir, `ledger-${++files}.db`));
  return { ledger, close: () => ledger.close!() };
});
sqlite.after(() => rmSync(dir, { recursive: true, force: true }));
sqlite.run();

const memory = suite('sqlite ledger in memory');
memory('opens :memory: and counts', async () => {
  const ledger = openSqliteLedger(':memory:');
  const hold = { scope: { project: 'p', user: '*', model: '*' }, amount: 5, limit: 5 };
  const r = { callId: 'c', month: '2026-11', day: '2026-11-26', expiresAt: 0, holds: [hold] };
  assert.equal(await ledger.reserve(r), { ok: true, committed: [5] });
  await ledger.close!();
});
memory.run();

const file = suite('sqlite ledger file');
const fileDir = mkdtempSync(path.join(os.tmpdir(), 'wrapi-ledger-file-'));
file.after(() => rmSync(fileDir, { recursive: true, force: true }));
const FILE_SCOPE: Scope = { project: 'p', user: '*', model: '*' };
const NO_USE: UsageDelta = {
  requests: 0, errors: 0, inputTokens: 0, cachedTokens: 0, outputTokens: 0, spent: 0, cacheHits: 0, saved: 0, estimated: 0,
};
const holding = (callId: string) => ({
  callId, month: '2026-11', day: '2026-11-26', expiresAt: Date.now() + 60_000, holds: [{ scope: FILE_SCOPE, amount: 100, limit: 1_000 }],
});

file('the file is held while open: a second ledger on it is refused at once, saying why', async () => {
  const name = path.join(fileDir, `held-${++files}.db`);
  const ledger = openSqliteLedger(name);
  await ledger.reserve(holding('c1'));
  assert.throws(() => openSqliteLedger(name), (err: Error) => /in use by another process/.test(err.message) && err.message.includes(name));
  await ledger.close!();
  const again = openSqliteLedger(name);
  assert.is((await again.usage('2026-11'))[0]?.committed, 100);
  await again.close!();
});

file('settlements of one turn share a commit; one that throws takes back only its own changes', async () => {
  const ledger = openSqliteLedger(path.join(fileDir, `group-${++files}.db`));
  const [a, b] = [holding('a'), holding('b')];
  await ledger.reserve(a);
  await ledger.reserve(b);
  // NaN binds as NULL, which the counters refuse: b's settlement fails inside the shared transaction.
  const [good, bad] = await Promise.allSettled([
    ledger.settle(settlementOf(a, { ...NO_USE, requests: 1, spent: 40 })),
    ledger.settle(settlementOf(b, { ...NO_USE, requests: Number.NaN, spent: 30 })),
  ]);
  assert.is(good.status, 'fulfilled');
  assert.is(bad.status, 'rejected');
  const [row] = await ledger.usage('2026-11');
  assert.equal([row.requests, row.spent, row.committed], [1, 40, 40 + 100], "a's settlement landed; b's hold stands");
  // b is still pending, so its retry applies once, and a repeat of a's changes nothing.
  await ledger.settle(settlementOf(b, { ...NO_USE, requests: 1, spent: 30 }));
  await ledger.settle(settlementOf(a, { ...NO_USE, requests: 1, spent: 40 }));
  const [after] = await ledger.usage('2026-11');
  assert.equal([after.requests, after.spent, after.committed], [2, 70, 70]);
  await ledger.close!();
});

file('reservations of one turn share its commit with settlements, each seeing the holds taken before it', async () => {
  const name = path.join(fileDir, `reserve-group-${++files}.db`);
  const ledger = openSqliteLedger(name);
  const walSize = () => statSync(`${name}-wal`).size;
  // Another project's call first, so the file has its tables' pages before anything is measured.
  await ledger.reserve({ ...holding('warm'), holds: [{ scope: { ...FILE_SCOPE, project: 'q' }, amount: 100 }] });
  const first = holding('first');
  let wal = walSize();
  await ledger.reserve(first);
  // What one commit of a reservation writes to the WAL (its changed pages, one frame each).
  const oneCommit = walSize() - wal;
  wal = walSize();
  const limited = (callId: string) => ({ ...holding(callId), holds: [{ scope: FILE_SCOPE, amount: 100, limit: 250 }] });
  // One turn: first's settlement frees 60 of its 100, then three holds of 100 against 250.
  const [settled, a, b, c] = await Promise.all([
    ledger.settle(settlementOf(first, { ...NO_USE, requests: 1, spent: 40 })),
    ledger.reserve(limited('a')),
    ledger.reserve(limited('b')),
    ledger.reserve(limited('c')),
  ]);
  assert.equal(settled, []);
  assert.ok(walSize() - wal < 2 * oneCommit, `four writes in one commit (WAL grew ${walSize() - wal} bytes; one reservation alone: ${oneCommit})`);
  assert.equal([a.ok, b.ok, c.ok], [true, true, false]);
  assert.equal(c, { ok: false, index: 0, committed: 240 }, 'refused with what was committed before it');
  const [row] = await ledger.usage('2026-11');
  assert.equal([row.requests, row.spent, row.committed], [1, 40, 240], "the refused hold's savepoint was rolled back");
  await ledger.close!();
});

file('close applies settlements still waiting for their turn', async () => {
  const name = path.join(fileDir, `close-${++files}.db`);
  const ledger = openSqliteLedger(name);
  const a = holding('a');
  await ledger.reserve(a);
  const settled = ledger.settle(settlementOf(a, { ...NO_USE, requests: 1, spent: 40 }));
  await ledger.close!();
  await settled;
  const again = openSqliteLedger(name);
  const [row] = await again.usage('2026-11');
  assert.equal([row.requests, row.spent, row.committed], [1, 40, 40]);
  await again.close!();
});
file.run();

const server = await startDynalite();
const client = server.client();
// Production's 400 ms per request is not what these cases test; 32 calls at once to dynalite on a
// loaded two-core CI machine can take longer.
const lean = server.lean({ requestTimeoutMs: 5000 });
let tables = 0;
ledgerConformance('dynamodb (dynalite, AWS SDK client)', async () => {
  const tableName = `ledger-${++tables}`;
  await ensureLedgerTable(client, tableName);
  return { ledger: createDynamoLedger({ tableName, client }), close: async () => {} };
}).run();
ledgerConformance('dynamodb (dynalite, lean client)', async () => {
  const tableName = `ledger-${++tables}`;
  await ensureLedgerTable(client, tableName);
  return { ledger: createDynamoLedger({ tableName, client: lean }), close: async () => {} };
}).run();

const dynamo = suite('dynamodb ledger');
const P: Scope = { project: 'p', user: '*', model: '*' };
const DELTA: UsageDelta = {
  requests: 0, errors: 0, inputTokens: 0, cachedTokens: 0, outputTokens: 0, spent: 0, cacheHits: 0, saved: 0, estimated: 0,
};

dynamo('ensureLedgerTable creates the LEDGER_TABLE keys once and is idempotent', async () => {
  await ensureLedgerTable(client, 'ensure-me');
  await ensureLedgerTable(client, 'ensure-me');
  const { Table } = await client.send(new DescribeTableCommand({ TableName: 'ensure-me' }));
  assert.is(Table?.TableStatus, 'ACTIVE');
  assert.equal(Table?.KeySchema, [
    { AttributeName: LEDGER_TABLE.hashKey, KeyType: 'HASH' },
    { AttributeName: LEDGER_TABLE.rangeKey, KeyType: 'RANGE' },
  ]);
  assert.equal(
    Table?.AttributeDefinitions,
    LEDGER_TABLE.attributes.map((a) => ({ AttributeName: a.name, AttributeType: a.type })),
  );
  assert.is(Table?.GlobalSecondaryIndexes, undefined);
});

dynamo('read dedupes keys and handles more than 100 of them', async () => {
  await ensureLedgerTable(client, 'many');
  const ledger = createDynamoLedger({ tableName: 'many', client: lean });
  const scopes = Array.from({ length: 150 }, (_, i) => ({ project: `p${i % 100}`, user: '*', model: '*' }));
  await ledger.setLimit(scopes[42], 42); // 100 distinct scopes + 1 model: two BatchGetItem pages
  const { limits } = await ledger.read(scopes, ['m', 'm']);
  assert.is(limits.length, 150);
  assert.equal(limits.flatMap((l, i) => (l === 42 ? [i] : [])), [42, 142]);
});

dynamo('a month is marked once per instance, in the settlement\'s round trip, and listed without a Scan', async () => {
  await ensureLedgerTable(client, 'marks');
  const sent: string[] = [];
  const counting = new Proxy(lean, {
    get: (target, prop) =>
      prop === 'send'
        ? (command: { constructor: { name: string } }) => (sent.push(command.constructor.name), target.send(command as never))
        : Reflect.get(target, prop),
  });
  const ledger = createDynamoLedger({ tableName: 'marks', client: counting });
  const detail = { project: 'p', user: 'u', model: 'm' };
  const delta = { ...DELTA, requests: 1, inputTokens: 1, outputTokens: 1, spent: 1 };
  const settlement = (day: string): Settlement => ({
    callId: `call-${day}`,
    month: day.slice(0, 7),
    day,
    rows: [{ scope: P, committed: 1, daily: false }, { scope: detail, committed: 1, daily: true }],
    delta,
  });
  const settle = (day: string) => ledger.settle(settlement(day));
  await settle('2026-11-26');
  assert.is(sent.length, 3, 'two usage rows (the detail row carries its day) and the month mark');
  await settle('2026-11-27');
  assert.is(sent.length, 5, 'no second mark for the same month');
  await settle('2026-12-01');
  assert.is(sent.length, 8);
  assert.ok(sent.every((name) => name === 'UpdateItemCommand'));
  // Another instance (a cold start) marks again: idempotent, and the list holds each month once.
  await createDynamoLedger({ tableName: 'marks', client }).settle(settlement('2026-11-28'));
  sent.length = 0;
  assert.equal(await ledger.months(), ['2026-12', '2026-11']);
  assert.equal(sent, ['QueryCommand']);
});

dynamo('a call without a rate limit writes nothing more; rate windows join the same parallel batch and only where limited', async () => {
  await ensureLedgerTable(client, 'rates-writes');
  const sent: string[] = [];
  let inFlight = 0;
  let most = 0;
  const counting = new Proxy(lean, {
    get: (target, prop) =>
      prop === 'send'
        ? async (command: { constructor: { name: string } }) => {
            sent.push(command.constructor.name);
            most = Math.max(most, ++inFlight);
            try {
              return await target.send(command as never);
            } finally {
              inFlight--;
            }
          }
        : Reflect.get(target, prop),
  });
  const ledger = createDynamoLedger({ tableName: 'rates-writes', client: counting });
  const scopes: Scope[] = [P, { ...P, model: 'm' }, { ...P, user: 'u' }, { project: 'p', user: 'u', model: 'm' }];
  const base = { month: '2026-11', day: '2026-11-26', expiresAt: 0, holds: scopes.map((scope) => ({ scope, amount: 1, dayLimit: 100 })) };
  // Limits of every kind on the project are read in the one BatchGetItem, as before.
  await ledger.setLimit(P, 5, 'rpm');
  sent.length = 0;
  const read = await ledger.read(scopes, ['m']);
  assert.equal(sent, ['BatchGetItemCommand']);
  assert.equal(read.rateLimits, [{ rpm: 5 }, undefined, undefined, undefined]);
  sent.length = 0;
  assert.ok((await ledger.reserve({ ...base, callId: 'plain' })).ok);
  assert.equal(sent, Array(4).fill('UpdateItemCommand'), 'one conditional update per USD row, the day total on it');
  assert.is(most, 4, 'all at once');
  sent.length = 0;
  most = 0;
  const rates = [{ scope: P, tokens: 10, rpm: 5 }];
  assert.ok((await ledger.reserve({ ...base, callId: 'rated', window: 0, rates })).ok);
  assert.equal(sent, Array(5).fill('UpdateItemCommand'));
  assert.is(most, 5, 'the rate window in the same parallel batch');
});

/** Expect `op` to reject within `withinMs`. */
async function rejectsFast(op: () => Promise<unknown>, withinMs: number) {
  const started = Date.now();
  let failed = false;
  await op().catch(() => (failed = true));
  const ms = Date.now() - started;
  assert.ok(failed, 'expected a rejection');
  assert.ok(ms < withinMs, `took ${ms} ms (limit ${withinMs} ms)`);
}

const everyHotCall = (ledger: Ledger) => [
  () => ledger.read([P], ['gpt-4o']),
  () => ledger.reserve({ callId: 'c', month: '2026-11', day: '2026-11-26', expiresAt: 0, holds: [{ scope: P, amount: 1, limit: 10 }] }),
  () =>
    ledger.settle({
      callId: 'c',
      month: '2026-11',
      day: '2026-11-26',
      rows: [{ scope: P, committed: 0, daily: false }],
      delta: { ...DELTA, requests: 1, inputTokens: 1, outputTokens: 1, spent: 1 },
    }),
];

/** Each client with the Lambdas' timeouts and retries, for the two outage tests below. */
const CLIENTS = {
  'AWS SDK client': (endpoint: string) => dynamoClient(endpoint, LEDGER_CLIENT_CONFIG),
  'lean client': (endpoint: string) => leanClient(endpoint),
};

for (const [name, open] of Object.entries(CLIENTS)) {
  dynamo(`an unreachable DynamoDB (closed port) rejects promptly (${name})`, async () => {
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));
    const dead = open(`http://127.0.0.1:${port}`);
    const ledger = createDynamoLedger({ tableName: 'ledger', client: dead });
    for (const op of everyHotCall(ledger)) await rejectsFast(op, 1_000);
    dead.destroy();
  });

  dynamo(`a DynamoDB that accepts connections but never answers rejects promptly (${name})`, async () => {
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as net.AddressInfo).port;
    const hung = open(`http://127.0.0.1:${port}`);
    const ledger = createDynamoLedger({ tableName: 'ledger', client: hung });
    await Promise.all(everyHotCall(ledger).map((op) => rejectsFast(op, 2_000)));
    hung.destroy();
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => silent.close(resolve));
  });
}

dynamo.after(async () => {
  client.destroy();
  lean.destroy();
  await server.close();
});
dynamo.run();
