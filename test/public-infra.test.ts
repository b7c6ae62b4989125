// The public (browser) URL the Pulumi program (index.ts) deploys with `publicAccess`, under Pulumi's
// unit-test mocks: a second function with the proxy's code and handler and the proxy's environment
// plus the public variables, its own log group and role, a function URL without auth whose CORS
// lists exactly the configured origins, the two resource-based permissions anonymous callers need
// (the Invoke only through the URL), the guards against direct invokes extended to it, its alarms and
// outputs; without `publicAccess`, none of it; and the config errors, named by the setting.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DEPLOYED_ENV, LAMBDA_PROVIDED_ENV, PUBLIC_ONLY_ENV, UNDEPLOYED_ENV, publicFunctionName } from '../runtime/core/contract.ts';
import { PUBLIC_CORS, readPublicAccess } from '../runtime/core/public-access.ts';
import { readProxySettings } from '../runtime/lambda/settings.ts';
import {
  archiveFiles, BASE_CONFIG, envOf, list, REGION, runProgram, sorted, type ConfigValue, type ProgramRun, type Registered, type Stmt,
} from './helpers/pulumi-program.ts';

const T = {
  fn: 'aws:lambda/function:Function',
  url: 'aws:lambda/functionUrl:FunctionUrl',
  permission: 'aws:lambda/permission:Permission',
  role: 'aws:iam/role:Role',
  rolePolicy: 'aws:iam/rolePolicy:RolePolicy',
  policy: 'aws:iam/policy:Policy',
  logGroup: 'aws:cloudwatch/logGroup:LogGroup',
  alarm: 'aws:cloudwatch/metricAlarm:MetricAlarm',
  dashboard: 'aws:cloudwatch/dashboard:Dashboard',
  subnet: 'aws:ec2/subnet:Subnet',
  securityGroup: 'aws:ec2/securityGroup:SecurityGroup',
};

const ORIGINS = ['https://app.example.com', 'http://localhost:5173'];
/** Every field set, and the proxy's optional settings too (the public function must have them). */
const EVERY = {
  ...BASE_CONFIG,
  numAzs: 1,
  failOpen: true,
  defaultProjectLimitUsd: 3,
  upstreamUrl: 'https://gateway.example.com/v1',
  sessionNamedRoles: ['DataScience'],
  proxyMaxConcurrency: 200,
  publicAccess: { project: 'website', allowedOrigins: ORIGINS, rpmPerClient: 20, tpmPerClient: 40_000, embeddings: true, maxConcurrency: 50 },
};
/** The fewest fields, outside any VPC. */
const FEWEST = {
  ...BASE_CONFIG,
  useElastiCache: false,
  publicAccess: { project: 'docs site', allowedOrigins: ['https://docs.example.org'], tpmPerClient: 10_000 },
};

let every: ProgramRun;
let fewest: ProgramRun;
let none: ProgramRun; // no publicAccess

const proxyOf = (run: ProgramRun) => run.one(T.fn, '-proxy');
const publicOf = (run: ProgramRun) => run.one(T.fn, '-public');
const roleOf = (run: ProgramRun, fn: Registered) => run.resources.find((r) => r.type === T.role && r.state.arn === fn.inputs.role)!;
const publicUrlOf = (run: ProgramRun) => run.ofType(T.url).find((u) => u.inputs.functionName === publicOf(run).state.name)!;
/** The inline policies of a function's role, by kind: its own and (in a VPC) its network access. */
function rolePolicies(run: ProgramRun, fn: Registered): { main: Stmt[]; vpcAccess?: Stmt[] } {
  const policies = run.ofType(T.rolePolicy).filter((p) => p.inputs.role === roleOf(run, fn).id);
  const main = policies.filter((p) => !p.name.endsWith('-vpc-access'));
  const vpc = policies.filter((p) => p.name.endsWith('-vpc-access'));
  assert.is(main.length, 1);
  assert.ok(vpc.length <= 1);
  const statements = (p: Registered | undefined) => p && (JSON.parse(p.inputs.policy).Statement as Stmt[]);
  return { main: statements(main[0])!, vpcAccess: statements(vpc[0]) };
}
const boundaryOf = (run: ProgramRun): Record<string, Stmt> =>
  Object.fromEntries((JSON.parse(run.one(T.policy, '-boundary').inputs.policy).Statement as Stmt[]).map((s) => [s.Sid, s]));

const runs = suite('the public URL, deployed');

runs.before(async () => {
  every = await runProgram(EVERY);
  fewest = await runProgram(FEWEST);
  none = await runProgram({ ...BASE_CONFIG, useElastiCache: false });
});

runs('without publicAccess: no public function, URL, permission, role, log group or alarm; the outputs are null', () => {
  assert.equal(sorted(none.ofType(T.fn).map((f) => f.inputs.name)), ['openai-admin-dev', 'openai-proxy-dev']);
  assert.equal(none.ofType(T.url).map((u) => u.inputs.authorizationType), ['AWS_IAM'], 'the proxy\'s URL only');
  assert.is(none.ofType(T.permission).length, 0, 'no function has a resource policy');
  assert.not.ok(none.resources.some((r) => r.name.includes('-public-') && !r.type.startsWith('aws:ec2/')), 'nothing public but subnets');
  assert.not.ok(none.ofType(T.logGroup).some((g) => g.inputs.name === `/aws/lambda/${publicFunctionName('dev')}`));
  for (const fn of none.ofType(T.fn)) for (const name of PUBLIC_ONLY_ENV) assert.not.ok(name in envOf(fn), `${fn.name}: ${name}`);
  assert.equal([none.outputs.publicUrl, none.outputs.publicFunctionName], [{ value: null, secret: false }, { value: null, secret: false }]);
});

runs('the public function: the proxy\'s code, handler, runtime, architecture, timeout, memory and network; its own name and log group', async () => {
  for (const run of [every, fewest]) {
    const proxy = proxyOf(run);
    const fn = publicOf(run);
    assert.is(fn.inputs.name, publicFunctionName('dev'));
    assert.is(fn.inputs.name, 'openai-public-dev');
    for (const key of ['handler', 'runtime', 'architectures', 'timeout', 'memorySize', 'vpcConfig']) assert.equal(fn.inputs[key], proxy.inputs[key], key);
    assert.is(fn.inputs.handler, 'proxy.handler');
    const [code, proxyCode] = [await archiveFiles(fn.inputs.code), await archiveFiles(proxy.inputs.code)];
    assert.ok('proxy.mjs' in code);
    assert.equal(code, proxyCode, 'the same archive, file for file');
    const logs = run.ofType(T.logGroup).find((g) => g.inputs.name === '/aws/lambda/openai-public-dev')!;
    assert.ok(logs, 'a log group of its own');
    assert.is(logs.inputs.retentionInDays, 30);
    assert.is(fn.inputs.loggingConfig.logGroup, logs.state.name);
    assert.ok(fn.dependsOn.includes(logs.name), 'created after its log group');
  }
  assert.ok(every.one(T.fn, '-public').inputs.vpcConfig.subnetIds.length > 0, 'in the VPC like the proxy');
  assert.is(fewest.one(T.fn, '-public').inputs.vpcConfig, undefined, 'outside any VPC like the proxy');
});

runs('maxConcurrency is the public function\'s reserved concurrency, and only its own', () => {
  assert.is(publicOf(every).inputs.reservedConcurrentExecutions, 50);
  assert.is(proxyOf(every).inputs.reservedConcurrentExecutions, 200);
  assert.is(publicOf(fewest).inputs.reservedConcurrentExecutions, undefined);
});

runs('its environment: exactly the proxy\'s plus the public variables, which read back as configured', () => {
  const proxyEnv = envOf(proxyOf(every));
  assert.equal(envOf(publicOf(every)), {
    ...proxyEnv,
    OPENAI_WRAPI_PUBLIC_PROJECT: 'website',
    OPENAI_WRAPI_PUBLIC_ORIGINS: 'https://app.example.com,http://localhost:5173',
    OPENAI_WRAPI_PUBLIC_RPM: '20',
    OPENAI_WRAPI_PUBLIC_TPM: '40000',
    OPENAI_WRAPI_PUBLIC_EMBEDDINGS: '1',
  });
  assert.equal(sorted(Object.keys(envOf(publicOf(every))).filter((n) => !(n in proxyEnv))), sorted([...PUBLIC_ONLY_ENV]));
  assert.equal(readPublicAccess(envOf(publicOf(every))), {
    project: 'website',
    origins: ORIGINS,
    perClient: { rpm: 20, tpm: 40_000 },
    routes: ['chat', 'responses', 'embeddings'],
  });
  // Only what is set: no RPM, no embeddings.
  assert.equal(envOf(publicOf(fewest)), {
    ...envOf(proxyOf(fewest)),
    OPENAI_WRAPI_PUBLIC_PROJECT: 'docs site',
    OPENAI_WRAPI_PUBLIC_ORIGINS: 'https://docs.example.org',
    OPENAI_WRAPI_PUBLIC_TPM: '10000',
  });
  assert.equal(readPublicAccess(envOf(publicOf(fewest)))?.routes, ['chat', 'responses']);
  for (const run of [every, fewest]) {
    for (const fn of run.ofType(T.fn).filter((f) => f !== publicOf(run))) {
      for (const name of PUBLIC_ONLY_ENV) assert.not.ok(name in envOf(fn), `${fn.inputs.name} must not serve unverified callers (${name})`);
    }
  }
});

runs('the public function\'s runtime reads exactly the variables the program writes it, besides those provided elsewhere', () => {
  const written = envOf(publicOf(every));
  const read = new Set<string>();
  const env = new Proxy({ ...written, AWS_REGION: REGION }, {
    get(target, name) {
      if (typeof name === 'string') read.add(name.replace(/_DEV$/, ''));
      return Reflect.get(target, name);
    },
  });
  readProxySettings(env);
  readPublicAccess(env);
  const elsewhere: string[] = [...Object.values(UNDEPLOYED_ENV), ...LAMBDA_PROVIDED_ENV];
  assert.equal(sorted([...read].filter((n) => !elsewhere.includes(n))), sorted(Object.keys(written)));
  for (const name of Object.keys(written)) assert.ok((Object.values(DEPLOYED_ENV) as string[]).includes(name), name);
});

runs('its URL: no auth, streamed, CORS for exactly the configured origins with the runtime\'s methods and headers, no credentials', () => {
  for (const [run, origins] of [[every, ORIGINS], [fewest, ['https://docs.example.org']]] as const) {
    const url = publicUrlOf(run);
    assert.is(url.inputs.authorizationType, 'NONE');
    assert.is(url.inputs.invokeMode, 'RESPONSE_STREAM');
    assert.equal(url.inputs.cors, {
      allowOrigins: origins,
      allowMethods: [...PUBLIC_CORS.allowMethods],
      allowHeaders: [...PUBLIC_CORS.allowHeaders],
      exposeHeaders: [...PUBLIC_CORS.exposeHeaders],
      maxAge: PUBLIC_CORS.maxAgeSeconds,
      allowCredentials: false,
    });
    assert.ok(url.inputs.cors.allowOrigins.length <= 100 && url.inputs.cors.allowOrigins.every((o: string) => o.length <= 253), 'within Lambda\'s CORS limits');
    assert.ok(url.inputs.cors.exposeHeaders.length <= 100 && url.inputs.cors.allowMethods.length <= 6);
    assert.not.ok(url.inputs.cors.allowOrigins.includes('*'));
    assert.is(run.outputs.publicUrl.value, url.state.functionUrl);
    assert.is(run.outputs.publicFunctionName.value, 'openai-public-dev');
    assert.not.ok(run.outputs.publicUrl.secret);
  }
});

runs('the proxy\'s own URL keeps AWS_IAM auth and no CORS', () => {
  for (const run of [every, fewest]) {
    const urls = run.ofType(T.url);
    assert.is(urls.length, 2);
    const proxyUrl = urls.find((u) => u.inputs.functionName === proxyOf(run).state.name)!;
    assert.equal([proxyUrl.inputs.authorizationType, proxyUrl.inputs.invokeMode, proxyUrl.inputs.cors], ['AWS_IAM', 'RESPONSE_STREAM', undefined]);
    assert.is(run.outputs.proxyUrl.value, proxyUrl.state.functionUrl);
  }
});

runs('two permissions let anyone call the URL: InvokeFunctionUrl for auth type NONE, and InvokeFunction only through the URL', () => {
  for (const run of [every, fewest]) {
    const fn = publicOf(run);
    const permissions = run.ofType(T.permission);
    assert.is(permissions.length, 2, 'and no other function has a resource policy');
    for (const p of permissions) {
      assert.ok(p.inputs.function === fn.state.name || p.inputs.function === fn.state.arn, `${p.name} is on the public function`);
      assert.is(p.inputs.principal, '*');
      for (const key of ['qualifier', 'sourceArn', 'sourceAccount', 'principalOrgId']) assert.is(p.inputs[key], undefined, `${p.name}: ${key}`);
    }
    const byAction = (action: string) => {
      const found = permissions.filter((p) => p.inputs.action === action);
      assert.is(found.length, 1, action);
      return found[0].inputs;
    };
    const url = byAction('lambda:InvokeFunctionUrl');
    assert.equal([url.functionUrlAuthType, url.invokedViaFunctionUrl], ['NONE', undefined]);
    // Without the condition anyone could invoke it directly and write sourceIp (the client) themselves.
    const invoke = byAction('lambda:InvokeFunction');
    assert.equal([invoke.invokedViaFunctionUrl, invoke.functionUrlAuthType], [true, undefined]);
  }
});

runs('its own execution role: the proxy\'s permissions (ledger, OpenAI key, VPC access) on its own logs', () => {
  for (const run of [every, fewest]) {
    const proxy = proxyOf(run);
    const fn = publicOf(run);
    const role = roleOf(run, fn);
    assert.ok(role, 'a role of the stack');
    assert.is.not(role.id, roleOf(run, proxy).id, 'not the proxy\'s role');
    assert.equal(JSON.parse(role.inputs.assumeRolePolicy).Statement.map((s: any) => [s.Principal, s.Action]), [[{ Service: 'lambda.amazonaws.com' }, 'sts:AssumeRole']]);
    const own = rolePolicies(run, fn);
    const proxys = rolePolicies(run, proxy);
    const logs = (name: string) => `${run.ofType(T.logGroup).find((g) => g.inputs.name === `/aws/lambda/${name}`)!.state.arn}:*`;
    const withoutLogs = (statements: Stmt[]) => statements.filter((s) => s.Sid !== 'WriteOwnLogs');
    assert.equal(withoutLogs(own.main), withoutLogs(proxys.main), 'the ledger and the key, like the proxy');
    assert.equal(own.main.find((s) => s.Sid === 'WriteOwnLogs')!.Resource, logs('openai-public-dev'));
    assert.equal(own.vpcAccess, proxys.vpcAccess, 'network access like the proxy\'s (or none outside the VPC)');
    assert.is(own.vpcAccess === undefined, run === fewest);
    assert.ok(fn.dependsOn.some((d) => d.endsWith('-public-policy')), 'created after its role\'s policy');
  }
});

runs('teardown: the functions\' subnets and security group go before the public role\'s VPC permission; the function comes after it', () => {
  const access = every.one(T.rolePolicy, '-public-vpc-access');
  const holders = [...every.ofType(T.subnet).filter((s) => s.name.includes('-private-')), every.one(T.securityGroup, '-functions')];
  assert.ok(holders.length >= 2);
  for (const r of holders) assert.ok(r.dependsOn.includes(access.name), `${r.name} depends on ${access.name}`);
  assert.not.ok(holders.some((h) => access.dependsOn.includes(h.name)), 'and not the other way round');
  assert.ok(publicOf(every).dependsOn.includes(access.name));
});

runs('the boundary and the SCP deny a direct Invoke of the public function too, and changing it or passing its role', () => {
  for (const run of [every, fewest]) {
    const fn = publicOf(run).state.arn;
    const proxy = proxyOf(run).state.arn;
    const boundary = boundaryOf(run);
    const invoke = boundary.DenyProxyInvokeExceptThroughItsUrl;
    assert.equal(list(invoke.Resource), [proxy, `${proxy}:*`, fn, `${fn}:*`]);
    assert.equal(invoke.Condition, { BoolIfExists: { 'lambda:InvokedViaFunctionUrl': 'false' } });
    assert.ok(list(boundary.DenyChangingTheFunctions.Resource).includes(fn));
    assert.ok(list(boundary.DenyChangingTheFunctions.Resource).includes(`${fn}:*`));
    assert.ok(list(boundary.DenyPassingTheFunctionsRoles.Resource).includes(publicOf(run).inputs.role));
    const scp = JSON.parse(run.outputs.serviceControlPolicy.value as string);
    assert.equal(scp.Statement, [invoke]);
    assert.ok(JSON.stringify(scp).length <= 5120, 'within the SCP size limit');
  }
});

runs('the users\' policy does not name the public function (it needs no grant)', () => {
  const users = every.one(T.policy, '-users').inputs.policy as string;
  assert.not.ok(users.includes(publicOf(every).state.arn));
});

runs('its alarms: URL 5xx, errors, throttles and direct invokes, on the topic and the dashboard', () => {
  const topic = every.one('aws:sns/topic:Topic').state.arn;
  const name = 'openai-public-dev';
  const of = (suffix: string) => every.one(T.alarm, `-${suffix}`);
  for (const [suffix, metric] of [['public-url-5xx', 'Url5xxCount'], ['public-errors', 'Errors'], ['public-throttles', 'Throttles']]) {
    const a = of(suffix);
    assert.equal([a.inputs.namespace, a.inputs.metricName, a.inputs.dimensions, a.inputs.statistic], ['AWS/Lambda', metric, { FunctionName: name }, 'Sum'], suffix);
    assert.equal([a.inputs.alarmActions, a.inputs.okActions], [[topic], [topic]]);
  }
  assert.is(of('public-url-5xx').inputs.threshold, 5, 'alarmUrl5xx, like the proxy\'s URL');
  const direct = every.ofType(T.alarm).find((a) => a.inputs.name === `${name}-direct-invokes`)!;
  const metrics = (direct.inputs.metricQueries as any[]).filter((q) => q.metric);
  assert.equal(sorted(metrics.map((q) => q.metric.metricName)), ['Invocations', 'UrlRequestCount']);
  for (const q of metrics) assert.equal(q.metric.dimensions, { FunctionName: name });
  assert.equal([direct.inputs.comparisonOperator, direct.inputs.threshold], ['GreaterThanThreshold', 0]);
  assert.is(every.outputs.directInvokeAlarmName.value, 'openai-proxy-dev-direct-invokes', 'the output stays the proxy\'s');

  const widgets = JSON.parse(every.one(T.dashboard).inputs.dashboardBody).widgets;
  assert.equal(sorted(widgets.find((w: any) => w.type === 'alarm').properties.alarms), sorted(every.ofType(T.alarm).map((a) => a.state.arn)));
  const health = widgets.find((w: any) => /public/i.test(w.properties.title));
  assert.ok(health, 'a widget for the public function');
  assert.ok(health.properties.metrics.every((m: any[]) => m[3] === name));
  assert.not.ok(JSON.parse(none.one(T.dashboard).inputs.dashboardBody).widgets.some((w: any) => /public/i.test(w.properties.title)));
});

runs.run();

// ---------------------------------------------------------------------------------- config errors

const errors = suite('publicAccess config errors');

const GOOD = { project: 'website', allowedOrigins: ['https://app.example.com'], rpmPerClient: 20 };

/** The message the program fails with when `publicAccess` is `value`. */
async function failure(value: ConfigValue, more: Record<string, ConfigValue> = {}): Promise<string> {
  try {
    await runProgram({ ...BASE_CONFIG, useElastiCache: false, ...more, publicAccess: value });
  } catch (error) {
    const message = (error as Error).message;
    assert.not.match(message, 'OPENAI_WRAPI_', 'named by the setting, not the variable');
    return message;
  }
  throw new Error('the program should have refused this config');
}

errors('"*" as an origin is refused, saying why', async () => {
  const message = await failure({ ...GOOD, allowedOrigins: ['*'] });
  assert.match(message, 'publicAccess.allowedOrigins cannot be "*"');
  assert.match(message, 'any page on the web could spend the budget');
});

errors('an origin with a path, another scheme, or several in one item is not an origin', async () => {
  const message = await failure({ ...GOOD, allowedOrigins: ['https://app.example.com/chat', 'ftp://files.example.com', 'https://a.example.com,https://b.example.com'] });
  assert.match(message, 'publicAccess.allowedOrigins: "https://app.example.com/chat" is not an origin like https://app.example.com');
  assert.match(message, 'publicAccess.allowedOrigins: "ftp://files.example.com" is not an origin');
  assert.match(message, 'publicAccess.allowedOrigins lists "https://a.example.com,https://b.example.com": one origin per item');
});

errors('the origins must be a non-empty list of at most 100', async () => {
  assert.match(await failure({ ...GOOD, allowedOrigins: [] }), 'publicAccess.allowedOrigins must list the origins allowed to call the public URL');
  const { allowedOrigins: _omitted, ...withoutOrigins } = GOOD;
  assert.match(await failure(withoutOrigins), 'publicAccess.allowedOrigins must list the origins');
  assert.match(await failure({ ...GOOD, allowedOrigins: 'https://app.example.com' }), 'publicAccess.allowedOrigins must be a list of origins like ["https://app.example.com"]');
  const many = Array.from({ length: 101 }, (_, i) => `https://app${i}.example.com`);
  assert.match(await failure({ ...GOOD, allowedOrigins: many }), 'publicAccess.allowedOrigins lists 101 origins: a function URL\'s CORS configuration takes at most 100');
  await runProgram({ ...BASE_CONFIG, useElastiCache: false, publicAccess: { ...GOOD, allowedOrigins: many.slice(0, 100) } });
});

errors('without a per-client limit, saying why; a limit must be a whole number >= 1', async () => {
  const { rpmPerClient: _rpm, ...withoutLimits } = GOOD;
  const message = await failure(withoutLimits);
  assert.match(message, 'set publicAccess.rpmPerClient or publicAccess.tpmPerClient (or both)');
  assert.match(message, 'without a per-client limit one script could spend the whole project\'s budget');
  assert.match(await failure({ ...GOOD, rpmPerClient: 0 }), 'publicAccess.rpmPerClient must be a whole number >= 1 (got "0")');
  assert.match(await failure({ ...GOOD, tpmPerClient: 2.5 }), 'publicAccess.tpmPerClient must be a whole number >= 1 (got "2.5")');
  assert.match(await failure({ ...GOOD, rpmPerClient: true }), 'publicAccess.rpmPerClient must be a whole number >= 1 (got "true")');
});

errors('the project: a name the admin API accepts', async () => {
  for (const project of ['', ' website', 'web#site', 'web\u0007site', 'a'.repeat(129), 42]) {
    assert.match(await failure({ ...GOOD, project }), 'publicAccess.project must be a project name, at most 128 characters', JSON.stringify(project));
  }
  const { project: _project, ...withoutProject } = GOOD;
  assert.match(await failure(withoutProject), 'publicAccess.project must be a project name');
  const longest = await runProgram({ ...BASE_CONFIG, useElastiCache: false, publicAccess: { ...GOOD, project: 'p'.repeat(128) } });
  assert.is(envOf(publicOf(longest)).OPENAI_WRAPI_PUBLIC_PROJECT, 'p'.repeat(128));
});

errors('embeddings, maxConcurrency, unknown fields and a value that is not an object', async () => {
  assert.match(await failure({ ...GOOD, embeddings: 'yes' }), 'publicAccess.embeddings must be true or false (got "yes")');
  for (const n of [0, 100_001, 2.5, '50']) {
    assert.match(await failure({ ...GOOD, maxConcurrency: n }), `publicAccess.maxConcurrency must be an integer from 1 to 100000 (got ${JSON.stringify(n)})`);
  }
  assert.match(await failure({ ...GOOD, rpm: 20 }), 'publicAccess has no field rpm (it takes project, allowedOrigins, rpmPerClient, tpmPerClient, embeddings, maxConcurrency)');
  assert.match(await failure(['https://app.example.com']), 'publicAccess must be an object with project, allowedOrigins');
});

errors('every problem at once, with the rest of the stack\'s', async () => {
  const message = await failure({ project: 'a#b', allowedOrigins: ['*', 'https://ok.example.com/path'], rpmPerClient: 0, embeddings: 1 }, { numAzs: 0 });
  for (const expected of [
    'numAzs must be an integer from 1 to 6',
    'publicAccess.project must be a project name',
    'publicAccess.allowedOrigins cannot be "*"',
    'publicAccess.allowedOrigins: "https://ok.example.com/path" is not an origin',
    'publicAccess.rpmPerClient must be a whole number >= 1 (got "0")',
    'publicAccess.embeddings must be true or false (got 1)',
  ]) {
    assert.match(message, expected);
  }
});

errors('an origin with a trailing slash is taken as the origin browsers send', async () => {
  const run = await runProgram({ ...BASE_CONFIG, useElastiCache: false, publicAccess: { ...GOOD, allowedOrigins: ['https://app.example.com/', 'https://app.example.com'] } });
  assert.equal(publicUrlOf(run).inputs.cors.allowOrigins, ['https://app.example.com']);
  assert.is(envOf(publicOf(run)).OPENAI_WRAPI_PUBLIC_ORIGINS, 'https://app.example.com');
});

errors.run();
