// `openai-wrapi doctor` as a subprocess, as a deployer runs it: in a folder with a Pulumi.<stage>.yaml
// (before `pulumi up`), against a fake of EC2's and Lambda's account APIs that checks every SigV4
// signature for its service and region, and against the local stack's outputs (after), whose proxy
// streams from the fake OpenAI upstream. One line per check, exit 1 only when something FAILs.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHttpUpstream } from '../runtime/store/http-upstream.ts';
import type { Upstream } from '../runtime/core/ports.ts';
import { parseStackYaml } from '../sdk/stack-file.ts';
import { startFakeAws, type FakeAws, type FakeAwsAccount } from './helpers/fake-aws.ts';
import { settled } from './helpers/stack.ts';
import { childEnv, startSdkStack, type SdkStack } from './helpers/sdk.ts';

const root = new URL('..', import.meta.url).pathname;
/** tsx by its file URL: the doctor runs in folders that have no node_modules. */
const TSX = import.meta.resolve('tsx');
const KEYS = { AWS_ACCESS_KEY_ID: 'AKIADOCTORTEST000001', AWS_SECRET_ACCESS_KEY: 'doctor-test-secret-do-not-print-7f3a' };
const PLAIN_KEY = 'sk-proj-plaintextkeythatmustneverbeprinted0123';

let t: SdkStack;
let scratch: string;
let aws: FakeAws;
/** How the upstream's streams reach the proxy: paced like OpenAI's tokens, or all at once (a buffering hop). */
let pacing: 'paced' | 'buffered' = 'paced';
/** Everything any doctor run printed: no secret may be in it. */
const printed: string[] = [];

const account = (over: Partial<FakeAwsAccount> = {}): FakeAwsAccount => ({
  eipQuota: 5, addresses: [], concurrency: 1000, unreserved: 1000, functions: {}, ...over,
});

test.before(async () => {
  const base = createHttpUpstream();
  const upstream: Upstream = async (input, init) => {
    const res = await base(input, init);
    if (!res.body || !(res.headers.get('content-type') ?? '').includes('text/event-stream')) return res;
    const text = await res.text();
    const headers = new Headers(res.headers);
    if (pacing === 'buffered') return new Response(text, { status: res.status, headers });
    const events = text.split(/(?<=\n\n)/);
    const body = new ReadableStream<Uint8Array>({
      async start(c) {
        for (const e of events) {
          c.enqueue(new TextEncoder().encode(e));
          await new Promise((r) => setTimeout(r, 10));
        }
        c.close();
      },
    });
    return new Response(body, { status: res.status, headers });
  };
  t = await startSdkStack([['ann', false]], { stack: { upstream } });
  scratch = await mkdtemp(join(tmpdir(), 'wrapi-doctor-'));
  aws = await startFakeAws({ region: 'eu-west-2', accessKeyId: KEYS.AWS_ACCESS_KEY_ID, secretAccessKey: KEYS.AWS_SECRET_ACCESS_KEY, account: account() });
});
test.after(async () => {
  await aws.close();
  await t.close();
  await rm(scratch, { recursive: true, force: true });
});

interface Run { code: number; stdout: string; stderr: string; lines: string[] }

/** No outputs to find and no AWS credentials: only what a test gives. */
const BARE = (): Record<string, string | undefined> => ({
  OPENAI_WRAPI_OUTPUTS: undefined, OPENAI_WRAPI_HOME: join(scratch, 'no-local-stack'), AWS_PROFILE: undefined,
  AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/credentials', AWS_CONFIG_FILE: '/nonexistent/config', AWS_EC2_METADATA_DISABLED: 'true',
});
/** Credentials the fake AWS accepts, and its endpoints in the AWS SDKs' variables. */
const DEPLOYER = () => ({ ...BARE(), ...KEYS, AWS_ENDPOINT_URL_EC2: aws.endpoint, AWS_ENDPOINT_URL_LAMBDA: aws.endpoint });

function doctor(cwd: string, args: string[], env: Record<string, string | undefined>): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', TSX, join(root, 'sdk/cli.ts'), 'doctor', ...args], { cwd, env: childEnv(env) }, (err, stdout, stderr) => {
      printed.push(stdout, stderr);
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr, lines: stdout.trim().split('\n') });
    });
  });
}

/** The one line of a check, found by its start (`FAIL  aws:region`). */
function line(r: Run, start: string): string {
  const found = r.lines.find((l) => l.startsWith(start));
  assert.ok(found, `no line starting "${start}" in:\n${r.stdout}${r.stderr}`);
  return found!;
}

async function stackDir(name: string, yaml: string, stage = 'dev'): Promise<string> {
  const dir = join(scratch, name);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'Pulumi.yaml'), 'name: openai-wrapi\nruntime: nodejs\n');
  await writeFile(join(dir, `Pulumi.${stage}.yaml`), yaml);
  return dir;
}

const SECURE = 'v1:Hm3kq0J2cPJmz3OA:dG9wLXNlY3JldC1jaXBoZXJ0ZXh0LW5vdC1hLWtleQ==';
const stackYaml = (lines: string[]) => `# Stack "dev"\nencryptionsalt: v1:abc:def\nconfig:\n${lines.map((l) => `  ${l}`).join('\n')}\n`;
const GOOD = [
  'aws:region: eu-west-2   # the whole stack',
  'openai-wrapi:stage: dev',
  'openai-wrapi:numAzs: 1',
  'openai-wrapi:openaiApiKey:',
  `  secure: ${SECURE}`,
  'openai-wrapi:openaiOrgId:',
  `  secure: ${SECURE}`,
];

test('the stack file reader: what pulumi config set writes and people write by hand', () => {
  const doc = parseStackYaml([
    '# comment',
    'encryptionsalt: v1:abc:def',
    'config:',
    '  aws:region: eu-west-2 # trailing comment',
    '  "openai-wrapi:stage": \'dev\'',
    '  openai-wrapi:numAzs: 3',
    '  openai-wrapi:useElastiCache: false',
    '  openai-wrapi:openaiApiKey:',
    '    secure: AAABAJ5J3y#notacomment==',
    '  openai-wrapi:alertEmails:',
    '  - ops@example.com',
    '  - "finance@example.com"',
    '  openai-wrapi:publicAccess:',
    '    project: website',
    '    allowedOrigins: ["https://app.example.com", https://b.example.com]',
    '    rpmPerClient: 20',
    '    limits: {maxConcurrency: 5, embeddings: true}',
    '  openai-wrapi:sessionNamedRoles:',
    '    - DataScience',
    '    - name: x',
    '      other: y',
  ].join('\n'));
  assert.equal(doc, {
    encryptionsalt: 'v1:abc:def',
    config: {
      'aws:region': 'eu-west-2',
      'openai-wrapi:stage': 'dev',
      'openai-wrapi:numAzs': 3,
      'openai-wrapi:useElastiCache': false,
      'openai-wrapi:openaiApiKey': { secure: 'AAABAJ5J3y#notacomment==' },
      'openai-wrapi:alertEmails': ['ops@example.com', 'finance@example.com'],
      'openai-wrapi:publicAccess': {
        project: 'website', allowedOrigins: ['https://app.example.com', 'https://b.example.com'], rpmPerClient: 20,
        limits: { maxConcurrency: 5, embeddings: true },
      },
      'openai-wrapi:sessionNamedRoles': ['DataScience', { name: 'x', other: 'y' }],
    },
  });
  assert.throws(() => parseStackYaml('config:\n  a: one\n    two\n'), /line 3: a value continued over several lines/);
  assert.throws(() => parseStackYaml('config:\n  a: "open\n'), /line 2: a quoted value that does not end on its line/);
  assert.throws(() => parseStackYaml('config:\n  a: &anchor 1\n'), /line 2: anchors, aliases and tags/);
});

test('before pulumi up: a good stack file is ok; without credentials the account is skipped, not failed', async () => {
  const dir = await stackDir('good', stackYaml(GOOD));
  const r = await doctor(dir, ['--stage', 'dev'], BARE());
  assert.is(r.code, 0, r.stdout + r.stderr);
  assert.is(r.stderr, '');
  assert.match(r.lines[0], new RegExp(`^Checking stage dev \\(settings ${dir}/Pulumi\\.dev\\.yaml; outputs not found\\):$`));
  assert.is(line(r, 'ok    aws:region'), 'ok    aws:region is eu-west-2');
  assert.is(line(r, 'ok    stage'), 'ok    stage is dev (functions openai-proxy-dev, openai-admin-dev)');
  assert.is(line(r, 'ok    openaiApiKey'), 'ok    openaiApiKey is set, as a secret');
  assert.is(line(r, 'ok    openaiOrgId'), 'ok    openaiOrgId is set, as a secret');
  assert.match(line(r, 'warn  no AWS credentials'), /pulumi up needs them too → aws sso login, or export AWS_PROFILE=NAME/);
  assert.is(line(r, 'skip  Elastic IP'), 'skip  Elastic IP headroom not checked: no AWS credentials');
  assert.is(line(r, 'skip  Lambda'), 'skip  Lambda concurrency not checked: no AWS credentials');
  assert.match(line(r, 'skip  after pulumi up'), /no outputs of stage dev found .* → after pulumi up: pulumi stack output --json --stack dev > dev\.json/);
  assert.is(r.lines.at(-1), '4 ok, 1 warning, 0 failed, 3 skipped: no failures; read the warnings.');
  assert.not.match(r.stdout, SECURE.slice(3, 20), 'not even the ciphertext');

  // --json: the same checks for scripts.
  const json = JSON.parse((await doctor(dir, ['--stage', 'dev', '--json'], BARE())).stdout);
  assert.equal(json.checks.map((c: any) => [c.id, c.status]), [
    ['region', 'ok'], ['stage', 'ok'], ['openai-api-key', 'ok'], ['openai-org-id', 'ok'], ['aws-credentials', 'warn'],
    ['elastic-ips', 'skip'], ['lambda-concurrency', 'skip'], ['outputs', 'skip'],
  ]);
  assert.equal(json.summary, { ok: 4, warn: 1, fail: 0, skip: 3 });
  assert.is(json.stackFile, join(dir, 'Pulumi.dev.yaml'));
});

test('before pulumi up: region missing, key in plain text, key missing: FAIL with the command that fixes it', async () => {
  const noRegion = await stackDir('no-region', stackYaml(GOOD.filter((l) => !l.startsWith('aws:region'))));
  const plain = await stackDir('plain', stackYaml([...GOOD.slice(0, 3), `openai-wrapi:openaiApiKey: ${PLAIN_KEY}`, 'openai-wrapi:alertWebhookUrl: "https://hooks.example.com/T0/secret-token"']));
  const missing = await stackDir('missing', stackYaml(GOOD.slice(0, 3)));
  const [r1, r1env, r2, r3] = await Promise.all([
    doctor(noRegion, ['--stage', 'dev'], BARE()),
    doctor(noRegion, ['--stage', 'dev'], { ...BARE(), AWS_REGION: 'eu-central-1' }),
    doctor(plain, ['--stage', 'dev'], BARE()),
    doctor(missing, ['--stage', 'dev', '--json'], BARE()),
  ]);

  assert.is(r1.code, 1);
  assert.is(line(r1, 'FAIL  aws:region'), 'FAIL  aws:region is not set in Pulumi.dev.yaml → pulumi config set aws:region eu-west-2 --stack dev (your region)');
  assert.is(r1.lines.at(-1), '3 ok, 1 warning, 1 failed, 3 skipped: fix the FAIL lines first.');
  assert.ok(r1.lines.includes('skip  Elastic IP headroom not checked: no AWS credentials'));
  // A region from the shell is what pulumi up would use: a warning, not a failure.
  assert.is(r1env.code, 0, r1env.stdout);
  assert.is(line(r1env, 'warn  aws:region'),
    'warn  aws:region is not set in Pulumi.dev.yaml: pulumi up would deploy to eu-central-1, from this shell\'s AWS_REGION, and another shell elsewhere → pulumi config set aws:region eu-central-1 --stack dev');

  assert.is(r2.code, 1);
  assert.match(line(r2, 'FAIL  openaiApiKey'), /^FAIL  openaiApiKey is in plain text in Pulumi\.dev\.yaml \(pulumi up refuses it\): replace it at its source too if the file was ever committed or shared → pulumi config set --secret openaiApiKey --stack dev \(it asks for the value\)$/);
  assert.match(line(r2, 'FAIL  alertWebhookUrl'), /in plain text .* → pulumi config set --secret alertWebhookUrl --stack dev/);
  assert.not.ok(r2.stdout.includes(PLAIN_KEY) || r2.stderr.includes(PLAIN_KEY), 'the plain-text key is never printed');
  assert.not.ok(r2.stdout.includes('secret-token'), 'nor the webhook URL');

  assert.is(r3.code, 1);
  const json = JSON.parse(r3.stdout);
  const key = json.checks.find((c: any) => c.id === 'openai-api-key');
  assert.equal(key, {
    id: 'openai-api-key', status: 'fail', message: 'openaiApiKey is not set: the stage\'s OpenAI key (pulumi up refuses to run without it)',
    fix: 'pulumi config set --secret openaiApiKey --stack dev (it asks for the value)',
  });
  assert.is(json.summary.fail, 1);
});

test('before pulumi up: the settings file is looked for where it should be', async () => {
  const empty = join(scratch, 'empty');
  await mkdir(empty, { recursive: true });
  const broken = await stackDir('broken', 'config:\n  aws:region: eu-west-2\n  openai-wrapi:stage: "dev\n');
  const good = await stackDir('good-prod', stackYaml(GOOD.map((l) => l.replace('stage: dev', 'stage: prod'))), 'prod');
  const [here, given, unreadable, viaDir] = await Promise.all([
    doctor(empty, [], BARE()),
    doctor(empty, ['--dir', join(scratch, 'nowhere')], BARE()),
    doctor(broken, [], BARE()),
    doctor(empty, ['--stage', 'prod', '--dir', good], BARE()),
  ]);
  // Nothing to check is not a failure; a folder named on purpose without the file is.
  assert.is(here.code, 0);
  assert.is(line(here, 'skip  before pulumi up'), `skip  before pulumi up: no Pulumi.dev.yaml in ${empty}, so its settings and the account were not checked → run doctor in the folder of the Pulumi program, or pass --dir DIR`);
  assert.is(given.code, 1);
  assert.is(line(given, 'FAIL'), `FAIL  Pulumi.dev.yaml is not in ${join(scratch, 'nowhere')} → create the stack in the folder of the Pulumi program: pulumi stack init dev`);
  assert.is(unreadable.code, 1);
  assert.match(line(unreadable, 'FAIL'), /^FAIL  could not read .*Pulumi\.dev\.yaml: line 3: a quoted value that does not end on its line → correct it/);
  assert.is(viaDir.code, 0, viaDir.stdout);
  assert.is(line(viaDir, 'ok    stage'), 'ok    stage is prod (functions openai-proxy-prod, openai-admin-prod)');
});

// --------------------------------------------------------------------- the account, through the fake AWS

/** Runs the doctor against the fake AWS with `over` as the account; returns the run and the requests it made. */
async function withAccount(name: string, yamlLines: string[], over: Partial<FakeAwsAccount>, env: Record<string, string | undefined> = DEPLOYER()) {
  aws.account = account(over);
  aws.requests.length = 0;
  const dir = await stackDir(name, stackYaml(yamlLines));
  const r = await doctor(dir, ['--stage', 'dev'], env);
  return { r, requests: [...aws.requests] };
}

test('Elastic IPs: enough headroom is ok; the signed EC2 and Lambda calls are for the right service and region', async () => {
  const { r, requests } = await withAccount('eip-ok', GOOD.map((l) => l.replace('numAzs: 1', 'numAzs: 3')), {
    addresses: [{ allocationId: 'eipalloc-0a1b2c3d4e5f60001', associated: false }],
  });
  assert.is(r.code, 0, r.stdout + r.stderr);
  assert.match(line(r, 'ok    AWS credentials'), /^ok    AWS credentials found \(AWS_ACCESS_KEY_ID\)$/);
  assert.is(line(r, 'ok    Elastic IPs'),
    'ok    Elastic IPs in eu-west-2: 4 free (quota 5, 1 in use); the stage needs 3 (numAzs 3, a NAT gateway with an Elastic IP in each AZ). ' +
    'At the default quota of 5, dev (numAzs 1) and prod (numAzs 3) in one region take 4 of the 5');
  assert.is(line(r, 'ok    Lambda'), 'ok    Lambda concurrency in eu-west-2: quota 1,000, 1,000 unreserved; the stage reserves none');
  assert.equal(requests.map((q) => `${q.service} ${q.action} ${q.verified}`).sort(), [
    'ec2 DescribeAccountAttributes true', 'ec2 DescribeAddresses true', 'lambda GetAccountSettings true',
  ]);
  assert.not.ok(r.stdout.includes(KEYS.AWS_SECRET_ACCESS_KEY) || r.stdout.includes(KEYS.AWS_ACCESS_KEY_ID), 'no AWS key printed');
});

test('Elastic IPs: quota 5, 3 in use and numAzs 3 FAILs with the numbers and the ways out', async () => {
  const { r } = await withAccount('eip-short', GOOD.map((l) => l.replace('numAzs: 1', 'numAzs: 3')), {
    addresses: [
      { allocationId: 'eipalloc-0a1b2c3d4e5f60001', associated: true },
      { allocationId: 'eipalloc-0a1b2c3d4e5f60002', associated: false },
      { allocationId: 'eipalloc-0a1b2c3d4e5f60003', associated: false, tags: { Name: 'old-bastion' } },
    ],
  });
  assert.is(r.code, 1);
  const fail = line(r, 'FAIL  Elastic IPs');
  assert.ok(fail.startsWith('FAIL  Elastic IPs in eu-west-2: 2 free (quota 5, 3 in use); the stage needs 3 (numAzs 3, a NAT gateway with an Elastic IP in each AZ)'), fail);
  assert.ok(fail.includes(' → release unused ones (2 not associated): aws ec2 describe-addresses --region eu-west-2 --query "Addresses[?AssociationId==null].AllocationId" --output text'), fail);
  assert.ok(fail.includes('; or ask for more: aws service-quotas request-service-quota-increase --service-code ec2 --quota-code L-0263D0A3 --desired-value 6 --region eu-west-2'), fail);
  assert.ok(fail.endsWith('; or use fewer AZs: pulumi config set numAzs 2 --stack dev'), fail);

  // A stage that is up already holds its own addresses: those are not counted against it again.
  const { r: up } = await withAccount('eip-own', GOOD.map((l) => l.replace('numAzs: 1', 'numAzs: 3')), {
    addresses: [1, 2, 3].map((i) => ({ allocationId: `eipalloc-0a1b2c3d4e5f6000${i}`, associated: true, tags: { project: 'openai-wrapi', stage: 'dev', Name: `openai-wrapi-dev-nat-${i}` } }))
      .concat([{ allocationId: 'eipalloc-0a1b2c3d4e5f60009', associated: true, tags: { project: 'openai-wrapi', stage: 'prod', Name: 'openai-wrapi-prod-nat-a' } }]),
  });
  assert.is(up.code, 0, up.stdout);
  assert.match(line(up, 'ok    Elastic IPs'), /^ok    Elastic IPs in eu-west-2: 1 free \(quota 5, 4 in use, 3 of them the stage's own already\); the stage needs 0 more \(numAzs 3,/);

  // Without the cache there is no VPC and no NAT: nothing to ask EC2.
  const { r: none, requests } = await withAccount('eip-none', [...GOOD, 'openai-wrapi:useElastiCache: false'], { eipQuota: 0 });
  assert.is(line(none, 'ok    Elastic IPs'), 'ok    Elastic IPs: none needed (useElastiCache is false: no VPC, no NAT gateway)');
  assert.not.ok(requests.some((q) => q.service === 'ec2'));
});

test('Lambda concurrency: a quota of 10 warns; a reservation leaving less than 100 unreserved FAILs', async () => {
  const { r: small } = await withAccount('lambda-10', GOOD, { concurrency: 10, unreserved: 10 });
  assert.is(small.code, 0, small.stdout);
  assert.is(line(small, 'warn  Lambda'),
    'warn  Lambda concurrency in eu-west-2: the stage reserves none; the account\'s quota is 10 (Lambda\'s default is 1,000; new accounts may start at 10): ' +
    'at most 10 calls at once in the whole account, each streamed call holding an instance for its whole length → ask for more: ' +
    'aws service-quotas request-service-quota-increase --service-code lambda --quota-code L-B99A9384 --desired-value 1000 --region eu-west-2');
  assert.is(small.lines.at(-1), '6 ok, 1 warning, 0 failed, 1 skipped: no failures; read the warnings.');

  const reserving = [...GOOD, 'openai-wrapi:proxyMaxConcurrency: 100', 'openai-wrapi:adminReservedConcurrency: "5"'];
  const { r: tight, requests } = await withAccount('lambda-tight', reserving, { unreserved: 150, functions: { 'openai-admin-dev': undefined } });
  assert.is(tight.code, 1);
  assert.is(line(tight, 'FAIL  Lambda'),
    'FAIL  Lambda concurrency in eu-west-2: the stage reserves 105 (proxyMaxConcurrency 100 + adminReservedConcurrency 5), which would leave 45 unreserved, ' +
    'and Lambda refuses a reservation that leaves less than 100 (quota 1,000, 150 unreserved now) → ask for a higher quota: ' +
    'aws service-quotas request-service-quota-increase --service-code lambda --quota-code L-B99A9384 --desired-value 1055 --region eu-west-2; ' +
    'or reserve less: pulumi config rm proxyMaxConcurrency --stack dev');
  assert.equal(requests.filter((q) => q.action === 'GetFunctionConcurrency').map((q) => q.verified), [true, true]);

  // The same settings on a stage that is up: what its functions reserve already is part of the pool.
  const { r: up } = await withAccount('lambda-up', [...reserving, 'openai-wrapi:publicAccess: {project: website, maxConcurrency: 10}'],
    { unreserved: 150, functions: { 'openai-proxy-dev': 100, 'openai-admin-dev': 5, 'openai-public-dev': undefined } });
  assert.is(up.code, 0, up.stdout);
  assert.is(line(up, 'ok    Lambda'),
    'ok    Lambda concurrency in eu-west-2: quota 1,000, 150 unreserved; the stage reserves 115 (proxyMaxConcurrency 100 + adminReservedConcurrency 5 + publicAccess.maxConcurrency 10), leaving 140');
});

test('AWS endpoints from AWS_ENDPOINT_URL; a signature for the wrong region is refused by AWS and said so', async () => {
  const other = await startFakeAws({ region: 'us-east-1', accessKeyId: KEYS.AWS_ACCESS_KEY_ID, secretAccessKey: KEYS.AWS_SECRET_ACCESS_KEY, account: account() });
  try {
    const dir = await stackDir('wrong-region', stackYaml(GOOD));
    const r = await doctor(dir, ['--stage', 'dev'], { ...BARE(), ...KEYS, AWS_ENDPOINT_URL: other.endpoint });
    assert.is(r.code, 1);
    assert.match(line(r, 'FAIL  Elastic IP'), /^FAIL  Elastic IP headroom: AWS refused the credentials \(AuthFailure: AWS was not able to validate .*Credential should be scoped to region 'us-east-1'.*\) → see which they are: aws sts get-caller-identity/);
    assert.match(line(r, 'FAIL  Lambda'), /^FAIL  Lambda concurrency: AWS refused the credentials \(InvalidSignatureException: Credential should be scoped to region 'us-east-1'\)/);
    assert.ok(other.requests.length >= 3 && other.requests.every((q) => q.verified !== true));
  } finally {
    await other.close();
  }
});

// ------------------------------------------------------------------------ after pulumi up: the local stack

/** A port nothing listens on (fetch refuses some well-known ones, such as 9, outright). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A folder without a stack file: only the checks after pulumi up run. */
async function deployedFolder(): Promise<string> {
  const dir = join(scratch, 'after');
  await mkdir(dir, { recursive: true });
  return dir;
}

test('after pulumi up: the outputs are found as the SDK finds them and the proxy answers a signed GET /v1/models', async () => {
  const dir = await deployedFolder();
  const r = await doctor(dir, [], t.env);
  assert.is(r.code, 0, r.stdout + r.stderr);
  assert.is(line(r, 'ok    outputs'), `ok    outputs of stage dev from ${t.stack.outputsFile} (the local stack): proxy ${t.stack.url}/dev/`);
  const models = await (await t.fetchAs()(`${t.stack.url}/dev/v1/models`)).json();
  assert.is(line(r, 'ok    the proxy'), `ok    the proxy answered a signed GET /v1/models (as local user "default"): 200, ${models.data.length} models`);
  assert.is(line(r, 'skip  streaming'), 'skip  streaming not tried: it makes one call, which costs a little → openai-wrapi doctor --stage dev --call PROJECT (one gpt-4o-mini chat completion of at most 20 tokens, billed to PROJECT)');
  assert.is(r.lines.at(-1), '2 ok, 0 warnings, 0 failed, 2 skipped: nothing to fix.');
});

test('after pulumi up: --call streams one small call and reports its chunks and cost, which the ledger bills', async () => {
  await t.admin({ action: 'setLimit', project: 'doctor', limit: 1 });
  const dir = await deployedFolder();
  const r = await doctor(dir, ['--call', 'doctor', '--json'], t.env);
  assert.is(r.code, 0, r.stdout + r.stderr);
  const stream = JSON.parse(r.stdout).checks.find((c: any) => c.id === 'stream');
  assert.is(stream.status, 'ok', stream.message);
  const { chunks, usage, costUsd, model } = stream.data;
  assert.ok(chunks > 1, `arrived in ${chunks} chunks`);
  assert.match(model, /^gpt-4o-mini/);
  assert.ok(usage.prompt_tokens > 0 && usage.completion_tokens > 0 && usage.completion_tokens <= 20, JSON.stringify(usage));
  // gpt-4o-mini: $0.15 in, $0.60 out per 1M tokens.
  assert.is(costUsd, Math.round((usage.prompt_tokens * 0.15 + usage.completion_tokens * 0.6) * 1000) / 1e9);
  assert.match(stream.message, new RegExp(`^streamed a gpt-4o-mini-[\\d-]+ chat completion billed to project "doctor" in ${chunks} chunks \\(the first after \\d+ ms, the last after \\d+ ms\\); ` +
    `usage ${usage.prompt_tokens} tokens in, ${usage.completion_tokens} out; cost \\$0\\.0000\\d+; before it, \\$1\\.00 of the \\$1\\.00 limit was left$`));
  // The proxy billed the same call at the same cost.
  await settled(t, async () => (await t.admin({ action: 'usage', by: 'project' })).groups.some((g: any) => g.key === 'doctor' && g.requests === 1));
  const billed = (await t.admin({ action: 'usage', by: 'project' })).groups.find((g: any) => g.key === 'doctor');
  assert.is(billed.spend, costUsd);

  // A caller who is not an admin still streams; only the price cannot be read.
  const ann = await doctor(dir, ['--call', 'doctor'], { ...t.env, AWS_PROFILE: 'ann' });
  assert.is(ann.code, 0, ann.stdout);
  assert.match(line(ann, 'ok    streamed'), /in \d+ chunks .*; cost not shown \(reading the stage's prices needs the admin policy\)/);
  assert.match(line(ann, 'ok    the proxy'), /\(as local user "ann"\)/);
});

test('after pulumi up: a project without a limit, and an answer that arrives in one piece, FAIL as such', async () => {
  const dir = await deployedFolder();
  const refused = await doctor(dir, ['--call', 'no-limit-here'], t.env);
  assert.is(refused.code, 1);
  assert.is(line(refused, 'FAIL'),
    'FAIL  the proxy refused the call: project "no-limit-here" has no spending limit in stage dev, so its calls are refused (403 project_not_allowed) → openai-wrapi limits set --stage dev --project no-limit-here --limit 1');
  assert.is(refused.lines.at(-1), '2 ok, 0 warnings, 1 failed, 1 skipped: fix the FAIL lines first.');

  await t.admin({ action: 'setLimit', project: 'buffered', limit: 1 });
  pacing = 'buffered';
  try {
    const whole = await doctor(dir, ['--call', 'buffered'], t.env);
    assert.is(whole.code, 1, whole.stdout);
    assert.match(line(whole, 'FAIL'),
      /^FAIL  the answer arrived in one piece \(\d+ events in 1 chunk after \d+ ms\): the function URL buffers instead of streaming \(README: Known risk: streaming from a function in a VPC\) → pulumi config set useElastiCache false --stack dev, then pulumi up --stack dev$/);
  } finally {
    pacing = 'paced';
  }
});

test('after pulumi up: a caller the function URL refuses (403), a proxy that is gone, outputs that are not there', async () => {
  const dir = await deployedFolder();
  const outputs = join(scratch, 'aws-like-dev.json');
  // What `pulumi stack output --json` saves: no credentials file, so the standard chain signs.
  await writeFile(outputs, JSON.stringify({ proxyUrl: `${t.stack.url}/dev/`, adminFunctionName: 'openai-admin-dev', region: 'us-east-1', userPolicyArn: 'arn:aws:iam::123456789012:policy/x' }));
  const [forbidden, gone, missing, callWithout] = await Promise.all([
    doctor(dir, ['--outputs', outputs], { ...BARE(), ...KEYS }),
    (async () => {
      const dead = join(scratch, 'dead-dev.json');
      const url = `http://127.0.0.1:${await closedPort()}`;
      await writeFile(dead, JSON.stringify({ dev: { proxyUrl: `${url}/dev/`, adminFunctionName: 'openai-admin-dev', region: 'us-east-1', lambdaEndpoint: url, credentialsFile: `${t.home}/credentials` } }));
      return doctor(dir, ['--outputs', dead], { ...t.env, OPENAI_WRAPI_OUTPUTS: undefined });
    })(),
    doctor(dir, ['--outputs', join(scratch, 'nope.json')], BARE()),
    doctor(dir, ['--call', 'doctor'], BARE()),
  ]);
  assert.is(forbidden.code, 1);
  assert.is(line(forbidden, 'FAIL'),
    'FAIL  GET /v1/models was refused (403 invalid_signature: The security token included in the request is invalid): AWS_ACCESS_KEY_ID may not invoke the stage\'s function URL, ' +
    'or signed for another account or region → give the caller the stage\'s user policy (README: Give people access): ' +
    'aws iam attach-user-policy --user-name NAME --policy-arn "$(pulumi stack output userPolicyArn --stack dev)"');
  assert.not.ok(forbidden.stdout.includes(KEYS.AWS_SECRET_ACCESS_KEY));

  assert.is(gone.code, 1);
  assert.match(line(gone, 'FAIL'), /^FAIL  could not reach the proxy at http:\/\/127\.0\.0\.1:\d+\/dev\/ \(ECONNREFUSED\) → start the local stack: openai-wrapi local \(or npm start\)$/);

  // Named on purpose, not finding them is a failure (and so is --call with nothing to call).
  assert.is(missing.code, 1);
  assert.match(line(missing, 'FAIL'), /^FAIL  OPENAI_WRAPI_OUTPUTS points at .*nope\.json, which does not exist\. → save the stage's outputs: pulumi stack output --json --stack dev > dev\.json/);
  assert.is(callWithout.code, 1);
  assert.match(line(callWithout, 'FAIL'), /^FAIL  No proxy URL for stage "dev"\./);
});

test('bad usage exits 2; nothing secret was printed by any run', async () => {
  const dir = await deployedFolder();
  const [project, empty] = await Promise.all([doctor(dir, ['--call', 'a#b'], t.env), doctor(dir, ['--outputs', ''], t.env)]);
  assert.is(project.code, 2);
  assert.match(project.stderr, /^openai-wrapi: --call must be 1-128 Latin-1 characters .*\(got "a#b"\)\n$/);
  assert.is(empty.code, 2);
  assert.match(empty.stderr, /--outputs must name a file/);
  const all = printed.join('\n');
  for (const secret of [PLAIN_KEY, KEYS.AWS_SECRET_ACCESS_KEY, SECURE, t.fake.apiKey]) assert.not.ok(all.includes(secret), `printed ${secret.slice(0, 8)}…`);
  assert.ok(printed.length > 20);
});

test.run();
