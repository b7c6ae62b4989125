// The daily digest the Pulumi program (index.ts) deploys with `dailyDigest`, under Pulumi's unit-test
// mocks: the EventBridge Scheduler schedule (its time, zone and input), its group, the role it runs
// as (trusting only that group, allowed only to invoke the admin function, judged by a real IAM
// policy evaluator), the admin's Publish on the topic and the variable that turns its publisher on;
// without the setting, none of it; and the config errors.
import { runSimulation } from '@cloud-copilot/iam-simulate';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DEPLOYED_ENV, DIGEST_SCHEDULE_EVENT, LAMBDA_PROVIDED_ENV, UNDEPLOYED_ENV } from '../runtime/core/contract.ts';
import { readAdminSettings } from '../runtime/lambda/settings.ts';
import {
  ACCOUNT, BASE_CONFIG, envOf, list, REGION, runProgram, sorted, type ConfigValue, type ProgramRun, type Registered, type Stmt,
} from './helpers/pulumi-program.ts';

const T = {
  group: 'aws:scheduler/scheduleGroup:ScheduleGroup',
  schedule: 'aws:scheduler/schedule:Schedule',
  role: 'aws:iam/role:Role',
  rolePolicy: 'aws:iam/rolePolicy:RolePolicy',
  attachment: 'aws:iam/rolePolicyAttachment:RolePolicyAttachment',
  policy: 'aws:iam/policy:Policy',
  fn: 'aws:lambda/function:Function',
  topic: 'aws:sns/topic:Topic',
  alarm: 'aws:cloudwatch/metricAlarm:MetricAlarm',
};

let custom: ProgramRun; // 07:30 in London, emails, in a VPC
let defaults: ProgramRun; // `dailyDigest: true`, Slack as the only receiver
let off: ProgramRun; // emails, `dailyDigest: false`
let unset: ProgramRun; // emails, no dailyDigest at all

const adminOf = (run: ProgramRun) => run.one(T.fn, '-admin');
const proxyOf = (run: ProgramRun) => run.one(T.fn, '-proxy');
const topicOf = (run: ProgramRun) => run.one(T.topic).state.arn as string;
const roleByArn = (run: ProgramRun, arn: string) => run.resources.find((r) => r.type === T.role && r.state.arn === arn)!;
const inlineStatements = (run: ProgramRun, role: Registered): Stmt[] =>
  run.ofType(T.rolePolicy).filter((p) => p.inputs.role === role.id).flatMap((p) => JSON.parse(p.inputs.policy).Statement);
const scheduleRoleOf = (run: ProgramRun) => roleByArn(run, run.one(T.schedule).inputs.target.roleArn);

const runs = suite('daily digest, deployed');

runs.before(async () => {
  const emails = { alertEmails: ['ops@example.com'] };
  custom = await runProgram({ ...BASE_CONFIG, numAzs: 1, ...emails, dailyDigest: { time: '07:30', timezone: 'Europe/London' } });
  defaults = await runProgram({ ...BASE_CONFIG, useElastiCache: false, slackWorkspaceId: 'T07EA123LEP', slackChannelId: 'C07EZ1ABC23', dailyDigest: true });
  off = await runProgram({ ...BASE_CONFIG, useElastiCache: false, ...emails, dailyDigest: false });
  unset = await runProgram({ ...BASE_CONFIG, useElastiCache: false, ...emails });
});

runs('a schedule at the configured time of day, in its time zone (daylight saving followed), without a flexible window', () => {
  const s = custom.one(T.schedule);
  assert.equal(
    [s.inputs.scheduleExpression, s.inputs.scheduleExpressionTimezone, s.inputs.flexibleTimeWindow, s.inputs.state],
    ['cron(30 7 * * ? *)', 'Europe/London', { mode: 'OFF' }, 'ENABLED'],
  );
  const d = defaults.one(T.schedule);
  assert.equal([d.inputs.scheduleExpression, d.inputs.scheduleExpressionTimezone], ['cron(0 8 * * ? *)', 'UTC'], 'true: every day at 08:00 UTC');
});

runs('its target: the admin function, with the digest request the admin handler knows as the schedule\'s, bounded retries', () => {
  for (const run of [custom, defaults]) {
    const { target } = run.one(T.schedule).inputs;
    assert.is(target.arn, adminOf(run).state.arn);
    assert.equal(JSON.parse(target.input), DIGEST_SCHEDULE_EVENT);
    assert.equal(JSON.parse(target.input), { action: 'sendDigest', trigger: 'schedule' });
    assert.ok(target.retryPolicy.maximumEventAgeInSeconds <= 6 * 3600, 'a digest hours late is dropped, not sent');
    assert.ok(target.retryPolicy.maximumRetryAttempts >= 1 && target.retryPolicy.maximumRetryAttempts <= 10);
  }
});

runs('the schedule sits in a group of the stage\'s own; it is created after its role may invoke the admin', () => {
  const group = custom.one(T.group);
  const schedule = custom.one(T.schedule);
  assert.is(group.inputs.name, 'openai-wrapi-dev');
  assert.is(schedule.inputs.groupName, group.state.name);
  assert.is(schedule.inputs.name, 'daily-digest');
  const policy = custom.ofType(T.rolePolicy).find((p) => p.inputs.role === scheduleRoleOf(custom).id)!;
  assert.ok(schedule.dependsOn.includes(policy.name));
});

runs('the schedule\'s role: only EventBridge Scheduler may take it, for schedules of this account and this group only', () => {
  const role = scheduleRoleOf(custom);
  const trust = JSON.parse(role.inputs.assumeRolePolicy).Statement;
  assert.equal(trust, [{
    Sid: 'TheStagesSchedulesOnly',
    Effect: 'Allow',
    Principal: { Service: 'scheduler.amazonaws.com' },
    Action: 'sts:AssumeRole',
    Condition: { StringEquals: { 'aws:SourceAccount': ACCOUNT, 'aws:SourceArn': custom.one(T.group).state.arn } },
  }]);
  assert.match(custom.one(T.group).state.arn, /^arn:aws:scheduler:[a-z0-9-]+:\d{12}:schedule-group\/openai-wrapi-dev$/);
});

runs('the schedule\'s role may invoke the admin function and nothing else (one inline policy, no managed one)', () => {
  const role = scheduleRoleOf(custom);
  assert.equal(inlineStatements(custom, role).map((s) => [s.Sid, list(s.Action), list(s.Resource)]), [
    ['InvokeTheAdminFunction', ['lambda:InvokeFunction'], [adminOf(custom).state.arn]],
  ]);
  assert.equal(custom.ofType(T.attachment).filter((a) => a.inputs.role === role.id || a.inputs.role === role.state.name), []);
});

/** What a real IAM evaluator decides for `principal` with `policies` (identity) and an optional boundary. */
async function decide(policies: unknown[], action: string, resource: string, opts: { boundary?: unknown; context?: Record<string, string> } = {}) {
  const result = await runSimulation(
    {
      request: { principal: `arn:aws:sts::${ACCOUNT}:assumed-role/some-role/session`, action, resource: { resource, accountId: ACCOUNT }, contextVariables: opts.context ?? {} },
      identityPolicies: policies.map((policy, i) => ({ name: `p${i}`, policy: policy as never })),
      permissionBoundaryPolicies: opts.boundary ? [{ name: 'boundary', policy: opts.boundary as never }] : undefined,
      serviceControlPolicies: [],
      resourceControlPolicies: [],
    },
    { simulationMode: 'Strict' },
  );
  if (result.resultType !== 'single') throw new Error(`the evaluator answered ${result.resultType}`);
  // A context key the evaluator drops as not applying to the action would make the case prove nothing.
  assert.equal(result.result.ignoredContextKeys ?? [], [], 'every context key applies');
  return result.overallResult;
}
const policiesOf = (run: ProgramRun, role: Registered) =>
  run.ofType(T.rolePolicy).filter((p) => p.inputs.role === role.id).map((p) => JSON.parse(p.inputs.policy));

runs('evaluated: the schedule\'s role invokes the admin function, not the proxy, nor a version of the admin, nor SNS', async () => {
  const policies = policiesOf(custom, scheduleRoleOf(custom));
  const admin = adminOf(custom).state.arn;
  assert.is(await decide(policies, 'lambda:InvokeFunction', admin), 'Allowed');
  assert.is(await decide(policies, 'lambda:InvokeFunction', proxyOf(custom).state.arn), 'ImplicitlyDenied');
  assert.is(await decide(policies, 'lambda:InvokeFunction', `${admin}:$LATEST`), 'ImplicitlyDenied');
  assert.is(await decide(policies, 'lambda:UpdateFunctionCode', admin), 'ImplicitlyDenied');
  assert.is(await decide(policies, 'sns:Publish', topicOf(custom)), 'ImplicitlyDenied');
});

runs('evaluated: the admin\'s role publishes to the stage\'s topic with the digest on, to no other topic, and not at all without it', async () => {
  for (const run of [custom, defaults]) {
    const policies = policiesOf(run, roleByArn(run, adminOf(run).inputs.role));
    assert.is(await decide(policies, 'sns:Publish', topicOf(run)), 'Allowed');
    assert.is(await decide(policies, 'sns:Publish', `arn:aws:sns:${REGION}:${ACCOUNT}:openai-wrapi-prod-alerts`), 'ImplicitlyDenied');
    assert.is(await decide(policies, 'sns:Subscribe', topicOf(run)), 'ImplicitlyDenied');
    const publish = inlineStatements(run, roleByArn(run, adminOf(run).inputs.role)).filter((s) => list(s.Action).some((a) => a.startsWith('sns:')));
    assert.equal(publish.map((s) => [s.Sid, list(s.Action), list(s.Resource)]), [['PublishTheDailyDigest', ['sns:Publish'], [topicOf(run)]]]);
  }
  for (const run of [off, unset]) {
    const policies = policiesOf(run, roleByArn(run, adminOf(run).inputs.role));
    assert.is(await decide(policies, 'sns:Publish', topicOf(run)), 'ImplicitlyDenied');
  }
});

runs('the admin function gets the topic\'s ARN with the digest on (its publisher), and reads exactly what the program writes', () => {
  for (const run of [custom, defaults]) {
    const env = envOf(adminOf(run));
    assert.is(env[DEPLOYED_ENV.alertTopicArn], topicOf(run));
    const read = new Set<string>();
    const settings = readAdminSettings(new Proxy({ ...env, AWS_REGION: REGION }, { get: (t, k) => (typeof k === 'string' && read.add(k), Reflect.get(t, k)) }));
    // Without ElastiCache the memcached servers are looked for and absent: a per-instance cache.
    const elsewhere: string[] = [...Object.values(UNDEPLOYED_ENV), ...LAMBDA_PROVIDED_ENV, ...(run === defaults ? [DEPLOYED_ENV.memcached] : [])];
    assert.equal(sorted([...read].filter((n) => !elsewhere.includes(n))), sorted(Object.keys(env)));
    assert.equal(settings.digest, { topicArn: topicOf(run), region: REGION, snsEndpoint: undefined });
  }
  for (const run of [off, unset]) {
    assert.is(envOf(adminOf(run))[DEPLOYED_ENV.alertTopicArn], undefined);
    assert.is(readAdminSettings({ ...envOf(adminOf(run)), AWS_REGION: REGION }).digest, undefined);
  }
  assert.is(envOf(proxyOf(custom))[DEPLOYED_ENV.alertTopicArn], undefined, 'the proxy never gets it');
});

runs('the permissions boundary denies passing the schedule\'s role (a schedule of one\'s own would invoke the admin as it)', async () => {
  const boundary = JSON.parse(custom.one(T.policy, '-boundary').inputs.policy);
  const role = scheduleRoleOf(custom).state.arn;
  const passRole = boundary.Statement.find((s: Stmt) => s.Sid === 'DenyPassingTheFunctionsRoles');
  assert.ok(list(passRole.Resource).includes(role));
  const anything = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] };
  const toScheduler = { context: { 'iam:PassedToService': 'scheduler.amazonaws.com' } };
  assert.is(await decide([anything], 'iam:PassRole', role, { ...toScheduler, boundary }), 'ExplicitlyDenied');
  assert.is(await decide([anything], 'iam:PassRole', role, toScheduler), 'Allowed', 'the deployer (no boundary) still deploys it');
});

runs('an alarm on the topic when Scheduler drops the day\'s invocation of the admin (its retries exhausted)', () => {
  for (const run of [custom, defaults]) {
    const a = run.one(T.alarm, '-digest-dropped');
    assert.equal(
      [a.inputs.namespace, a.inputs.metricName, a.inputs.dimensions, a.inputs.statistic, a.inputs.threshold],
      ['AWS/Scheduler', 'InvocationDroppedCount', { ScheduleGroup: run.one(T.group).inputs.name }, 'Sum', 1],
    );
    assert.equal([a.inputs.alarmActions, a.inputs.okActions], [[topicOf(run)], [topicOf(run)]]);
  }
});

runs('without the digest: no schedule, no group, no role for it, and nothing else differs', () => {
  for (const run of [off, unset]) {
    for (const type of [T.schedule, T.group]) assert.is(run.ofType(type).length, 0, type);
    assert.not.ok(run.ofType(T.alarm).some((a) => a.name.includes('digest')), 'no digest alarm');
    assert.not.ok(run.ofType(T.role).some((r) => r.name.includes('digest')));
    assert.not.ok(JSON.stringify(run.ofType(T.rolePolicy).map((p) => p.inputs.policy)).includes('scheduler'));
  }
  const shape = (run: ProgramRun) => sorted(run.resources.map((r) => `${r.type} ${r.name}`));
  assert.equal(shape(off), shape(unset), '`dailyDigest: false` is the same as leaving it out');
});

runs.run();

// ---------------------------------------------------------------------------------- config errors

const errors = suite('daily digest config errors');

async function failure(config: Record<string, ConfigValue>): Promise<string> {
  try {
    await runProgram({ ...BASE_CONFIG, useElastiCache: false, ...config });
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('the program should have refused this config');
}

errors('a digest nobody receives is refused: the topic needs an address or a Slack channel (a webhook takes budget alerts only)', async () => {
  const expected = 'dailyDigest is sent to the alert topic, which nobody receives: set alertEmails';
  assert.match(await failure({ dailyDigest: true }), expected);
  assert.match(await failure({ dailyDigest: { time: '06:00' } }), expected);
});

errors('a bad time, time zone, field or value is named, every problem at once', async () => {
  const emails = { alertEmails: ['ops@example.com'] };
  const message = await failure({ ...emails, dailyDigest: { time: '8am', timezone: 'Mars/Olympus_Mons', at: 'noon' } });
  assert.match(message, 'dailyDigest has no field at (it takes time, timezone)');
  assert.match(message, 'dailyDigest.time must be a time of day as HH:MM, 24-hour, like "08:00" (got "8am")');
  assert.match(message, 'dailyDigest.timezone must be an IANA time zone name like "Europe/London" or "UTC" (got "Mars/Olympus_Mons")');
  assert.match(await failure({ ...emails, dailyDigest: { time: '24:00' } }), 'dailyDigest.time must be');
  assert.match(await failure({ ...emails, dailyDigest: { timezone: 'utc' } }), 'dailyDigest.timezone must be', 'written as the scheduler takes it: UTC');
  assert.match(await failure({ ...emails, dailyDigest: 'daily' }), 'dailyDigest must be true, false, or an object with time ("HH:MM", 24-hour) and/or timezone (like "Europe/London") (got "daily")');
  assert.match(await failure({ ...emails, dailyDigest: 8 }), '(got 8)');
});

errors.run();
