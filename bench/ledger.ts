// Median µs per hot-path ledger call (read, reserve, settle) for one proxied request's four scopes,
// SQLite (a WAL file in the temp dir) and DynamoDB via in-process dynalite (HTTP on loopback) through
// the AWS SDK client and the lean client (runtime/store/dynamo-http.ts). Then CPU per UpdateItem of
// each client against a local server that answers at once (both sides in this process), with a raw
// keep-alive node:http round trip as the floor; run in alternating rounds, reported as ratios: the
// machine is shared and absolute figures drift.
// Last, this process's CPU per proxied request's ledger work (reserve + settle on 4 scopes) against a
// dynalite in another process, as the stack pays it: only the client side is counted.
// Run: npx tsx bench/ledger.ts
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import os from 'node:os';
import path from 'node:path';
import { settlementOf } from '../runtime/core/bill.ts';
import type { Ledger, Scope } from '../runtime/core/ports.ts';
import { createDynamoLedger, ensureLedgerTable } from '../runtime/store/dynamo-ledger.ts';
import { openSqliteLedger } from '../runtime/store/sqlite-ledger.ts';
import { dynamoClient, leanClient, startDynalite } from '../test/helpers/dynalite.ts';

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
  console.log(`${name.padEnd(22)} read ${fmt(samples.read)}   reserve ${fmt(samples.reserve)}   settle ${fmt(samples.settle)}   (${rounds} rounds, 4 scopes)`);
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'wrapi-bench-'));
const sqlite = openSqliteLedger(path.join(dir, 'ledger.db'));
await bench('sqlite (WAL file)', sqlite, 5_000);
await sqlite.close!();
rmSync(dir, { recursive: true, force: true });

const server = await startDynalite();
const client = server.client();
await ensureLedgerTable(client, 'ledger');
const lean = server.lean();
await ensureLedgerTable(client, 'ledger-lean');
await bench('dynalite, SDK client', createDynamoLedger({ tableName: 'ledger', client }), 500);
await bench('dynalite, lean client', createDynamoLedger({ tableName: 'ledger-lean', client: lean }), 500);
client.destroy();
lean.destroy();
await server.close();

// ------------------------------------------------------------------------------ CPU per call

// An UpdateItem as the ledger sends it in settle(), and a reply of the size DynamoDB gives.
const command = () =>
  new UpdateItemCommand({
    TableName: 'ledger',
    Key: { pk: { S: 'U#2026-11' }, sk: { S: `u#p#${user}#gpt-4o` } },
    UpdateExpression: 'ADD #requests :requests, #inputTokens :inputTokens, #outputTokens :outputTokens, #spent :spent, #committed :committed REMOVE #h',
    ConditionExpression: 'attribute_exists(#h)',
    ExpressionAttributeNames: { '#requests': 'requests', '#inputTokens': 'inputTokens', '#outputTokens': 'outputTokens', '#spent': 'spent', '#committed': 'committed', '#h': 'h_bench-call-1' },
    ExpressionAttributeValues: { ':requests': { N: '1' }, ':inputTokens': { N: '900' }, ':outputTokens': { N: '300' }, ':spent': { N: '5000' }, ':committed': { N: '-4000' } },
  });
const reply = JSON.stringify({ Attributes: { committed: { N: '123456789' } } });
const instant = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0', 'content-length': reply.length }).end(reply));
});
await new Promise<void>((resolve) => instant.listen(0, '127.0.0.1', resolve));
const endpoint = `http://127.0.0.1:${(instant.address() as AddressInfo).port}`;
const sdk = dynamoClient(endpoint);
const leanCpu = leanClient(endpoint);
const agent = new http.Agent({ keepAlive: true });
const rawBody = JSON.stringify(command().input);
const raw = () =>
  new Promise<void>((resolve, reject) => {
    const req = http.request(endpoint, { method: 'POST', agent, headers: { 'content-type': 'application/x-amz-json-1.0', 'content-length': rawBody.length } }, (res) => {
      res.resume();
      res.on('end', resolve);
    });
    req.on('error', reject);
    req.end(rawBody);
  });
const sides: Record<string, () => Promise<unknown>> = {
  'raw node:http': raw,
  'AWS SDK client': () => sdk.send(command()),
  'lean client': () => leanCpu.send(command()),
};
/** CPU µs per call (user + system, this process: both client and server side) over `n` sequential calls. */
async function cpuPerCall(op: () => Promise<unknown>, n: number): Promise<number> {
  const start = process.cpuUsage();
  for (let i = 0; i < n; i++) await op();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / n;
}
const ROUNDS = 10;
const PER_ROUND = 500;
const cpu: Record<string, number[]> = Object.fromEntries(Object.keys(sides).map((k) => [k, []]));
for (const op of Object.values(sides)) await cpuPerCall(op, 300); // warm up JIT and sockets
for (let r = 0; r < ROUNDS; r++) {
  const names = Object.keys(sides);
  if (r % 2) names.reverse(); // alternate the order so drift hits every side
  for (const name of names) cpu[name].push(await cpuPerCall(sides[name], PER_ROUND));
}
const cpuMedian = Object.fromEntries(Object.entries(cpu).map(([k, xs]) => [k, median(xs)]));
console.log(`\nCPU per UpdateItem against an instant local server (${ROUNDS} rounds × ${PER_ROUND}, median; client and server in this process):`);
for (const [name, us] of Object.entries(cpuMedian)) {
  console.log(`${name.padEnd(16)} ${us.toFixed(0).padStart(6)} µs   ×${(us / cpuMedian['raw node:http']).toFixed(2)} raw`);
}
console.log(`SDK / lean: ×${(cpuMedian['AWS SDK client'] / cpuMedian['lean client']).toFixed(2)}`);
sdk.destroy();
leanCpu.destroy();
agent.destroy();
await new Promise((resolve) => instant.close(resolve));

// ------------------------------------------------------------- CPU per request's ledger work

// dynalite in its own process (as in bench/proxy.ts), so only the ledger's side is counted here.
const child = fork(path.join(path.dirname(new URL(import.meta.url).pathname), 'stack-main.ts'), ['dynalite'], {
  execArgv: ['--import', 'tsx'],
  stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
});
const remote: string = await new Promise((resolve) => child.on('message', (m: { ready?: boolean; endpoint?: string }) => m.ready && resolve(m.endpoint!)));
const remoteSdk = dynamoClient(remote);
await ensureLedgerTable(remoteSdk, 'ledger');
remoteSdk.destroy();
const remoteLean = leanClient(remote);
const cycleDir = mkdtempSync(path.join(os.tmpdir(), 'wrapi-bench-'));
const sqliteCycle = openSqliteLedger(path.join(cycleDir, 'ledger.db'));
const dynamoCycle = createDynamoLedger({ tableName: 'ledger', client: remoteLean });
// Each ledger twice: with every limit watched for its alert thresholds (the default: the settlement
// asks for the rows' new spend back), and with `alerts none` (nothing watched), the baseline.
const cycleLedgers: Record<string, { ledger: Ledger; alerts?: number[] }> = {
  'sqlite (WAL file), alerts watched': { ledger: sqliteCycle },
  'sqlite (WAL file), no alerts': { ledger: sqliteCycle, alerts: [] },
  'lean client, other process, alerts watched': { ledger: dynamoCycle },
  'lean client, other process, no alerts': { ledger: dynamoCycle, alerts: [] },
};
let cycleId = 0;
async function cycle({ ledger, alerts }: { ledger: Ledger; alerts?: number[] }) {
  const r = {
    callId: `cycle-${cycleId++}`, month: '2026-11', day: '2026-11-26', expiresAt: Date.now() + 60_000,
    holds: scopes.map((scope) => ({ scope, amount: 9_000, limit: 1e15, ...(alerts ? { alerts } : {}) })),
  };
  await ledger.reserve(r);
  await ledger.settle(settlementOf(r, delta, 'v1'));
}
const perRequest: Record<string, number[]> = Object.fromEntries(Object.keys(cycleLedgers).map((k) => [k, []]));
for (const ledger of [sqliteCycle, dynamoCycle]) for (const s of scopes) await ledger.setLimit(s, 1e15);
for (const entry of Object.values(cycleLedgers)) await cpuPerCall(() => cycle(entry), 200);
for (let r = 0; r < 6; r++) {
  const names = Object.keys(cycleLedgers);
  if (r % 2) names.reverse();
  for (const name of names) perRequest[name].push(await cpuPerCall(() => cycle(cycleLedgers[name]), 200));
}
console.log(`\nCPU per request's ledger work (reserve + settle, 4 scopes; 6 rounds × 200, median; this process only):`);
for (const [name, xs] of Object.entries(perRequest)) console.log(`${name.padEnd(44)} ${median(xs).toFixed(0).padStart(6)} µs`);
for (const store of ['sqlite (WAL file)', 'lean client, other process']) {
  const ratio = median(perRequest[`${store}, alerts watched`]) / median(perRequest[`${store}, no alerts`]);
  console.log(`${store}: alert watching costs ×${ratio.toFixed(2)} the ledger CPU of no alerts (after the response: not on the request path)`);
}
await sqliteCycle.close!();
rmSync(cycleDir, { recursive: true, force: true });
remoteLean.destroy();
child.kill();
