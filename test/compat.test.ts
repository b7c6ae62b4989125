// The compatibility matrix: the packed SDK installed for real (a plain `npm install`, no flags)
// beside each supported `openai` major, LangChain's lines (0.x nest their own `openai`), and the AI
// SDK, each driven by one shared scenario against the local stack, on Node 20 and on Node 22 (what
// Lambda runs). Adding a version is one line in ALL. Installs come from the npm registry, so the
// first run on a machine downloads them.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { settled } from './helpers/stack.ts';
import { childEnv, startSdkStack, type SdkStack } from './helpers/sdk.ts';
import { npm, packInto } from './helpers/pack.ts';
import { installNode } from './helpers/node-runtime.ts';
import { openaiNamespace } from '../sdk/gen-types.ts';

const run = promisify(execFile);
const root = new URL('..', import.meta.url).pathname;
const scenarios = new URL('./compat/', import.meta.url).pathname;

type Scenario = 'client' | 'langchain' | 'ai-sdk';

interface Combo {
  name: string;
  /** What the app installs beside the SDK tarball. */
  deps: string[];
  scenario: Scenario;
  /** langchain: the `openai` major LangChain must end up using (nested or deduped). */
  openaiMajor?: number;
  /** What differs from EXPECTED for this combination (an old version without a feature). */
  expect?: Record<string, unknown>;
  /** Run the ESM entry under `node --import openai-wrapi/register` instead of a first import. */
  preload?: boolean;
}

const ALL: Combo[] = [
  { name: 'openai 4.0.0 (the oldest supported)', deps: ['openai@4.0.0'], scenario: 'client', expect: { helper: 'absent', responses: 'absent' } },
  { name: 'openai 4', deps: ['openai@4'], scenario: 'client' },
  { name: 'openai 5', deps: ['openai@5'], scenario: 'client' },
  { name: 'openai 6.0.0', deps: ['openai@6.0.0'], scenario: 'client' },
  { name: 'openai 6', deps: ['openai@6'], scenario: 'client' },
  { name: 'openai 7', deps: ['openai@7'], scenario: 'client' },
  { name: 'LangChain 0.3 (nests openai 4)', deps: ['openai@6', '@langchain/openai@0.3', '@langchain/core@0.3'], scenario: 'langchain', openaiMajor: 4 },
  { name: 'LangChain 0.6 (nests openai 5)', deps: ['openai@6', '@langchain/openai@0.6', '@langchain/core@0.3'], scenario: 'langchain', openaiMajor: 5, preload: true },
  { name: 'LangChain 1.6 (nests openai 7)', deps: ['openai@6', '@langchain/openai@1.6', '@langchain/core@1'], scenario: 'langchain', openaiMajor: 7 },
  { name: 'AI SDK 7', deps: ['openai@6', 'ai@7', '@ai-sdk/openai@4', 'zod@4'], scenario: 'ai-sdk' },
  { name: 'AI SDK 6', deps: ['openai@6', 'ai@6', '@ai-sdk/openai@3', 'zod@4'], scenario: 'ai-sdk' },
];

/** `COMPAT_ONLY=LangChain npx tsx test/compat.test.ts` runs the combinations whose name has that text. */
const COMBOS = ALL.filter((c) => !process.env.COMPAT_ONLY || c.name.includes(process.env.COMPAT_ONLY));

const EXPECTED = {
  client: {
    retried: 'This answer.', streamed: 'This answer comes.', helper: 'This answer comes from.', embeddings: 1, responses: 'This answer.',
    plain: 'This answer.', fetch: 'This answer.', budget: 'RateLimitError:budget_exceeded', rateLimited: 'RateLimitError:rate_limit_exceeded',
    timeout: 'APIConnectionTimeoutError', aborted: 'APIUserAbortError',
  },
  langchain: { answer: 'This answer comes.', streamed: 'This answer.', vectors: 2 },
  'ai-sdk': { text: 'This answer.', streamed: 'This answer comes.', embedding: true },
};

let t: SdkStack;
let work: string;
let tarball: string;
const started = Date.now();
/** The Node versions every scenario runs on: this one (20) and 22, Lambda's, from its npm package. */
const runtimes: { name: string; bin: string }[] = [{ name: `node ${process.versions.node}`, bin: process.execPath }];

const projectOf = (combo: Combo) => `compat-${combo.name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/-+$/, '')}`;

test.before(async () => {
  t = await startSdkStack();
  await t.admin({ action: 'setLimit', project: 'compat-tiny', limit: 0.000001 });
  for (const combo of COMBOS) await t.admin({ action: 'setLimit', project: projectOf(combo), limit: 5 });
  work = await mkdtemp(join(tmpdir(), 'wrapi-compat-'));
  ({ tarball } = await packInto(work));
  if (process.versions.node.split('.')[0] !== '22') runtimes.push(await installNode('22'));
});

test.after(async () => {
  await t.close();
  if (!process.env.COMPAT_KEEP) await rm(work, { recursive: true, force: true });
  console.log(`    compatibility matrix: ${COMBOS.length} combinations on ${runtimes.map((r) => r.name).join(' and ')} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
});

/** A throwaway app: package.json, the scenario files, and a plain `npm install` of tarball + deps. */
async function install(name: string, deps: string[], flags: string[] = []): Promise<string> {
  const app = join(work, name.replace(/[^a-zA-Z0-9]+/g, '-'));
  await mkdir(app);
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'compat-app', private: true }));
  for (const file of await readdir(scenarios)) await copyFile(join(scenarios, file), join(app, file));
  await run(npm, ['install', '--no-audit', '--no-fund', '--prefer-offline', ...flags, tarball, ...deps], { cwd: app, maxBuffer: 1 << 24, timeout: 240_000 });
  return app;
}

async function node(app: string, args: string[], env: Record<string, string> = {}, bin = process.execPath): Promise<unknown> {
  const { stdout } = await run(bin, args, { cwd: app, env: childEnv({ ...t.env, ...env }), timeout: 60_000 });
  return JSON.parse(stdout.trim().split('\n').at(-1)!);
}

/** Settlements land after each answer; here npm installs of the next combinations share the cores. */
const SETTLE_MS = 15_000;

const requestsOf = async (project: string) =>
  ((await t.admin({ action: 'usage', by: 'project' })).groups as { key: string; requests: number }[]).find((g) => g.key === project)?.requests ?? 0;

// Installs run a few at a time, ahead of the cases that use them.
const installs = new Map<string, Promise<string>>();
function installed(combo: Combo): Promise<string> {
  let p = installs.get(combo.name);
  if (!p) {
    p = install(combo.name, combo.deps);
    installs.set(combo.name, p);
  }
  return p;
}

for (const [i, combo] of COMBOS.entries()) {
  test(`${combo.name}: ${combo.scenario} scenario through the proxy`, async () => {
    for (const next of COMBOS.slice(i + 1, i + 3)) void installed(next).catch(() => {});
    const app = await installed(combo);
    const project = projectOf(combo);
    // No cache: each module format's run must reach the upstream (and the ledger) on its own.
    const env = { COMPAT_PROJECT: project, COMPAT_TINY: 'compat-tiny', OPENAI_DEFAULT_PROJECT: project, OPENAI_DEFAULT_CACHING: '0' };
    const before = await requestsOf(project);
    if (combo.scenario === 'client') {
      for (const { name, bin } of runtimes) {
        for (const entry of ['client.mjs', 'client.cjs']) {
          assert.equal(await node(app, [entry], env, bin), { ...EXPECTED.client, ...combo.expect, scope: project }, `${combo.name} ${entry} on ${name}`);
        }
      }
      await typesMatch(app);
      // 7 billed calls per run (fewer where a feature is absent; the failures are not requests), per format and Node.
      const calls = 7 - Object.values(combo.expect ?? {}).filter((v) => v === 'absent').length;
      await settled(t, async () => (await requestsOf(project)) - before >= 2 * runtimes.length * calls, SETTLE_MS);
    } else if (combo.scenario === 'langchain') {
      const esm = combo.preload ? ['--import', 'openai-wrapi/register', 'langchain.mjs'] : ['langchain.mjs'];
      for (const { name, bin } of runtimes) {
        for (const args of [esm, ['langchain.cjs']]) {
          const out = (await node(app, args, env, bin)) as { openai: string };
          assert.equal({ ...out, openai: undefined }, { ...EXPECTED.langchain, openai: undefined }, `${combo.name} ${args.join(' ')} on ${name}`);
          assert.is(Number(out.openai.split('.')[0]), combo.openaiMajor, `LangChain used openai ${out.openai}`);
        }
      }
      // invoke, stream and one batched embeddings call per run
      await settled(t, async () => (await requestsOf(project)) - before >= 6 * runtimes.length, SETTLE_MS);
    } else {
      for (const { name, bin } of runtimes) assert.equal(await node(app, ['ai-sdk.mjs'], env, bin), EXPECTED['ai-sdk'], `${combo.name} on ${name}`);
      await settled(t, async () => (await requestsOf(project)) - before >= 3 * runtimes.length, SETTLE_MS);
    }
    assert.ok(t.fake.requests.every((r) => r.headers.authorization === `Bearer ${t.fake.apiKey}`), 'upstream only ever sees the stage key');
  });
}

/**
 * TypeScript sees the installed openai's `OpenAI` through openai-wrapi: one probe line per member of
 * that version's `OpenAI.*` namespace, compiled (skipLibCheck off) against `openai` and against
 * `openai-wrapi`, gives the same errors (the probe's own, for generics it cannot spell), and our
 * options and properties type-check on top.
 */
async function typesMatch(app: string): Promise<void> {
  const members = openaiNamespace(join(app, 'node_modules/openai'));
  const probe = members.map((m) =>
    m.value ? `export type V_${m.name} = typeof OpenAI.${m.name};` : `export type T_${m.name} = OpenAI.${m.name}${m.generic ? '<unknown>' : ''};`,
  );
  const ours = [
    "const client = new OpenAI({ project: 'p', staging: 'dev', caching: false, region: 'eu-west-2', profile: 'default' });",
    'export const settings: [string, boolean, string] = [client.staging, client.caching, client.target.stage];',
    '// @ts-expect-error not an option',
    "new OpenAI({ stagin: 'dev' });",
  ];
  const compile = async (from: string, extra: string[]) => {
    await writeFile(join(app, 'probe.mts'), [`import OpenAI from '${from}';`, ...probe, ...extra, ''].join('\n'));
    await writeFile(join(app, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: false,
        types: ['node'], typeRoots: [join(root, 'node_modules/@types')],
      },
      files: ['probe.mts'],
    }));
    const out = await run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', '.'], { cwd: app }).catch((e) => e);
    return String(out.stdout ?? '').split('\n').filter(Boolean).sort();
  };
  const plain = await compile('openai', []);
  const wrapi = await compile('openai-wrapi', ours);
  assert.equal(wrapi, plain, `openai-wrapi's OpenAI types differ from the installed openai's (${members.length} names)`);
}

test('a library that brings openai 3 fails to load under register, naming the version and the oldest that works', async () => {
  const lib = join(work, 'legacy-lib');
  await mkdir(lib);
  await writeFile(join(lib, 'package.json'), JSON.stringify({ name: 'legacy-lib', version: '1.0.0', main: 'index.js', dependencies: { openai: '^3.3.0' } }));
  await writeFile(join(lib, 'index.js'), "const { OpenAIApi, Configuration } = require('openai');\nmodule.exports = new OpenAIApi(new Configuration({}));\n");
  // As a tarball: a linked folder outside the app would not get its own dependencies installed.
  const { stdout } = await run(npm, ['pack', '--json', '--pack-destination', work], { cwd: lib });
  const app = await install('legacy', ['openai@6', join(work, JSON.parse(stdout)[0].filename)]);
  const out = (await node(app, ['legacy.cjs'])) as { loaded: boolean; name: string; message: string };
  assert.is(out.loaded, false);
  assert.is(out.name, 'WrapiError');
  assert.match(out.message, /cannot route openai 3\.\d+\.\d+ \(at .*legacy-lib\/node_modules\/openai\)/);
  assert.match(out.message, /openai 4\.0\.0 or newer/);
});

test('an app whose own openai is 3 (installed past the peer range) is told so at import, from ESM and CommonJS', async () => {
  const app = await install('own-legacy', ['openai@3'], ['--legacy-peer-deps']);
  await writeFile(join(app, 'own.mjs'), "import('openai-wrapi').then(() => console.log('{}'), (e) => console.log(JSON.stringify({ name: e.name, message: e.message })));\n");
  await writeFile(join(app, 'own.cjs'), "try { require('openai-wrapi'); console.log('{}'); } catch (e) { console.log(JSON.stringify({ name: e.name, message: e.message })); }\n");
  for (const entry of ['own.mjs', 'own.cjs']) {
    const out = (await node(app, [entry])) as { name?: string; message?: string };
    assert.is(out.name, 'WrapiError', `${entry}: ${out.message}`);
    assert.match(out.message!, /cannot route openai 3\.\d+\.\d+ \(at .*\/node_modules\/openai\).*openai 4\.0\.0 or newer/);
  }
});

test.run();
