// The package as users get it: `npm pack` (which builds dist/) holds the built SDK, register, CLI
// and type declarations and nothing of the tests, the runtime sources or Pulumi. A fresh SDK-only
// install of the tarball (plus its peer `openai`) is used from plain ESM, CommonJS and TypeScript
// against the local stack, and LangChain's CommonJS build goes through `require('openai-wrapi/register')`.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile, spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { settled } from './helpers/stack.ts';
import { childEnv, startSdkStack, type SdkStack } from './helpers/sdk.ts';
import { npm, packInto } from './helpers/pack.ts';

const run = promisify(execFile);
const root = new URL('..', import.meta.url).pathname;

let t: SdkStack;
let work: string;
let tarball: string;
let files: string[];
let fresh: string;

test.before(async () => {
  t = await startSdkStack([['ann', false]]);
  for (const project of ['pack-esm', 'pack-cjs', 'pack-lc']) await t.admin({ action: 'setLimit', project, limit: 5 });
  work = await mkdtemp(join(tmpdir(), 'wrapi-pack-'));
  ({ tarball, files } = await packInto(work));
});
test.after(async () => {
  await t.close();
  await rm(work, { recursive: true, force: true });
});

const node = (cwd: string, args: string[], env: Record<string, string | undefined> = {}) =>
  run(process.execPath, args, { cwd, env: childEnv({ ...t.env, ...env }) });

test('the tarball holds the built SDK, register, CLI and types, and nothing of the tests or sources', async () => {
  for (const f of [
    'package.json', 'README.md', 'dist/index.mjs', 'dist/index.cjs', 'dist/register.mjs', 'dist/register.cjs', 'dist/cli.mjs',
    'dist/types/sdk/index.d.ts', 'dist/types/sdk/index.d.cts', 'dist/types/sdk/register.d.ts', 'dist/types/sdk/register.d.cts',
    'dist/dashboard/index.html', 'dist/dashboard/app.js', 'dist/dashboard/app.css',
  ]) {
    assert.ok(files.includes(f), `packs ${f}`);
  }
  for (const f of files) {
    assert.ok(f === 'package.json' || f === 'README.md' || f.startsWith('dist/'), `nothing outside dist: ${f}`);
    assert.not.match(f, /\.test\.|fixtures|\.sqlite|credentials$|Pulumi|\.map$/, f);
    assert.ok(!f.endsWith('.ts') || /\.d\.c?ts$/.test(f), `no TypeScript sources: ${f}`);
  }
  const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8'));
  assert.equal(Object.keys(pkg.dependencies).sort(), [
    '@aws-sdk/client-lambda', '@aws-sdk/credential-provider-ini', '@aws-sdk/credential-provider-node', '@smithy/signature-v4',
    'import-in-the-middle', 'require-in-the-middle',
  ]);
  assert.is(pkg.peerDependencies.openai, '>=4 <8');
  for (const heavy of ['better-sqlite3', 'gpt-tokenizer', 'lru-cache', 'memjs', '@aws-sdk/client-dynamodb']) {
    assert.ok(pkg.peerDependenciesMeta[heavy].optional, `${heavy} is an optional peer, for the local stack only`);
  }
  assert.is(pkg.bin['openai-wrapi'], 'dist/cli.mjs');
  assert.is((await stat(join(root, 'dist/cli.mjs'))).mode & 0o111, 0o111, 'the CLI is executable');
});

test('a fresh SDK-only install: small, and usable from ESM, CommonJS and the CLI', async () => {
  fresh = join(work, 'app');
  await mkdir(fresh);
  await writeFile(join(fresh, 'package.json'), JSON.stringify({ name: 'app', private: true }));
  await run(npm, ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball, 'openai@6'], { cwd: fresh, maxBuffer: 1 << 24 });
  const installed = await readdir(join(fresh, 'node_modules'));
  for (const heavy of ['better-sqlite3', '@pulumi', 'dynalite', 'memjs', 'gpt-tokenizer', 'lru-cache']) assert.not.ok(installed.includes(heavy), heavy);
  const { stdout: du } = await run('du', ['-sk', join(fresh, 'node_modules')]);
  const mb = Number(du.split('\t')[0]) / 1024;
  console.log(`    fresh SDK-only install (with openai): ${mb.toFixed(1)} MB in node_modules`);
  assert.ok(mb < 80, `install stays light (${mb.toFixed(1)} MB)`);

  await writeFile(join(fresh, 'esm.mjs'), `
    import OpenAI, { getUsage, budgetOf } from 'openai-wrapi';
    const client = new OpenAI({ project: 'pack-esm', caching: false });
    const { data, response } = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'esm fake:words=2' }] }).withResponse();
    let streamed = '';
    for await (const c of await client.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'esm stream fake:words=3' }] })) streamed += c.choices[0]?.delta?.content ?? '';
    console.log(JSON.stringify({ text: data.choices[0].message.content, streamed, scope: budgetOf(response).scope.project, usage: typeof getUsage }));
  `);
  const esm = JSON.parse((await node(fresh, ['esm.mjs'])).stdout);
  assert.equal(esm, { text: 'This answer.', streamed: 'This answer comes.', scope: 'pack-esm', usage: 'function' });

  await writeFile(join(fresh, 'cjs.cjs'), `
    const OpenAI = require('openai-wrapi');
    const { setProject, getLimits, OpenAI: Named } = require('openai-wrapi');
    (async () => {
      setProject('pack-cjs');
      const client = new OpenAI({ caching: false });
      const out = await client.embeddings.create({ model: 'text-embedding-3-small', input: 'cjs' });
      const limits = await getLimits({ profile: 'default' });
      console.log(JSON.stringify({ named: client instanceof Named, n: out.data.length, project: client.project, limits: limits.limits.length > 0 }));
    })().catch((e) => { console.error(e); process.exit(1); });
  `);
  const cjs = JSON.parse((await node(fresh, ['cjs.cjs'], { AWS_PROFILE: 'ann' })).stdout);
  assert.equal(cjs, { named: true, n: 1, project: 'pack-cjs', limits: true });

  const bin = join(fresh, 'node_modules/.bin/openai-wrapi');
  const limits = JSON.parse((await run(bin, ['limits', 'ls', '--project', 'pack-esm', '--json'], { env: childEnv(t.env) })).stdout);
  assert.equal(limits.limits.map((l: { project: string }) => l.project), ['pack-esm']);
  // The dashboard's page comes prebuilt in the package (no esbuild, no chart library installed).
  for (const dep of ['esbuild', '@observablehq', 'playwright-core']) assert.not.ok(installed.includes(dep), dep);
  const dash = spawn(bin, ['dashboard', '--port', '0', '--json'], { env: childEnv(t.env) });
  try {
    const link = await new Promise<string>((resolve, reject) => {
      let out = '';
      dash.stdout.on('data', (d) => {
        out += d;
        if (out.includes('}')) resolve(JSON.parse(out).url);
      });
      dash.on('exit', (code) => reject(new Error(`dashboard exited ${code}`)));
    });
    const login = await fetch(link, { redirect: 'manual' });
    assert.is(login.status, 303);
    const cookie = login.headers.get('set-cookie')!.split(';')[0];
    const page = await fetch(new URL(login.headers.get('location')!, link));
    assert.is(page.status, 200);
    assert.match(await page.text(), /<script type="module" src="app.js">/);
    const script = await fetch(new URL('app.js', link));
    assert.is(script.status, 200);
    assert.ok(Number(script.headers.get('content-length')) > 50_000, 'the page and the chart library, bundled');
    const months = await fetch(new URL('api/admin', link), {
      method: 'POST', headers: { 'content-type': 'application/json', cookie }, body: JSON.stringify({ stage: 'dev', request: { action: 'months' } }),
    });
    assert.is((await months.json()).ok, true);
  } finally {
    if (dash.exitCode === null) await new Promise((resolve) => (dash.once('exit', resolve), dash.kill('SIGTERM')));
  }
  const local = await run(bin, ['local'], { cwd: fresh, env: childEnv(t.env) }).catch((e) => e);
  assert.is(local.code, 1);
  assert.match(local.stderr, /The local stack needs packages an SDK install leaves out: npm install better-sqlite3@12 lru-cache@11 gpt-tokenizer@4/);
});

test('a checkout installed by path builds itself on install (prepare): its import and its bin work', async () => {
  // What a user of an unpublished version does: `npm install ../openai-wrapi`. The checkout is the
  // project's files without dist/ (as git has them) and with its dependencies installed.
  const checkout = join(work, 'checkout');
  const { stdout } = await run('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], { cwd: root, maxBuffer: 1 << 24 });
  // A work tree's node_modules may be a symlink, which `node_modules/` in .gitignore does not match.
  for (const file of stdout.split('\0').filter((f) => f && !f.startsWith('node_modules'))) {
    if (!(await stat(join(root, file)).catch(() => null))) continue; // deleted in the work tree
    await mkdir(join(checkout, file, '..'), { recursive: true });
    await copyFile(join(root, file), join(checkout, file));
  }
  await symlink(join(root, 'node_modules'), join(checkout, 'node_modules'));
  assert.not.ok(await stat(join(checkout, 'dist')).catch(() => null), 'no dist/ before the install');

  const app = join(work, 'from-checkout');
  await mkdir(app);
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'checkout-app', private: true }));
  await run(npm, ['install', '--no-audit', '--no-fund', '--offline', checkout], { cwd: app, timeout: 120_000 });
  const imported = await node(app, ['--input-type=module', '-e', `
    const m = await import('openai-wrapi');
    console.log(JSON.stringify({ client: typeof m.default, setLimits: typeof m.setLimits }));
  `]);
  assert.equal(JSON.parse(imported.stdout), { client: 'function', setLimits: 'function' });
  const bin = join(app, 'node_modules/.bin/openai-wrapi');
  const limits = JSON.parse((await run(bin, ['limits', 'ls', '--project', 'pack-esm', '--json'], { env: childEnv(t.env) })).stdout);
  assert.equal(limits.limits.map((l: { project: string }) => l.project), ['pack-esm']);
});

test('TypeScript users get the openai types (OpenAI.Chat..., streams) and ours, from ESM and CommonJS', async () => {
  await writeFile(join(fresh, 'app.mts'), `
    import OpenAI, { setLimits, getUsage, budgetOf, createFetch, WrapiAdminError, RateLimitError, type UsageReport } from 'openai-wrapi';
    import 'openai-wrapi/register';
    const client = new OpenAI({ project: 'p', staging: 'dev', caching: false, maxRetries: 1 });
    const msg: OpenAI.Chat.ChatCompletionMessageParam = { role: 'user', content: 'hi' };
    const same: OpenAI.ChatCompletionMessageParam = msg;
    export async function f(): Promise<void> {
      const { data, response } = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [msg, same] }).withResponse();
      const text: string | null = data.choices[0].message.content;
      for await (const chunk of await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [msg], stream: true })) chunk.choices[0]?.delta.content;
      const report: UsageReport = await getUsage({ month: '2026-11', by: 'model' });
      await setLimits({ limit: 10, staging: 'dev', project: 'p', user: 'me', model: 'gpt-4o' });
      const f2: typeof fetch = createFetch({ project: 'p' });
      const e: unknown = null;
      if (e instanceof WrapiAdminError) console.log(e.code);
      if (e instanceof RateLimitError) console.log(e.status);
      console.log(text, budgetOf(response)?.remaining, report.totals.spend, f2, client.staging);
    }
    // @ts-expect-error not an option
    new OpenAI({ stagin: 'dev' });
  `);
  await writeFile(join(fresh, 'app.cts'), `
    import wrapi = require('openai-wrapi');
    import { setProject, getLimits } from 'openai-wrapi';
    const client = new wrapi.OpenAI({ project: 'p' });
    const completion: wrapi.OpenAI.ChatCompletion | undefined = undefined;
    setProject('x');
    void getLimits().then((r) => r.limits.map((l) => l.limit));
    console.log(client.project, completion);
  `);
  await writeFile(join(fresh, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: false,
      types: ['node'], typeRoots: [join(root, 'node_modules/@types')],
    },
    files: ['app.mts', 'app.cts'],
  }));
  const tsc = await node(fresh, [join(root, 'node_modules/typescript/bin/tsc'), '-p', '.']).catch((e) => e);
  assert.is(tsc.code ?? 0, 0, `${tsc.stdout}${tsc.stderr}`);
});

test('openai 7 works the same: drop-in, retries, streams, and register for both module formats', async () => {
  // openai 7 asks for Node 22 but runs here; pinned so a later 7.x cannot change this test's meaning.
  const app = join(work, 'app7');
  await mkdir(app);
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'app7', private: true }));
  await run(npm, ['install', '--prefer-offline', '--no-audit', '--no-fund', '--engine-strict=false', tarball, 'openai@7.57.0'], { cwd: app, maxBuffer: 1 << 24 });
  await writeFile(join(app, 'v7.mjs'), `
    import OpenAI, { budgetOf } from 'openai-wrapi';
    import { OpenAI as Plain } from 'openai';
    import { createRequire } from 'node:module';
    const client = new OpenAI({ project: 'pack-esm', caching: false, maxRetries: 2 });
    const { data, response } = await client.chat.completions
      .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'v7 fake:error=503 fake:fail_times=1 fake:retry_after_ms=10 fake:words=2' }] })
      .withResponse();
    let streamed = '';
    for await (const c of await client.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'v7 stream fake:words=3' }] })) streamed += c.choices[0]?.delta?.content ?? '';
    const esm = await new Plain({ maxRetries: 0 }).embeddings.create({ model: 'text-embedding-3-small', input: 'v7 esm' });
    const Cjs = createRequire(import.meta.url)('openai').OpenAI;
    const cjs = await new Cjs({ maxRetries: 0 }).embeddings.create({ model: 'text-embedding-3-small', input: 'v7 cjs' });
    const { VERSION: version } = await import('openai/version');
    console.log(JSON.stringify({ version, text: data.choices[0].message.content, project: budgetOf(response).scope.project, streamed, esm: esm.data.length, cjs: cjs.data.length }));
  `);
  const out = JSON.parse((await node(app, ['v7.mjs'], { OPENAI_DEFAULT_PROJECT: 'pack-cjs' })).stdout);
  assert.equal(out, { version: '7.57.0', text: 'This answer.', project: 'pack-esm', streamed: 'This answer comes.', esm: 1, cjs: 1 });
});

test('LangChain\'s CommonJS build goes through require(\'openai-wrapi/register\'); the packaged CLI runs the local stack', async () => {
  // Unpacked inside this repository, so LangChain and the package share node_modules/openai.
  const app = join(root, 'tmp', `pack-lc-${process.pid}`);
  await mkdir(join(app, 'node_modules/openai-wrapi'), { recursive: true });
  try {
    await run('tar', ['xzf', tarball, '-C', join(app, 'node_modules/openai-wrapi'), '--strip-components=1']);
    await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'lc-app', private: true }));
    await writeFile(join(app, 'lc.cjs'), `
      const { setProject } = require('openai-wrapi/register');
      const { ChatOpenAI, OpenAIEmbeddings } = require('@langchain/openai');
      (async () => {
        setProject('pack-lc');
        const model = new ChatOpenAI({ model: 'gpt-4o-mini', maxRetries: 0 });
        const answer = await model.invoke('langchain cjs fake:words=3');
        let streamed = '';
        for await (const c of await model.stream('langchain cjs stream fake:words=2')) streamed += c.content;
        const vectors = await new OpenAIEmbeddings({ model: 'text-embedding-3-small' }).embedDocuments(['a', 'b']);
        console.log(JSON.stringify({ answer: answer.content, streamed, vectors: vectors.length, resolved: require.resolve('openai-wrapi/register') }));
      })().catch((e) => { console.error(e); process.exit(1); });
    `);
    const out = JSON.parse((await node(app, ['lc.cjs'])).stdout);
    assert.equal(out, { answer: 'This answer comes.', streamed: 'This answer.', vectors: 2, resolved: join(app, 'node_modules/openai-wrapi/dist/register.cjs') });
    await settled(t, async () => ((await t.admin({ action: 'usage', by: 'project' })).groups as { key: string }[]).some((g) => g.key === 'pack-lc'));

    // Where the local stack's packages are installed, the packaged CLI runs it.
    const child = spawn(process.execPath, [join(app, 'node_modules/openai-wrapi/dist/cli.mjs'), 'local', '--home', join(app, 'home'), '--port', '0'], {
      cwd: app,
      env: childEnv({ ...t.env, OPENAI_WRAPI_UPSTREAM_URL: t.fake.url, OPENAI_API_KEY: t.fake.apiKey }),
    });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        const timer = setTimeout(() => reject(new Error(`no start line: ${out}`)), 15000);
        child.stdout.on('data', (d) => {
          out += d;
          const m = /local stack on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
          if (m) {
            clearTimeout(timer);
            resolve(m[1]);
          }
        });
      });
      assert.is((await (await fetch(`${url}/`)).json()).name, 'openai-wrapi local stack');
    } finally {
      if (child.exitCode === null) await new Promise((resolve) => (child.once('exit', resolve), child.kill('SIGTERM')));
    }
  } finally {
    await rm(app, { recursive: true, force: true });
  }
});

test.run();
