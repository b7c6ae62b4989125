// Median µs per hot-path ledger call (read, reserve, settle) for one proxied request's four scopes,
// SQLite (a WAL file in the temp dir) and DynamoDB via in-process dynalite (HTTP on loopback).
// Run: npx tsx bench/ledger.ts
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { settlementOf } from '../runtime/core/bill.ts';
import type { Ledger, Scope } from '../runtime/core/ports.ts';
import { createDynamoLedger, ensureLedgerTable } from '../runtime/store/dynamo-ledger.ts';
import { openSqliteLedger } from '../runtime/store/sqlite-ledger.ts';
import { startDynalite } from '../test/helpers/dynalite.ts';

const user = 'arn:aws:iam::123456789012:user/alice';
const scopes: Scope[] = [
  { project: 'p', user: '*', model: '*' },
  { project: 'p', user: '*', model: 'gpt-4o' },
  { project: 'p', user, model: '*' },
  { project: 'p', user, model: 'gpt-4o' },
];
const delta = { requests: 1, errors: 0, inputTokens: 900, cachedTokens: 100, outputTokens: 300, spent: 5_000, cacheHits: 0, saved: 0, estimated: 0 };

async function time(op: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await op();
  return Number(process.hrtime.bigint() - start) / 1_000;
}

const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function bench(name: string, ledger: Ledger, rounds: number) {
  for (const s of scopes) await ledger.setLimit(s, 1e15);
  const samples = { read: [] as number[], reserve: [] as number[], settle: [] as number[] };
  for (let i = 0; i < rounds + 20; i++) {
    const keep = i >= 20; // the first rounds warm up JIT, prepared statements and sockets
    const read = await time(() => ledger.read(scopes, ['gpt-4o']));
    const reservation = {
      callId: `bench-${i}`, month: '2026-11', day: '2026-11-26', expiresAt: Date.now() + 60_000,
      holds: scopes.map((scope) => ({ scope, amount: 9_000, limit: 1e15 })),
    };
    const reserve = await time(() => ledger.reserve(reservation));
    const settle = await time(() => ledger.settle(settlementOf(reservation, delta, 'v1')));
    if (keep) {
      samples.read.push(read);
      samples.reserve.push(reserve);
      samples.settle.push(settle);
    }
  }
  const fmt = (xs: number[]) => `${median(xs).toFixed(1).padStart(8)} µs`;
  console.log(`${name.padEnd(20)} read ${fmt(samples.read)}   reserve ${fmt(samples.reserve)}   settle ${fmt(samples.settle)}   (${rounds} rounds, 4 scopes)`);
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'wrapi-bench-'));
const sqlite = openSqliteLedger(path.join(dir, 'ledger.db'));
await bench('sqlite (WAL file)', sqlite, 5_000);
await sqlite.close!();
rmSync(dir, { recursive: true, force: true });

const server = await startDynalite();
const client = server.client();
await ensureLedgerTable(client, 'ledger');
await bench('dynalite (loopback)', createDynamoLedger({ tableName: 'ledger', client }), 500);
client.destroy();
await server.close();
