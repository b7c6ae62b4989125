// The proxy bundle under Lambda's real runtime: the archives the Pulumi program builds (under its
// mocks) run in Node 22 under aws-lambda-ric, the runtime interface client of Lambda's Node images,
// against a Runtime API emulator (test/helpers/lambda-runtime-api.ts) with a function URL in front
// (test/helpers/function-url.ts). The official `openai` client calls that URL; the ledger is
// dynalite, the upstream the fake OpenAI, the key comes from a fake Secrets Manager. Both runtimes are
// installed into .cache/ on the first run (test/helpers/node-runtime.ts): that takes minutes.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import OpenAI from 'openai';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { hasBuildTools, unless } from './helpers/binaries.ts';
import { startDynalite, type DynaliteServer } from './helpers/dynalite.ts';
import { startFakeSecretsManager, type FakeSecretsManager } from './helpers/fake-secrets-manager.ts';
import { serveFunctionUrl, type FunctionUrl } from './helpers/function-url.ts';
import { startRuntimeApi, type FunctionSpec, type RuntimeApi } from './helpers/lambda-runtime-api.ts';
import { installLambdaRuntime, type LambdaRuntime } from './helpers/node-runtime.ts';
import { archiveFiles, BASE_CONFIG, REGION, runProgram } from './helpers/pulumi-program.ts';
import { startFakeOpenAI, type FakeOpenAI } from '../runtime/local/simulated-openai.ts';
import { ensureLedgerTable } from '../runtime/store/dynamo-ledger.ts';

const FUNCTION = 'aws:lambda/function:Function';
const USER_ARN = 'arn:aws:iam::123456789012:user/alice';
/** The function's timeout here (the stack's default is minutes); the proxy's own upstream deadline keeps the program's margin, scaled. */
const TIMEOUT_MS = 8_000;
const UPSTREAM_DEADLINE_MS = 4_000;

const test = unless(hasBuildTools(), suite('the proxy bundle under aws-lambda-ric'));
let runtime: LambdaRuntime;
let dir: string;
let dynamo: DynaliteServer;
let fake: FakeOpenAI;
let secrets: FakeSecretsManager;
let proxy: RuntimeApi;
let admin: RuntimeApi;
let url: FunctionUrl;
let client: OpenAI;
/** The proxy's environment as the program set it plus Lambda's and the local stand-ins. */
let proxyEnv: Record<string, string>;
const opened: { close(): Promise<void> }[] = [];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test.before(async () => {
  // The SDK (dynalite's client, in this Node 20 process) warns on Node < 22; the functions run 22.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  runtime = await installLambdaRuntime();
  console.log(
    `    aws-lambda-ric ${runtime.ricVersion} on ${runtime.node.name}: ${runtime.installSeconds ? `installed in ${runtime.installSeconds.toFixed(0)} s` : 'from .cache/'}`,
  );
  const run = await runProgram({ ...BASE_CONFIG, useElastiCache: false });
  dir = mkdtempSync(join(tmpdir(), 'openai-wrapi-ric-'));
  const env: Record<string, Record<string, string>> = {};
  for (const name of ['proxy', 'admin'] as const) {
    const fn = run.one(FUNCTION, `-${name}`);
    // Unpacked as Lambda unpacks it into /var/task: the entry file and its chunks/ folder.
    for (const [file, text] of Object.entries(await archiveFiles(fn.inputs.code))) {
      mkdirSync(dirname(join(dir, file)), { recursive: true });
      writeFileSync(join(dir, file), text);
    }
    env[name] = fn.inputs.environment.variables;
  }
  dynamo = await startDynalite();
  fake = await startFakeOpenAI();
  secrets = await startFakeSecretsManager(env.proxy.OPENAI_WRAPI_SECRET_ARN, { openaiApiKey: fake.apiKey, openaiOrgId: 'org-from-secrets-manager' });
  await ensureLedgerTable(dynamo.client(), env.proxy.OPENAI_WRAPI_TABLE);
  // What Lambda adds (the role's credentials) and the local stand-ins for AWS and OpenAI.
  const local = {
    AWS_ACCESS_KEY_ID: 'ASIAEXAMPLEEXAMPLE',
    AWS_SECRET_ACCESS_KEY: 'role-secret',
    AWS_SESSION_TOKEN: 'role-session-token',
    AWS_ENDPOINT_URL_SECRETS_MANAGER: secrets.endpoint,
    OPENAI_WRAPI_DYNAMODB_ENDPOINT: dynamo.endpoint,
    OPENAI_WRAPI_UPSTREAM_URL: fake.url,
  };
  proxyEnv = { ...env.proxy, ...local, OPENAI_WRAPI_TIMEOUT_MS: String(UPSTREAM_DEADLINE_MS) };
  proxy = await startProxy({ env: proxyEnv });
  admin = await startRuntimeApi({ name: 'openai-admin-dev', handler: 'admin.handler', taskRoot: dir, env: { ...env.admin, ...local }, timeoutMs: 60_000, region: REGION }, binaries());
  opened.push(admin);
  url = await serveFunctionUrl(proxy, { userArn: USER_ARN });
  opened.push(url);
  client = new OpenAI({ baseURL: `${url.url}/v1`, apiKey: 'not-used-the-url-is-signed', maxRetries: 0 });
  for (const project of ['ric-stream', 'ric-leave', 'ric-deadline', 'ric-killed']) await adminCall({ action: 'setLimit', project, limit: 5 });
});

test.after(async () => {
  // `RIC_LOGS=1 npx tsx test/lambda-runtime.test.ts` prints what the functions logged.
  if (process.env.RIC_LOGS) console.log(proxy?.logs(), admin?.logs());
  for (const o of opened.reverse()) await o.close();
  await Promise.all([fake?.close(), dynamo?.close(), secrets?.close()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const binaries = () => ({ node: runtime.node.bin, ric: runtime.ric });

async function startProxy(over: Partial<FunctionSpec>): Promise<RuntimeApi> {
  const api = await startRuntimeApi(
    { name: 'openai-proxy-dev', handler: 'proxy.handler', taskRoot: dir, env: proxyEnv, timeoutMs: TIMEOUT_MS, region: REGION, ...over },
    binaries(),
  );
  opened.push(api);
  return api;
}

/** Invokes the admin function (buffered, as `lambda:InvokeFunction` does) and parses its answer. */
async function adminCall(event: Record<string, unknown>): Promise<any> {
  const inv = admin.invoke(event);
  const chunks: Buffer[] = [];
  for await (const c of inv.body) chunks.push(c as Buffer);
  const end = await inv.end;
  assert.equal(end, { kind: 'success' }, admin.logs());
  const answer = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  assert.ok(answer.ok, JSON.stringify(answer));
  return answer;
}

async function usageOf(project: string): Promise<{ requests: number; estimated: number; spend: number; outputTokens: number }> {
  const report = await adminCall({ action: 'usage', by: 'project' });
  const group = report.groups.find((g: { key: string }) => g.key === project);
  return group ?? { requests: 0, estimated: 0, spend: 0, outputTokens: 0 };
}

async function limitOf(project: string): Promise<{ spend: number; committed: number }> {
  const { limits } = await adminCall({ action: 'listLimits', project });
  const row = limits.find((l: { project: string; model?: string; user?: string }) => l.project === project && [l.user, l.model].every((k) => !k || k === '*'));
  assert.ok(row, JSON.stringify(limits));
  return { spend: row.spend, committed: row.committed };
}

const ask = (content: string) => ({ model: 'gpt-4o-mini', stream: true as const, messages: [{ role: 'user' as const, content }] });

test('a streamed chat reaches the caller chunk by chunk, as the upstream sends it', async () => {
  const started = Date.now();
  const stream = await client.chat.completions.create(ask('Stream under the runtime. fake:words=6 fake:slow=250'), {
    headers: { 'openai-proxy-project': 'ric-stream' },
  });
  const arrivals: { at: number; text: string }[] = [];
  for await (const chunk of stream) {
    const text = chunk.choices[0]?.delta?.content;
    if (text) arrivals.push({ at: Date.now() - started, text });
  }
  assert.ok(arrivals.length >= 6, `only ${arrivals.length} content chunks`);
  // The upstream sends a frame every 250 ms: a buffered relay would hand them all over at once.
  const gaps = arrivals.slice(1).map((a, i) => a.at - arrivals[i].at);
  assert.ok(gaps.filter((g) => g >= 150).length >= arrivals.length - 2, `gaps between chunks: ${gaps.join(', ')} ms`);
  assert.ok(arrivals.at(-1)!.at - arrivals[0].at >= 1_000, `spread ${arrivals.at(-1)!.at - arrivals[0].at} ms`);
  const inv = url.invocations.at(-1)!;
  assert.is(await inv.streamed, true, 'the runtime posted the response in streaming mode');
  assert.equal(await inv.done, { kind: 'success' });
  // The handler returned only after settling: the ledger is written by the time the runtime asks for more.
  const usage = await usageOf('ric-stream');
  assert.is(usage.requests, 1);
  assert.is(usage.estimated, 0);
  assert.ok(usage.spend > 0);
});

/** Reads a stream to its end or its failure: the content chunks seen, and how it ended. */
async function drain(stream: AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>, onChunk?: (n: number) => void) {
  let chunks = 0;
  const times: number[] = [];
  try {
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta?.content) {
        times.push(Date.now());
        chunks += 1;
        onChunk?.(chunks);
      }
    }
    return { chunks, error: undefined };
  } catch (error) {
    if (process.env.RIC_LOGS) console.log('chunks at', times, 'error at', Date.now(), error);
    return { chunks, error: error as Error };
  }
}

test('a caller that leaves mid-stream is billed at OpenAI\'s usage: the function reads the upstream to its end', async () => {
  const abortedUpstream = fake.aborted;
  const starts = proxy.coldStarts();
  const controller = new AbortController();
  const stream = await client.chat.completions.create(ask('Leave early. fake:words=12 fake:slow=150'), {
    headers: { 'openai-proxy-project': 'ric-leave' },
    signal: controller.signal,
  });
  const read = await drain(stream, (n) => n === 2 && controller.abort());
  assert.is(read.chunks, 2);
  const inv = url.invocations.at(-1)!;
  // The function is not told: it streams the rest to nowhere and finishes normally.
  assert.equal(await inv.end, { kind: 'success' });
  assert.equal(await inv.done, { kind: 'success' });
  assert.ok(inv.dropped() > 0, 'nothing was written after the caller left');
  // By the time the runtime is done with the invocation, the call is settled: exact, not estimated.
  const usage = await usageOf('ric-leave');
  assert.is(usage.requests, 1);
  assert.is(usage.estimated, 0);
  assert.is(usage.outputTokens, 13, 'twelve words and the full stop: the whole answer, not the two chunks sent');
  assert.is(fake.aborted, abortedUpstream, 'the upstream call was not cut');
  const limit = await limitOf('ric-leave');
  assert.is(limit.committed, limit.spend, 'no hold is left');
  // The instance lives on: the next call is served warm.
  const next = await drain(await client.chat.completions.create(ask('Still there? fake:words=3'), { headers: { 'openai-proxy-project': 'ric-leave' } }));
  assert.is(next.error, undefined, String(next.error));
  assert.is(proxy.coldStarts(), starts, `a cold start after the disconnect:\n${proxy.logs()}`);
});

test('at the proxy\'s upstream deadline (before the function\'s) the caller gets an error event and the call is billed, estimated', async () => {
  const started = Date.now();
  const stream = await client.chat.completions.create(ask('Too slow. fake:words=40 fake:slow=200'), {
    headers: { 'openai-proxy-project': 'ric-deadline' },
  });
  const read = await drain(stream);
  assert.ok(read.chunks >= 5, `${read.chunks} chunks before the deadline`);
  assert.instance(read.error, OpenAI.APIError, `the stream ended with ${read.error}`);
  const inv = url.invocations.at(-1)!;
  assert.equal(await inv.end, { kind: 'success' }, 'the function ended its stream itself');
  assert.equal(await inv.done, { kind: 'success' });
  assert.ok(Date.now() - started < TIMEOUT_MS, `done after ${Date.now() - started} ms`);
  const usage = await usageOf('ric-deadline');
  assert.is(usage.requests, 1);
  assert.is(usage.estimated, 1);
  assert.ok(usage.spend > 0);
  const limit = await limitOf('ric-deadline');
  assert.is(limit.committed, limit.spend, 'no hold is left');
});

test('killed at the function\'s deadline, the call\'s hold stays in the ledger; the next call is a cold start', async () => {
  // Without the program's margin (the upstream deadline at its default, longer than the function's).
  const { OPENAI_WRAPI_TIMEOUT_MS: _, ...unbounded } = proxyEnv;
  const api = await startProxy({ env: unbounded, timeoutMs: 3_000 });
  const front = await serveFunctionUrl(api, { userArn: USER_ARN });
  opened.push(front);
  const c = new OpenAI({ baseURL: `${front.url}/v1`, apiKey: 'not-used-the-url-is-signed', maxRetries: 0 });
  const read = await drain(await c.chat.completions.create(ask('Killed. fake:words=40 fake:slow=200'), { headers: { 'openai-proxy-project': 'ric-killed' } }));
  assert.ok(read.chunks >= 3, `${read.chunks} chunks before the deadline`);
  assert.ok(read.error, 'the caller sees the stream cut');
  const inv = front.invocations.at(-1)!;
  assert.equal(await inv.end, { kind: 'timeout' });
  // The reservation was written before the call went out: the budget counts it until it settles or expires.
  const limit = await limitOf('ric-killed');
  assert.is(limit.spend, 0);
  assert.ok(limit.committed > 0, JSON.stringify(limit));
  assert.is((await usageOf('ric-killed')).requests, 0);
  const next = await drain(await c.chat.completions.create(ask('Again. fake:words=3'), { headers: { 'openai-proxy-project': 'ric-killed' } }));
  assert.is(next.error, undefined, String(next.error));
  assert.is(api.coldStarts(), 2);
});

test('what the functions logged under the runtime names no key and no prompt', () => {
  const logs = proxy.logs() + admin.logs();
  assert.match(logs, '"message":"call"', 'the proxy logged its calls');
  for (const secret of [fake.apiKey, 'org-from-secrets-manager', 'Stream under the runtime', 'Leave early', 'role-secret']) {
    assert.not.ok(logs.includes(secret), `the logs contain ${secret}`);
  }
});

test.run();
