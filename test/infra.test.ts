// The Pulumi program (index.ts) under Pulumi's unit-test mocks: the network per AZ count, with and
// without ElastiCache, the function URL, where the functions run, who may reach the cache, every IAM
// policy document, where the OpenAI secret goes, the stack outputs, and config validation.
import { readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { LEDGER_TABLE } from '../runtime/store/dynamo-ledger.ts';
import { DEPLOYED_ENV, LAMBDA_PROVIDED_ENV, NOTIFIER_ONLY_ENV, PUBLIC_ONLY_ENV, UNDEPLOYED_ENV, adminFunctionName, ledgerTableName, proxyFunctionName } from '../runtime/core/contract.ts';
import { readAdminSettings, readProxySettings } from '../runtime/lambda/settings.ts';
import { localOutputs } from '../runtime/local/outputs.ts';
import {
  ACCOUNT,
  BASE_CONFIG,
  OPENAI_API_KEY,
  OPENAI_ORG_ID,
  REGION,
  ZONES,
  containsSecret,
  envOf,
  isSecretValue,
  runProgram,
  sorted,
  type ProgramRun,
  type Registered,
} from './helpers/pulumi-program.ts';

const T = {
  vpc: 'aws:ec2/vpc:Vpc',
  subnet: 'aws:ec2/subnet:Subnet',
  igw: 'aws:ec2/internetGateway:InternetGateway',
  eip: 'aws:ec2/eip:Eip',
  nat: 'aws:ec2/natGateway:NatGateway',
  routeTable: 'aws:ec2/routeTable:RouteTable',
  route: 'aws:ec2/route:Route',
  association: 'aws:ec2/routeTableAssociation:RouteTableAssociation',
  endpoint: 'aws:ec2/vpcEndpoint:VpcEndpoint',
  securityGroup: 'aws:ec2/securityGroup:SecurityGroup',
  ingress: 'aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule',
  egress: 'aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule',
  cache: 'aws:elasticache/cluster:Cluster',
  cacheSubnets: 'aws:elasticache/subnetGroup:SubnetGroup',
  table: 'aws:dynamodb/table:Table',
  secret: 'aws:secretsmanager/secret:Secret',
  secretVersion: 'aws:secretsmanager/secretVersion:SecretVersion',
  logGroup: 'aws:cloudwatch/logGroup:LogGroup',
  role: 'aws:iam/role:Role',
  rolePolicy: 'aws:iam/rolePolicy:RolePolicy',
  policy: 'aws:iam/policy:Policy',
  fn: 'aws:lambda/function:Function',
  url: 'aws:lambda/functionUrl:FunctionUrl',
  alarm: 'aws:cloudwatch/metricAlarm:MetricAlarm',
};

const OUTPUTS = [
  'proxyUrl', 'proxyFunctionName', 'adminFunctionName', 'tableName', 'cacheEndpoint', 'region', 'userPolicyArn', 'adminPolicyArn',
  'boundaryPolicyArn', 'serviceControlPolicy', 'directInvokeAlarmName', 'alertTopicArn', 'dashboardUrl',
  // Null unless an alert channel is configured (test/notifier-infra.test.ts).
  'notifierFunctionName', 'alertDlqUrl',
  // Null unless publicAccess is configured (test/public-infra.test.ts).
  'publicUrl', 'publicFunctionName',
];

// Three stacks, each a separate run of the program.
const FULL_CONFIG = {
  ...BASE_CONFIG,
  numAzs: 3,
  cacheNodeType: 'cache.t4g.small',
  proxyTimeoutSeconds: 300,
  proxyMemoryMb: 768,
  logRetentionDays: 90,
  defaultProjectLimitUsd: 2.5,
  failOpen: true,
  tableDeletionProtection: true,
  upstreamUrl: 'https://gateway.example.com/v1',
  sessionNamedRoles: ['DataScience', 'Analysts'],
  adminReservedConcurrency: 5,
  proxyMaxConcurrency: 200,
};
let full: ProgramRun; // 3 AZs, ElastiCache, every setting changed from its default
let single: ProgramRun; // 1 AZ, defaults, no org id
let noCache: ProgramRun; // useElastiCache false

// ------------------------------------------------------------------------------------------ helpers

const proxyOf = (run: ProgramRun) => run.one(T.fn, '-proxy');
const adminOf = (run: ProgramRun) => run.one(T.fn, '-admin');
const subnetAz = (run: ProgramRun, subnetId: string) => run.byId(subnetId)!.inputs.availabilityZone as string;

/** Subnets whose route table sends 0.0.0.0/0 to a NAT gateway: the private ones, by behaviour. */
function privateSubnetIds(run: ProgramRun): string[] {
  const natTables = new Set(
    run.ofType(T.route).filter((r) => r.inputs.destinationCidrBlock === '0.0.0.0/0' && r.inputs.natGatewayId).map((r) => r.inputs.routeTableId),
  );
  return sorted(run.ofType(T.association).filter((a) => natTables.has(a.inputs.routeTableId)).map((a) => a.inputs.subnetId));
}

interface Stmt {
  Sid?: string;
  Effect: string;
  Principal?: unknown;
  Action: string[];
  Resource: string[];
  Condition?: Record<string, Record<string, string>>;
}
interface PolicyDoc {
  where: string;
  statements: Stmt[];
}

/** Every IAM policy document the program writes, parsed, with Action/Resource as arrays. */
function policyDocuments(run: ProgramRun): PolicyDoc[] {
  const docs: PolicyDoc[] = [];
  const add = (where: string, json: unknown) => {
    assert.type(json, 'string', `${where} is a JSON string`);
    const doc = JSON.parse(json as string);
    assert.is(doc.Version, '2012-10-17', where);
    const arr = (x: unknown) => (x === undefined ? [] : Array.isArray(x) ? x : [x]);
    docs.push({ where, statements: doc.Statement.map((s: any) => ({ ...s, Action: arr(s.Action), Resource: arr(s.Resource) })) });
  };
  for (const r of run.ofType(T.role)) add(`${r.name}.assumeRolePolicy`, r.inputs.assumeRolePolicy);
  for (const r of run.ofType(T.rolePolicy)) add(`${r.name}.policy`, r.inputs.policy);
  for (const r of run.ofType(T.policy)) add(`${r.name}.policy`, r.inputs.policy);
  for (const r of run.ofType(T.endpoint)) add(`${r.name}.policy`, r.inputs.policy);
  return docs;
}

/** The inline policies of a function's execution role: its own, and in the VPC its network access. */
function rolePoliciesOf(run: ProgramRun, fn: Registered): { main: Stmt[]; vpcAccess?: Stmt[] } {
  const role = run.resources.find((r) => r.type === T.role && r.state.arn === fn.inputs.role)!;
  const policies = run.ofType(T.rolePolicy).filter((p) => p.inputs.role === role.id);
  assert.is(run.resources.filter((r) => r.type.startsWith('aws:iam/rolePolicyAttachment')).length, 0, 'no managed policies');
  const doc = (p: Registered | undefined) => p && policyDocuments(run).find((d) => d.where === `${p.name}.policy`)!.statements;
  const vpc = policies.filter((p) => p.name.endsWith('-vpc-access'));
  const main = policies.filter((p) => !p.name.endsWith('-vpc-access'));
  assert.is(main.length, 1, `${fn.inputs.name}'s role has one main inline policy`);
  assert.ok(vpc.length <= 1, `${fn.inputs.name}'s role has at most one VPC access policy`);
  return { main: doc(main[0])!, vpcAccess: doc(vpc[0]) };
}
const rolePolicyOf = (run: ProgramRun, fn: Registered): Stmt[] => rolePoliciesOf(run, fn).main;
/** A function's log group, by its name. */
const logGroupOf = (run: ProgramRun, functionName: string) =>
  run.ofType(T.logGroup).find((g) => g.inputs.name === `/aws/lambda/${functionName}`)!;
const actionsOf = (statements: Stmt[]) => sorted([...new Set(statements.flatMap((s) => s.Action))]);
const resourcesFor = (statements: Stmt[], action: string) => statements.filter((s) => s.Action.includes(action)).flatMap((s) => s.Resource);

/** Actions that support no resource-level permissions: "*" is their only possible resource. */
const NO_RESOURCE_LEVEL = new Set(['ec2:DescribeNetworkInterfaces', 'ec2:DescribeSubnets']);
const VPC_ACTIONS = [
  'ec2:AssignPrivateIpAddresses',
  'ec2:CreateNetworkInterface',
  'ec2:DeleteNetworkInterface',
  'ec2:DescribeNetworkInterfaces',
  'ec2:DescribeSubnets',
  'ec2:UnassignPrivateIpAddresses',
];

// -------------------------------------------------------------------------------------------- runs

const runs = suite('program runs');

runs.before(async () => {
  full = await runProgram(FULL_CONFIG);
  single = await runProgram({ stage: 'dev', openaiApiKey: OPENAI_API_KEY, numAzs: 1 }, { secretKeys: ['openaiApiKey'] });
  noCache = await runProgram({ ...BASE_CONFIG, useElastiCache: false, numAzs: 3 });
});

// ----------------------------------------------------------------------------------------- network

runs('numAzs 3: a VPC with a public and a private subnet, a NAT gateway and an Elastic IP per AZ', () => {
  assert.is(full.ofType(T.vpc).length, 1);
  const vpc = full.one(T.vpc);
  assert.is(vpc.inputs.cidrBlock, '10.0.0.0/16');
  assert.ok(vpc.inputs.enableDnsSupport && vpc.inputs.enableDnsHostnames);
  assert.is(full.one(T.igw).inputs.vpcId, vpc.id);

  const subnets = full.ofType(T.subnet);
  assert.is(subnets.length, 6);
  for (const s of subnets) assert.is(s.inputs.vpcId, vpc.id);
  assert.is(new Set(subnets.map((s) => s.inputs.cidrBlock)).size, 6, 'no two subnets share a CIDR');
  const priv = privateSubnetIds(full);
  assert.is(priv.length, 3);
  const pub = subnets.filter((s) => !priv.includes(s.id));
  for (const s of subnets) assert.is(s.inputs.mapPublicIpOnLaunch, false, `${s.name} gives nothing a public IP`);
  assert.equal(sorted(priv.map((id) => subnetAz(full, id))), ZONES, 'one private subnet per AZ');
  assert.equal(sorted(pub.map((s) => s.inputs.availabilityZone)), ZONES, 'one public subnet per AZ');

  const eips = full.ofType(T.eip);
  const nats = full.ofType(T.nat);
  assert.is(eips.length, 3);
  assert.is(nats.length, 3);
  for (const e of eips) assert.is(e.inputs.domain, 'vpc');
  assert.equal(sorted(nats.map((n) => n.inputs.allocationId)), sorted(eips.map((e) => e.id)), 'each NAT gateway has its own Elastic IP');
  assert.equal(sorted(nats.map((n) => n.inputs.subnetId)), sorted(pub.map((s) => s.id)), 'one NAT gateway in each public subnet');
});

runs('numAzs 3: route tables send the public subnets to the internet gateway and each private subnet to its own AZ\'s NAT', () => {
  const tables = full.ofType(T.routeTable);
  const routes = full.ofType(T.route);
  assert.is(tables.length, 4, 'one public route table, one private per AZ');
  assert.is(routes.length, 4);
  assert.is(full.ofType(T.association).length, 6);
  const igw = full.one(T.igw);
  const publicRoute = routes.filter((r) => r.inputs.gatewayId === igw.id);
  assert.is(publicRoute.length, 1);
  assert.is(publicRoute[0].inputs.destinationCidrBlock, '0.0.0.0/0');

  for (const subnetId of privateSubnetIds(full)) {
    const association = full.ofType(T.association).find((a) => a.inputs.subnetId === subnetId)!;
    const route = routes.find((r) => r.inputs.routeTableId === association.inputs.routeTableId)!;
    const nat = full.byId(route.inputs.natGatewayId)!;
    assert.is(subnetAz(full, nat.inputs.subnetId), subnetAz(full, subnetId), `${subnetId} leaves through its own AZ`);
  }
});

runs('numAzs 3: a DynamoDB gateway endpoint on the private route tables, admitting only the ledger table', () => {
  const endpoint = full.one(T.endpoint);
  assert.is(endpoint.inputs.vpcEndpointType, 'Gateway');
  assert.is(endpoint.inputs.serviceName, `com.amazonaws.${REGION}.dynamodb`);
  const privateTables = privateSubnetIds(full).map((id) => full.ofType(T.association).find((a) => a.inputs.subnetId === id)!.inputs.routeTableId);
  assert.equal(sorted(endpoint.inputs.routeTableIds), sorted(privateTables));
  const [doc] = policyDocuments(full).filter((d) => d.where.startsWith(endpoint.name));
  assert.equal(doc.statements.flatMap((s) => s.Resource), [full.one(T.table).state.arn]);
});

runs('numAzs 1: one subnet of each kind, one NAT gateway, one Elastic IP, two route tables', () => {
  assert.is(single.ofType(T.subnet).length, 2);
  assert.is(single.ofType(T.nat).length, 1);
  assert.is(single.ofType(T.eip).length, 1);
  assert.is(single.ofType(T.routeTable).length, 2);
  assert.is(single.ofType(T.route).length, 2);
  assert.equal(privateSubnetIds(single).map((id) => subnetAz(single, id)), [ZONES[0]]);
  assert.is(single.ofType(T.cache).length, 1);
});

runs('useElastiCache false: no VPC, no NAT, no Elastic IP, no cache; functions outside any VPC', () => {
  const network = noCache.resources.filter((r) => /^aws:(ec2|vpc|elasticache)\//.test(r.type));
  assert.equal(network.map((r) => r.type), []);
  for (const fn of [proxyOf(noCache), adminOf(noCache)]) {
    assert.is(fn.inputs.vpcConfig, undefined, `${fn.name} has no VPC config`);
    assert.not.ok('OPENAI_WRAPI_MEMCACHED' in envOf(fn));
    assert.equal(actionsOf(rolePolicyOf(noCache, fn)).filter((a) => a.startsWith('ec2:')), [], `${fn.name}'s role has no ec2 actions`);
  }
  assert.is(noCache.outputs.cacheEndpoint.value, null);
});

// ------------------------------------------------------------------------------ functions and cache

runs('the proxy has a function URL with AWS_IAM auth and RESPONSE_STREAM invoke mode; the admin has none', () => {
  const url = full.one(T.url);
  assert.is(url.inputs.functionName, proxyOf(full).state.name);
  assert.is(url.inputs.authorizationType, 'AWS_IAM');
  assert.is(url.inputs.invokeMode, 'RESPONSE_STREAM');
  assert.is(noCache.one(T.url).inputs.invokeMode, 'RESPONSE_STREAM');
});

runs('both functions: nodejs22.x on arm64, the bundled handler, their own log group with the configured retention', () => {
  for (const [run, retention] of [[full, 90], [single, 30]] as const) {
    for (const [fn, name] of [[proxyOf(run), 'proxy'], [adminOf(run), 'admin']] as const) {
      assert.is(fn.inputs.runtime, 'nodejs22.x');
      assert.equal(fn.inputs.architectures, ['arm64']);
      assert.is(fn.inputs.handler, `${name}.handler`);
      assert.is(fn.inputs.name, `openai-${name}-dev`);
      const logGroup = logGroupOf(run, fn.inputs.name);
      assert.ok(logGroup, `${fn.inputs.name} has a log group`);
      assert.is(logGroup.inputs.retentionInDays, retention);
      assert.is(fn.inputs.loggingConfig.logGroup, logGroup.state.name);
    }
  }
});

runs('the proxy takes its timeout and memory from config and stops waiting on the upstream 10 s earlier', () => {
  assert.is(proxyOf(full).inputs.timeout, 300);
  assert.is(proxyOf(full).inputs.memorySize, 768);
  assert.is(envOf(proxyOf(full)).OPENAI_WRAPI_TIMEOUT_MS, '290000');
  assert.is(proxyOf(single).inputs.timeout, 600);
  assert.is(proxyOf(single).inputs.memorySize, 512);
  assert.is(envOf(proxyOf(single)).OPENAI_WRAPI_TIMEOUT_MS, '590000');
});

runs('a rotated key (pulumi config set --secret openaiApiKey, pulumi up) changes the proxy\'s configuration', async () => {
  const before = envOf(proxyOf(noCache));
  assert.is(before.OPENAI_WRAPI_SECRET_VERSION, noCache.one(T.secretVersion).state.versionId);
  assert.match(before.OPENAI_WRAPI_SECRET_VERSION, /^[0-9a-f]{8}-/);
  const rotated = await runProgram({ ...BASE_CONFIG, useElastiCache: false, numAzs: 3, openaiApiKey: 'sk-test-rotated-key-9876543210' });
  const after = envOf(proxyOf(rotated));
  assert.is.not(after.OPENAI_WRAPI_SECRET_VERSION, before.OPENAI_WRAPI_SECRET_VERSION, 'a new version id: Lambda replaces the warm instances');
  const { OPENAI_WRAPI_SECRET_VERSION: _a, ...restBefore } = before;
  const { OPENAI_WRAPI_SECRET_VERSION: _b, ...restAfter } = after;
  assert.equal(restAfter, restBefore, 'and nothing else changes');
  assert.not.ok(JSON.stringify(after).includes('sk-test-rotated'), 'the key itself never reaches the environment');
});

runs('concurrency: admins keep a reserve and the proxy a ceiling when set; neither by default (low account quotas)', () => {
  assert.is(adminOf(full).inputs.reservedConcurrentExecutions, 5);
  assert.is(proxyOf(full).inputs.reservedConcurrentExecutions, 200);
  for (const run of [single, noCache]) {
    assert.is(adminOf(run).inputs.reservedConcurrentExecutions, undefined);
    assert.is(proxyOf(run).inputs.reservedConcurrentExecutions, undefined);
  }
});

runs('the runtime settings reach the proxy as the variables runtime/core/config.ts reads', () => {
  const env = envOf(proxyOf(full));
  assert.is(env.OPENAI_WRAPI_STAGE, 'dev');
  assert.is(env.OPENAI_WRAPI_TABLE, full.one(T.table).state.name);
  assert.is(env.OPENAI_WRAPI_SECRET_ARN, full.one(T.secret).state.arn);
  assert.is(env.OPENAI_WRAPI_FAIL_OPEN, '1');
  assert.is(env.OPENAI_WRAPI_DEFAULT_PROJECT_LIMIT, '2.5');
  assert.is(env.OPENAI_WRAPI_UPSTREAM_URL, 'https://gateway.example.com/v1');
  assert.is(env.OPENAI_WRAPI_SESSION_NAMED_ROLES, 'DataScience,Analysts');
  const defaults = envOf(proxyOf(single));
  assert.is(defaults.OPENAI_WRAPI_FAIL_OPEN, '0');
  for (const name of ['OPENAI_WRAPI_DEFAULT_PROJECT_LIMIT', 'OPENAI_WRAPI_UPSTREAM_URL', 'OPENAI_WRAPI_SESSION_NAMED_ROLES']) {
    assert.not.ok(name in defaults, name);
  }
  assert.equal(sorted(Object.keys(envOf(adminOf(full)))), ['OPENAI_WRAPI_MEMCACHED', 'OPENAI_WRAPI_STAGE', 'OPENAI_WRAPI_TABLE']);
});

/**
 * The variable names `read` asks for, given the environment the program wrote: a map that records
 * every lookup (a per-stage override `X_DEV` counts as `X`, the local stack's spelling of it).
 */
function namesRead(written: Record<string, string>, read: (env: Record<string, string | undefined>) => unknown): string[] {
  const names = new Set<string>();
  const env = new Proxy({ ...written, AWS_REGION: REGION }, {
    get(target, name) {
      if (typeof name === 'string') names.add(name.replace(/_DEV$/, ''));
      return Reflect.get(target, name);
    },
  });
  read(env);
  return sorted([...names]);
}

const PROVIDED_ELSEWHERE: string[] = [...Object.values(UNDEPLOYED_ENV), ...LAMBDA_PROVIDED_ENV];

runs('each function\'s runtime reads exactly the variables the program writes it, besides those it documents as provided elsewhere', () => {
  // The signed proxy looks for a public project too: that it has none is what keeps it signed-only.
  // The admin looks for the alert topic: it has it only with the daily digest (test/digest-infra.test.ts).
  const functions = [
    { fn: proxyOf(full), read: readProxySettings, absentOnPurpose: [DEPLOYED_ENV.publicProject] as string[] },
    { fn: adminOf(full), read: readAdminSettings, absentOnPurpose: [DEPLOYED_ENV.alertTopicArn] as string[] },
  ];
  for (const { fn, read, absentOnPurpose } of functions) {
    const written = envOf(fn);
    const read_ = namesRead(written, read);
    const expected = [...PROVIDED_ELSEWHERE, ...absentOnPurpose];
    assert.equal(read_.filter((name) => !expected.includes(name)), sorted(Object.keys(written)), fn.name);
    for (const name of Object.keys(written)) assert.ok((Object.values(DEPLOYED_ENV) as string[]).includes(name), `${fn.name}: ${name} is not in DEPLOYED_ENV`);
  }
  // With every optional setting on, the two functions together use every deployed name but the
  // notifier's own (test/notifier-infra.test.ts) and the public function's (test/public-infra.test.ts).
  const everyWritten = new Set(functions.flatMap(({ fn }) => Object.keys(envOf(fn))));
  const elsewhere = [...NOTIFIER_ONLY_ENV, ...PUBLIC_ONLY_ENV];
  assert.equal(sorted([...everyWritten]), sorted(Object.values(DEPLOYED_ENV).filter((name) => !elsewhere.includes(name))));
});

runs('the program\'s values are ones the runtime accepts, and name the resources it creates', () => {
  const proxy = readProxySettings(envOf(proxyOf(full)));
  assert.is(proxy.stage, 'dev');
  assert.is(proxy.config.maxTimeoutMs, 290_000);
  assert.is(proxy.config.failOpen, true);
  assert.is(proxy.config.upstreamUrl, 'https://gateway.example.com/v1');
  assert.equal(proxy.identity.sessionNamedRoles, ['DataScience', 'Analysts']);
  assert.is(proxy.secret?.arn, full.one(T.secret).state.arn);
  assert.is(proxy.stores.tableName, full.one(T.table).state.name);
  assert.ok(proxy.stores.memcachedServers);
  assert.equal(readAdminSettings(envOf(adminOf(full))).stores, { ...proxy.stores, region: 'us-east-1' });
  assert.is(full.one(T.table).inputs.name, ledgerTableName('dev'));
  assert.is(proxyOf(full).inputs.name, proxyFunctionName('dev'));
  assert.is(adminOf(full).inputs.name, adminFunctionName('dev'));
});

runs('both functions run in the private subnets, in the functions\' security group', () => {
  for (const run of [full, single]) {
    const sg = run.one(T.securityGroup, '-functions');
    for (const fn of [proxyOf(run), adminOf(run)]) {
      assert.equal(sorted(fn.inputs.vpcConfig.subnetIds), privateSubnetIds(run), `${fn.name} subnets`);
      assert.equal(fn.inputs.vpcConfig.securityGroupIds, [sg.id]);
    }
  }
});

runs('memcached sits in the private subnets; its security group admits the functions\' group on 11211 and nothing else', () => {
  const cache = full.one(T.cache);
  assert.is(cache.inputs.engine, 'memcached');
  assert.is(cache.inputs.nodeType, 'cache.t4g.small');
  assert.is(cache.inputs.numCacheNodes, 1);
  assert.is(cache.inputs.port, 11211);
  const subnetGroup = full.one(T.cacheSubnets);
  assert.is(cache.inputs.subnetGroupName, subnetGroup.state.name);
  assert.equal(sorted(subnetGroup.inputs.subnetIds), privateSubnetIds(full));

  const functionsSg = full.one(T.securityGroup, '-functions');
  assert.is(cache.inputs.securityGroupIds.length, 1);
  const cacheSg = full.byId(cache.inputs.securityGroupIds[0])!;
  assert.not.equal(cacheSg.id, functionsSg.id);
  for (const sg of full.ofType(T.securityGroup)) {
    assert.is(sg.inputs.ingress, undefined, `${sg.name} has no inline ingress`);
    assert.is(sg.inputs.egress, undefined, `${sg.name} has no inline egress`);
  }
  const ingress = full.ofType(T.ingress);
  assert.is(ingress.length, 1, 'the cache is the only thing that accepts connections');
  assert.equal(
    { ...ingress[0].inputs, description: undefined },
    { securityGroupId: cacheSg.id, referencedSecurityGroupId: functionsSg.id, ipProtocol: 'tcp', fromPort: 11211, toPort: 11211, description: undefined },
  );
  const egress = full.ofType(T.egress);
  assert.ok(egress.every((e) => e.inputs.securityGroupId === functionsSg.id), 'the cache opens no connections');
  assert.equal(
    sorted(egress.map((e) => `${e.inputs.ipProtocol}/${e.inputs.fromPort}-${e.inputs.toPort} -> ${e.inputs.cidrIpv4 ?? e.inputs.referencedSecurityGroupId}`)),
    sorted(['tcp/443-443 -> 0.0.0.0/0', `tcp/11211-11211 -> ${cacheSg.id}`]),
  );

  const node = cache.state.cacheNodes[0];
  for (const fn of [proxyOf(full), adminOf(full)]) assert.is(envOf(fn).OPENAI_WRAPI_MEMCACHED, `${node.address}:${node.port}`);
});

// -------------------------------------------------------------------------------------------- data

runs('the ledger table: on demand, exactly the runtime\'s keys, PITR, KMS encryption, deletion protection from config', () => {
  for (const [run, protection] of [[full, true], [single, true], [noCache, true]] as const) {
    const table = run.one(T.table);
    assert.is(table.inputs.name, 'openai-wrapi-dev');
    assert.is(table.inputs.billingMode, 'PAY_PER_REQUEST');
    assert.is(table.inputs.hashKey, LEDGER_TABLE.hashKey);
    assert.is(table.inputs.rangeKey, LEDGER_TABLE.rangeKey);
    assert.equal(table.inputs.attributes, LEDGER_TABLE.attributes.map((a) => ({ ...a })));
    assert.is(table.inputs.globalSecondaryIndexes, undefined);
    assert.is(table.inputs.localSecondaryIndexes, undefined);
    assert.equal(table.inputs.pointInTimeRecovery, { enabled: true });
    assert.equal(table.inputs.ttl, { attributeName: 'ttl', enabled: true });
    assert.equal(table.inputs.serverSideEncryption, { enabled: true });
    assert.is(table.inputs.deletionProtectionEnabled, protection);
  }
});

runs('deletion protection can be turned off per stack', async () => {
  const dev = await runProgram({ ...BASE_CONFIG, useElastiCache: false, tableDeletionProtection: false });
  assert.is(dev.one(T.table).inputs.deletionProtectionEnabled, false);
});

// ------------------------------------------------------------------------------------------ secret

runs('the OpenAI key and org id go to Secrets Manager, as a secret in the state, and nowhere else', () => {
  for (const run of [full, single, noCache]) {
    const secret = run.one(T.secret);
    const version = run.one(T.secretVersion);
    assert.is(version.inputs.secretId, secret.id);
    assert.ok(isSecretValue(version.inputs.secretString), 'the secret string is a Pulumi secret (encrypted in the state)');
    const expected = run === single ? { openaiApiKey: OPENAI_API_KEY } : { openaiApiKey: OPENAI_API_KEY, openaiOrgId: OPENAI_ORG_ID };
    assert.equal(JSON.parse(version.inputs.secretString.value as string), expected);
    for (const r of run.resources.filter((r) => r !== version)) {
      const text = JSON.stringify(r.inputs);
      assert.not.ok(text.includes(OPENAI_API_KEY) || text.includes(OPENAI_ORG_ID), `${r.name} holds a secret value`);
      assert.not.ok(containsSecret(r.inputs), `${r.name} has a secret input: something secret leaked into it`);
    }
  }
});

runs('no function environment holds the key, the org id or a variable meant for them', () => {
  for (const run of [full, single, noCache]) {
    for (const fn of run.ofType(T.fn)) {
      const env = envOf(fn);
      for (const [name, value] of Object.entries(env)) {
        assert.not.match(name, /API_KEY|ORG_ID|SECRET$|PASSWORD|TOKEN/, `${fn.name}: ${name}`);
        assert.not.ok(value.includes(OPENAI_API_KEY) || value.includes(OPENAI_ORG_ID), `${fn.name}: ${name} holds a secret`);
      }
    }
    assert.not.ok('OPENAI_WRAPI_SECRET_ARN' in envOf(adminOf(run)), 'the admin has no use for the OpenAI key');
  }
});

// --------------------------------------------------------------------------------------------- IAM

/** The permissions boundary's document: it only takes away, so its Allow "*" grants nothing (tested below). */
const isBoundary = (run: ProgramRun, where: string) => where === `${run.one(T.policy, '-boundary').name}.policy`;

runs('no IAM policy document grants a wildcard action or a "*" resource where a specific one exists', () => {
  for (const run of [full, single, noCache]) {
    const docs = policyDocuments(run);
    assert.is(docs.length, run === noCache ? 7 : 10);
    for (const { where, statements } of docs.filter((d) => !isBoundary(run, d.where))) {
      for (const s of statements) {
        assert.is(s.Effect, 'Allow', where);
        assert.ok(s.Action.length > 0, `${where} ${s.Sid}`);
        for (const action of s.Action) assert.match(action, /^[a-z0-9-]+:[A-Za-z]+$/, `${where} ${s.Sid}: ${action}`);
        if (where.includes('assumeRolePolicy')) continue;
        assert.ok(s.Resource.length > 0, `${where} ${s.Sid} names its resources`);
        for (const resource of s.Resource) {
          if (resource === '*') {
            assert.ok(s.Action.every((a) => NO_RESOURCE_LEVEL.has(a)), `${where} ${s.Sid}: "*" for ${s.Action}`);
          } else if (resource.includes('*')) {
            // A wildcard only below a specific resource: a log group's streams, this account's ENIs,
            // and subnets and security groups only with the condition that they are in our VPC.
            assert.match(resource, new RegExp(`^arn:aws:(logs:${REGION}:${ACCOUNT}:log-group:/aws/lambda/openai-(proxy|admin)-dev:\\*|ec2:${REGION}:${ACCOUNT}:(network-interface|subnet|security-group)/\\*)$`), `${where} ${s.Sid}: ${resource}`);
            if (/:(subnet|security-group)\/\*$/.test(resource)) assert.ok(s.Condition?.ArnEquals?.['ec2:Vpc'], `${where} ${s.Sid}: ${resource} without ec2:Vpc`);
          } else {
            assert.match(resource, /^arn:aws:/, `${where} ${s.Sid}: ${resource}`);
          }
        }
      }
    }
  }
});

runs('execution roles: Lambda assumes them; the proxy reads its secret and uses its table, the admin only its table', () => {
  for (const run of [full, noCache]) {
    for (const role of run.ofType(T.role)) {
      const [statement] = JSON.parse(role.inputs.assumeRolePolicy).Statement;
      assert.equal(statement.Principal, { Service: 'lambda.amazonaws.com' });
      assert.is(statement.Action, 'sts:AssumeRole');
    }
    const vpc = run === full ? VPC_ACTIONS : [];
    const all = (fn: Registered) => {
      const { main, vpcAccess } = rolePoliciesOf(run, fn);
      return [...main, ...(vpcAccess ?? [])];
    };
    const table = run.one(T.table).state.arn;

    const proxy = rolePolicyOf(run, proxyOf(run));
    assert.equal(
      actionsOf(all(proxyOf(run))),
      sorted(['logs:CreateLogStream', 'logs:PutLogEvents', 'dynamodb:BatchGetItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'secretsmanager:GetSecretValue', ...vpc]),
    );
    for (const a of ['dynamodb:BatchGetItem', 'dynamodb:UpdateItem']) assert.equal(resourcesFor(proxy, a), [table], a);
    assert.equal(resourcesFor(proxy, 'secretsmanager:GetSecretValue'), [run.one(T.secret).state.arn]);
    assert.equal(resourcesFor(proxy, 'logs:PutLogEvents'), [`${logGroupOf(run, 'openai-proxy-dev').state.arn}:*`]);

    const admin = rolePolicyOf(run, adminOf(run));
    // The admin charges holds past their deadline before a report: UpdateItem, like the proxy's settle,
    // and GetItem for a row's state after a refused condition; both also claim the day's digest.
    assert.equal(actionsOf(all(adminOf(run))), sorted(['logs:CreateLogStream', 'logs:PutLogEvents', 'dynamodb:DeleteItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:UpdateItem', ...vpc]));
    assert.equal(resourcesFor(admin, 'dynamodb:Query'), [table]);
    assert.equal(resourcesFor(admin, 'logs:PutLogEvents'), [`${logGroupOf(run, 'openai-admin-dev').state.arn}:*`]);
  }
});

runs('VPC access is limited to our VPC (and this account\'s new network interfaces), in a policy of its own', () => {
  for (const fn of [proxyOf(full), adminOf(full)]) {
    const { main, vpcAccess } = rolePoliciesOf(full, fn);
    assert.not.ok(main.some((s) => s.Action.some((a) => a.startsWith('ec2:'))), 'no network permission in the main policy');
    const statements = vpcAccess!;
    const scope = (type: string) => `arn:aws:ec2:${REGION}:${ACCOUNT}:${type}/*`;
    const inVpc = { ArnEquals: { 'ec2:Vpc': full.one(T.vpc).state.arn } };
    const tagged = { ...inVpc, StringEquals: { 'aws:ResourceTag/openai-wrapi-functions': 'openai-wrapi-dev' } };
    const create = statements.filter((s) => s.Action.includes('ec2:CreateNetworkInterface'));
    // CreateNetworkInterface has no VPC condition key for the new interface itself; it has for the subnet and group.
    assert.equal(create.map((s) => [sorted(s.Resource), s.Condition]), [
      [[scope('network-interface')], undefined],
      [sorted([scope('subnet'), scope('security-group')]), tagged],
    ]);
    // The tag marks the private subnets and the functions' group only.
    const place = (r: Registered) => r.inputs.tags?.['openai-wrapi-functions'];
    assert.equal(full.ofType(T.subnet).filter(place).map((r) => r.name).sort(), privateSubnetIds(full).map((id) => full.byId(id)!.name).sort());
    assert.equal(full.ofType(T.securityGroup).filter(place).map((r) => r.name), [full.one(T.securityGroup, '-functions').name]);
    for (const a of ['ec2:DeleteNetworkInterface', 'ec2:AssignPrivateIpAddresses', 'ec2:UnassignPrivateIpAddresses']) {
      const s = statements.find((x) => x.Action.includes(a))!;
      assert.equal([s.Resource, s.Condition], [[scope('network-interface')], inVpc], a);
    }
  }
  assert.is(rolePoliciesOf(noCache, proxyOf(noCache)).vpcAccess, undefined, 'outside a VPC: none');
});

runs('teardown: the network interfaces\' subnets and security group go before the permission Lambda needs to delete them', () => {
  const vpcAccess = full.ofType(T.rolePolicy).filter((p) => p.name.endsWith('-vpc-access')).map((p) => p.name);
  assert.is(vpcAccess.length, 2);
  const holders = [...privateSubnetIds(full).map((id) => full.byId(id)!), full.one(T.securityGroup, '-functions')];
  // pulumi destroy deletes a resource before what it depends on.
  for (const r of holders) for (const p of vpcAccess) assert.ok(r.dependsOn.includes(p), `${r.name} depends on ${p}`);
  for (const p of vpcAccess) {
    const deps = full.resources.find((r) => r.name === p)!.dependsOn;
    assert.not.ok(holders.some((h) => deps.includes(h.name)), `${p} must not depend on what depends on it`);
  }
  for (const fn of [proxyOf(full), adminOf(full)]) for (const p of vpcAccess) assert.ok(fn.dependsOn.includes(p), `${fn.name} is created after ${p}`);
});

runs('every DynamoDB call the ledger makes is granted to a function (the policies follow the runtime)', () => {
  const source = readFileSync(new URL('../runtime/store/dynamo-ledger.ts', import.meta.url), 'utf8');
  // ensureLedgerTable (CreateTable, DescribeTable) serves the local stack and tests, never Lambda.
  const lambdaPart = source.slice(0, source.indexOf('export async function ensureLedgerTable'));
  const used = [...new Set([...lambdaPart.matchAll(/new (\w+)Command\(/g)].map((m) => `dynamodb:${m[1]}`))];
  assert.ok(used.length >= 6, `found ${used}`);
  const granted = new Set([...rolePolicyOf(full, proxyOf(full)), ...rolePolicyOf(full, adminOf(full))].flatMap((s) => s.Action));
  for (const action of used) assert.ok(granted.has(action), `${action} is used by the ledger but granted to no function`);
});

runs('the users\' policy: invoke the proxy\'s URL (both actions), through the URL only, and nothing else', () => {
  const policy = full.one(T.policy, '-users');
  const statements = policyDocuments(full).find((d) => d.where === `${policy.name}.policy`)!.statements;
  const proxyArn = proxyOf(full).state.arn;
  assert.equal(actionsOf(statements), ['lambda:InvokeFunction', 'lambda:InvokeFunctionUrl']);
  for (const s of statements) assert.equal(s.Resource, [proxyArn]);
  assert.equal(statements.find((s) => s.Action.includes('lambda:InvokeFunctionUrl'))!.Condition, { StringEquals: { 'lambda:FunctionUrlAuthType': 'AWS_IAM' } });
  assert.equal(statements.find((s) => s.Action.includes('lambda:InvokeFunction'))!.Condition, { Bool: { 'lambda:InvokedViaFunctionUrl': 'true' } });
});

runs('the admins\' policy: invoke the admin function, and nothing else', () => {
  const policy = full.one(T.policy, '-admins');
  const statements = policyDocuments(full).find((d) => d.where === `${policy.name}.policy`)!.statements;
  assert.equal(statements.map((s) => [s.Action, s.Resource, s.Condition]), [[['lambda:InvokeFunction'], [adminOf(full).state.arn], undefined]]);
});

// ------------------------------------------------------------------------------ direct invokes

/** The boundary's statements, by Sid. */
function boundaryOf(run: ProgramRun): Record<string, Stmt> {
  const docs = policyDocuments(run).filter((d) => isBoundary(run, d.where));
  assert.is(docs.length, 1);
  return Object.fromEntries(docs[0].statements.map((s) => [s.Sid!, s]));
}
const DIRECT_INVOKE_DENY = 'DenyProxyInvokeExceptThroughItsUrl';

runs('the boundary allows everything, then denies a direct Invoke of the proxy and every route around it', () => {
  for (const run of [full, noCache]) {
    const statements = boundaryOf(run);
    const proxy = proxyOf(run).state.arn;
    const admin = adminOf(run).state.arn;
    assert.equal(Object.keys(statements), [
      'AllowWhatOtherPoliciesGrant', DIRECT_INVOKE_DENY, 'DenyChangingTheFunctions', 'DenyPassingTheFunctionsRoles',
      'DenyTheOpenAICredentials', 'DenyLedgerWritesOutsideTheFunctions',
    ]);
    const allow = statements.AllowWhatOtherPoliciesGrant;
    assert.equal([allow.Effect, allow.Action, allow.Resource, allow.Condition], ['Allow', ['*'], ['*'], undefined]);
    for (const s of Object.values(statements).slice(1)) assert.is(s.Effect, 'Deny', s.Sid);

    const invoke = statements[DIRECT_INVOKE_DENY];
    assert.equal(invoke.Action, ['lambda:InvokeFunction', 'lambda:InvokeAsync']);
    assert.equal(invoke.Resource, [proxy, `${proxy}:*`], 'the function and any version or alias');
    // BoolIfExists: a direct Invoke carries no such key, and must be denied too.
    assert.equal(invoke.Condition, { BoolIfExists: { 'lambda:InvokedViaFunctionUrl': 'false' } });

    assert.equal(statements.DenyChangingTheFunctions.Resource, [proxy, `${proxy}:*`, admin, `${admin}:*`]);
    assert.ok(statements.DenyChangingTheFunctions.Action.includes('lambda:Update*'));
    const roleOf = (fn: Registered) => fn.inputs.role as string;
    assert.equal(statements.DenyPassingTheFunctionsRoles.Resource, [roleOf(proxyOf(run)), roleOf(adminOf(run))]);
    assert.equal(statements.DenyTheOpenAICredentials.Resource, [run.one(T.secret).state.arn]);
    assert.equal(statements.DenyLedgerWritesOutsideTheFunctions.Resource, [run.one(T.table).state.arn]);
    for (const action of ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:BatchWriteItem', 'dynamodb:PartiQLUpdate']) {
      assert.ok(statements.DenyLedgerWritesOutsideTheFunctions.Action.includes(action), action);
    }
    for (const s of Object.values(statements)) assert.not.ok(s.Principal, 'a boundary names no principal');
  }
});

runs('the SCP output is the boundary\'s direct-invoke Deny alone (the deployer, bound too, still deploys)', () => {
  for (const run of [full, noCache]) {
    const scp = JSON.parse(run.outputs.serviceControlPolicy.value as string);
    assert.is(scp.Version, '2012-10-17');
    const invoke = boundaryOf(run)[DIRECT_INVOKE_DENY];
    assert.equal(scp.Statement, [invoke]);
    assert.ok(JSON.stringify(scp).length <= 5120, 'within the SCP size limit');
  }
});

runs('an alarm on the proxy when its invocations exceed its function URL\'s requests', () => {
  for (const run of [full, single, noCache]) {
    const alarm = run.one(T.alarm, '-direct-invokes');
    assert.is(alarm.inputs.name, 'openai-proxy-dev-direct-invokes');
    const queries: any[] = alarm.inputs.metricQueries;
    const metricOf = (name: string) => queries.find((q) => q.metric?.metricName === name);
    const invocations = metricOf('Invocations');
    const urlRequests = metricOf('UrlRequestCount');
    for (const q of [invocations, urlRequests]) {
      assert.is(q.metric.namespace, 'AWS/Lambda');
      assert.equal(q.metric.dimensions, { FunctionName: 'openai-proxy-dev' });
      assert.is(q.metric.stat, 'Sum');
      assert.is(q.metric.period, 300);
      assert.not.ok(q.returnData, `${q.id} only feeds the expression`);
    }
    const returned = queries.filter((q) => q.returnData);
    assert.is(returned.length, 1, 'an alarm evaluates exactly one series');
    assert.is(returned[0].expression, `FILL(${invocations.id}, 0) - FILL(${urlRequests.id}, 0)`);
    assert.is(alarm.inputs.comparisonOperator, 'GreaterThanThreshold');
    assert.is(alarm.inputs.threshold, 0);
    assert.is(alarm.inputs.evaluationPeriods, 1);
    assert.is(alarm.inputs.treatMissingData, 'notBreaching', 'no calls is no alarm');
    const topic = run.one('aws:sns/topic:Topic').state.arn;
    assert.equal([alarm.inputs.alarmActions, alarm.inputs.okActions], [[topic], [topic]], 'to the stage\'s alert topic, like every alarm');
    assert.is(run.outputs.directInvokeAlarmName.value, alarm.inputs.name);
  }
});

// ----------------------------------------------------------------------------------------- outputs

runs('outputs: the seventeen names, nothing else, none secret, pointing at the right resources', () => {
  for (const run of [full, single, noCache]) {
    assert.equal(sorted(Object.keys(run.outputs)), sorted(OUTPUTS));
    for (const [name, output] of Object.entries(run.outputs)) assert.not.ok(output.secret, `${name} must be readable without --show-secrets`);
    const value = (name: string) => run.outputs[name].value;
    assert.is(value('proxyUrl'), run.one(T.url).state.functionUrl);
    assert.match(value('proxyUrl') as string, /^https:\/\/.+\.lambda-url\.eu-west-2\.on\.aws\/$/);
    assert.is(value('proxyFunctionName'), 'openai-proxy-dev');
    assert.is(value('adminFunctionName'), 'openai-admin-dev');
    assert.is(value('tableName'), 'openai-wrapi-dev');
    assert.is(value('region'), REGION);
    assert.is(value('userPolicyArn'), run.one(T.policy, '-users').state.arn);
    assert.is(value('adminPolicyArn'), run.one(T.policy, '-admins').state.arn);
    assert.is(value('boundaryPolicyArn'), run.one(T.policy, '-boundary').state.arn);
    assert.equal([value('notifierFunctionName'), value('alertDlqUrl')], [null, null], 'no alert channel: no notifier');
    assert.equal([value('publicUrl'), value('publicFunctionName')], [null, null], 'no publicAccess: no public URL');
  }
  assert.is(full.outputs.cacheEndpoint.value, full.one(T.cache).state.configurationEndpoint);
  assert.is(noCache.outputs.cacheEndpoint.value, null);
});

runs('the local stack writes the same output names (runtime/local/outputs.ts), and the same function and table names', () => {
  const local = localOutputs({ url: 'http://127.0.0.1:8787', region: REGION, credentialsFile: '/tmp/credentials', stages: ['dev'] }).dev as Record<string, unknown>;
  const localNames = Object.keys(local).filter((n) => !['lambdaEndpoint', 'credentialsFile', 'local'].includes(n));
  assert.ok(localNames.length >= 6, `found ${localNames}`);
  for (const name of localNames) assert.ok(OUTPUTS.includes(name), `the local stack writes ${name}, the program does not`);
  for (const name of ['proxyFunctionName', 'adminFunctionName', 'tableName', 'region']) {
    assert.is(local[name], full.outputs[name].value, name);
  }
});

runs.run();

// ---------------------------------------------------------------------------------- config errors

const errors = suite('stack config errors');
/** The message the program fails with for `config`. */
async function failure(config: Record<string, string | number | boolean | string[]>, secretKeys?: string[]): Promise<string> {
  try {
    await runProgram(config, { secretKeys });
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('the program should have refused this config');
}

errors('a key set without --secret is refused', async () => {
  const message = await failure(BASE_CONFIG, []);
  assert.match(message, 'openaiApiKey is stored in plain text');
  assert.match(message, 'pulumi config set --secret openaiApiKey');
  assert.match(message, 'openaiOrgId is stored in plain text');
  assert.not.match(message, OPENAI_API_KEY);
});

errors('every bad value is reported at once', async () => {
  const message = await failure({
    ...BASE_CONFIG, numAzs: 0, proxyTimeoutSeconds: 1000, logRetentionDays: 10, upstreamUrl: 'http://api.example.com/v1',
    sessionNamedRoles: ['ok', 'not a role/name'], proxyMaxConcurrency: 0, adminReservedConcurrency: 2.5,
  });
  assert.match(message, 'proxyMaxConcurrency must be an integer from 1 to 100000 (got 0)');
  assert.match(message, 'adminReservedConcurrency must be an integer from 1 to 1000 (got 2.5)');
  assert.match(message, 'sessionNamedRoles must be a list of IAM role names');
  assert.match(message, 'numAzs must be an integer from 1 to 6 (got 0)');
  assert.match(message, 'proxyTimeoutSeconds must be an integer from 30 to 900 (got 1000)');
  assert.match(message, 'logRetentionDays must be one of');
  assert.match(message, 'upstreamUrl must be an https:// URL on port 443');
});

errors('more AZs than the region has', async () => {
  assert.match(await failure({ ...BASE_CONFIG, numAzs: 4 }), `numAzs is 4 but ${REGION} has 3 availability zones`);
});

errors('the stage is required and must be a plain name', async () => {
  const { stage: _stage, ...withoutStage } = BASE_CONFIG;
  assert.match(await failure(withoutStage), 'stage');
  for (const stage of ['Dev', 'dev!', 'dev-', 'dev--1', 'a'.repeat(21)]) assert.match(await failure({ ...BASE_CONFIG, stage }), 'stage', stage);
  const longest = await runProgram({ ...BASE_CONFIG, stage: 'a-very-long-stage-20', useElastiCache: true, numAzs: 1 });
  for (const role of longest.ofType(T.role)) assert.ok(role.state.name.length <= 64, `IAM role name ${role.state.name}`);
  assert.ok(longest.one(T.cache).inputs.clusterId.length <= 40);
});

errors('the OpenAI key is required', async () => {
  const { openaiApiKey: _key, ...withoutKey } = BASE_CONFIG;
  assert.match(await failure(withoutKey), 'openaiApiKey');
});

errors.run();
