// The bytes that would be deployed are the bytes tested: the Pulumi program runs under mocks, the
// inline archives it hands to aws.lambda.Function are taken from its resource inputs, written to disk
// and imported as Lambda would import them. The bundled handlers then serve function-URL events with
// the environment the program gives them, against dynalite, the fake OpenAI upstream and a fake
// Secrets Manager (the key reaches the proxy only through GetSecretValue, as on AWS).
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, appendFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { countTokens as exactTokens } from 'gpt-tokenizer';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { invokeStreaming, type StreamingResult } from './helpers/awslambda-stub.ts';
import { startDynalite, type DynaliteServer } from './helpers/dynalite.ts';
import type { ColdStartPlan, ColdStartStep } from './helpers/lambda-cold-start.ts';
import { archiveFiles, BASE_CONFIG, REGION, runProgram, type ProgramRun } from './helpers/pulumi-program.ts';
import { startFakeSecretsManager, type FakeSecretsManager } from './helpers/fake-secrets-manager.ts';
import { startFakeOpenAI, type FakeOpenAI } from '../runtime/local/simulated-openai.ts';
import { ensureLedgerTable } from '../runtime/store/dynamo-ledger.ts';
import type { FunctionUrlEvent } from '../runtime/lambda/function-url.ts';

const ROOT = new URL('..', import.meta.url);
const FUNCTION = 'aws:lambda/function:Function';
const IAM_EVENT: FunctionUrlEvent = JSON.parse(
  readFileSync(new URL('./fixtures/reference/lambda-function-url-event-iam.json', import.meta.url), 'utf8'),
);

type Files = Record<string, string>;
interface Deployed {
  run: ProgramRun;
  /** Per function (`proxy`, `admin`): its archive's files and the function's inputs. */
  functions: Record<'proxy' | 'admin', { files: Files; hash: string; handler: string; env: Record<string, string> }>;
}

/** Unpacks an archive into `dir`, as Lambda does into /var/task. */
function writeArchive(dir: string, files: Files): void {
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
}

/** Content hash of an archive: names and bytes in name order (what Pulumi's archive hash depends on). */
function archiveHash(files: Files): string {
  const hash = createHash('sha256');
  for (const name of Object.keys(files).sort()) hash.update(`${name}\0${files[name].length}\0`).update(files[name]);
  return hash.digest('hex');
}

async function deploy(config: Record<string, string | number | boolean>): Promise<Deployed> {
  const run = await runProgram(config);
  const functions = {} as Deployed['functions'];
  for (const name of ['proxy', 'admin'] as const) {
    const fn = run.one(FUNCTION, `-${name}`);
    const files = await archiveFiles(fn.inputs.code);
    functions[name] = { files, hash: archiveHash(files), handler: fn.inputs.handler, env: fn.inputs.environment.variables };
  }
  return { run, functions };
}

// ------------------------------------------------------------------------------------------- build

const build = suite('the inline archives');
let first: Deployed;
let second: Deployed;

build.before(async () => {
  first = await deploy({ ...BASE_CONFIG, useElastiCache: false });
  // Another program run, another stack shape: the code must not change.
  second = await deploy({ ...BASE_CONFIG, numAzs: 3, proxyMemoryMb: 1024 });
});

const BANNER = "import { createRequire as __wrapiCreateRequire } from 'node:module';";
/** Hot-path budget: the proxy's entry and what it imports statically (issue 11: ≤ 0.6 MB). */
const PROXY_HOT_PATH_BYTES = 600_000;
/** The admin function's whole archive: it needs no tokenizer and stays about as lean as it was. */
const ADMIN_ARCHIVE_BYTES = 250_000;
const TOKENIZER_CHUNK = /^chunks\/o200k-tokenizer-[A-Z0-9]+\.mjs$/;
const sizeOf = (files: Files, paths = Object.keys(files)) => paths.reduce((n, p) => n + Buffer.byteLength(files[p]), 0);

/** The relative module paths a file imports (statically or with import()), resolved inside the archive. */
function referencedPaths(path: string, code: string): string[] {
  const dir = path.includes('/') ? path.slice(0, path.lastIndexOf('/') + 1) : '';
  return [...code.matchAll(/["'](\.\.?\/[\w./-]+\.mjs)["']/g)].map((m) => new URL(m[1], `file:///${dir}`).pathname.slice(1));
}

build('each archive holds its handler\'s ES module at the root and the chunks it loads under chunks/', () => {
  for (const name of ['proxy', 'admin'] as const) {
    const { files, handler } = first.functions[name];
    assert.is(handler, `${name}.handler`);
    assert.ok(`${name}.mjs` in files, `${name}.mjs`);
    for (const path of Object.keys(files)) {
      if (path !== `${name}.mjs`) assert.match(path, /^chunks\/[\w-]+-[A-Z0-9]{8}\.mjs$/);
      assert.ok(files[path].startsWith(BANNER), `the createRequire banner comes first in ${path}`);
    }
  }
  assert.equal(Object.keys(first.functions.proxy.files).filter((p) => TOKENIZER_CHUNK.test(p)).length, 1, 'one tokenizer chunk');
});

build('every module an archive file imports is in the archive, and every file is imported by another', () => {
  for (const name of ['proxy', 'admin'] as const) {
    const { files } = first.functions[name];
    const referenced = new Set<string>();
    for (const [path, code] of Object.entries(files)) {
      for (const target of referencedPaths(path, code)) {
        assert.ok(target in files, `${path} imports ${target}, which is not in the ${name} archive`);
        referenced.add(target);
      }
    }
    for (const path of Object.keys(files)) if (path !== `${name}.mjs`) assert.ok(referenced.has(path), `${path} is never loaded`);
  }
});

build('the tokenizer stays out of the admin archive, which stays lean', () => {
  const { files } = first.functions.admin;
  assert.not.ok(Object.keys(files).some((p) => p.includes('tokenizer')), Object.keys(files).join(', '));
  assert.ok(sizeOf(files) <= ADMIN_ARCHIVE_BYTES, `the admin archive is ${sizeOf(files)} bytes`);
});

build('two program runs produce the same archives, byte for byte (no diff on an unchanged runtime)', () => {
  for (const name of ['proxy', 'admin'] as const) {
    assert.is(second.functions[name].hash, first.functions[name].hash, name);
    assert.equal(second.functions[name].files, first.functions[name].files, name);
  }
  assert.is.not(first.functions.proxy.hash, first.functions.admin.hash);
});

build('the bundles carry no trace of the machine that built them', () => {
  const root = new URL(ROOT).pathname.replace(/\/$/, '');
  for (const name of ['proxy', 'admin'] as const) {
    for (const [path, code] of Object.entries(first.functions[name].files)) assert.not.ok(code.includes(root), `${name}: ${path} contains ${root}`);
  }
});

build.run();

// --------------------------------------------------------------------------------- build failures

const failures = suite('build failures stop the program');
let copy: string;

/** A copy of the project (sources only, node_modules linked) whose runtime we may break. */
failures.before(() => {
  copy = mkdtempSync(join(tmpdir(), 'openai-wrapi-infra-'));
  for (const entry of ['index.ts', 'package.json', 'runtime']) cpSync(new URL(entry, ROOT), join(copy, entry), { recursive: true });
  symlinkSync(new URL('node_modules', ROOT).pathname, join(copy, 'node_modules'), 'dir');
});
failures.after(() => rmSync(copy, { recursive: true, force: true }));

const programIn = (dir: string) => pathToFileURL(join(dir, 'index.ts'));
/** The message `run` fails with. */
async function rejection(run: Promise<unknown>): Promise<string> {
  try {
    await run;
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('the program should have failed');
}

failures('the unbroken copy runs (the failures below are the breakage, not the copy)', async () => {
  const run = await runProgram({ ...BASE_CONFIG, useElastiCache: false }, { program: programIn(copy) });
  assert.is(run.ofType(FUNCTION).length, 2);
});

failures('a syntax error in the runtime fails the program with esbuild\'s message', async () => {
  const file = join(copy, 'runtime/lambda/admin.ts');
  const original = readFileSync(file, 'utf8');
  try {
    appendFileSync(file, '\nexport const broken = ;\n');
    const message = await rejection(runProgram({ ...BASE_CONFIG, useElastiCache: false }, { program: programIn(copy) }));
    assert.match(message, 'esbuild could not bundle the Lambda code');
    assert.match(message, 'runtime/lambda/admin.ts');
  } finally {
    writeFileSync(file, original);
  }
});

failures('an esbuild warning fails the program too', async () => {
  const file = join(copy, 'runtime/lambda/admin.ts');
  const original = readFileSync(file, 'utf8');
  try {
    appendFileSync(file, '\nif (Number(process.env.X) == NaN) console.log("never");\n');
    const message = await rejection(runProgram({ ...BASE_CONFIG, useElastiCache: false }, { program: programIn(copy) }));
    assert.match(message, 'esbuild warned while bundling the Lambda code');
    assert.match(message, 'NaN');
  } finally {
    writeFileSync(file, original);
  }
});

failures.run();

// ---------------------------------------------------------------------------------- the handlers

type StreamingHandler = (event: FunctionUrlEvent, stream: import('node:stream').Writable, context: unknown) => Promise<void>;
const handlers = suite('the deployed handlers');
let dir: string;
let dynamo: DynaliteServer;
let fake: FakeOpenAI;
let secrets: FakeSecretsManager;
let proxy: StreamingHandler;
let admin: (event: unknown) => Promise<any>;
const savedEnv = { ...process.env };

/** The reference function-URL event (AWS_IAM, user alice) with a new body. */
function event(body: Record<string, unknown>, project = 'research'): FunctionUrlEvent {
  const e = structuredClone(IAM_EVENT);
  e.body = JSON.stringify(body);
  e.headers!['content-length'] = String(Buffer.byteLength(e.body));
  e.headers!['openai-proxy-project'] = project;
  return e;
}

handlers.before(async () => {
  // The SDK warns on Node < 22 (Lambda runs 22): quiet here, once per bundled copy otherwise.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  const deployed = first ?? (await deploy({ ...BASE_CONFIG, useElastiCache: false }));
  dir = mkdtempSync(join(tmpdir(), 'openai-wrapi-lambda-'));
  for (const name of ['proxy', 'admin'] as const) {
    writeArchive(join(dir, name), deployed.functions[name].files);
  }
  const env = { ...deployed.functions.admin.env, ...deployed.functions.proxy.env };
  dynamo = await startDynalite();
  fake = await startFakeOpenAI();
  secrets = await startFakeSecretsManager(env.OPENAI_WRAPI_SECRET_ARN, { openaiApiKey: fake.apiKey, openaiOrgId: 'org-from-secrets-manager' });
  await ensureLedgerTable(dynamo.client(), env.OPENAI_WRAPI_TABLE);

  // The function's environment as the program set it, plus what Lambda adds (region, role
  // credentials) and the local stand-ins for AWS and OpenAI. The key exists only in the fake secret.
  for (const name of Object.keys(process.env)) if (/^(OPENAI_|AWS_)/.test(name)) delete process.env[name];
  Object.assign(process.env, env, {
    AWS_REGION: REGION,
    AWS_ACCESS_KEY_ID: 'ASIAEXAMPLEEXAMPLE',
    AWS_SECRET_ACCESS_KEY: 'role-secret',
    AWS_SESSION_TOKEN: 'role-session-token',
    AWS_ENDPOINT_URL_SECRETS_MANAGER: secrets.endpoint,
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    OPENAI_WRAPI_DYNAMODB_ENDPOINT: dynamo.endpoint,
    OPENAI_WRAPI_UPSTREAM_URL: fake.url,
  });
  // The Lambda runtime's globals must exist before the bundle loads (it calls streamifyResponse).
  await import('./helpers/awslambda-stub.ts');
  proxy = (await import(pathToFileURL(join(dir, 'proxy', 'proxy.mjs')).href)).handler;
  admin = (await import(pathToFileURL(join(dir, 'admin', 'admin.mjs')).href)).handler;
});

handlers.after(async () => {
  await Promise.all([fake?.close(), dynamo?.close(), secrets?.close()]);
  rmSync(dir, { recursive: true, force: true });
  process.env = savedEnv;
});

const json = (r: StreamingResult) => JSON.parse(r.body);

handlers('the bundled admin handler sets a limit in the ledger', async () => {
  const set = await admin({ action: 'setLimit', project: 'research', limit: 5 });
  assert.ok(set.ok, JSON.stringify(set));
  const listed = await admin({ action: 'listLimits', project: 'research' });
  assert.ok(listed.ok, JSON.stringify(listed));
  assert.equal(listed.limits.map((l: { project: string; limit: number }) => [l.project, l.limit]), [['research', 5]]);
});

handlers('the bundled proxy answers a function-URL call with the key it read from Secrets Manager', async () => {
  const before = fake.requests.length;
  const r = await invokeStreaming(proxy, event({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Bundle test one. fake:words=4' }] }));
  assert.is(r.statusCode, 200, r.body);
  assert.is(json(r).object, 'chat.completion');
  const upstream = fake.requests.slice(before);
  assert.is(upstream.length, 1);
  assert.is(upstream[0].headers.authorization, `Bearer ${fake.apiKey}`);
  assert.is(upstream[0].headers['openai-organization'], 'org-from-secrets-manager');
  assert.equal(secrets.calls, [{ target: 'secretsmanager.GetSecretValue', secretId: process.env.OPENAI_WRAPI_SECRET_ARN, signed: true }]);
  for (const [name, value] of Object.entries(r.headers)) assert.not.ok(value.includes(fake.apiKey), `${name} leaks the key`);
});

handlers('the bundled proxy streams server-sent events as they come; the secret is read once per cold start', async () => {
  const r = await invokeStreaming(
    proxy,
    event({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'Bundle test two. fake:words=6 fake:slow=25' }] }),
  );
  assert.is(r.statusCode, 200, r.body);
  assert.match(r.headers['content-type'], 'text/event-stream');
  assert.ok(r.chunks.length >= 6, `only ${r.chunks.length} writes`);
  const spread = r.chunks.at(-1)!.at - r.chunks[0].at;
  assert.ok(spread >= 100, `the frames arrived within ${spread} ms: buffered, not streamed`);
  const frames = r.body.split('\n\n').filter((f) => f.startsWith('data: '));
  assert.is(frames.at(-1), 'data: [DONE]');
  assert.is(secrets.calls.length, 1);
});

handlers('the bundled admin reports what the bundled proxy recorded, for the verified IAM user (alice)', async () => {
  let rows: any[] = [];
  for (let i = 0; i < 50 && rows.length === 0; i++) {
    const report = await admin({ action: 'usage' });
    assert.ok(report.ok, JSON.stringify(report));
    rows = report.rows.filter((r: any) => r.project === 'research' && r.user === 'alice' && r.model !== '*');
    if (rows.length === 0) await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const total = rows.reduce((n, r) => n + r.requests, 0);
  assert.is(total, 2, JSON.stringify(rows));
  assert.ok(rows.every((r) => r.spend > 0));
});

/** SSE text the client got: the content deltas of its data frames, joined. */
const relayedText = (body: string) =>
  body.split('\n\n').filter((f) => f.startsWith('data: {')).map((f) => JSON.parse(f.slice(6)).choices?.[0]?.delta?.content ?? '').join('');

handlers('a cold start in a fresh process parses a lean hot path; the tokenizer chunk loads on the first estimate, and counts', async () => {
  for (const project of ['cold-start', 'cold-start-cut']) await admin({ action: 'setLimit', project, limit: 5 });
  const files = first.functions.proxy.files;
  const tokenizer = Object.keys(files).find((p) => TOKENIZER_CHUNK.test(p))!;
  const plan: ColdStartPlan = {
    dir: join(dir, 'proxy'),
    calls: [
      { label: 'exact', event: event({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Cold start. fake:words=4' }] }, 'cold-start') },
      {
        label: 'estimate',
        event: event({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'Cold start cut. fake:words=20 fake:break=3' }] }, 'cold-start-cut'),
      },
    ],
    count: { chunk: tokenizer, text: 'The estimate counts with the real o200k tokenizer, ünïcödé and all.' },
  };
  const planFile = join(dir, 'cold-start-plan.json');
  writeFileSync(planFile, JSON.stringify(plan));
  // Asynchronously: the ledger, the upstream and the secret it calls are served by this process.
  const child = await promisify(execFile)(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./helpers/lambda-cold-start.ts', import.meta.url)), planFile], {
    env: process.env,
    timeout: 60_000,
  });
  const { steps, counted }: { steps: ColdStartStep[]; counted: number } = JSON.parse(child.stdout.trim().split('\n').at(-1)!);
  const [imported, exact, estimate] = steps;

  // Importing the entry loads it and the chunks it imports statically: small, and no tokenizer.
  assert.ok(imported.loaded.includes('proxy.mjs'));
  assert.not.ok(imported.loaded.includes(tokenizer), 'the tokenizer was loaded at import');
  const hotPath = sizeOf(files, imported.loaded);
  assert.ok(hotPath <= PROXY_HOT_PATH_BYTES, `the hot path is ${hotPath} bytes: ${imported.loaded.join(', ')}`);
  assert.ok(sizeOf(files) - hotPath >= Buffer.byteLength(files[tokenizer]), 'the tokenizer is outside the hot path');

  // A call with OpenAI's usage needs no tokenizer; its secret came through a lazily loaded chunk,
  // resolved relative to the entry file.
  assert.is(exact.status, 200, exact.body);
  assert.not.ok(exact.loaded.includes(tokenizer), 'the tokenizer was loaded for a call with a usage block');
  assert.ok(exact.loaded.some((p) => p.startsWith('chunks/secrets-manager-')), exact.loaded.join(', '));

  // A stream cut upstream is billed by estimate: that loads the tokenizer, and the estimate is its count.
  assert.is(estimate.status, 200);
  assert.match(estimate.body!, 'upstream_stream_interrupted');
  assert.ok(estimate.loaded.includes(tokenizer), 'the first estimate did not load the tokenizer');
  const [row] = (await admin({ action: 'usage' })).rows.filter((r: any) => r.project === 'cold-start-cut' && r.model !== '*');
  assert.is(row?.estimated, 1, 'the cut stream was recorded as estimated');
  const relayed = relayedText(estimate.body!);
  assert.ok(relayed.length > 0, estimate.body);
  // bill.ts: visible streamed text × 1.1 margin + 16 tokens (one token per byte would give more).
  assert.is(row.outputTokens, Math.ceil(exactTokens(relayed) * 1.1) + 16, relayed);
  assert.is(counted, exactTokens(plan.count!.text));
});

handlers('a project without a limit is refused by the bundled proxy, before any upstream call', async () => {
  const before = fake.requests.length;
  const r = await invokeStreaming(proxy, event({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Bundle test three.' }] }, 'unlimited'));
  assert.ok(r.statusCode >= 400 && r.statusCode < 500, `status ${r.statusCode}`);
  assert.type(json(r).error?.message, 'string');
  assert.is(fake.requests.length, before);
});

/** Every line the bundles write to stdout and stderr while `run` runs (the Powertools logger and metrics write there directly). */
async function capturingOutput<T>(run: () => Promise<T>): Promise<{ result: T; text: string; lines: any[] }> {
  const chunks: string[] = [];
  const { stdout, stderr } = process;
  const writes = [stdout.write, stderr.write];
  const grab = ((chunk: unknown) => chunks.push(String(chunk)) > 0) as typeof stdout.write;
  stdout.write = stderr.write = grab;
  let result: T;
  try {
    result = await run();
  } finally {
    [stdout.write, stderr.write] = writes;
  }
  const text = chunks.join('');
  const lines = text.split('\n').filter(Boolean).map((line) => JSON.parse(line)); // every line is JSON
  return { result, text, lines };
}

/** The two EMF lines of one call: `Requests` by stage, route and outcome; the rest by stage. */
function emfOf(lines: any[]): { requests: any; byStage: any } {
  const emf = lines.filter((l) => l._aws);
  assert.is(emf.length, 2, JSON.stringify(emf));
  for (const l of emf) {
    assert.is(l._aws.CloudWatchMetrics.length, 1);
    assert.is(l._aws.CloudWatchMetrics[0].Namespace, 'openai-wrapi');
    assert.ok(Math.abs(l._aws.Timestamp - Date.now()) < 60_000);
  }
  const [requests, byStage] = emf;
  assert.equal(requests._aws.CloudWatchMetrics[0].Dimensions, [['stage', 'route', 'outcome']]);
  assert.equal(requests._aws.CloudWatchMetrics[0].Metrics, [{ Name: 'Requests', Unit: 'Count' }]);
  assert.is(requests.Requests, 1);
  assert.equal(byStage._aws.CloudWatchMetrics[0].Dimensions, [['stage']], 'project, user and model are properties, not dimensions');
  return { requests, byStage };
}
const metricNames = (line: any) => line._aws.CloudWatchMetrics[0].Metrics.map((m: { Name: string }) => m.Name).sort();

const SECRET_PROMPT = 'The launch code is tangerine-walrus-4217.';

handlers('metrics: a served call writes EMF lines with its outcome, spend and latencies; a cache hit its saving; a refusal its reason', async () => {
  const body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: `${SECRET_PROMPT} fake:words=5` }] };
  const served = await capturingOutput(() => invokeStreaming(proxy, event(body)));
  assert.is(served.result.statusCode, 200, served.result.body);
  const first = emfOf(served.lines);
  assert.equal([first.requests.stage, first.requests.route, first.requests.outcome], ['dev', 'chat', 'served']);
  assert.equal(metricNames(first.byStage), ['AddedLatency', 'CacheMisses', 'SpendUsd', 'TimeToFirstByte']);
  assert.equal([first.byStage.project, first.byStage.user, first.byStage.model, first.byStage.outcome], ['research', 'alice', 'gpt-4o-mini', 'served']);
  const cost = Number(served.result.headers['openai-proxy-cost']);
  assert.ok(cost > 0);
  assert.ok(Math.abs(first.byStage.SpendUsd - cost) < 1e-9, `${first.byStage.SpendUsd} vs ${cost}`);
  assert.ok(first.byStage.AddedLatency >= 0 && first.byStage.AddedLatency <= first.byStage.TimeToFirstByte);

  const hit = await capturingOutput(() => invokeStreaming(proxy, event(body)));
  assert.is(hit.result.headers['openai-proxy-cache'], 'hit');
  const second = emfOf(hit.lines);
  assert.is(second.requests.outcome, 'served');
  assert.equal(metricNames(second.byStage), ['CacheHits', 'SavedUsd', 'TimeToFirstByte'], 'no spend, no upstream');
  assert.ok(Math.abs(second.byStage.SavedUsd - cost) < 1e-9);

  assert.ok((await admin({ action: 'setLimit', project: 'tight', limit: 0.00001 })).ok);
  const refused = await capturingOutput(() => invokeStreaming(proxy, event(body, 'tight')));
  assert.is(refused.result.statusCode, 429, refused.result.body);
  const third = emfOf(refused.lines);
  assert.equal([third.requests.route, third.requests.outcome], ['chat', 'refused_budget']);
  assert.equal([third.byStage.code, third.byStage.user], ['budget_exceeded', 'alice']);
  assert.not.ok(metricNames(third.byStage).includes('SpendUsd'));

  for (const { text } of [served, hit, refused]) {
    assert.not.ok(text.includes('tangerine-walrus'), 'a prompt reached the logs');
    assert.not.ok(text.includes(fake.apiKey), 'the key reached the logs');
    assert.not.match(text, /\n\s+at .*\.(m?js|ts):\d+/, 'a stack trace reached the logs');
  }
  // The structured log lines carry the invocation's request id.
  const call = served.lines.find((l) => l.message === 'call');
  assert.is(call.function_request_id, 'c6af9ac6-7b61-11e6-9a41-93e812345678');
});

handlers('a key rotated in Secrets Manager directly: the call OpenAI refuses re-reads the secret once, the next call uses the new key', async () => {
  const newKey = 'sk-rotated-in-secrets-manager-0001';
  fake.apiKey = newKey; // OpenAI now only takes the new key, and the secret holds it
  secrets.rotate({ openaiApiKey: newKey, openaiOrgId: 'org-from-secrets-manager' }, 'b2c3d4e5-6789-01ab-cdef-EXAMPLE22222');
  const reads = secrets.calls.length;
  try {
    const refused = await invokeStreaming(proxy, event({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Rotated one.' }] }));
    assert.is(refused.statusCode, 502, refused.body);
    assert.is(json(refused).error.code, 'stage_key_rejected');
    assert.is(secrets.calls.length, reads + 1, 'the refusal re-read the secret before the handler returned');
    const before = fake.requests.length;
    const ok = await invokeStreaming(proxy, event({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Rotated two.' }] }));
    assert.is(ok.statusCode, 200, ok.body);
    assert.is(fake.requests[before].headers.authorization, `Bearer ${newKey}`);
    // A key that is simply wrong (the secret holds no better one) is not re-read on every call.
    fake.apiKey = 'sk-revoked-everywhere';
    for (const content of ['Rejected one.', 'Rejected two.']) {
      const r = await invokeStreaming(proxy, event({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }] }));
      assert.is(json(r).error.code, 'stage_key_rejected');
    }
    assert.is(secrets.calls.length, reads + 1, 'at most one re-read a minute');
  } finally {
    // Leave OpenAI, the secret and the warm instance agreeing on the new key for the cases after this.
    fake.apiKey = newKey;
  }
});

handlers.run();
