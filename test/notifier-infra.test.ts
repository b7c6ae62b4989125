// The budget-alert delivery the Pulumi program (index.ts) deploys, under Pulumi's unit-test mocks: the
// table's stream, the notifier function and its environment, its event source mapping (the filter of
// the contract, partial batch failures, bounded retries, the dead-letter queue), the queue's alarm, the
// Slack channel through Amazon Q, the webhook's secret, the notifier's least-privilege role, its
// bundled code; and with no channel configured, none of it.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ALERT_STREAM, DEPLOYED_ENV, LAMBDA_PROVIDED_ENV, UNDEPLOYED_ENV, notifierFunctionName } from '../runtime/core/contract.ts';
import { readNotifierSettings } from '../runtime/lambda/settings.ts';
import {
  archiveFiles, BASE_CONFIG, envOf, isSecretValue, list, runProgram, SECRET_KEYS, sorted, type ProgramRun, type Registered, type Stmt,
} from './helpers/pulumi-program.ts';

const T = {
  table: 'aws:dynamodb/table:Table',
  fn: 'aws:lambda/function:Function',
  mapping: 'aws:lambda/eventSourceMapping:EventSourceMapping',
  queue: 'aws:sqs/queue:Queue',
  alarm: 'aws:cloudwatch/metricAlarm:MetricAlarm',
  topic: 'aws:sns/topic:Topic',
  subscription: 'aws:sns/topicSubscription:TopicSubscription',
  chat: 'aws:chatbot/slackChannelConfiguration:SlackChannelConfiguration',
  secret: 'aws:secretsmanager/secret:Secret',
  secretVersion: 'aws:secretsmanager/secretVersion:SecretVersion',
  role: 'aws:iam/role:Role',
  rolePolicy: 'aws:iam/rolePolicy:RolePolicy',
  policy: 'aws:iam/policy:Policy',
  logGroup: 'aws:cloudwatch/logGroup:LogGroup',
};

const WEBHOOK_URL = 'https://hooks.example.com/budget?token=hook-5ecret-token';
const SLACK = { slackWorkspaceId: 'T07EA123LEP', slackChannelId: 'C07EZ1ABC23' };
const WITH_WEBHOOK = { secretKeys: [...SECRET_KEYS, 'alertWebhookUrl'] };

let every: ProgramRun; // emails, Slack and a webhook; in a VPC (ElastiCache on)
let webhookOnly: ProgramRun; // only a webhook, no VPC
let none: ProgramRun; // no channel

const notifierOf = (run: ProgramRun) => run.one(T.fn, '-notifier');
const webhookSecretOf = (run: ProgramRun) => run.one(T.secret, '-alert-webhook');

/** The notifier role's inline policies (exactly one) as statements. */
function notifierStatements(run: ProgramRun): Stmt[] {
  const fn = notifierOf(run);
  const role = run.resources.find((r) => r.type === T.role && r.state.arn === fn.inputs.role)!;
  const policies = run.ofType(T.rolePolicy).filter((p) => p.inputs.role === role.id);
  assert.is(policies.length, 1, 'one inline policy, no VPC access (it runs outside the VPC)');
  return JSON.parse(policies[0].inputs.policy).Statement;
}

const runs = suite('budget alert delivery, deployed');

runs.before(async () => {
  every = await runProgram({ ...BASE_CONFIG, numAzs: 1, alertEmails: ['ops@example.com'], ...SLACK, alertWebhookUrl: WEBHOOK_URL }, WITH_WEBHOOK);
  webhookOnly = await runProgram({ ...BASE_CONFIG, useElastiCache: false, alertWebhookUrl: WEBHOOK_URL }, WITH_WEBHOOK);
  none = await runProgram({ ...BASE_CONFIG, useElastiCache: false });
});

runs('with a channel: the ledger table streams new and old images', () => {
  for (const run of [every, webhookOnly]) {
    const table = run.one(T.table);
    assert.equal([table.inputs.streamEnabled, table.inputs.streamViewType], [true, 'NEW_AND_OLD_IMAGES']);
  }
});

runs('the notifier: bundled handler, nodejs22.x on arm64, outside the VPC, its own log group, the contract\'s name', () => {
  for (const run of [every, webhookOnly]) {
    const fn = notifierOf(run);
    assert.is(fn.inputs.name, notifierFunctionName('dev'));
    assert.is(fn.inputs.handler, 'notifier.handler');
    assert.is(fn.inputs.runtime, 'nodejs22.x');
    assert.equal(fn.inputs.architectures, ['arm64']);
    assert.is(fn.inputs.vpcConfig, undefined);
    assert.ok(fn.inputs.timeout >= 60 && fn.inputs.timeout <= 900, 'room to wait out a 30 s delivery claim');
    const logs = run.ofType(T.logGroup).find((g) => g.inputs.name === `/aws/lambda/${fn.inputs.name}`)!;
    assert.is(fn.inputs.loggingConfig.logGroup, logs.state.name);
    assert.is(run.outputs.notifierFunctionName.value, fn.state.name);
  }
});

runs('its environment: stage, table, topic and the webhook secret\'s ARN (never the URL); the runtime reads exactly these', () => {
  const fn = notifierOf(every);
  const env = envOf(fn);
  assert.equal(env, {
    OPENAI_WRAPI_STAGE: 'dev',
    OPENAI_WRAPI_TABLE: every.one(T.table).state.name,
    OPENAI_WRAPI_ALERT_TOPIC_ARN: every.one(T.topic).state.arn,
    OPENAI_WRAPI_ALERT_WEBHOOK_SECRET_ARN: webhookSecretOf(every).state.arn,
  });
  for (const name of Object.keys(env)) assert.ok((Object.values(DEPLOYED_ENV) as string[]).includes(name), name);
  const read = new Set<string>();
  const settings = readNotifierSettings(new Proxy({ ...env }, { get: (t, k) => (typeof k === 'string' && read.add(k), Reflect.get(t, k)) }));
  const elsewhere: string[] = [...Object.values(UNDEPLOYED_ENV), ...LAMBDA_PROVIDED_ENV];
  assert.equal(sorted([...read].filter((n) => !elsewhere.includes(n))), sorted(Object.keys(env)));
  assert.equal([settings.topicArn, settings.webhookSecretArn, settings.tableName], [env.OPENAI_WRAPI_ALERT_TOPIC_ARN, env.OPENAI_WRAPI_ALERT_WEBHOOK_SECRET_ARN, env.OPENAI_WRAPI_TABLE]);
  assert.not.ok(JSON.stringify(env).includes('hooks.example.com'));
});

runs('its event source mapping: the table\'s stream, the contract\'s filter, partial failures, bisection, bounded retries, the dead-letter queue', () => {
  for (const run of [every, webhookOnly]) {
    const mapping = run.one(T.mapping);
    const queue = run.one(T.queue);
    assert.is(mapping.inputs.eventSourceArn, run.one(T.table).state.streamArn);
    assert.is(mapping.inputs.functionName, notifierOf(run).state.arn);
    assert.equal(mapping.inputs.filterCriteria, { filters: [{ pattern: ALERT_STREAM.filterPattern }] });
    assert.equal(mapping.inputs.functionResponseTypes, ['ReportBatchItemFailures']);
    assert.is(mapping.inputs.bisectBatchOnFunctionError, true);
    assert.ok(mapping.inputs.maximumRetryAttempts >= 1 && mapping.inputs.maximumRetryAttempts <= 20, 'bounded retries');
    assert.ok(mapping.inputs.maximumRecordAgeInSeconds >= 60 && mapping.inputs.maximumRecordAgeInSeconds <= 86_400, 'bounded age');
    assert.is(mapping.inputs.startingPosition, 'LATEST');
    assert.equal(mapping.inputs.destinationConfig, { onFailure: { destinationArn: queue.state.arn } });
    assert.ok(mapping.dependsOn.some((d) => d.endsWith('-notifier-policy')), 'created after the role may read the stream');
  }
});

runs('the dead-letter queue: encrypted, kept 14 days, exported, and alarmed on the alert topic', () => {
  const queue = every.one(T.queue);
  assert.is(queue.inputs.sqsManagedSseEnabled, true);
  assert.is(queue.inputs.messageRetentionSeconds, 14 * 86_400);
  assert.is(every.outputs.alertDlqUrl.value, queue.state.url);
  const alarm = every.one(T.alarm, '-alert-dlq');
  assert.equal(
    [alarm.inputs.namespace, alarm.inputs.metricName, alarm.inputs.dimensions, alarm.inputs.statistic, alarm.inputs.threshold, alarm.inputs.comparisonOperator],
    ['AWS/SQS', 'ApproximateNumberOfMessagesVisible', { QueueName: queue.state.name }, 'Maximum', 1, 'GreaterThanOrEqualToThreshold'],
  );
  const topic = every.one(T.topic).state.arn;
  assert.equal([alarm.inputs.alarmActions, alarm.inputs.okActions], [[topic], [topic]]);
  const dashboard = JSON.parse(every.one('aws:cloudwatch/dashboard:Dashboard').inputs.dashboardBody);
  assert.ok(dashboard.widgets.find((w: any) => w.type === 'alarm').properties.alarms.includes(alarm.state.arn), 'on the dashboard');
});

runs('Slack: a channel configuration on the topic, whose role can do nothing and whose guardrail is a look at the topic', () => {
  const chat = every.one(T.chat);
  const topic = every.one(T.topic).state.arn;
  assert.equal([chat.inputs.slackTeamId, chat.inputs.slackChannelId, chat.inputs.snsTopicArns], [SLACK.slackWorkspaceId, SLACK.slackChannelId, [topic]]);
  const role = every.resources.find((r) => r.type === T.role && r.state.arn === chat.inputs.iamRoleArn)!;
  assert.equal(JSON.parse(role.inputs.assumeRolePolicy).Statement.map((s: any) => [s.Principal, s.Action]), [[{ Service: 'chatbot.amazonaws.com' }, 'sts:AssumeRole']]);
  assert.equal(every.ofType(T.rolePolicy).filter((p) => p.inputs.role === role.id), [], 'no permissions');
  const [guardrailArn] = chat.inputs.guardrailPolicyArns;
  const guardrail = every.resources.find((r) => r.type === T.policy && r.state.arn === guardrailArn)!;
  assert.equal(JSON.parse(guardrail.inputs.policy).Statement.map((s: Stmt) => [s.Action, s.Resource]), [['sns:GetTopicAttributes', topic]]);
  assert.is(webhookOnly.ofType(T.chat).length, 0, 'none without the Slack settings');
});

runs('the webhook URL: a secret in Secrets Manager (secret in the state too), and nowhere else', () => {
  const secret = webhookSecretOf(every);
  const version = every.one(T.secretVersion, '-alert-webhook');
  assert.is(version.inputs.secretId, secret.id);
  assert.ok(isSecretValue(version.inputs.secretString));
  assert.equal(JSON.parse(version.inputs.secretString.value as string), { url: WEBHOOK_URL });
  for (const r of every.resources.filter((r) => r !== version)) assert.not.ok(JSON.stringify(r.inputs).includes('hook-5ecret-token'), r.name);
  for (const [name, o] of Object.entries(every.outputs)) assert.not.ok(JSON.stringify(o.value ?? '').includes('hook-5ecret-token'), name);
});

runs('the notifier\'s role: its stream, usage Queries and delivery records by key prefix, Publish, its webhook secret, its DLQ, its logs', () => {
  for (const run of [every, webhookOnly]) {
    const table = run.one(T.table).state;
    const fn = notifierOf(run);
    const logs = run.ofType(T.logGroup).find((g) => g.inputs.name === `/aws/lambda/${fn.inputs.name}`)!.state.arn;
    const statements = notifierStatements(run).map((s) => [s.Sid, sorted(list(s.Action)), list(s.Resource), s.Condition]);
    assert.equal(statements, [
      ['WriteOwnLogs', ['logs:CreateLogStream', 'logs:PutLogEvents'], [`${logs}:*`], undefined],
      ['ReadTheLedgerStream', ['dynamodb:DescribeStream', 'dynamodb:GetRecords', 'dynamodb:GetShardIterator'], [table.streamArn], undefined],
      ['ListStreams', ['dynamodb:ListStreams'], ['*'], undefined],
      ['ReadUsagePartitions', ['dynamodb:Query'], [table.arn], { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': 'M#*' } }],
      ['KeepDeliveryRecords', ['dynamodb:GetItem', 'dynamodb:UpdateItem'], [table.arn], { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': 'A#*' } }],
      ['PublishAlerts', ['sns:Publish'], [run.one(T.topic).state.arn], undefined],
      ['ReadTheWebhookUrl', ['secretsmanager:GetSecretValue'], [webhookSecretOf(run).state.arn], undefined],
      ['DeadLetters', ['sqs:SendMessage'], [run.one(T.queue).state.arn], undefined],
    ]);
    for (const s of notifierStatements(run)) {
      for (const a of list(s.Action)) assert.not.match(a, /\*/, `${s.Sid}: ${a}`);
      // ListStreams has no resource-level permission (Lambda checks it when creating the mapping).
      if (list(s.Resource).includes('*')) assert.equal(list(s.Action), ['dynamodb:ListStreams']);
    }
  }
});

runs('the permissions boundary covers the notifier too: its code, its role, the webhook secret', () => {
  const boundary = JSON.parse(every.one(T.policy, '-boundary').inputs.policy).Statement as Stmt[];
  const by = (sid: string) => list(boundary.find((s) => s.Sid === sid)!.Resource);
  const fn = notifierOf(every);
  assert.ok(by('DenyChangingTheFunctions').includes(fn.state.arn));
  assert.ok(by('DenyPassingTheFunctionsRoles').includes(fn.inputs.role));
  assert.equal(by('DenyTheAlertWebhook'), [webhookSecretOf(every).state.arn]);
});

runs('the notifier\'s archive: notifier.mjs and its chunks, loadable, without the SNS SDK, and small', async () => {
  const files = await archiveFiles(notifierOf(webhookOnly).inputs.code);
  assert.ok('notifier.mjs' in files);
  const size = Object.values(files).reduce((n, text) => n + Buffer.byteLength(text), 0);
  assert.ok(size < 600_000, `${size} bytes`);
  assert.not.match(files['notifier.mjs'], 'client-sns');
  const dir = mkdtempSync(join(tmpdir(), 'wrapi-notifier-'));
  try {
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      writeFileSync(join(dir, path), text);
    }
    const module = await import(pathToFileURL(join(dir, 'notifier.mjs')).href);
    assert.type(module.handler, 'function');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

runs('with no channel: no stream, no notifier, no mapping, no queue, no Slack, no webhook secret; the topic and alarms stay', () => {
  assert.is(none.one(T.table).inputs.streamEnabled, undefined);
  assert.is(none.one(T.table).inputs.streamViewType, undefined);
  for (const type of [T.mapping, T.queue, T.chat, T.subscription]) assert.is(none.ofType(type).length, 0, type);
  assert.equal(none.ofType(T.fn).map((f) => f.inputs.name).sort(), ['openai-admin-dev', 'openai-proxy-dev']);
  assert.equal(none.ofType(T.secret).map((s) => s.name), ['openai-wrapi-dev-openai']);
  assert.is(none.ofType(T.role).length, 2);
  assert.ok(none.one(T.topic));
  assert.is(none.ofType(T.alarm).length, 10);
  assert.not.ok(none.ofType(T.alarm).some((a) => a.name.endsWith('-alert-dlq')));
  assert.equal([none.outputs.notifierFunctionName.value, none.outputs.alertDlqUrl.value], [null, null]);
});

runs.run();

// ---------------------------------------------------------------------------------- config errors

const errors = suite('alert channel config errors');

async function failure(config: Record<string, string | number | boolean | string[]>, secretKeys = WITH_WEBHOOK.secretKeys): Promise<string> {
  try {
    await runProgram({ ...BASE_CONFIG, useElastiCache: false, ...config }, { secretKeys });
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('the program should have refused this config');
}

errors('Slack needs both ids, each in Slack\'s format', async () => {
  assert.match(await failure({ slackChannelId: 'C07EZ1ABC23' }), 'slackWorkspaceId and slackChannelId go together: set both (got only slackChannelId)');
  assert.match(await failure({ slackWorkspaceId: 'T07EA123LEP' }), '(got only slackWorkspaceId)');
  const message = await failure({ slackWorkspaceId: 'acme', slackChannelId: '#alerts' });
  assert.match(message, 'slackWorkspaceId must be a Slack workspace id like T07EA123LEP (got "acme")');
  assert.match(message, 'slackChannelId must be a Slack channel id like C07EZ1ABC23 (got "#alerts")');
});

errors('the webhook must be https and set with --secret; the message never quotes its token', async () => {
  const message = await failure({ alertWebhookUrl: 'http://hooks.example.com/x?token=plain-t0ken' });
  assert.match(message, 'alertWebhookUrl must be an https:// URL');
  assert.not.match(message, 'plain-t0ken');
  const plain = await failure({ alertWebhookUrl: WEBHOOK_URL }, SECRET_KEYS);
  assert.match(plain, 'alertWebhookUrl is stored in plain text: set it with `pulumi config set --secret alertWebhookUrl …`');
  assert.not.match(plain, 'hook-5ecret-token');
});

errors.run();
