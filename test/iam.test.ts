// The IAM policies the Pulumi program writes (run under Pulumi's unit-test mocks), evaluated by a real
// IAM policy evaluator (@cloud-copilot/iam-simulate: identity policies, permissions boundaries, SCPs,
// every condition operator), not by reading their JSON. One table of requests, each with the decision
// AWS must reach: who may call the proxy and how, who may administer it, what each function's role
// may touch, and what the permissions boundary and the SCP take away from a broad grant (for the
// public function too: a direct Invoke of it would forge the source address its clients are).
import { runSimulation, type Simulation } from '@cloud-copilot/iam-simulate';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ACCOUNT, BASE_CONFIG, REGION, runProgram, SECRET_KEYS, type ProgramRun, type Registered } from './helpers/pulumi-program.ts';

type Decision = 'Allowed' | 'ImplicitlyDenied' | 'ExplicitlyDenied';
type Policy = { Version: string; Statement: unknown[] };

/** A principal: its ARN and the policies that bind it. */
interface Who {
  arn: string;
  identity: Policy[];
  boundary?: Policy;
  /** SCPs of its account, besides AWS's default FullAWSAccess. */
  scps?: Policy[];
}

interface Case {
  who: string;
  action: string;
  /** A resource of the stack by name (see `resources`), or an ARN. */
  resource: string;
  /** Request context keys, as AWS sets them for this kind of request (a list for a multivalued key). */
  context?: Record<string, string | string[]>;
  expect: Decision;
  why: string;
}

// Function URL requests carry these keys (and a direct Invoke carries neither): AWS checks both
// actions for a URL created since October 2025.
const VIA_URL = { 'lambda:InvokedViaFunctionUrl': 'true' };
const URL_AUTH = { 'lambda:FunctionUrlAuthType': 'AWS_IAM' };
const NO_URL_AUTH = { 'lambda:FunctionUrlAuthType': 'NONE' };
const TO_LAMBDA = { 'iam:PassedToService': 'lambda.amazonaws.com' };
/** Where the functions' network interfaces go: this VPC, a subnet or group tagged for them. */
const OUR_PLACE = { 'ec2:Vpc': 'vpc', 'aws:ResourceTag/openai-wrapi-functions': 'openai-wrapi-dev' };

const arn = (service: string, resource: string) => `arn:aws:${service}:${REGION}:${ACCOUNT}:${resource}`;
const OTHER = {
  table: arn('dynamodb', 'table/openai-wrapi-prod'),
  secret: arn('secretsmanager', 'secret:openai-wrapi-prod-openai-XyZ123'),
  function: arn('lambda', 'function:someone-elses-function'),
  logStream: arn('logs', 'log-group:/aws/lambda/someone-elses-function:log-stream:2026/01/01/[$LATEST]0123'),
  vpc: arn('ec2', 'vpc/vpc-0someoneelses'),
  stream: arn('dynamodb', 'table/openai-wrapi-prod/stream/2026-11-01T00:00:00.000'),
  topic: arn('sns', 'openai-wrapi-prod-alerts'),
};
/** The partition keys a DynamoDB request touches (dynamodb:LeadingKeys): a usage month, a delivery record, the limits. */
const USAGE_ROWS = { 'dynamodb:LeadingKeys': ['M#2026-11'] };
const DELIVERY_RECORD = { 'dynamodb:LeadingKeys': ['A#dev:month:2026-11:research:*:*:80:10000000000'] };
const LIMIT_ROWS = { 'dynamodb:LeadingKeys': ['LIMIT'] };

/** Broad grants the account may hold, as AWS's managed policies give them (the parts that matter here). */
const policy = (...Statement: unknown[]): Policy => ({ Version: '2012-10-17', Statement });
const LAMBDA_FULL_ACCESS = policy(
  { Effect: 'Allow', Action: ['lambda:*', 'logs:DescribeLogGroups', 'cloudwatch:GetMetricData'], Resource: '*' },
  { Effect: 'Allow', Action: 'iam:PassRole', Resource: '*', Condition: { StringEquals: { 'iam:PassedToService': 'lambda.amazonaws.com' } } },
);
const POWER_USER_ACCESS = policy({ Effect: 'Allow', NotAction: ['iam:*', 'organizations:*', 'account:*'], Resource: '*' });
const ADMINISTRATOR_ACCESS = policy({ Effect: 'Allow', Action: '*', Resource: '*' });

let run: ProgramRun;
const people: Record<string, Who> = {};
const resources: Record<string, string> = {};

const parse = (json: unknown) => JSON.parse(json as string) as Policy;
const roleOf = (fn: Registered) => run.resources.find((r) => r.type === 'aws:iam/role:Role' && r.state.arn === fn.inputs.role)!;
/** Every inline policy of the function's role (its own, and in the VPC its network access). */
const inlinePoliciesOf = (fn: Registered) =>
  run.resources.filter((r) => r.type === 'aws:iam/rolePolicy:RolePolicy' && r.inputs.role === roleOf(fn).id).map((r) => parse(r.inputs.policy));
/** The session Lambda opens with a function's role: `assumed-role/<role>/<function>`. */
const sessionOf = (fn: Registered) => `arn:aws:sts::${ACCOUNT}:assumed-role/${roleOf(fn).state.name}/${fn.inputs.name}`;

async function setUp() {
  // In the VPC (numAzs 1), so the execution roles carry their network statements too; with alert
  // channels, so the notifier is deployed; with publicAccess, so the public function is.
  run = await runProgram(
    {
      ...BASE_CONFIG,
      numAzs: 1,
      alertEmails: ['ops@example.com'],
      alertWebhookUrl: 'https://hooks.example.com/budget',
      publicAccess: { project: 'website', allowedOrigins: ['https://app.example.com'], rpmPerClient: 20 },
    },
    { secretKeys: [...SECRET_KEYS, 'alertWebhookUrl'] },
  );
  const fn = (suffix: string) => run.one('aws:lambda/function:Function', suffix);
  const managed = (suffix: string) => parse(run.one('aws:iam/policy:Policy', suffix).inputs.policy);
  const proxy = fn('-proxy');
  const admin = fn('-admin');
  const notifier = fn('-notifier');
  const publicFn = fn('-public');
  const boundary = managed('-boundary');
  const scp = parse(run.outputs.serviceControlPolicy.value);
  const user = (name: string) => `arn:aws:iam::${ACCOUNT}:user/${name}`;

  Object.assign(resources, {
    proxy: proxy.state.arn,
    'proxy:$LATEST': `${proxy.state.arn}:$LATEST`,
    notifier: notifier.state.arn,
    public: publicFn.state.arn,
    'public:$LATEST': `${publicFn.state.arn}:$LATEST`,
    admin: admin.state.arn,
    table: run.one('aws:dynamodb/table:Table').state.arn,
    secret: run.one('aws:secretsmanager/secret:Secret', '-openai').state.arn,
    'proxy role': roleOf(proxy).state.arn,
    'admin role': roleOf(admin).state.arn,
    'notifier role': roleOf(notifier).state.arn,
    'public role': roleOf(publicFn).state.arn,
    stream: run.one('aws:dynamodb/table:Table').state.streamArn,
    topic: run.one('aws:sns/topic:Topic').state.arn,
    dlq: run.one('aws:sqs/queue:Queue').state.arn,
    'webhook secret': run.one('aws:secretsmanager/secret:Secret', '-alert-webhook').state.arn,
    'notifier log stream': `${run.ofType('aws:cloudwatch/logGroup:LogGroup').find((g) => g.inputs.name === `/aws/lambda/${notifier.inputs.name}`)!.state.arn}:log-stream:2026/01/01/[$LATEST]0123`,
    'proxy log stream': `${run.ofType('aws:cloudwatch/logGroup:LogGroup').find((g) => g.inputs.name === `/aws/lambda/${proxy.inputs.name}`)!.state.arn}:log-stream:2026/01/01/[$LATEST]0123`,
    'public log stream': `${run.ofType('aws:cloudwatch/logGroup:LogGroup').find((g) => g.inputs.name === `/aws/lambda/${publicFn.inputs.name}`)!.state.arn}:log-stream:2026/01/01/[$LATEST]0123`,
    'private subnet': run.ofType('aws:ec2/subnet:Subnet').find((s) => s.name.includes('-private-'))!.state.arn,
    'public subnet': run.ofType('aws:ec2/subnet:Subnet').find((s) => s.name.includes('-public-'))!.state.arn,
    vpc: run.one('aws:ec2/vpc:Vpc').state.arn,
    ...Object.fromEntries(Object.entries(OTHER).map(([k, v]) => [`other ${k}`, v])),
  });
  Object.assign(people, {
    user: { arn: user('alice'), identity: [managed('-users')] },
    admin: { arn: user('ada'), identity: [managed('-admins')] },
    'proxy role': { arn: sessionOf(proxy), identity: inlinePoliciesOf(proxy) },
    'admin role': { arn: sessionOf(admin), identity: inlinePoliciesOf(admin) },
    'notifier role': { arn: sessionOf(notifier), identity: inlinePoliciesOf(notifier) },
    'public role': { arn: sessionOf(publicFn), identity: inlinePoliciesOf(publicFn) },
    'Lambda full access': { arn: user('lena'), identity: [LAMBDA_FULL_ACCESS] },
    'Lambda full access + boundary': { arn: user('lena'), identity: [LAMBDA_FULL_ACCESS, managed('-users')], boundary },
    'power user': { arn: user('pat'), identity: [POWER_USER_ACCESS] },
    'power user + boundary': { arn: user('pat'), identity: [POWER_USER_ACCESS], boundary },
    'Lambda full access, account under the SCP': { arn: user('lena'), identity: [LAMBDA_FULL_ACCESS], scps: [scp] },
    'deployer, account under the SCP': { arn: user('deployer'), identity: [ADMINISTRATOR_ACCESS], scps: [scp] },
  } satisfies Record<string, Who>);
}

// prettier-ignore
const CASES: Case[] = [
  // People with the stack's policies.
  { who: 'user', action: 'lambda:InvokeFunctionUrl', resource: 'proxy', context: URL_AUTH, expect: 'Allowed', why: 'calls the proxy through its URL' },
  { who: 'user', action: 'lambda:InvokeFunction', resource: 'proxy', context: VIA_URL, expect: 'Allowed', why: 'the Invoke behind a URL request' },
  { who: 'user', action: 'lambda:InvokeFunction', resource: 'proxy', expect: 'ImplicitlyDenied', why: 'a direct Invoke: the caller would write the identity' },
  { who: 'user', action: 'lambda:InvokeFunction', resource: 'proxy', context: { 'lambda:InvokedViaFunctionUrl': 'false' }, expect: 'ImplicitlyDenied', why: 'the key set false' },
  { who: 'user', action: 'lambda:InvokeFunction', resource: 'admin', expect: 'ImplicitlyDenied', why: 'not an admin' },
  { who: 'user', action: 'lambda:InvokeFunctionUrl', resource: 'other function', context: URL_AUTH, expect: 'ImplicitlyDenied', why: 'this proxy only' },
  { who: 'admin', action: 'lambda:InvokeFunction', resource: 'admin', expect: 'Allowed', why: 'limits, prices, usage, cache flush' },
  { who: 'admin', action: 'lambda:InvokeFunction', resource: 'proxy', expect: 'ImplicitlyDenied', why: 'the admin policy alone calls no model' },
  { who: 'admin', action: 'lambda:UpdateFunctionCode', resource: 'admin', expect: 'ImplicitlyDenied', why: 'administers the ledger, not the function' },

  // The proxy's role: its table (the ledger port's calls), its secret, its logs, its network interfaces.
  ...['dynamodb:BatchGetItem', 'dynamodb:GetItem', 'dynamodb:UpdateItem', 'dynamodb:PutItem'].map((action): Case =>
    ({ who: 'proxy role', action, resource: 'table', expect: 'Allowed', why: 'reserve, settle, read limits and prices' })),
  { who: 'proxy role', action: 'secretsmanager:GetSecretValue', resource: 'secret', expect: 'Allowed', why: 'the OpenAI key, once per cold start' },
  { who: 'proxy role', action: 'logs:PutLogEvents', resource: 'proxy log stream', expect: 'Allowed', why: 'its own logs' },
  // Subnets are named by their VPC and the tag the private ones carry (the policy cannot name them by ARN).
  { who: 'proxy role', action: 'ec2:CreateNetworkInterface', resource: 'private subnet', context: OUR_PLACE, expect: 'Allowed', why: 'joins the VPC' },
  { who: 'proxy role', action: 'ec2:CreateNetworkInterface', resource: 'public subnet', context: { 'ec2:Vpc': 'vpc' }, expect: 'ImplicitlyDenied', why: 'private subnets only' },
  { who: 'proxy role', action: 'ec2:CreateNetworkInterface', resource: 'private subnet', context: { ...OUR_PLACE, 'ec2:Vpc': 'other vpc' }, expect: 'ImplicitlyDenied', why: 'this VPC only' },
  { who: 'proxy role', action: 'dynamodb:Scan', resource: 'table', expect: 'ImplicitlyDenied', why: 'no scans' },
  { who: 'proxy role', action: 'dynamodb:Query', resource: 'table', expect: 'ImplicitlyDenied', why: 'reports are the admin\'s' },
  { who: 'proxy role', action: 'dynamodb:DeleteItem', resource: 'table', expect: 'ImplicitlyDenied', why: 'never removes a row' },
  { who: 'proxy role', action: 'dynamodb:DeleteTable', resource: 'table', expect: 'ImplicitlyDenied', why: 'no table management' },
  { who: 'proxy role', action: 'dynamodb:UpdateItem', resource: 'other table', expect: 'ImplicitlyDenied', why: 'another stage\'s ledger' },
  { who: 'proxy role', action: 'secretsmanager:GetSecretValue', resource: 'other secret', expect: 'ImplicitlyDenied', why: 'another stage\'s key' },
  { who: 'proxy role', action: 'secretsmanager:PutSecretValue', resource: 'secret', expect: 'ImplicitlyDenied', why: 'reads its key, never writes it' },
  { who: 'proxy role', action: 'logs:PutLogEvents', resource: 'other logStream', expect: 'ImplicitlyDenied', why: 'another function\'s logs' },
  { who: 'proxy role', action: 'lambda:InvokeFunction', resource: 'admin', expect: 'ImplicitlyDenied', why: 'no way to the admin' },

  // The admin's role: queries and writes its table; no key.
  ...['dynamodb:Query', 'dynamodb:UpdateItem', 'dynamodb:PutItem', 'dynamodb:DeleteItem'].map((action): Case =>
    ({ who: 'admin role', action, resource: 'table', expect: 'Allowed', why: 'reports, limits, prices, expired holds' })),
  { who: 'admin role', action: 'dynamodb:Scan', resource: 'table', expect: 'ImplicitlyDenied', why: 'no scans' },
  { who: 'admin role', action: 'dynamodb:BatchWriteItem', resource: 'table', expect: 'ImplicitlyDenied', why: 'one row at a time' },
  { who: 'admin role', action: 'dynamodb:DeleteTable', resource: 'table', expect: 'ImplicitlyDenied', why: 'no table management' },
  { who: 'admin role', action: 'dynamodb:Query', resource: 'other table', expect: 'ImplicitlyDenied', why: 'another stage\'s ledger' },
  { who: 'admin role', action: 'secretsmanager:GetSecretValue', resource: 'secret', expect: 'ImplicitlyDenied', why: 'the admin never calls OpenAI' },

  // The notifier's role: its stream, the usage of an alert's period, its own delivery records, the
  // topic, the webhook's secret, its dead-letter queue; never usage or limits, never the OpenAI key.
  ...['dynamodb:DescribeStream', 'dynamodb:GetShardIterator', 'dynamodb:GetRecords'].map((action): Case =>
    ({ who: 'notifier role', action, resource: 'stream', expect: 'Allowed', why: 'reads the ledger\'s stream' })),
  { who: 'notifier role', action: 'dynamodb:GetRecords', resource: 'other stream', expect: 'ImplicitlyDenied', why: 'another stage\'s stream' },
  { who: 'notifier role', action: 'dynamodb:Query', resource: 'table', context: USAGE_ROWS, expect: 'Allowed', why: 'the top users and models of the alert\'s month' },
  { who: 'notifier role', action: 'dynamodb:Query', resource: 'table', context: LIMIT_ROWS, expect: 'ImplicitlyDenied', why: 'usage partitions only' },
  { who: 'notifier role', action: 'dynamodb:UpdateItem', resource: 'table', context: DELIVERY_RECORD, expect: 'Allowed', why: 'claims and marks its delivery records' },
  { who: 'notifier role', action: 'dynamodb:GetItem', resource: 'table', context: DELIVERY_RECORD, expect: 'Allowed', why: 'looks at another sender\'s claim' },
  { who: 'notifier role', action: 'dynamodb:UpdateItem', resource: 'table', context: USAGE_ROWS, expect: 'ImplicitlyDenied', why: 'cannot write usage items' },
  { who: 'notifier role', action: 'dynamodb:UpdateItem', resource: 'table', context: LIMIT_ROWS, expect: 'ImplicitlyDenied', why: 'cannot change a limit' },
  { who: 'notifier role', action: 'dynamodb:GetItem', resource: 'table', context: LIMIT_ROWS, expect: 'ImplicitlyDenied', why: 'reads no limit' },
  { who: 'notifier role', action: 'dynamodb:PutItem', resource: 'table', context: DELIVERY_RECORD, expect: 'ImplicitlyDenied', why: 'UpdateItem is all it needs' },
  { who: 'notifier role', action: 'dynamodb:DeleteItem', resource: 'table', context: DELIVERY_RECORD, expect: 'ImplicitlyDenied', why: 'TTL deletes delivery records' },
  { who: 'notifier role', action: 'dynamodb:UpdateItem', resource: 'other table', context: DELIVERY_RECORD, expect: 'ImplicitlyDenied', why: 'another stage\'s ledger' },
  { who: 'notifier role', action: 'sns:Publish', resource: 'topic', expect: 'Allowed', why: 'the stage\'s alert topic' },
  { who: 'notifier role', action: 'sns:Publish', resource: 'other topic', expect: 'ImplicitlyDenied', why: 'another stage\'s topic' },
  { who: 'notifier role', action: 'secretsmanager:GetSecretValue', resource: 'webhook secret', expect: 'Allowed', why: 'the webhook URL' },
  { who: 'notifier role', action: 'secretsmanager:GetSecretValue', resource: 'secret', expect: 'ImplicitlyDenied', why: 'cannot read the OpenAI key' },
  { who: 'notifier role', action: 'sqs:SendMessage', resource: 'dlq', expect: 'Allowed', why: 'the mapping\'s dead letters' },
  { who: 'notifier role', action: 'logs:PutLogEvents', resource: 'notifier log stream', expect: 'Allowed', why: 'its own logs' },
  { who: 'notifier role', action: 'logs:PutLogEvents', resource: 'proxy log stream', expect: 'ImplicitlyDenied', why: 'another function\'s logs' },
  { who: 'notifier role', action: 'lambda:InvokeFunction', resource: 'proxy', expect: 'ImplicitlyDenied', why: 'calls no model' },
  { who: 'proxy role', action: 'secretsmanager:GetSecretValue', resource: 'webhook secret', expect: 'ImplicitlyDenied', why: 'the webhook is the notifier\'s' },

  // The public function's role: the proxy's permissions, on its own logs.
  ...['dynamodb:BatchGetItem', 'dynamodb:GetItem', 'dynamodb:UpdateItem', 'dynamodb:PutItem'].map((action): Case =>
    ({ who: 'public role', action, resource: 'table', expect: 'Allowed', why: 'the proxy\'s ledger calls' })),
  { who: 'public role', action: 'secretsmanager:GetSecretValue', resource: 'secret', expect: 'Allowed', why: 'the OpenAI key, once per cold start' },
  { who: 'public role', action: 'logs:PutLogEvents', resource: 'public log stream', expect: 'Allowed', why: 'its own logs' },
  { who: 'public role', action: 'ec2:CreateNetworkInterface', resource: 'private subnet', context: OUR_PLACE, expect: 'Allowed', why: 'joins the VPC' },
  { who: 'public role', action: 'logs:PutLogEvents', resource: 'proxy log stream', expect: 'ImplicitlyDenied', why: 'the proxy\'s logs' },
  { who: 'public role', action: 'dynamodb:Query', resource: 'table', expect: 'ImplicitlyDenied', why: 'reports are the admin\'s' },
  { who: 'public role', action: 'dynamodb:DeleteItem', resource: 'table', expect: 'ImplicitlyDenied', why: 'never removes a row' },
  { who: 'public role', action: 'secretsmanager:GetSecretValue', resource: 'webhook secret', expect: 'ImplicitlyDenied', why: 'the webhook is the notifier\'s' },
  { who: 'public role', action: 'lambda:InvokeFunction', resource: 'admin', expect: 'ImplicitlyDenied', why: 'no way to the admin' },
  { who: 'user', action: 'lambda:InvokeFunction', resource: 'public', expect: 'ImplicitlyDenied', why: 'the users\' policy is the signed proxy\'s' },

  // A broad grant from elsewhere in the account opens the hole ...
  { who: 'Lambda full access', action: 'lambda:InvokeFunction', resource: 'proxy', expect: 'Allowed', why: 'the hole: a forged event, billed to anyone' },
  { who: 'Lambda full access', action: 'iam:PassRole', resource: 'proxy role', context: TO_LAMBDA, expect: 'Allowed', why: 'the hole: a new function as the proxy\'s role' },
  { who: 'Lambda full access', action: 'lambda:InvokeFunction', resource: 'public', expect: 'Allowed', why: 'the hole: a forged source address, a fresh client per call' },
  { who: 'power user', action: 'dynamodb:UpdateItem', resource: 'table', expect: 'Allowed', why: 'the hole: usage rewritten by hand' },
  { who: 'power user', action: 'secretsmanager:GetSecretValue', resource: 'secret', expect: 'Allowed', why: 'the hole: the stage\'s key' },
  // ... the boundary closes it and leaves the rest ...
  { who: 'Lambda full access + boundary', action: 'lambda:InvokeFunction', resource: 'proxy', expect: 'ExplicitlyDenied', why: 'direct Invoke' },
  { who: 'Lambda full access + boundary', action: 'lambda:InvokeFunction', resource: 'proxy:$LATEST', expect: 'ExplicitlyDenied', why: 'direct Invoke of a qualified ARN' },
  { who: 'Lambda full access + boundary', action: 'lambda:InvokeAsync', resource: 'proxy', expect: 'ExplicitlyDenied', why: 'the deprecated async Invoke' },
  { who: 'Lambda full access + boundary', action: 'lambda:InvokeFunction', resource: 'proxy', context: VIA_URL, expect: 'Allowed', why: 'still calls through the URL' },
  { who: 'Lambda full access + boundary', action: 'lambda:InvokeFunctionUrl', resource: 'proxy', context: URL_AUTH, expect: 'Allowed', why: 'still calls through the URL' },
  { who: 'Lambda full access + boundary', action: 'lambda:UpdateFunctionCode', resource: 'proxy', expect: 'ExplicitlyDenied', why: 'new code would read the key' },
  { who: 'Lambda full access + boundary', action: 'lambda:UpdateFunctionUrlConfig', resource: 'proxy', expect: 'ExplicitlyDenied', why: 'a URL without auth' },
  { who: 'Lambda full access + boundary', action: 'lambda:AddPermission', resource: 'proxy', expect: 'ExplicitlyDenied', why: 'another account\'s direct Invoke' },
  { who: 'Lambda full access + boundary', action: 'lambda:UpdateFunctionConfiguration', resource: 'admin', expect: 'ExplicitlyDenied', why: 'the admin function too' },
  { who: 'Lambda full access + boundary', action: 'iam:PassRole', resource: 'proxy role', context: TO_LAMBDA, expect: 'ExplicitlyDenied', why: 'a new function as the proxy\'s role' },
  { who: 'Lambda full access + boundary', action: 'iam:PassRole', resource: 'admin role', context: TO_LAMBDA, expect: 'ExplicitlyDenied', why: 'a new function as the admin\'s role' },
  { who: 'Lambda full access + boundary', action: 'lambda:InvokeFunction', resource: 'other function', expect: 'Allowed', why: 'the rest of its grant stands' },
  { who: 'Lambda full access + boundary', action: 'lambda:GetFunction', resource: 'proxy', expect: 'Allowed', why: 'reading the function is harmless' },
  { who: 'power user + boundary', action: 'dynamodb:UpdateItem', resource: 'table', expect: 'ExplicitlyDenied', why: 'ledger writes go through the functions' },
  { who: 'power user + boundary', action: 'dynamodb:PartiQLUpdate', resource: 'table', expect: 'ExplicitlyDenied', why: 'ledger writes, in PartiQL' },
  { who: 'power user + boundary', action: 'secretsmanager:GetSecretValue', resource: 'secret', expect: 'ExplicitlyDenied', why: 'the stage\'s key' },
  { who: 'power user + boundary', action: 'secretsmanager:GetSecretValue', resource: 'webhook secret', expect: 'ExplicitlyDenied', why: 'the alert webhook\'s token' },
  { who: 'Lambda full access + boundary', action: 'lambda:UpdateFunctionCode', resource: 'notifier', expect: 'ExplicitlyDenied', why: 'the notifier too' },
  { who: 'Lambda full access + boundary', action: 'lambda:InvokeFunction', resource: 'public', expect: 'ExplicitlyDenied', why: 'direct Invoke of the public function: a forged source address' },
  { who: 'Lambda full access + boundary', action: 'lambda:InvokeFunction', resource: 'public:$LATEST', expect: 'ExplicitlyDenied', why: 'of a qualified ARN too' },
  { who: 'Lambda full access + boundary', action: 'lambda:InvokeAsync', resource: 'public', expect: 'ExplicitlyDenied', why: 'the deprecated async Invoke' },
  { who: 'Lambda full access + boundary', action: 'lambda:InvokeFunction', resource: 'public', context: VIA_URL, expect: 'Allowed', why: 'through its URL, like anyone' },
  { who: 'Lambda full access + boundary', action: 'lambda:InvokeFunctionUrl', resource: 'public', context: NO_URL_AUTH, expect: 'Allowed', why: 'its URL, like anyone' },
  { who: 'Lambda full access + boundary', action: 'lambda:UpdateFunctionConfiguration', resource: 'public', expect: 'ExplicitlyDenied', why: 'another project or other origins' },
  { who: 'Lambda full access + boundary', action: 'lambda:UpdateFunctionUrlConfig', resource: 'public', expect: 'ExplicitlyDenied', why: 'CORS for any page' },
  { who: 'Lambda full access + boundary', action: 'lambda:AddPermission', resource: 'public', expect: 'ExplicitlyDenied', why: 'a direct Invoke for anyone' },
  { who: 'Lambda full access + boundary', action: 'iam:PassRole', resource: 'public role', context: TO_LAMBDA, expect: 'ExplicitlyDenied', why: 'a new function as the public role' },
  { who: 'power user + boundary', action: 'dynamodb:Query', resource: 'table', expect: 'Allowed', why: 'reading usage is harmless' },
  { who: 'power user + boundary', action: 'dynamodb:UpdateItem', resource: 'other table', expect: 'Allowed', why: 'the rest of its grant stands' },
  // ... and the SCP closes the direct Invoke for a whole account, the deployer still deploying.
  { who: 'Lambda full access, account under the SCP', action: 'lambda:InvokeFunction', resource: 'proxy', expect: 'ExplicitlyDenied', why: 'direct Invoke' },
  { who: 'Lambda full access, account under the SCP', action: 'lambda:InvokeFunction', resource: 'proxy', context: VIA_URL, expect: 'Allowed', why: 'through the URL' },
  { who: 'deployer, account under the SCP', action: 'lambda:UpdateFunctionCode', resource: 'proxy', expect: 'Allowed', why: 'pulumi up' },
  { who: 'deployer, account under the SCP', action: 'iam:PassRole', resource: 'proxy role', context: TO_LAMBDA, expect: 'Allowed', why: 'pulumi up' },
  { who: 'deployer, account under the SCP', action: 'lambda:InvokeFunction', resource: 'proxy', expect: 'ExplicitlyDenied', why: 'nobody invokes it directly' },
  { who: 'Lambda full access, account under the SCP', action: 'lambda:InvokeFunction', resource: 'public', expect: 'ExplicitlyDenied', why: 'direct Invoke of the public function' },
  { who: 'Lambda full access, account under the SCP', action: 'lambda:InvokeFunction', resource: 'public', context: VIA_URL, expect: 'Allowed', why: 'through its URL' },
  { who: 'deployer, account under the SCP', action: 'lambda:InvokeFunction', resource: 'public', expect: 'ExplicitlyDenied', why: 'nobody invokes it directly' },
  { who: 'deployer, account under the SCP', action: 'lambda:UpdateFunctionConfiguration', resource: 'public', expect: 'Allowed', why: 'pulumi up' },
];

const FULL_AWS_ACCESS = policy({ Effect: 'Allow', Action: '*', Resource: '*' });

/** What the evaluator decides for one case; fails on any input it rejects or context key it would ignore. */
async function decide(c: Case): Promise<Decision> {
  const who = people[c.who];
  assert.ok(who, `no principal "${c.who}"`);
  const resource = resources[c.resource] ?? c.resource;
  assert.match(resource, /^arn:aws:/, `no resource "${c.resource}"`);
  const simulation: Simulation = {
    // A context value that names a resource of the run (`vpc`) stands for its ARN.
    request: {
      principal: who.arn,
      action: c.action,
      resource: { resource, accountId: ACCOUNT },
      contextVariables: Object.fromEntries(Object.entries(c.context ?? {}).map(([k, v]) => [k, typeof v === 'string' ? (resources[v] ?? v) : v])),
    },
    identityPolicies: who.identity.map((p, i) => ({ name: `identity-${i}`, policy: p })),
    permissionBoundaryPolicies: who.boundary ? [{ name: 'boundary', policy: who.boundary }] : undefined,
    serviceControlPolicies: who.scps
      ? [{ orgIdentifier: ACCOUNT, policies: [{ name: 'FullAWSAccess', policy: FULL_AWS_ACCESS }, ...who.scps.map((p, i) => ({ name: `scp-${i}`, policy: p }))] }]
      : [],
    resourceControlPolicies: [],
  };
  const result = await runSimulation(simulation, { simulationMode: 'Strict' });
  if (result.resultType === 'error') assert.unreachable(`the evaluator refused the request: ${JSON.stringify(result.errors)}`);
  assert.is(result.resultType, 'single', 'one resource, no wildcard');
  if (result.resultType !== 'single') throw new Error('unreachable');
  // A key the evaluator drops as not applying to the action would make the case prove nothing.
  assert.equal(result.result.ignoredContextKeys ?? [], [], 'every context key applies to the action');
  return result.overallResult as Decision;
}

const iam = suite('IAM, evaluated');
iam.before(setUp);

for (const c of CASES) {
  const context = c.context ? ` (${Object.entries(c.context).map(([k, v]) => `${k}=${v}`).join(', ')})` : '';
  iam(`${c.who}: ${c.action} on ${c.resource}${context} → ${c.expect}: ${c.why}`, async () => {
    assert.is(await decide(c), c.expect);
  });
}

iam('the table covers every principal and both decisions for each function\'s role', () => {
  assert.equal(new Set(CASES.map((c) => c.who)), new Set(Object.keys(people)));
  for (const role of ['proxy role', 'admin role', 'notifier role', 'public role']) {
    const decisions = new Set(CASES.filter((c) => c.who === role).map((c) => c.expect));
    assert.ok(decisions.has('Allowed') && decisions.has('ImplicitlyDenied'), role);
  }
});

iam.run();
