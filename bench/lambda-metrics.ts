// What the proxy Lambda's CloudWatch metrics (Powertools, Embedded Metric Format) and budget-alert
// detection add to a call, measured on the Lambda handler itself (runtime/lambda/proxy.ts) in one run
// against baselines of the same run:
//   deployed            the handler as deployed: metrics on, the project's limit watched for alerts
//   no metrics          the same handler with a stand-in that publishes nothing
//   no alert watching   metrics on, the project's limit set with `alerts none` (nothing watched)
// Each round makes one streamed chat call per variant, in rotating order, so machine noise hits all
// three alike. Per call: the first body byte, the end of the response (what the caller waits for),
// the end of the invocation (settlement and metrics included: what Lambda bills), and this process's
// CPU time. DynamoDB is dynalite and OpenAI the fake upstream, each in a process of its own; the
// handler's log and EMF lines go to /dev/null, as Lambda's go to its log pipe.
// Then, on the deployed handler, the time spent inside the metrics code before the response ended
// and after it.
// Run: npx tsx bench/lambda-metrics.ts   (BENCH_ROUNDS, default 300: about 20 s)
import { openSync, writeSync } from 'node:fs';
import { Writable } from 'node:stream';
import { performance } from 'node:perf_hooks';
import '../test/helpers/awslambda-stub.ts'; // the runtime's `awslambda` global (streamifyResponse, HttpResponseStream)
import { setDeployedEnv } from '../test/helpers/deployed-env.ts';
import { dynamoClient } from '../test/helpers/dynalite.ts';
import { IAM_EVENT, jsonEvent } from '../test/helpers/url-events.ts';
import type { FunctionUrlEvent } from '../runtime/lambda/function-url.ts';
import { createCallMetrics, type CallMetrics, type CallRecord } from '../runtime/lambda/call-metrics.ts';
import { ensureLedgerTable } from '../runtime/store/dynamo-ledger.ts';
import { Child } from './child.ts';
import { pct } from './table.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 300);
const WARMUP = 30;
const TABLE = 'openai-wrapi-bench-metrics';

const [fake, dynalite] = await Promise.all([Child.start('fake'), Child.start('dynalite')]);
await ensureLedgerTable(dynamoClient(dynalite.ready.endpoint), TABLE);
setDeployedEnv({ table: TABLE, dynamodbEndpoint: dynalite.ready.endpoint, upstreamUrl: fake.ready.url, apiKey: fake.ready.apiKey });

// The handler's stdout (log lines, EMF) to /dev/null with a real write per line, as Lambda writes its
// log pipe; the bench's own table goes to stderr.
const devNull = openSync('/dev/null', 'w');
process.stdout.write = ((chunk: string | Uint8Array) => (typeof chunk === 'string' ? writeSync(devNull, chunk) : writeSync(devNull, chunk), true)) as typeof process.stdout.write;
const print = (line = '') => process.stderr.write(`${line}\n`);

const { createProxyHandler } = await import('../runtime/lambda/proxy.ts');
const { lambdaLogger } = await import('../runtime/lambda/logger.ts');
const admin = (await import('../runtime/lambda/admin.ts')).handler as (e: unknown) => Promise<{ ok: boolean }>;

/** The metrics interface with nothing behind it: the core's events still go to the logger. */
const noMetrics: CallMetrics = {
  logger: lambdaLogger,
  timed: (upstream) => upstream,
  begin: () => ({ startedAt: 0, properties: {}, spentNano: 0, savedNano: 0, ledgerErrors: 0, unsettled: false }),
  firstByte() {},
  publish() {},
};
const deployedMetrics = () => createCallMetrics({ stage: 'dev', log: lambdaLogger });

type Handler = ReturnType<typeof createProxyHandler>;
const variants: { name: string; handler: Handler; project: string }[] = [
  { name: 'deployed (metrics, alerts watched)', handler: createProxyHandler(deployedMetrics()), project: 'watched' },
  { name: 'no metrics', handler: createProxyHandler(noMetrics), project: 'watched' },
  { name: 'no alert watching', handler: createProxyHandler(deployedMetrics()), project: 'unwatched' },
];
for (const request of [
  { action: 'setLimit', project: 'watched', limit: 1_000_000 }, // 80% and 100% watched by every settlement
  { action: 'setLimit', project: 'unwatched', limit: 1_000_000, alerts: 'none' },
]) {
  if (!(await admin(request)).ok) throw new Error(`could not set up: ${JSON.stringify(request)}`);
}

function eventFor(project: string): FunctionUrlEvent {
  return jsonEvent(IAM_EVENT, { model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'Metrics bench. fake:words=20' }] }, project);
}

/**
 * The runtime's response stream, reduced to what the handler uses: the prelude goes out before the
 * first write (HttpResponseStream installs it), and the times of the first body byte and the end.
 */
class TimedResponse extends Writable {
  firstByteAt?: number;
  endAt?: number;
  status?: number;
  private preludeSent = false;
  _onBeforeFirstWrite?: (write: (chunk: unknown) => boolean) => void;
  setContentType(_type: string): void {}
  override write(chunk: unknown, ...rest: unknown[]): boolean {
    if (!this.preludeSent) {
      this.preludeSent = true;
      this._onBeforeFirstWrite?.((c) => {
        if (typeof c === 'string' && c.startsWith('{')) this.status = JSON.parse(c).statusCode;
        return super.write(c as Uint8Array);
      });
    }
    if (this.firstByteAt === undefined && (chunk as Uint8Array).length > 0) this.firstByteAt = performance.now();
    return (super.write as (...a: unknown[]) => boolean)(chunk, ...rest);
  }
  override _write(_chunk: unknown, _encoding: string, callback: () => void): void {
    callback();
  }
  override _final(callback: () => void): void {
    this.endAt = performance.now();
    callback();
  }
}

interface Sample {
  firstByte: number;
  end: number;
  invocation: number;
  cpuUs: number;
}

async function invoke(handler: Handler, project: string): Promise<Sample> {
  const response = new TimedResponse();
  const context = { awsRequestId: 'bench', functionName: 'openai-proxy-dev', getRemainingTimeInMillis: () => 600_000 };
  const cpu = process.cpuUsage();
  const started = performance.now();
  await (handler as unknown as (e: FunctionUrlEvent, s: Writable, c: unknown) => Promise<void>)(eventFor(project), response, context);
  const done = performance.now();
  const used = process.cpuUsage(cpu);
  if (response.status !== 200 || response.endAt === undefined) throw new Error(`a call answered ${response.status}`);
  return { firstByte: response.firstByteAt! - started, end: response.endAt - started, invocation: done - started, cpuUs: used.user + used.system };
}

const samples = variants.map(() => [] as Sample[]);
const started = Date.now();
for (let round = 0; round < WARMUP + ROUNDS; round++) {
  for (let k = 0; k < variants.length; k++) {
    const i = (round + k) % variants.length;
    const sample = await invoke(variants[i].handler, variants[i].project);
    if (round >= WARMUP) samples[i].push(sample);
  }
}
const seconds = (Date.now() - started) / 1000;

const p50 = (xs: number[]) => pct(xs, 50);
const column = (i: number, key: keyof Sample) => samples[i].map((s) => s[key]);
/** Per round, variant a minus variant b (paired: the two calls ran back to back), median. */
const pairedDiff = (a: number, b: number, key: keyof Sample) => p50(samples[a].map((s, r) => s[key] - samples[b][r][key]));
const f = (v: number, unit = 'ms', digits = 3) => `${v.toFixed(digits)} ${unit}`;

print(`Lambda proxy handler, streamed chat, c=1: ${ROUNDS} rounds (after ${WARMUP} warm-up), one call per variant each, order rotated; ${seconds.toFixed(0)} s`);
print('');
const header = ['variant', 'first byte p50', 'response end p50', 'response end p99', 'invocation end p50', 'CPU per call p50'];
const rows = variants.map((v, i) => [
  v.name, f(p50(column(i, 'firstByte'))), f(p50(column(i, 'end'))), f(pct(column(i, 'end'), 99)), f(p50(column(i, 'invocation'))), f(p50(column(i, 'cpuUs')), 'µs', 0),
]);
const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
for (const r of [header, ...rows]) print(r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  '));
print('');

/** One comparison: deployed against a baseline, as a ratio of medians and a median paired difference. */
function compare(what: string, baseline: number) {
  print(`${what} (deployed vs ${variants[baseline].name}):`);
  for (const [label, key, unit] of [['first byte', 'firstByte', 'ms'], ['response end', 'end', 'ms'], ['invocation end', 'invocation', 'ms'], ['CPU per call', 'cpuUs', 'µs']] as const) {
    const ratio = p50(column(0, key)) / p50(column(baseline, key));
    const diff = pairedDiff(0, baseline, key);
    print(`  ${label.padEnd(15)} ×${ratio.toFixed(3)}   paired difference p50 ${diff >= 0 ? '+' : ''}${f(diff, unit, unit === 'ms' ? 3 : 0)}`);
  }
}
compare('Metrics', 1);
compare('Alert watching', 2);

/** What a caller waits for must not grow: the response's end within 5% of the baseline's (p50). */
const MAX_RESPONSE_END_RATIO = 1.05;
const endRatio = (baseline: number) => p50(column(0, 'end')) / p50(column(baseline, 'end'));
const verdict = (ok: boolean) => (ok ? 'PASS' : 'FAIL');

// Where the metrics code runs: a deployed handler whose metrics are timed, method by method, and
// each time counted before or after the end of that call's response.
const inside = { before: 0, after: 0 };
let responseEnded = false;
function timedMetrics(m: CallMetrics): CallMetrics {
  const time = <T>(run: () => T): T => {
    const t = performance.now();
    try {
      return run();
    } finally {
      inside[bucket()] += performance.now() - t;
    }
  };
  return {
    logger: { info: (msg, fields) => time(() => m.logger.info(msg, fields)), error: (msg, fields) => time(() => m.logger.error(msg, fields)) },
    timed: (upstream) => {
      // The upstream call starts synchronously inside the wrapper: its time is not the metrics'.
      let upstreamMs = 0;
      const wrapped = m.timed((input, init) => {
        const t = performance.now();
        try {
          return upstream(input, init);
        } finally {
          upstreamMs = performance.now() - t;
        }
      });
      return (input, init) => {
        const t = performance.now();
        const result = wrapped(input, init);
        inside[bucket()] += performance.now() - t - upstreamMs;
        return result;
      };
    },
    begin: () => time(() => m.begin()),
    firstByte: (r: CallRecord) => time(() => m.firstByte(r)),
    publish: (r, a) => time(() => m.publish(r, a)),
  };
}
// The log lines themselves are written with or without metrics: their time is taken back out.
const bucket = () => (responseEnded ? 'after' : 'before');
const untimedLog = (write: () => void) => {
  const t = performance.now();
  write();
  inside[bucket()] -= performance.now() - t;
};
const timed = createProxyHandler(
  timedMetrics(
    createCallMetrics({
      stage: 'dev',
      log: { info: (m, f) => untimedLog(() => lambdaLogger.info(m, f)), error: (m, f) => untimedLog(() => lambdaLogger.error(m, f)) },
    }),
  ),
);
const TIMED_CALLS = Math.max(50, Math.floor(ROUNDS / 3));
for (let n = 0; n < WARMUP + TIMED_CALLS; n++) {
  if (n === WARMUP) inside.before = inside.after = 0;
  const response = new TimedResponse();
  const endHook = response._final.bind(response);
  response._final = (cb) => {
    responseEnded = true;
    endHook(cb);
  };
  responseEnded = false;
  await (timed as unknown as (e: FunctionUrlEvent, s: Writable, c: unknown) => Promise<void>)(eventFor('watched'), response, { awsRequestId: 'bench' });
}
print('');
print(`Metrics code on the deployed handler, per call (${TIMED_CALLS} calls; the log lines' own writes left out):`);
const beforeUs = (inside.before / TIMED_CALLS) * 1000;
print(`  before the response ended: ${f(beforeUs, 'µs', 1)}   after it: ${f((inside.after / TIMED_CALLS) * 1000, 'µs', 1)}`);
/** The metrics' share of the request path: a few property writes and clock reads, timer overhead included. */
const MAX_METRICS_BEFORE_END_US = 50;
print('');
print('Targets (no added latency on the request path from metrics or alert detection):');
print(`  metrics: response end ×${endRatio(1).toFixed(3)} of no metrics (≤ ×${MAX_RESPONSE_END_RATIO}), metrics code before it ${beforeUs.toFixed(1)} µs (≤ ${MAX_METRICS_BEFORE_END_US} µs): ${verdict(endRatio(1) <= MAX_RESPONSE_END_RATIO && beforeUs <= MAX_METRICS_BEFORE_END_US)}`);
print(`  alert watching: response end ×${endRatio(2).toFixed(3)} of no watching (≤ ×${MAX_RESPONSE_END_RATIO}): ${verdict(endRatio(2) <= MAX_RESPONSE_END_RATIO)}`);

await Promise.all([fake.stop(), dynalite.stop()]);
process.exit(0);
