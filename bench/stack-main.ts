/**
 * Child-process entry for bench/proxy.ts, so the load generator, the fake upstream and the stack
 * each have their own event loop. Started with `node --import tsx bench/stack-main.ts <role>`
 * through child_process.fork (an IPC channel is required); the parent talks to it by messages.
 *
 *   fake      the fake OpenAI upstream (runtime/local/simulated-openai.ts) on a free 127.0.0.1 port
 *   dynalite  an in-memory dynalite (DynamoDB-compatible) on a free 127.0.0.1 port:
 *             env BENCH_ROUND_TRIP_MS  no answer leaves sooner than this after its request arrived
 *             (a DynamoDB round trip in AWS, its service time included; dynalite's own time hides under it)
 *   stack     the local stack (runtime/local/stack.ts) with an instrumented ledger:
 *             env BENCH_HOME        data folder (credentials, SQLite files)
 *             env BENCH_UPSTREAM    fake upstream base URL (…/v1), BENCH_UPSTREAM_KEY its key
 *             env BENCH_DYNAMODB    dynalite endpoint: use the DynamoDB ledger instead of SQLite
 *             env BENCH_ACCEPT_ENCODING  accept-encoding of the upstream calls (default gzip: keep the core's identity)
 *
 * The stack child counts ledger calls per method (and how long they block the event loop), and on
 * request records, per proxied request, the order of ledger calls, the upstream call and the first
 * byte written to the client (AsyncLocalStorage, switched on only while tracing: it costs time).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import http from 'node:http';
import { performance } from 'node:perf_hooks';

type Msg = { id?: number; cmd: string; [k: string]: unknown };
const send = (m: unknown) => process.send!(m);
const role = process.argv[2];
if (!process.send) {
  console.error('bench/stack-main.ts must be started by bench/proxy.ts (it needs an IPC channel)');
  process.exit(2);
}

function serve(handlers: Record<string, (m: Msg) => Promise<unknown> | unknown>): void {
  process.on('message', async (m: Msg) => {
    try {
      const h = handlers[m.cmd];
      if (!h) throw new Error(`unknown command ${m.cmd}`);
      send({ id: m.id, ok: true, value: await h(m) });
    } catch (err) {
      send({ id: m.id, ok: false, error: err instanceof Error ? err.message : String(err) });
    }
  });
  // The parent going away (even killed) must not leave us running.
  process.on('disconnect', () => process.exit(0));
}

const memory = () => {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers };
};

if (role === 'fake') {
  const { startFakeOpenAI } = await import('../runtime/local/simulated-openai.ts');
  const fake = await startFakeOpenAI({});
  // The fixture records every request for tests; a bench sends ~100k, so forget them as we go.
  setInterval(() => (fake.requests.length = 0), 500).unref();
  serve({
    memory,
    stop: async () => {
      await fake.close();
      setImmediate(() => process.exit(0));
    },
  });
  send({ ready: true, url: fake.url, apiKey: fake.apiKey });
} else if (role === 'dynalite') {
  const { startDynalite } = await import('../test/helpers/dynalite.ts');
  const server = await startDynalite();
  const roundTripMs = Number(process.env.BENCH_ROUND_TRIP_MS ?? 0);
  // Each answer is held until its round trip is over: parallel requests wait in parallel, as they do
  // on DynamoDB. The wait is a timer here, not in the stack, so the stack's CPU is what a network
  // wait costs it (one wake-up for the reply).
  if (roundTripMs > 0) {
    server.server.prependListener('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
      const due = performance.now() + roundTripMs;
      const end = res.end;
      res.end = function (this: http.ServerResponse, ...args: unknown[]) {
        const wait = due - performance.now();
        if (wait <= 0) return end.apply(this, args as never);
        setTimeout(() => end.apply(this, args as never), wait);
        return this;
      } as typeof res.end;
    });
  }
  serve({
    memory,
    stop: async () => {
      await server.close();
      setImmediate(() => process.exit(0));
    },
  });
  send({ ready: true, endpoint: server.endpoint });
} else if (role === 'stack') {
  const { startLocalStack } = await import('../runtime/local/stack.ts');
  const { createHttpUpstream } = await import('../runtime/store/http-upstream.ts');
  type Ledger = import('../runtime/core/ports.ts').Ledger;
  const env = process.env;
  const HOT = ['read', 'reserve', 'settle'] as const;

  // ---- counters (always on; a few ns per call)
  const counts: Record<string, number> = { read: 0, reserve: 0, settle: 0, other: 0, upstream: 0 };
  /** µs each call kept the event loop busy before returning its promise (SQLite: the whole of a read; its writes wait for their turn's shared commit). */
  const syncUs: Record<string, number[]> = { read: [], reserve: [], settle: [] };
  /** µs from call to settled promise (DynamoDB: the injected round trips included). */
  const totalUs: Record<string, number[]> = { read: [], reserve: [], settle: [] };
  let inFlight = 0;
  const keep = (xs: number[], v: number) => {
    if (xs.length < 200_000) xs.push(v);
  };

  // ---- tracing (only between trace-start and trace-stop)
  interface Trace { t0: number; events: [string, number][]; firstByte: boolean }
  let als: AsyncLocalStorage<Trace> | undefined;
  let traces: Trace[] = [];
  const mark = (name: string) => {
    const t = als?.getStore();
    if (t) t.events.push([name, performance.now() - t.t0]);
  };

  const wrapLedger = (ledger: Ledger): Ledger => {
    const wrapped = Object.create(null) as Record<string, unknown>;
    for (const name of Object.keys(ledger) as (keyof Ledger)[]) {
      const fn = ledger[name] as ((...a: unknown[]) => Promise<unknown>) | undefined;
      if (typeof fn !== 'function') continue;
      const hot = (HOT as readonly string[]).includes(name) ? name : undefined;
      wrapped[name] = async (...args: unknown[]) => {
        if (name === 'close') return fn.apply(ledger, args);
        counts[hot ?? 'other']++;
        mark(`ledger.${name}`);
        inFlight++;
        const start = performance.now();
        try {
          const p = fn.apply(ledger, args);
          if (hot) keep(syncUs[hot], (performance.now() - start) * 1000);
          const v = await p;
          if (hot) keep(totalUs[hot], (performance.now() - start) * 1000);
          return v;
        } finally {
          inFlight--;
        }
      };
    }
    return wrapped as unknown as Ledger;
  };

  // BENCH_ACCEPT_ENCODING other than gzip: the accept-encoding the upstream hop sends instead of the core's.
  const encoding = env.BENCH_ACCEPT_ENCODING && env.BENCH_ACCEPT_ENCODING !== 'gzip' ? env.BENCH_ACCEPT_ENCODING : undefined;
  // The transport the stack and the Lambda ship with (node:http keep-alive agents), counted and traced.
  const transport = createHttpUpstream();
  const upstream = async (url: string, init: RequestInit) => {
    counts.upstream++;
    mark('upstream.call');
    if (encoding) (init.headers as Headers).set('accept-encoding', encoding);
    const res = await transport(url, init);
    mark('upstream.headers');
    return res;
  };

  const stack = await startLocalStack({
    home: env.BENCH_HOME,
    port: 0,
    env: {
      OPENAI_WRAPI_UPSTREAM_URL: env.BENCH_UPSTREAM,
      OPENAI_API_KEY: env.BENCH_UPSTREAM_KEY,
      OPENAI_WRAPI_DYNAMODB_ENDPOINT: env.BENCH_DYNAMODB || undefined,
      OPENAI_WRAPI_TABLE_PREFIX: 'bench',
      // prod serves the "policy cache cold" case: limits and prices read on every call.
      OPENAI_WRAPI_POLICY_CACHE_MS_PROD: '0',
    },
    upstream,
    wrapLedger: (ledger) => wrapLedger(ledger),
  });
  for (const s of Object.values(stack.stages)) {
    await s.admin({ action: 'setLimit', project: 'bench', limit: 1_000_000 });
    // Rate limits no bench run reaches: their cost is the window taken and settled on every call.
    await s.admin({ action: 'setLimit', project: 'bench-rated', limit: 1_000_000, rpm: 1_000_000_000, tpm: 1_000_000_000 });
  }

  // First byte towards the client: the first write()/end() of a proxied response while tracing.
  const proto = http.ServerResponse.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
  const origWrite = proto.write;
  const origEnd = proto.end;
  const ownWrite = Object.prototype.hasOwnProperty.call(proto, 'write');
  const ownEnd = Object.prototype.hasOwnProperty.call(proto, 'end');
  const restore = () => {
    if (ownWrite) proto.write = origWrite;
    else delete proto.write;
    if (ownEnd) proto.end = origEnd;
    else delete proto.end;
  };
  const firstByte = () => {
    const t = als?.getStore();
    if (t && !t.firstByte) {
      t.firstByte = true;
      mark('client.first-byte');
    }
  };

  const pct = (xs: number[], p: number) => {
    if (!xs.length) return NaN;
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
  };

  serve({
    memory,
    counts: () => {
      const cpu = process.cpuUsage();
      return { ...counts, inFlight, cpuUs: cpu.user + cpu.system };
    },
    /** Ledger timings since the last reset: p50 of blocking and total µs per hot method. */
    timings: () =>
      Object.fromEntries(HOT.map((h) => [h, { n: syncUs[h].length, syncP50: pct(syncUs[h], 50), totalP50: pct(totalUs[h], 50) }])),
    resetTimings: () => {
      for (const h of HOT) {
        syncUs[h].length = 0;
        totalUs[h].length = 0;
      }
      return true;
    },
    traceStart: () => {
      traces = [];
      als = new AsyncLocalStorage<Trace>();
      const store = als;
      const origEmit = http.Server.prototype.emit as (this: http.Server, event: string, ...args: unknown[]) => boolean;
      (http.Server.prototype as unknown as { emit: unknown }).emit = function (this: http.Server, event: string, ...args: unknown[]) {
        if (event !== 'request') return origEmit.call(this, event, ...args);
        const t: Trace = { t0: performance.now(), events: [], firstByte: false };
        traces.push(t);
        return store.run(t, () => origEmit.call(this, event, ...args));
      };
      proto.write = function (this: unknown, ...a: unknown[]) {
        firstByte();
        return origWrite.apply(this, a);
      };
      proto.end = function (this: unknown, ...a: unknown[]) {
        firstByte();
        return origEnd.apply(this, a);
      };
      return true;
    },
    traceStop: () => {
      delete (http.Server.prototype as unknown as { emit?: unknown }).emit;
      restore();
      als?.disable();
      als = undefined;
      const out = traces.map((t) => t.events);
      traces = [];
      return out;
    },
    stop: async () => {
      await stack.close();
      // --cpu-prof writes its file on a normal exit.
      setImmediate(() => process.exit(0));
    },
  });
  send({ ready: true, url: stack.url, home: stack.home, stores: Object.values(stack.stages).map((s) => `${s.stage}: ${s.stores}`) });
} else {
  console.error(`unknown role ${role}`);
  process.exit(2);
}
