// The Pulumi program's alerts, alarms and dashboard under Pulumi's unit-test mocks: the stage's SNS
// topic and its email subscriptions, every alarm on that topic with its metric and threshold, the
// dashboard's widgets against the metrics the proxy writes (the deploy contract), and config errors.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { CALL_OUTCOMES, METRICS } from '../runtime/core/contract.ts';
import { BASE_CONFIG, REGION, runProgram, type ProgramRun, type Registered } from './helpers/pulumi-program.ts';

const T = {
  topic: 'aws:sns/topic:Topic',
  subscription: 'aws:sns/topicSubscription:TopicSubscription',
  alarm: 'aws:cloudwatch/metricAlarm:MetricAlarm',
  dashboard: 'aws:cloudwatch/dashboard:Dashboard',
  fn: 'aws:lambda/function:Function',
  table: 'aws:dynamodb/table:Table',
  rolePolicy: 'aws:iam/rolePolicy:RolePolicy',
};

const ALARMS = [
  'admin-errors', 'admin-throttles', 'estimated-calls', 'ledger-system-errors', 'ledger-throttles',
  'proxy-duration', 'proxy-errors', 'proxy-throttles', 'proxy-url-5xx',
];

const EMAILS = ['ops@example.com', 'finance@example.org'];
const CUSTOM = {
  alarmUrl5xx: 20, alarmFunctionErrors: 3, alarmFunctionThrottles: 4, alarmDurationPercent: 75,
  alarmLedgerThrottles: 50, alarmLedgerSystemErrors: 2, alarmEstimatedCalls: 6,
};

let plain: ProgramRun; // nothing about alerts configured
let configured: ProgramRun; // two addresses and every threshold set
let reordered: ProgramRun; // the same addresses in the other order

const sorted = (xs: string[]) => [...xs].sort();
const alarm = (run: ProgramRun, name: string) => run.one(T.alarm, `-${name}`);
const fnNamed = (run: ProgramRun, role: 'proxy' | 'admin') => run.one(T.fn, `-${role}`).state.name as string;

const runs = suite('alerts, alarms and dashboard');

runs.before(async () => {
  plain = await runProgram({ ...BASE_CONFIG, useElastiCache: false });
  configured = await runProgram({ ...BASE_CONFIG, useElastiCache: false, proxyTimeoutSeconds: 300, alertEmails: EMAILS, ...CUSTOM });
  reordered = await runProgram({ ...BASE_CONFIG, useElastiCache: false, alertEmails: [...EMAILS].reverse() });
});

runs('one alert topic per stage, always; no subscription unless alertEmails is set', () => {
  for (const run of [plain, configured]) {
    const topic = run.one(T.topic);
    assert.is(topic.inputs.name, 'openai-wrapi-dev-alerts');
    assert.is(topic.inputs.kmsMasterKeyId, undefined, 'alarms cannot publish to a topic under the AWS-managed key');
    assert.is(run.outputs.alertTopicArn.value, topic.state.arn);
  }
  assert.is(plain.ofType(T.subscription).length, 0);
});

runs('each alert email is an email subscription to the topic, named by its address (reordering re-subscribes no one)', () => {
  const topicArn = configured.one(T.topic).state.arn;
  const subs = configured.ofType(T.subscription);
  assert.equal(sorted(subs.map((s) => s.inputs.endpoint)), sorted(EMAILS));
  for (const s of subs) {
    assert.is(s.inputs.protocol, 'email');
    assert.is(s.inputs.topic, topicArn);
  }
  assert.equal(sorted(reordered.ofType(T.subscription).map((s) => s.name)), sorted(subs.map((s) => s.name)));
});

runs('every alarm exists without any alert config, and notifies the topic when it fires and when it recovers', () => {
  for (const run of [plain, configured]) {
    const topicArn = run.one(T.topic).state.arn;
    // The direct-invoke alarm (test/infra.test.ts) notifies the same topic; its own comparison is > 0.
    const alarms = run.ofType(T.alarm).filter((a) => !a.name.endsWith('-direct-invokes'));
    const guard = run.one(T.alarm, '-direct-invokes');
    assert.equal([guard.inputs.alarmActions, guard.inputs.okActions], [[topicArn], [topicArn]]);
    // With an alert channel (the emails here), the notifier's dead-letter queue has one too (test/notifier-infra.test.ts).
    const expected = run === configured ? sorted([...ALARMS, 'alert-dlq']) : ALARMS;
    assert.equal(sorted(alarms.map((a) => a.name.replace('openai-wrapi-dev-', ''))), expected);
    for (const a of alarms) {
      assert.equal(a.inputs.alarmActions, [topicArn], a.name);
      assert.equal(a.inputs.okActions, [topicArn], a.name);
      assert.is(a.inputs.comparisonOperator, 'GreaterThanOrEqualToThreshold', a.name);
      assert.is(a.inputs.treatMissingData, 'notBreaching', `${a.name}: no traffic is no alarm`);
      assert.type(a.inputs.alarmDescription, 'string');
    }
  }
});

runs('the functions\' alarms: URL 5xx, errors, throttles of both functions, and the proxy\'s duration near its timeout', () => {
  const proxy = fnNamed(plain, 'proxy');
  const url = alarm(plain, 'proxy-url-5xx');
  assert.equal([url.inputs.namespace, url.inputs.metricName, url.inputs.dimensions, url.inputs.statistic, url.inputs.period], ['AWS/Lambda', 'Url5xxCount', { FunctionName: proxy }, 'Sum', 300]);
  for (const role of ['proxy', 'admin'] as const) {
    for (const [name, metric] of [['errors', 'Errors'], ['throttles', 'Throttles']]) {
      const a = alarm(plain, `${role}-${name}`);
      assert.equal([a.inputs.metricName, a.inputs.dimensions, a.inputs.statistic], [metric, { FunctionName: fnNamed(plain, role) }, 'Sum']);
    }
  }
  const duration = alarm(plain, 'proxy-duration');
  assert.equal([duration.inputs.metricName, duration.inputs.statistic, duration.inputs.dimensions], ['Duration', 'Maximum', { FunctionName: proxy }]);
  assert.is(duration.inputs.threshold, 600_000 * 0.9, '90% of the default 600 s timeout, in ms');
  assert.is(alarm(configured, 'proxy-duration').inputs.threshold, 300_000 * 0.75, '75% of a 300 s timeout');
});

/** The DynamoDB actions the functions' roles are granted, without the service prefix. */
function tableOperations(run: ProgramRun): string[] {
  const actions = run.ofType(T.rolePolicy).flatMap((p) => JSON.parse(p.inputs.policy).Statement.flatMap((s: any) => [s.Action].flat()));
  return sorted([...new Set(actions.filter((a: string) => a.startsWith('dynamodb:')).map((a: string) => a.slice('dynamodb:'.length)))]);
}

runs('the ledger\'s alarms sum their metric over every operation the functions may call on this table', () => {
  const tableName = plain.one(T.table).state.name;
  const operations = tableOperations(plain);
  assert.ok(operations.length >= 6, `found ${operations}`);
  for (const [name, metricName] of [['ledger-throttles', 'ThrottledRequests'], ['ledger-system-errors', 'SystemErrors']]) {
    const queries: any[] = alarm(plain, name).inputs.metricQueries;
    const metrics = queries.filter((q) => q.metric);
    assert.equal(sorted(metrics.map((q) => q.metric.dimensions.Operation)), operations, name);
    for (const q of metrics) {
      assert.equal([q.metric.namespace, q.metric.metricName, q.metric.dimensions.TableName, q.metric.stat, q.returnData], ['AWS/DynamoDB', metricName, tableName, 'Sum', false]);
    }
    const returned = queries.filter((q) => q.returnData);
    assert.equal(returned.map((q) => q.expression), ['SUM(METRICS())'], `${name}: one series, the sum`);
    assert.ok(queries.length <= 10, 'CloudWatch takes at most 10 metrics per alarm');
  }
});

runs('the estimated-calls alarm reads the proxy\'s own metrics by stage: estimated plus unsettled calls', () => {
  const queries: any[] = alarm(plain, 'estimated-calls').inputs.metricQueries;
  const metrics = queries.filter((q) => q.metric).map((q) => [q.metric.namespace, q.metric.metricName, q.metric.dimensions, q.metric.stat]);
  assert.equal(metrics, [
    [METRICS.namespace, METRICS.names.estimatedCalls, { stage: 'dev' }, 'Sum'],
    [METRICS.namespace, METRICS.names.unsettledCalls, { stage: 'dev' }, 'Sum'],
  ]);
  assert.equal(queries.filter((q) => q.returnData).map((q) => q.expression), ['FILL(estimated, 0) + FILL(unsettled, 0)']);
});

runs('thresholds: sensible defaults, each one settable', () => {
  const thresholdOf = (run: ProgramRun) => Object.fromEntries(ALARMS.filter((a) => a !== 'proxy-duration').map((a) => [a, alarm(run, a).inputs.threshold]));
  assert.equal(thresholdOf(plain), {
    'admin-errors': 1, 'admin-throttles': 1, 'estimated-calls': 1, 'ledger-system-errors': 1, 'ledger-throttles': 10,
    'proxy-errors': 1, 'proxy-throttles': 1, 'proxy-url-5xx': 5,
  });
  assert.equal(thresholdOf(configured), {
    'admin-errors': 3, 'admin-throttles': 4, 'estimated-calls': 6, 'ledger-system-errors': 2, 'ledger-throttles': 50,
    'proxy-errors': 3, 'proxy-throttles': 4, 'proxy-url-5xx': 20,
  });
});

/** The dashboard's widgets, parsed. */
function widgetsOf(run: ProgramRun): any[] {
  const dashboard: Registered = run.one(T.dashboard);
  assert.is(dashboard.inputs.dashboardName, 'openai-wrapi-dev');
  return JSON.parse(dashboard.inputs.dashboardBody).widgets;
}

runs('one dashboard per stage: traffic, refusals, spend per hour, latency p50/p99, cache hit rate, estimated calls', () => {
  const widgets = widgetsOf(plain);
  const titles = widgets.map((w) => w.properties.title).join(' | ');
  for (const word of [/traffic/i, /refusals/i, /spend per hour/i, /latency/i, /cache hit rate/i, /estimated/i]) assert.match(titles, word);
  for (const w of widgets.filter((w) => w.type === 'metric')) assert.is(w.properties.region, REGION, w.properties.title);
  assert.match(String(plain.outputs.dashboardUrl.value), `region=${REGION}#dashboards/dashboard/openai-wrapi-dev`);

  const spend = widgets.find((w) => /spend/i.test(w.properties.title)).properties.metrics;
  assert.ok(spend.some((m: any[]) => m[1] === METRICS.names.spendUsd && m.at(-1).period === 3600 && m.at(-1).stat === 'Sum'));
  const latency = widgets.find((w) => /latency/i.test(w.properties.title)).properties.metrics;
  for (const name of [METRICS.names.addedLatency, METRICS.names.timeToFirstByte]) {
    assert.equal(sorted(latency.filter((m: any[]) => m[1] === name).map((m: any[]) => m.at(-1).stat)), ['p50', 'p99'], name);
  }
});

runs('the dashboard reads exactly the metrics the proxy writes: names, namespace, dimensions and every outcome', () => {
  const text = JSON.stringify(widgetsOf(plain));
  for (const name of Object.values(METRICS.names)) assert.ok(text.includes(`"${name}"`) || text.includes(`\\"${name}\\"`), `${name} is on no widget`);
  const searches = [...text.matchAll(/SEARCH\('\{([^}]+)\}/g)].map((m) => m[1]);
  assert.ok(searches.length > 0);
  for (const schema of searches) assert.is(schema, `${METRICS.namespace},${METRICS.requestDimensions.join(',')}`);
  for (const outcome of CALL_OUTCOMES) assert.ok(text.includes(`outcome=\\"${outcome}\\"`), `outcome ${outcome} is on no widget`);
  for (const m of text.matchAll(/"(openai-wrapi)",\s*"(\w+)",\s*"(\w+)"/g)) assert.is(m[3], 'stage', `${m[2]} is by stage only`);
});

runs('the dashboard shows every alarm\'s state', () => {
  const widget = widgetsOf(plain).find((w) => w.type === 'alarm');
  assert.equal(sorted(widget.properties.alarms), sorted(plain.ofType(T.alarm).map((a) => a.state.arn)));
});

runs.run();

// ---------------------------------------------------------------------------------- config errors

const errors = suite('alert config errors');

async function failure(config: Record<string, string | number | boolean | string[]>): Promise<string> {
  try {
    await runProgram(config);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('the program should have refused this config');
}

errors('bad addresses and thresholds are all reported at once', async () => {
  const message = await failure({
    ...BASE_CONFIG, alertEmails: ['ops@example.com', 'not an address'], alarmDurationPercent: 120, alarmUrl5xx: 0, alarmEstimatedCalls: 1.5,
  });
  assert.match(message, 'alertEmails must be a list of email addresses');
  assert.match(message, 'alarmDurationPercent must be an integer from 10 to 100 (got 120)');
  assert.match(message, 'alarmUrl5xx must be an integer from 1 to 100000 (got 0)');
  assert.match(message, 'alarmEstimatedCalls must be an integer from 1 to 100000 (got 1.5)');
});

errors('alertEmails must be a list', async () => {
  assert.match(await failure({ ...BASE_CONFIG, alertEmails: 'ops@example.com' }), 'alertEmails');
});

errors.run();
