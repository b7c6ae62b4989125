// The proxy's CloudWatch metrics, in Embedded Metric Format: JSON lines on stdout that CloudWatch Logs
// turns into metrics, so no API call is made on the request path. They are derived from the events the
// core logs anyway ('call', 'error response', ledger failures), which keeps the core platform-neutral:
// this logger adapter watches them go by and the handler publishes once per invocation, before it
// returns (Lambda may freeze the instance after that).
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { METRICS, type CallOutcome } from '../core/contract.ts';
import type { Logger, Upstream } from '../core/ports.ts';

const M = METRICS.names;

/** Error events that are a failed ledger read or write; a failed settlement also leaves the call unsettled. */
export const LEDGER_FAILURES = [
  'ledger unreachable',
  'settle failed',
  'releasing a reservation failed',
  'recording a cache hit failed',
  'remembering a response failed',
] as const;
const UNSETTLED = 'settle failed';

/** What one invocation did, as far as its metrics go. */
export interface CallRecord {
  startedAt: number;
  route?: string;
  outcome?: CallOutcome;
  properties: Record<string, string | number>;
  spentNano: number;
  savedNano: number;
  cache?: 'hit' | 'miss';
  upstreamAt?: number;
  firstByteAt?: number;
  ledgerErrors: number;
  unsettled: boolean;
}

export interface Answer {
  route: string;
  status: number;
  outcome?: CallOutcome;
}

export interface CallMetrics {
  /** Forwards to `log`, and notes the events that make metrics in the current invocation's record. */
  logger: Logger;
  /** The upstream, noting when the current call left for OpenAI. */
  timed(upstream: Upstream): Upstream;
  /** Starts the record of an invocation (Lambda runs one at a time per instance). */
  begin(): CallRecord;
  /** The first body byte went to the caller. */
  firstByte(record: CallRecord): void;
  /**
   * Writes the record's metrics. `route` and `status` fill in for calls that logged no call event;
   * `outcome` is the handler's own answer when the core never ran (a failed cold start, an unsigned caller).
   */
  publish(record: CallRecord, answer: Answer): void;
}

export function createCallMetrics(opts: { stage: string; log: Logger; now?: () => number }): CallMetrics {
  const { stage, log } = opts;
  const now = opts.now ?? (() => performance.now());
  const metrics = new Metrics({ namespace: METRICS.namespace, serviceName: 'openai-proxy' });
  // No `service` dimension (one function, one value): the dimensions are exactly the contract's.
  metrics.clearDefaultDimensions();
  let current: CallRecord | undefined;

  function observe(message: string, fields: Record<string, unknown> = {}): void {
    const record = current;
    if (!record) return;
    if (message === 'call') {
      const cacheHit = fields.cache === 'hit';
      record.route = String(fields.route);
      record.outcome = cacheHit ? 'served' : outcomeOfCall(fields.outcome, Number(fields.status));
      for (const key of ['project', 'user', 'model'] as const) if (typeof fields[key] === 'string') record.properties[key] = fields[key];
      if (cacheHit) record.savedNano += Number(fields.saved) || 0;
      else record.spentNano += Number(fields.cost) || 0;
      if (fields.cache === 'hit' || fields.cache === 'miss') record.cache = fields.cache;
    } else if (message === 'error response') {
      record.outcome ??= outcomeOfRefusal(Number(fields.status), typeof fields.code === 'string' ? fields.code : undefined);
      if (typeof fields.code === 'string') record.properties.code = fields.code;
      if (typeof fields.user === 'string') record.properties.user ??= fields.user;
    } else if (message === 'proxy error') {
      record.outcome ??= 'proxy_error';
    } else if ((LEDGER_FAILURES as readonly string[]).includes(message)) {
      record.ledgerErrors += 1;
      if (message === UNSETTLED) record.unsettled = true;
    }
  }

  return {
    logger: {
      info(message, fields) {
        log.info(message, fields);
        observe(message, fields);
      },
      error(message, fields) {
        log.error(message, fields);
        observe(message, fields);
      },
    },
    timed: (upstream) => (input, init) => {
      if (current) current.upstreamAt ??= now();
      return upstream(input, init);
    },
    begin() {
      current = { startedAt: now(), properties: {}, spentNano: 0, savedNano: 0, ledgerErrors: 0, unsettled: false };
      return current;
    },
    firstByte(record) {
      record.firstByteAt ??= now();
    },
    publish(record, answer) {
      if (current === record) current = undefined;
      try {
        write(record, answer);
      } catch (err) {
        // Metrics never fail a call; the line says which metric was refused (names and numbers only).
        log.error('metrics not published', { error: err instanceof Error ? err.message : 'unknown' });
      }
    },
  };

  function write(record: CallRecord, answer: Answer): void {
    const route = record.route ?? answer.route;
    const outcome = answer.outcome ?? record.outcome ?? outcomeOfStatus(answer.status);
    // Traffic: one count per call, by route and outcome (refusals by reason are outcomes).
    metrics.addDimensions({ stage, route, outcome });
    metrics.addMetric(M.requests, MetricUnit.Count, 1);
    metrics.publishStoredMetrics();

    // Everything else by stage only, with the call's details as properties for Logs Insights.
    metrics.addDimension('stage', stage);
    for (const [key, value] of Object.entries({ route, outcome, status: answer.status, ...record.properties })) metrics.addMetadata(key, String(value));
    if (record.spentNano > 0) metrics.addMetric(M.spendUsd, MetricUnit.NoUnit, record.spentNano / 1e9);
    if (record.savedNano > 0) metrics.addMetric(M.savedUsd, MetricUnit.NoUnit, record.savedNano / 1e9);
    if (record.cache === 'hit') metrics.addMetric(M.cacheHits, MetricUnit.Count, 1);
    if (record.cache === 'miss') metrics.addMetric(M.cacheMisses, MetricUnit.Count, 1);
    if (outcome === 'estimated') metrics.addMetric(M.estimatedCalls, MetricUnit.Count, 1);
    if (record.unsettled) metrics.addMetric(M.unsettledCalls, MetricUnit.Count, 1);
    if (record.ledgerErrors > 0) metrics.addMetric(M.ledgerErrors, MetricUnit.Count, record.ledgerErrors);
    if (record.upstreamAt !== undefined) metrics.addMetric(M.addedLatency, MetricUnit.Milliseconds, ms(record.upstreamAt - record.startedAt));
    if (record.firstByteAt !== undefined) metrics.addMetric(M.timeToFirstByte, MetricUnit.Milliseconds, ms(record.firstByteAt - record.startedAt));
    if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
    else {
      metrics.clearDimensions();
      metrics.clearMetadata();
    }
  }
}

const ms = (value: number) => Math.max(0, Math.round(value * 10) / 10);

/** A call OpenAI was asked: billed by its usage, by estimate, or free because it failed. */
function outcomeOfCall(billed: unknown, status: number): CallOutcome {
  if (billed === 'estimate') return 'estimated';
  if (billed === 'free' || status >= 400) return 'upstream_error';
  return 'served';
}

/** The proxy's own codes for an OpenAI that failed, refused the stage's key, or never answered. */
const UPSTREAM_CODES = new Set(['upstream_unreachable', 'upstream_timeout', 'upstream_interrupted', 'stage_key_rejected']);

/** A call the proxy answered with an error of its own, by the error's code. */
export function outcomeOfRefusal(status: number, code: string | undefined): CallOutcome {
  if (code === 'budget_exceeded' || code === 'project_not_allowed') return 'refused_budget';
  if (status === 429) return 'refused_rate';
  if (status === 401 || status === 403) return 'refused_membership';
  if (status >= 500) return code && UPSTREAM_CODES.has(code) ? 'upstream_error' : 'proxy_error';
  return 'invalid_request';
}

/** Calls with no event of their own: unmetered routes, forwarded as OpenAI answered them. */
const outcomeOfStatus = (status: number): CallOutcome => (status < 400 ? 'served' : 'upstream_error');
