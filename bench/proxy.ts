/**
 * The proxy benchmark (`npm run bench`): in one run, direct calls to the fake OpenAI upstream vs the
 * same calls through the local stack, first with its default SQLite ledger, then with the DynamoDB
 * ledger (dynalite) answering each request after a fixed round trip, as a Lambda user would see.
 * Prints a table with targets (PASS/FAIL); it never exits non-zero for a miss. See bench/README.md.
 *
 * `--peer portkey` runs another gateway (bench/peer.ts) as a third side of the SQLite run's latency,
 * throughput, stream and memory cases, with its own columns and the targets relative to it.
 *
 * The fake upstream, the stack and dynalite each run in a child process (bench/stack-main.ts), so the
 * load generator here shares no event loop with them. Direct and proxied calls use the same
 * keep-alive agent and the same bodies, in alternating batches so machine noise hits both alike.
 *
 * Knobs (env): BENCH_REQUESTS (non-streamed requests per side at concurrency 1, default 3000; the
 * other SQLite cases scale with it), BENCH_MEM_REQUESTS (default 20000), BENCH_DYNAMO=0 (skip the
 * DynamoDB run), BENCH_DYNAMO_SCALE (its share of the SQLite counts, default 0.15),
 * BENCH_LEDGER_DELAY_MS (DynamoDB's round trip per request, default 4), BENCH_ACCEPT_ENCODING=identity (no gzip on any hop; default gzip, as
 * the openai client and fetch ask), BENCH_CPU_PROF=1 (profile the stack processes and print
 * where its CPU time goes; it slows the stack, so read latency figures from a run without it).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { SignatureV4 } from '@smithy/signature-v4';
import { loadOrCreateCredentials } from '../runtime/local/credentials.ts';
import { NodeSha256 } from '../sdk/credentials.ts';
import { Child } from './child.ts';
import { compareSides, load, type Side } from './load.ts';
import { ensureInstalled, parseBenchArgs, startPeer, type RunningPeer } from './peer.ts';
import { mb, ms, pct, peerLatency, peerVerdict, plus, ratio, tableLines, verdict, type PeerCells, type Row } from './table.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const env = process.env;
const num = (name: string, dflt: number) => (env[name] !== undefined && env[name] !== '' ? Number(env[name]) : dflt);

const N1 = Math.max(100, num('BENCH_REQUESTS', 3000));
const SCALE = N1 / 3000;
const MEM_REQUESTS = num('BENCH_MEM_REQUESTS', 20_000);
const DYNAMO = env.BENCH_DYNAMO !== '0';
const DYNAMO_SCALE = num('BENCH_DYNAMO_SCALE', 0.15);
const DELAY_MS = num('BENCH_LEDGER_DELAY_MS', 4);
const CPU_PROF = env.BENCH_CPU_PROF === '1';
/** What every client here (and the stack's upstream hop) accepts; `identity` turns gzip off on all hops. */
const ACCEPT_ENCODING = env.BENCH_ACCEPT_ENCODING || 'gzip';

// ------------------------------------------------------------------------------------------ client

const agent = new http.Agent({ keepAlive: true, maxSockets: 64, keepAliveMsecs: 10_000 });

interface Sample {
  ms: number;
  ttfb: number;
  signMs: number;
  status: number;
  cache?: string;
}

interface Target {
  host: string;
  port: number;
}

/** One HTTP request on the shared keep-alive agent; times from the request start to the last byte. */
function request(target: Target, urlPath: string, headers: Record<string, string>, body: Buffer, signMs = 0): Promise<Sample> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    let ttfb = 0;
    const req = http.request(
      { host: target.host, port: target.port, method: 'POST', path: urlPath, headers, agent },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => {
          if (!ttfb) ttfb = performance.now() - start;
          chunks.push(c);
        });
        res.on('end', () => {
          let bytes = Buffer.concat(chunks);
          if (res.headers['content-encoding'] === 'gzip') bytes = gunzipSync(bytes);
          const ms = performance.now() - start;
          if (res.statusCode !== 200 || bytes.length === 0) lastError = `${res.statusCode} ${bytes.toString('utf8').slice(0, 300)}`;
          resolve({ ms, ttfb: ttfb || ms, signMs, status: res.statusCode ?? 0, cache: res.headers['openai-proxy-cache'] as string | undefined });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
let lastError = '';

interface Call {
  stream?: boolean;
  cache?: boolean;
  stage?: 'dev' | 'prod';
  /** Default `bench` (a USD limit only); `bench-rated` also has RPM and TPM limits. */
  project?: string;
}

/** The request mix: a few fixed bodies (identical bytes for direct and proxied calls). */
function bodies(kind: 'chat' | 'stream' | 'cached' | 'fast-stream'): Buffer[] {
  const mk = (content: string, extra: Record<string, unknown> = {}) =>
    Buffer.from(JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content }], max_tokens: 64, ...extra }));
  switch (kind) {
    case 'chat':
      return [0, 1, 2, 3].map((i) => mk(`Benchmark question ${i}: say something short. fake:words=${12 + 4 * i}`));
    case 'stream':
      return [0, 1].map((i) => mk(`Stream question ${i}. fake:words=3 fake:delay_first=2 fake:slow=1`, { stream: true }));
    case 'fast-stream':
      return [0, 1].map((i) => mk(`Fast stream ${i}. fake:words=8`, { stream: true }));
    case 'cached':
      return [mk('The same question every time, so the proxy answers from its cache. fake:words=16')];
  }
}

interface Setup {
  fake: Target & { apiKey: string };
  stack: Target;
  signer: SignatureV4;
  /** Another gateway in front of the same fake upstream (`--peer`). */
  peer?: RunningPeer;
}

function directCall(s: Setup, body: Buffer): Promise<Sample> {
  return request(s.fake, '/v1/chat/completions', {
    'content-type': 'application/json',
    authorization: `Bearer ${s.fake.apiKey}`,
    'accept-encoding': ACCEPT_ENCODING,
    'content-length': String(body.length),
  }, body);
}

/** The same body through the peer gateway, which holds no credentials of its own: it forwards the fake's key. */
function peerCall(s: Setup, body: Buffer): Promise<Sample> {
  const peer = s.peer!;
  return request(peer, peer.chatPath, {
    ...peer.headers,
    'content-type': 'application/json',
    'accept-encoding': ACCEPT_ENCODING,
    'content-length': String(body.length),
  }, body);
}

async function proxyCall(s: Setup, body: Buffer, call: Call = {}): Promise<Sample> {
  const stage = call.stage ?? 'dev';
  const t0 = performance.now();
  const signed = await s.signer.sign({
    method: 'POST',
    protocol: 'http:',
    hostname: s.stack.host,
    port: s.stack.port,
    path: `/${stage}/v1/chat/completions`,
    query: {},
    headers: {
      host: `${s.stack.host}:${s.stack.port}`,
      'content-type': 'application/json',
      'accept-encoding': ACCEPT_ENCODING,
      'openai-proxy-project': call.project ?? 'bench',
      ...(call.cache ? {} : { 'openai-proxy-caching': '0' }),
    },
    body,
  });
  const signMs = performance.now() - t0;
  const headers = { ...(signed.headers as Record<string, string>), 'content-length': String(body.length) };
  return request(s.stack, `/${stage}/v1/chat/completions`, headers, body, signMs);
}

/** Direct vs proxy, and the peer too when one is given. */
async function compare(total: number, batch: number, concurrency: number, direct: (i: number) => Promise<Sample>, proxy: (i: number) => Promise<Sample>, peer?: (i: number) => Promise<Sample>) {
  const [d, p, k] = await compareSides(total, batch, concurrency, peer ? [direct, proxy, peer] : [direct, proxy]);
  return { d, p, k: k as Side<Sample> | undefined };
}

// ------------------------------------------------------------------------------------------ stats

const errors = (xs: Sample[]) => xs.filter((s) => s.status !== 200).length;

const rows: Row[] = [];
const row = (label: string, direct: string, proxy: string, added: string, vsDirect: string, target: string, peer?: PeerCells) =>
  rows.push({ cells: [label, direct, proxy, added, vsDirect, target], peer });

// ------------------------------------------------------------------------------------------ one run

interface Counts {
  read: number;
  reserve: number;
  settle: number;
  other: number;
  upstream: number;
  inFlight: number;
  /** CPU time (user + system) of the stack process, µs. */
  cpuUs: number;
}

async function settledCounts(stack: Child): Promise<Counts> {
  for (let i = 0; i < 200; i++) {
    const c = await stack.call<Counts>('counts');
    if (c.inFlight === 0) return c;
    await new Promise((r) => setTimeout(r, 10));
  }
  return stack.call<Counts>('counts');
}

type Timings = Record<'read' | 'reserve' | 'settle', { n: number; syncP50: number; totalP50: number }>;

interface TraceSummary {
  label: string;
  n: number;
  preRead: number;
  preReserve: number;
  preOther: number;
  writesBeforeFirstByte: number;
  reads: number;
  reserves: number;
  settles: number;
  toUpstream: number;
  upstreamWait: number;
  toFirstByte: number;
}

function summarize(label: string, traces: [string, number][][]): TraceSummary {
  const per = (f: (ev: [string, number][]) => number) => traces.reduce((n, t) => n + f(t), 0) / Math.max(1, traces.length);
  const before = (ev: [string, number][], mark: string) => {
    const i = ev.findIndex(([n]) => n === mark);
    return i < 0 ? ev : ev.slice(0, i);
  };
  const at = (ev: [string, number][], mark: string) => ev.find(([n]) => n === mark)?.[1] ?? NaN;
  const count = (ev: [string, number][], name: string) => ev.filter(([n]) => n === name).length;
  return {
    label,
    n: traces.length,
    preRead: per((ev) => (ev.some(([n]) => n === 'upstream.call') ? count(before(ev, 'upstream.call'), 'ledger.read') : 0)),
    preReserve: per((ev) => (ev.some(([n]) => n === 'upstream.call') ? count(before(ev, 'upstream.call'), 'ledger.reserve') : 0)),
    preOther: per((ev) =>
      ev.some(([n]) => n === 'upstream.call') ? before(ev, 'upstream.call').filter(([n]) => n.startsWith('ledger.') && n !== 'ledger.read' && n !== 'ledger.reserve').length : 0,
    ),
    writesBeforeFirstByte: per((ev) => before(ev, 'client.first-byte').filter(([n]) => n.startsWith('ledger.') && n !== 'ledger.read' && n !== 'ledger.reserve').length),
    reads: per((ev) => count(ev, 'ledger.read')),
    reserves: per((ev) => count(ev, 'ledger.reserve')),
    settles: per((ev) => count(ev, 'ledger.settle')),
    toUpstream: pct(traces.map((ev) => at(ev, 'upstream.call')), 50),
    upstreamWait: pct(traces.map((ev) => at(ev, 'upstream.headers') - at(ev, 'upstream.call')), 50),
    toFirstByte: pct(traces.map((ev) => at(ev, 'client.first-byte') - (Number.isNaN(at(ev, 'upstream.headers')) ? 0 : at(ev, 'upstream.headers'))), 50),
  };
}

interface RunOptions {
  title: string;
  scale: number;
  memRequests: number;
  dynamo?: Child;
  /** The injected DynamoDB round trip (0: SQLite). */
  roundTripMs: number;
  cpuProf?: string;
  /** Run the peer gateway beside the stack in the cases that both serve alike. */
  peer?: RunningPeer;
  /** The SQLite run's stack CPU per request (µs) by case: the DynamoDB run's figures as ratios of it. */
  baselineCpu?: Map<string, number>;
}

/**
 * The budget integrity issue's targets for the DynamoDB ledger (with the injected round trip): stack
 * CPU per request and added p50 at c=1.
 */
const DYNAMO_CPU_TARGET_US = 2_500;
const DYNAMO_ADDED_TARGET_MS = 8;

/** Runs every case against one stack; answers its stack CPU per request (µs) by case. */
async function runLedger(fake: Child, signerFor: (home: string) => Promise<SignatureV4>, o: RunOptions): Promise<Map<string, number>> {
  rows.length = 0;
  const home = mkdtempSync(path.join(os.tmpdir(), 'wrapi-bench-'));
  const stackEnv: Record<string, string> = {
    BENCH_HOME: home,
    BENCH_UPSTREAM: fake.ready.url,
    BENCH_UPSTREAM_KEY: fake.ready.apiKey,
    BENCH_DYNAMODB: o.dynamo ? o.dynamo.ready.endpoint : '',
  };
  const stack = await Child.start('stack', stackEnv, o.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', o.cpuProf] : []);
  try {
    const fakeUrl = new URL(fake.ready.url);
    const stackUrl = new URL(stack.ready.url);
    const s: Setup = {
      fake: { host: fakeUrl.hostname, port: Number(fakeUrl.port), apiKey: fake.ready.apiKey },
      stack: { host: stackUrl.hostname, port: Number(stackUrl.port) },
      signer: await signerFor(home),
      peer: o.peer,
    };
    const peer = o.peer;
    const chat = bodies('chat');
    const stream = bodies('stream');
    const fastStream = bodies('fast-stream');
    const [cached] = bodies('cached');
    const n = (x: number, batch: number) => Math.max(batch * 2, Math.round((x * o.scale) / (batch * 2)) * batch * 2);
    const log = (msg: string) => process.stderr.write(`  [${o.title.split(' ')[0]}] ${msg}\n`);
    type Memory = { rss: number; heapUsed: number; external: number };
    const idle = await stack.call<Memory>('memory');
    const peerIdle = peer ? await peer.child.call<Memory>('memory') : undefined;

    // Warm up: JIT, sockets, prepared statements, the policy cache, the response cache.
    log('warming up');
    await load(Math.round(600 * Math.max(o.scale, 0.2)), 4, (i) => directCall(s, chat[i % chat.length]));
    await load(Math.round(1200 * Math.max(o.scale, 0.2)), 4, (i) => proxyCall(s, chat[i % chat.length]));
    await load(40, 2, (i) => (i % 2 ? directCall(s, stream[i % 2]) : proxyCall(s, stream[i % 2])));
    await load(200, 2, (i) => (i % 2 ? directCall(s, cached) : proxyCall(s, cached, { cache: true })));
    await load(100, 2, (i) => proxyCall(s, chat[i % chat.length], { stage: 'prod' }));
    if (peer) {
      await load(Math.round(1200 * Math.max(o.scale, 0.2)), 4, (i) => peerCall(s, chat[i % chat.length]));
      await load(40, 2, (i) => peerCall(s, (i % 2 ? stream : fastStream)[i % 2]));
    }
    lastError = '';

    const rt: { label: string; n: number; c: Counts; peerN: number; peerCpuUs: number }[] = [];
    const peerCpuUs = async () => (peer ? (await peer.child.call<{ cpuUs: number }>('counts')).cpuUs : 0);
    /** Runs `f` and records the stack's counts over it, and the peer's CPU if the peer served some of it. */
    const delta = async <T>(label: string, proxied: (r: T) => number, f: () => Promise<T>, peered?: (r: T) => number): Promise<T> => {
      const before = await settledCounts(stack);
      const peerBefore = peered ? await peerCpuUs() : 0;
      const out = await f();
      const after = await settledCounts(stack);
      const c = Object.fromEntries(Object.keys(after).map((k) => [k, (after as any)[k] - (before as any)[k]])) as unknown as Counts;
      rt.push({ label, n: proxied(out), c, peerN: peered?.(out) ?? 0, peerCpuUs: peered ? (await peerCpuUs()) - peerBefore : 0 });
      return out;
    };
    const peerSamples = (r: { k?: Side<Sample> }) => r.k?.samples.length ?? 0;
    const peerFn = (fn: (i: number) => Promise<Sample>) => (peer ? fn : undefined);
    /** The peer's cells of a latency row, from its samples `k` (none: the row is the stack's alone). */
    const peerAt = (k: number[] | undefined, d: number[], p: number[], q: number) => (k ? peerLatency(pct(d, q), pct(p, q), pct(k, q)) : undefined);
    const notServed = peer ? { value: '—' } : undefined;

    // 1. non-streamed chat, concurrency 1
    log('non-streamed chat, concurrency 1');
    await stack.call('resetTimings');
    const c1 = await delta('non-stream c=1', (r) => r.p.samples.length, () =>
      compare(n(N1, 100), 100, 1, (i) => directCall(s, chat[i % 4]), (i) => proxyCall(s, chat[i % 4]), peerFn((i) => peerCall(s, chat[i % 4]))), peerSamples);
    const timings1 = await stack.call<Timings>('timings');
    const reserveMs = timings1.reserve.totalP50 / 1000;
    const lambdaNote = (added: number, injected: number, ledgerMs: number) =>
      `(− ${injected} ms injected: ${plus(added - injected)}; − whole ledger calls ${ledgerMs.toFixed(1)} ms: ${plus(added - ledgerMs)})`;
    const d1 = c1.d.samples.map((x) => x.ms);
    const p1 = c1.p.samples.map((x) => x.ms);
    const added1 = pct(p1, 50) - pct(d1, 50);
    const k1 = c1.k?.samples.map((x) => x.ms);
    const pre1 = o.roundTripMs;
    const peerAdded1 = k1 ? pct(k1, 50) - pct(d1, 50) : NaN;
    row('non-stream chat c=1 p50', ms(pct(d1, 50)), ms(pct(p1, 50)), plus(added1), ratio(pct(p1, 50), pct(d1, 50)),
      o.dynamo
        ? `${verdict(added1 <= DYNAMO_ADDED_TARGET_MS, `(≤ +${DYNAMO_ADDED_TARGET_MS} ms)`)} ${lambdaNote(added1, pre1, reserveMs)}`
        : verdict(added1 <= 1.2, added1 <= 1 ? '(≤ 1.2 ms; ideal ≤ 1 ms met)' : '(≤ 1.2 ms; ideal ≤ 1 ms missed)') +
          (k1 ? `; ${peerVerdict(peer!, added1 < peerAdded1, `(added < ${peer!.label}'s)`)}` : ''),
      peerAt(k1, d1, p1, 50));
    row('non-stream chat c=1 p99', ms(pct(d1, 99)), ms(pct(p1, 99)), plus(pct(p1, 99) - pct(d1, 99)), ratio(pct(p1, 99), pct(d1, 99)), '', peerAt(k1, d1, p1, 99));

    // 2. non-streamed chat, concurrency 16
    log('non-streamed chat, concurrency 16');
    const b16 = Math.max(64, Math.round(500 * o.scale / 16) * 16);
    const c16 = await delta('non-stream c=16', (r) => r.p.samples.length, () =>
      compare(n(N1 * 1.5, b16), b16, 16, (i) => directCall(s, chat[i % 4]), (i) => proxyCall(s, chat[i % 4]), peerFn((i) => peerCall(s, chat[i % 4]))), peerSamples);
    const d16 = c16.d.samples.map((x) => x.ms);
    const p16 = c16.p.samples.map((x) => x.ms);
    const k16 = c16.k?.samples.map((x) => x.ms);
    row('non-stream chat c=16 p50', ms(pct(d16, 50)), ms(pct(p16, 50)), plus(pct(p16, 50) - pct(d16, 50)), ratio(pct(p16, 50), pct(d16, 50)), '', peerAt(k16, d16, p16, 50));
    row('non-stream chat c=16 p99', ms(pct(d16, 99)), ms(pct(p16, 99)), plus(pct(p16, 99) - pct(d16, 99)), ratio(pct(p16, 99), pct(d16, 99)), '', peerAt(k16, d16, p16, 99));
    const rps = (side: Side<Sample>) => side.samples.length / (side.wallMs / 1000);
    const rpsD = rps(c16.d);
    const rpsP = rps(c16.p);
    const rpsK = c16.k ? rps(c16.k) : NaN;
    row('non-stream chat c=16 req/s', rpsD.toFixed(0), rpsP.toFixed(0), '', ratio(rpsP, rpsD),
      c16.k ? `${peerVerdict(peer!, rpsP >= 1.5 * rpsK, `(≥ 1.5x ${peer!.label}'s)`)}; client signs in the loop` : '(info; client signs in the loop)',
      c16.k ? { value: rpsK.toFixed(0), ratio: ratio(rpsK, rpsD), vsPeer: ratio(rpsP, rpsK) } : undefined);

    // 3. streamed chat: time to first byte
    log('streamed chat, time to first byte');
    const cs = await delta('stream c=1', (r) => r.p.samples.length, () =>
      compare(n(N1 * 0.1, 25), 25, 1, (i) => directCall(s, stream[i % 2]), (i) => proxyCall(s, stream[i % 2]), peerFn((i) => peerCall(s, stream[i % 2]))), peerSamples);
    const ds = cs.d.samples.map((x) => x.ttfb);
    const ps = cs.p.samples.map((x) => x.ttfb);
    const ks = cs.k?.samples.map((x) => x.ttfb);
    const addedS = pct(ps, 50) - pct(ds, 50);
    row('stream TTFB c=1 p50', ms(pct(ds, 50)), ms(pct(ps, 50)), plus(addedS), ratio(pct(ps, 50), pct(ds, 50)),
      o.dynamo ? lambdaNote(addedS, pre1, reserveMs) : verdict(addedS <= 1, '(≤ 1 ms)'), peerAt(ks, ds, ps, 50));
    row('stream TTFB c=1 p99', ms(pct(ds, 99)), ms(pct(ps, 99)), plus(pct(ps, 99) - pct(ds, 99)), ratio(pct(ps, 99), pct(ds, 99)), '', peerAt(ks, ds, ps, 99));
    const dse = cs.d.samples.map((x) => x.ms);
    const pse = cs.p.samples.map((x) => x.ms);
    const kse = cs.k?.samples.map((x) => x.ms);
    row('stream complete c=1 p50', ms(pct(dse, 50)), ms(pct(pse, 50)), plus(pct(pse, 50) - pct(dse, 50)), ratio(pct(pse, 50), pct(dse, 50)), '(info)', peerAt(kse, dse, pse, 50));

    // 4. cache hits (caching on, one repeated body) vs the same body sent directly
    log('cache hits');
    const ch = await delta('cache hit c=1', (r) => r.p.samples.length, () =>
      compare(n(N1 * 0.67, 100), 100, 1, () => directCall(s, cached), () => proxyCall(s, cached, { cache: true })));
    const dh = ch.d.samples.map((x) => x.ms);
    const ph = ch.p.samples.map((x) => x.ms);
    const hits = ch.p.samples.filter((x) => x.cache === 'hit').length;
    row('cache hit c=1 p50', ms(pct(dh, 50)), ms(pct(ph, 50)), plus(pct(ph, 50) - pct(dh, 50)), ratio(pct(ph, 50), pct(dh, 50)),
      `${verdict(pct(ph, 50) < 1, '(hit < 1 ms)')}${hits < ch.p.samples.length ? ` ONLY ${hits}/${ch.p.samples.length} HITS` : ''}`, notServed);
    row('cache hit c=1 p99', ms(pct(dh, 99)), ms(pct(ph, 99)), plus(pct(ph, 99) - pct(dh, 99)), ratio(pct(ph, 99), pct(dh, 99)), '', notServed);

    // 5. policy cache cold (stage prod reads limits and prices on every call)
    log('non-streamed chat, policy cache cold');
    await stack.call('resetTimings');
    const cc = await delta('policy cold c=1', (r) => r.p.samples.length, () =>
      compare(n(N1 * 0.33, 100), 100, 1, (i) => directCall(s, chat[i % 4]), (i) => proxyCall(s, chat[i % 4], { stage: 'prod' })));
    const timingsC = await stack.call<Timings>('timings');
    const dc = cc.d.samples.map((x) => x.ms);
    const pc = cc.p.samples.map((x) => x.ms);
    const addedC = pct(pc, 50) - pct(dc, 50);
    row('policy cache cold c=1 p50', ms(pct(dc, 50)), ms(pct(pc, 50)), plus(addedC), ratio(pct(pc, 50), pct(dc, 50)),
      o.dynamo ? lambdaNote(addedC, 2 * pre1, (timingsC.read.totalP50 + timingsC.reserve.totalP50) / 1000) : '(info: read + reserve every call)', notServed);

    // 6. a project with RPM and TPM limits as well: its minute window is taken in the reservation's
    // own round trip. Interleaved with the USD-only project, so both see the same noise.
    log('non-streamed chat, project with rate limits');
    const cr = await delta('rate limits c=1', (r) => r[1].samples.length + r[2].samples.length, () =>
      compareSides(n(N1 * 0.5, 100), 100, 1, [
        (i) => directCall(s, chat[i % 4]),
        (i) => proxyCall(s, chat[i % 4]),
        (i) => proxyCall(s, chat[i % 4], { project: 'bench-rated' }),
      ]));
    const [dr, pr, rr] = cr.map((side) => side.samples.map((x) => x.ms));
    const addedPlain = pct(pr, 50) - pct(dr, 50);
    const addedRated = pct(rr, 50) - pct(dr, 50);
    row('rate-limited project c=1 p50', ms(pct(dr, 50)), ms(pct(rr, 50)), plus(addedRated), ratio(pct(rr, 50), pct(dr, 50)),
      o.dynamo
        // The window is one more conditional update in the reservation's parallel batch: DynamoDB runs
        // it alongside the USD hold, dynalite (one process on the same cores) one after the other.
        ? `(info: ${plus(addedRated - addedPlain)} over the USD-only project; dynalite applies the extra update serially)`
        : `${verdict(addedRated - addedPlain <= 0.1, '(≤ 0.1 ms over the USD-only project, same run)')}: ${plus(addedRated - addedPlain)}`,
      notServed);

    // Client-side signing, excluded from every proxied figure above.
    const signs = [...c1.p.samples, ...ch.p.samples].map((x) => x.signMs);
    row('client SigV4 signing p50 (excluded above)', '', ms(pct(signs, 50)), '', '', '(info: the client pays it too)');
    const errD = [c1.d, c16.d, cs.d, ch.d, cc.d, cr[0]].reduce((k, x) => k + errors(x.samples), 0);
    const errP = [c1.p, c16.p, cs.p, ch.p, cc.p, cr[1], cr[2]].reduce((k, x) => k + errors(x.samples), 0);
    const errK = [c1.k, c16.k, cs.k].reduce((k, x) => k + (x ? errors(x.samples) : 0), 0);
    row('non-200 answers', String(errD), String(errP), '', '', errD + errP + errK ? `FAIL last: ${lastError}` : '', peer ? { value: String(errK) } : undefined);

    // 7. order of store calls per request (traced with AsyncLocalStorage, a few dozen requests)
    log('tracing store calls');
    await settledCounts(stack);
    await stack.call('traceStart');
    const traced: { label: string; from: number; to: number }[] = [];
    let sent = 0;
    const traceCase = async (label: string, k: number, fn: (i: number) => Promise<Sample>) => {
      await load(k, 1, fn);
      await settledCounts(stack);
      traced.push({ label, from: sent, to: sent + k });
      sent += k;
    };
    await traceCase('non-stream', 40, (i) => proxyCall(s, chat[i % 4]));
    await traceCase('stream', 20, (i) => proxyCall(s, stream[i % 2]));
    await traceCase('cache hit', 20, () => proxyCall(s, cached, { cache: true }));
    await traceCase('policy cold', 20, (i) => proxyCall(s, chat[i % 4], { stage: 'prod' }));
    const traces = await stack.call<[string, number][][]>('traceStop');
    const summaries = traced.map((t) => summarize(t.label, traces.slice(t.from, t.to)));

    // 7. memory: RSS of the stack process (and the peer's) before and after MEM_REQUESTS requests (a mix)
    type Point = Memory & { label: string };
    const mem: Point[] = [];
    const peerMem: Point[] = [];
    if (o.memRequests >= 4) {
      log(`memory: ${o.memRequests} requests at concurrency 16${peer ? `, then as many through ${peer.label}, quarter by quarter` : ''}`);
      // The peer gets the same bodies; it has no cache, so it forwards the repeated one.
      const mix = (call: (body: Buffer, cache: boolean) => Promise<Sample>) => (i: number) => {
        const k = i % 10;
        if (k === 0) return call(fastStream[i % 2], false);
        if (k === 1) return call(cached, true);
        return call(chat[i % 4], false);
      };
      const stackMix = mix((body, cache) => proxyCall(s, body, { cache }));
      const peerMix = mix((body) => peerCall(s, body));
      mem.push({ ...(await stack.call<Memory>('memory')), label: 'before' });
      if (peer) peerMem.push({ ...(await peer.child.call<Memory>('memory')), label: 'before' });
      const samples: Sample[] = [];
      const peerRun: Sample[] = [];
      const quarter = Math.floor(o.memRequests / 4);
      for (let q = 0; q < 4; q++) {
        const k = q < 3 ? quarter : o.memRequests - 3 * quarter;
        const label = String(q < 3 ? (q + 1) * quarter : o.memRequests);
        const runStack = async () => {
          const r = await delta('memory mix c=16', (x) => x.samples.length, () => load(k, 16, (i) => stackMix(q * quarter + i)));
          samples.push(...r.samples);
          await settledCounts(stack);
          mem.push({ ...(await stack.call<Memory>('memory')), label });
        };
        const runPeer = async () => {
          if (!peer) return;
          const cpuBefore = await peerCpuUs();
          const r = await load(k, 16, (i) => peerMix(q * quarter + i));
          const none: Counts = { read: 0, reserve: 0, settle: 0, other: 0, upstream: 0, inFlight: 0, cpuUs: 0 };
          rt.push({ label: 'memory mix c=16', n: 0, c: none, peerN: r.samples.length, peerCpuUs: (await peerCpuUs()) - cpuBefore });
          peerRun.push(...r.samples);
          peerMem.push({ ...(await peer.child.call<Memory>('memory')), label });
        };
        // Alternate which goes first, as in the other cases.
        for (const run of q % 2 ? [runPeer, runStack] : [runStack, runPeer]) await run();
      }
      const mid = mem[2];
      const end = mem[4];
      const growth = end.rss - mid.rss;
      const flat = growth <= Math.max(8 * 1024 * 1024, 0.05 * mid.rss) && end.heapUsed - mid.heapUsed <= 4 * 1024 * 1024;
      const pts = (points: Point[], f: (m: Point) => number) => points.map((m) => (f(m) / 1024 / 1024).toFixed(0)).join(' / ');
      const grew = (points: Point[], f: (m: Point) => number) => {
        const g = f(points[4]) - f(points[2]);
        return `${g >= 0 ? '+' : ''}${mb(g)}`;
      };
      const peerPts = (f: (m: Point) => number) => (peer ? { value: pts(peerMem, f), added: grew(peerMem, f) } : undefined);
      row(`stack RSS MB at ${mem.map((m) => m.label).join(' / ')} requests`, '', pts(mem, (m) => m.rss),
        grew(mem, (m) => m.rss), '',
        // RSS still settles (V8 young generation, allocator) over the first few thousand requests.
        o.memRequests >= 10_000 ? verdict(flat, '(flat: 2nd half grows ≤ max(8 MB, 5%), heap ≤ 4 MB)') : '(info: too few requests to judge flatness)',
        peerPts((m) => m.rss));
      row('stack heap used after GC, MB (same points)', '', pts(mem, (m) => m.heapUsed), grew(mem, (m) => m.heapUsed), '', '', peerPts((m) => m.heapUsed));
      row('stack external memory, MB (same points)', '', pts(mem, (m) => m.external), grew(mem, (m) => m.external), '', '', peerPts((m) => m.external));
      row('stack RSS / heap right after start (idle)', '', `${mb(idle.rss)} / ${mb(idle.heapUsed)}`, '', '', '(info)',
        peerIdle ? { value: `${mb(peerIdle.rss)} / ${mb(peerIdle.heapUsed)}` } : undefined);
      if (peer) {
        // The highest RSS seen at any point (after GC), each process its own.
        const peak = (points: Point[]) => Math.max(...points.map((m) => m.rss));
        row('peak RSS after GC (any point above)', '', mb(peak(mem)), '', '', peerVerdict(peer, peak(mem) < peak(peerMem), `(below ${peer.label}'s)`),
          { value: mb(peak(peerMem)), vsPeer: ratio(peak(mem), peak(peerMem)) });
      }
      const mErr = errors(samples);
      const mErrK = errors(peerRun);
      if (mErr || mErrK) row('non-200 answers (memory run)', '', String(mErr), '', '', `FAIL last: ${lastError}`, peer ? { value: String(mErrK) } : undefined);
    }

    // Process CPU per request, side by side (the stack's is also in the round-trips table below).
    const merged = new Map<string, { n: number; c: Counts; peerN: number; peerCpuUs: number }>();
    for (const r of rt) {
      const m = merged.get(r.label);
      if (!m) merged.set(r.label, { n: r.n, c: { ...r.c }, peerN: r.peerN, peerCpuUs: r.peerCpuUs });
      else {
        m.n += r.n;
        m.peerN += r.peerN;
        m.peerCpuUs += r.peerCpuUs;
        for (const k of Object.keys(r.c) as (keyof Counts)[]) m.c[k] += r.c[k];
      }
    }
    if (peer) {
      for (const [label, m] of merged) {
        if (!m.peerN) continue;
        const own = m.c.cpuUs / m.n;
        const theirs = m.peerCpuUs / m.peerN;
        row(`process CPU per request, ${label}`, '', `${own.toFixed(0)} µs`, '', '', '(info)', { value: `${theirs.toFixed(0)} µs`, vsPeer: ratio(own, theirs) });
      }
    }

    const cpuPerRequest = new Map([...merged].map(([label, m]) => [label, m.c.cpuUs / m.n]));
    if (o.dynamo) {
      for (const label of ['non-stream c=1', 'non-stream c=16']) {
        const us = cpuPerRequest.get(label)!;
        const base = o.baselineCpu?.get(label);
        row(`stack CPU per request, ${label}`, '', `${us.toFixed(0)} µs`, '', '',
          `${verdict(us <= DYNAMO_CPU_TARGET_US, `(≤ ${DYNAMO_CPU_TARGET_US / 1000} ms)`)}${base ? `; ${ratio(us, base)} the SQLite run's ${base.toFixed(0)} µs` : ''}`);
      }
    }

    console.log(['', ...tableLines(o.title, rows, peer?.label)].join('\n'));

    // Store round trips per request.
    console.log(`\nStore round trips per proxied request (counted by wrapping the ledger${o.roundTripMs ? `; each DynamoDB request takes ≥ ${o.roundTripMs} ms` : ''})`);
    console.log(`${'case'.padEnd(18)} ${'requests'.padStart(8)} ${'read'.padStart(6)} ${'reserve'.padStart(8)} ${'settle'.padStart(7)} ${'other'.padStart(6)} ${'upstream'.padStart(9)}   stack CPU per request`);
    for (const [label, { n: k, c }] of merged) {
      const f = (v: number) => (v / k).toFixed(3);
      console.log(`${label.padEnd(18)} ${String(k).padStart(8)} ${f(c.read).padStart(6)} ${f(c.reserve).padStart(8)} ${f(c.settle).padStart(7)} ${f(c.other).padStart(6)} ${f(c.upstream).padStart(9)}   ${(c.cpuUs / k).toFixed(0).padStart(6)} µs`);
    }
    const tm = (x: { n: number; syncP50: number; totalP50: number }) => (x.n ? `${x.totalP50.toFixed(0)} µs total, ${x.syncP50.toFixed(0)} µs blocking` : '—');
    console.log(`ledger call p50 at c=1 ("blocking" = event loop held before the call returns its promise; SQLite reads synchronously, and reserves and settles at the end of the turn in a shared commit):`);
    console.log(`  read ${tm(timingsC.read)} (policy-cold case); reserve ${tm(timings1.reserve)}; settle ${tm(timings1.settle)}`);

    console.log(`\nOrder per request (traced, AsyncLocalStorage on, c=1; times in ms from the stack's 'request' event, p50)`);
    console.log(`${'case'.padEnd(12)} ${'n'.padStart(3)}  before upstream: ${'read'.padStart(5)} ${'reserve'.padStart(7)} ${'other'.padStart(5)}   writes before 1st byte (besides reserve)   ${'→upstream'.padStart(9)} ${'upstream'.padStart(9)} ${'→1st byte'.padStart(9)}  target`);
    for (const x of summaries) {
      const hasUpstream = x.label !== 'cache hit';
      const ok = (!hasUpstream || (x.preRead <= 1 && x.preReserve <= 1 && x.preOther === 0)) && x.writesBeforeFirstByte === 0;
      const f = (v: number) => (hasUpstream ? v.toFixed(2) : '—');
      console.log(`${x.label.padEnd(12)} ${String(x.n).padStart(3)}  ${''.padStart(16)} ${f(x.preRead).padStart(5)} ${f(x.preReserve).padStart(7)} ${f(x.preOther).padStart(5)}   ${x.writesBeforeFirstByte.toFixed(2).padStart(40)}   ${(hasUpstream ? x.toUpstream.toFixed(3) : '—').padStart(9)} ${(hasUpstream ? x.upstreamWait.toFixed(3) : '—').padStart(9)} ${x.toFirstByte.toFixed(3).padStart(9)}  ${verdict(ok, '(≤1 read, ≤1 reserve before upstream; no write before 1st byte)')}`);
    }
    return cpuPerRequest;
  } finally {
    await stack.stop();
    rmSync(home, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------------------------------ CPU profile

function summarizeProfile(name: string, dir: string): void {
  // One file per thread: the main thread's has thread id 0 (the other is tsx's loader thread).
  const files = readdirSync(dir).filter((f) => /\.0\.\d+\.cpuprofile$/.test(f));
  if (!files.length) return console.log(`\n(no CPU profile found in ${dir})`);
  const prof = JSON.parse(readFileSync(path.join(dir, files[0]), 'utf8')) as {
    nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }[];
    samples: number[];
    timeDeltas: number[];
  };
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<number, number>();
  prof.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0)));
  // Our own files are transpiled by tsx, so their line numbers mean nothing: name them by file only.
  const label = (cf: { functionName: string; url: string; lineNumber: number }) => {
    const where = cf.url.replace(/^file:\/\//, '').replace(ROOT + '/', '');
    const own = where !== '' && !where.includes('node_modules') && !where.startsWith('node:') && !where.startsWith('wasm:');
    return { where, own, key: `${cf.functionName || '(anonymous)'} ${where || '(native)'}${own || !where ? '' : `:${cf.lineNumber + 1}`}` };
  };
  const fn = new Map<string, number>();
  const group = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const add = (m: Map<string, number>, k: string, us: number) => m.set(k, (m.get(k) ?? 0) + us);
  let busy = 0;
  for (const [id, us] of self) {
    const cf = byId.get(id)!.callFrame;
    if (cf.functionName === '(idle)') continue;
    busy += us;
    const { where, key } = label(cf);
    const g = cf.functionName.startsWith('(') ? cf.functionName
      : !where ? `(native) ${cf.functionName}`
      : /node_modules\/(@[^/]+\/[^/]+|[^/]+)/.exec(where)?.[1] ?? where;
    add(fn, key, us);
    add(group, g, us);
    // Inclusive time of our own functions (each counted once per stack).
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const l = label(byId.get(cur)!.callFrame);
      if (l.own && !l.where.startsWith('bench/') && !seen.has(l.key)) {
        seen.add(l.key);
        add(inclusive, l.key, us);
      }
    }
  }
  const top = (m: Map<string, number>, k: number) =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, k).map(([n, us]) => `  ${((100 * us) / busy).toFixed(1).padStart(5)}%  ${n}`).join('\n');
  console.log(`\nCPU profile of the ${name} stack process (${(busy / 1e6).toFixed(1)} s busy; ${path.join(dir, files[0])})`);
  console.log(`self time by package / file:\n${top(group, 16)}`);
  console.log(`self time by function:\n${top(fn, 16)}`);
  console.log(`inclusive time of the project's functions:\n${top(inclusive, 16)}`);
}

// ------------------------------------------------------------------------------------------ main

let args: ReturnType<typeof parseBenchArgs>;
try {
  args = parseBenchArgs(process.argv.slice(2));
} catch (err) {
  console.error(`bench: ${(err as Error).message}`);
  process.exit(2);
}

const started = performance.now();
console.log(`openai-wrapi proxy bench: node ${process.version}, ${os.cpus().length} CPUs, ${N1} non-streamed requests per side at c=1` +
  ` (BENCH_REQUESTS), ${MEM_REQUESTS} for memory (BENCH_MEM_REQUESTS); DynamoDB run ${DYNAMO ? `at ${DYNAMO_SCALE}x with a ${DELAY_MS} ms DynamoDB round trip` : 'off'}`);
console.log('All latencies are measured in this process (the load generator); fake upstream, stack and dynalite run in child processes.');

// Installing first: a failed install should cost no child process.
let peerDir: string | undefined;
try {
  peerDir = args.peer ? ensureInstalled(args.peer, (msg) => process.stderr.write(`  [peer] ${msg}\n`)) : undefined;
} catch (err) {
  console.error(`bench: could not install the peer: ${(err as Error).message}`);
  process.exit(1);
}
const fake = await Child.start('fake');
const children: Child[] = [fake];
let peer: RunningPeer | undefined;
if (args.peer && peerDir) {
  peer = await startPeer(args.peer, peerDir, fake.ready.url, fake.ready.apiKey);
  children.push(peer.child);
  console.log(`Peer: ${peer.package} in its own process on ${peer.host}:${peer.port}, forwarding to the same fake upstream; it runs in the SQLite run only.`);
}
const signerFor = async (home: string) => {
  const user = (await loadOrCreateCredentials(home)).users.find((u) => u.name === 'default')!;
  return new SignatureV4({ credentials: { accessKeyId: user.accessKeyId, secretAccessKey: user.secretAccessKey }, region: 'us-east-1', service: 'lambda', sha256: NodeSha256 });
};
const profDir = (name: string) => (CPU_PROF ? mkdtempSync(path.join(os.tmpdir(), `wrapi-prof-${name}-`)) : undefined);
const profiles: [string, string][] = [];
try {
  const sqliteProf = profDir('sqlite');
  const sqliteCpu = await runLedger(fake, signerFor, {
    title: `SQLite ledger (the local stack default)${peer ? `, beside ${peer.package}` : ''}`,
    scale: SCALE,
    peer,
    memRequests: MEM_REQUESTS,
    roundTripMs: 0,
    cpuProf: sqliteProf,
  });
  if (sqliteProf) profiles.push(['SQLite', sqliteProf]);
  if (DYNAMO) {
    const dynamo = await Child.start('dynalite', { BENCH_ROUND_TRIP_MS: String(DELAY_MS) });
    children.push(dynamo);
    const dynamoProf = profDir('dynamo');
    await runLedger(fake, signerFor, {
      title: `DynamoDB ledger (dynalite answering each request after ${DELAY_MS} ms: what a Lambda user sees)`,
      scale: SCALE * DYNAMO_SCALE,
      memRequests: Math.round(MEM_REQUESTS * DYNAMO_SCALE),
      dynamo,
      roundTripMs: DELAY_MS,
      cpuProf: dynamoProf,
      baselineCpu: sqliteCpu,
    });
    if (dynamoProf) profiles.push(['DynamoDB', dynamoProf]);
  }
  for (const [name, dir] of profiles) summarizeProfile(name, dir);
} finally {
  for (const c of children.reverse()) await c.stop();
  agent.destroy();
}
console.log(`\nbench took ${((performance.now() - started) / 1000).toFixed(0)} s`);
