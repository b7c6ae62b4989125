// The Lambda's metrics adapter (runtime/lambda/call-metrics.ts) on its own: which outcome each kind
// of answer counts as, ledger failures and unsettled calls, and that the events it watches for are
// the ones the core really logs (the adapter matches them by message).
import { readdirSync, readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { LEDGER_FAILURES, createCallMetrics, outcomeOfRefusal } from '../runtime/lambda/call-metrics.ts';
import type { Logger } from '../runtime/core/ports.ts';

const test = suite('call metrics');

/** The EMF lines `run` writes to stdout, parsed. */
function emfLines(run: () => void): any[] {
  const chunks: string[] = [];
  const write = process.stdout.write;
  process.stdout.write = ((chunk: unknown) => chunks.push(String(chunk)) > 0) as typeof write;
  try {
    run();
  } finally {
    process.stdout.write = write;
  }
  return chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((l) => l._aws);
}

function setup() {
  const logged: [string, string][] = [];
  const log: Logger = { info: (m) => logged.push(['info', m]), error: (m) => logged.push(['error', m]) };
  let clock = 1000;
  const metrics = createCallMetrics({ stage: 'prod', log, now: () => clock });
  return { metrics, logged, tick: (ms: number) => (clock += ms) };
}

test('refusals count by reason: budget (and projects without a limit), rate, membership; other answers by kind', () => {
  const cases: [number, string | undefined, string][] = [
    [429, 'budget_exceeded', 'refused_budget'],
    [403, 'project_not_allowed', 'refused_budget'],
    [429, 'rate_limit_exceeded', 'refused_rate'],
    [403, 'project_access_denied', 'refused_membership'],
    [400, 'model_not_priced', 'invalid_request'],
    [404, 'unknown_url', 'invalid_request'],
    [413, 'request_too_large', 'invalid_request'],
    [502, 'upstream_unreachable', 'upstream_error'],
    [504, 'upstream_timeout', 'upstream_error'],
    [502, 'upstream_interrupted', 'upstream_error'],
    [502, 'stage_key_rejected', 'upstream_error'],
    [503, 'ledger_unavailable', 'proxy_error'],
  ];
  assert.equal(cases.map(([status, code]) => outcomeOfRefusal(status, code)), cases.map((c) => c[2]));
});

test('a failed settlement counts as a ledger error and an unsettled call; the log lines still go through', () => {
  const { metrics, logged, tick } = setup();
  const record = metrics.begin();
  metrics.logger.info('call', { stage: 'prod', route: 'responses', project: 'p', user: 'u', model: 'gpt-4o', status: 200, cost: 2_500_000, outcome: 'estimate', cache: 'bypass' });
  metrics.logger.error('settle failed', { error: 'TimeoutError' });
  metrics.logger.error('remembering a response failed', { error: 'TimeoutError' });
  tick(12);
  metrics.firstByte(record);
  const [requests, byStage] = emfLines(() => metrics.publish(record, { route: 'unknown', status: 200 }));
  assert.equal([requests.stage, requests.route, requests.outcome], ['prod', 'responses', 'estimated']);
  assert.equal(
    [byStage.SpendUsd, byStage.EstimatedCalls, byStage.UnsettledCalls, byStage.LedgerErrors, byStage.TimeToFirstByte],
    [0.0025, 1, 1, 2, 12],
  );
  assert.is(byStage.CacheMisses, undefined, 'caching was off: neither a hit nor a miss');
  assert.equal(logged.map((l) => l[1]), ['call', 'settle failed', 'remembering a response failed']);
});

test('a call with no event of its own (an unmetered route) counts by its status; the handler\'s own outcome wins', () => {
  const { metrics } = setup();
  const [ok] = emfLines(() => metrics.publish(metrics.begin(), { route: 'models', status: 200 }));
  assert.equal([ok.route, ok.outcome], ['models', 'served']);
  const [failed] = emfLines(() => metrics.publish(metrics.begin(), { route: 'models', status: 500 }));
  assert.is(failed.outcome, 'upstream_error');
  const [cold] = emfLines(() => metrics.publish(metrics.begin(), { route: 'chat', status: 500, outcome: 'proxy_error' }));
  assert.is(cold.outcome, 'proxy_error');
});

test('added latency is the time until the request left for OpenAI', async () => {
  const { metrics, tick } = setup();
  const upstream = metrics.timed(async () => new Response('{}'));
  const record = metrics.begin();
  tick(7);
  await upstream('https://api.openai.com/v1/chat/completions', {});
  tick(100);
  await upstream('https://api.openai.com/v1/chat/completions', {}); // a retry does not move it
  const [, byStage] = emfLines(() => metrics.publish(record, { route: 'chat', status: 200 }));
  assert.is(byStage.AddedLatency, 7);
});

test('the events it watches for are the ones the core logs', () => {
  const dir = new URL('../runtime/core/', import.meta.url);
  const core = readdirSync(dir).filter((f) => f.endsWith('.ts')).map((f) => readFileSync(new URL(f, dir), 'utf8')).join('\n');
  for (const message of LEDGER_FAILURES) assert.ok(core.includes(`error('${message}'`), `the core logs no '${message}'`);
  for (const message of ['call', 'error response']) assert.ok(core.includes(`info('${message}'`), `the core logs no '${message}'`);
  assert.ok(core.includes("error('proxy error'"));
});

test.run();
