// `openai-wrapi/register` reaches copies of `openai` however they are installed and loaded: under an
// npm alias (a folder named otherwise, a package.json named "openai"), through the `openai/client`
// entry alone, and in worker threads started after register was imported in code. Each case runs in
// a fresh Node process with its own copies of openai on disk, and reports where a client's request
// went: to the stage's proxy signed with SigV4, or straight to OpenAI with the bearer key.
import { pathToFileURL } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildSync } from 'esbuild';

const run = promisify(execFile);
const root = new URL('..', import.meta.url).pathname;
const REGISTER = new URL('../sdk/register.ts', import.meta.url).href;
const TSX = new URL('../node_modules/tsx/dist/loader.mjs', import.meta.url).href; // the app has no tsx
const URL_ID = 'abcdefabcdefabcdef12';
const PROXY = `https://${URL_ID}.lambda-url.eu-west-2.on.aws/v1/`;

let work: string;
/** A project whose node_modules holds openai twice: as `openai` and under the alias `openai-legacy`. */
let app: string;
/** A folder with no node_modules: the on-disk sweep finds nothing from there, only the hooks act. */
let elsewhere: string;

/** What a probe saw: one request's URL and authorization (and, in a worker, its execArgv). */
interface Sent {
  url: string;
  auth: string;
  execArgv?: string[];
}

test.before(() => {
  work = mkdtempSync(join(tmpdir(), 'wrapi-register-coverage-'));
  app = join(work, 'app');
  elsewhere = join(work, 'elsewhere');
  mkdirSync(elsewhere, { recursive: true });
  // Real copies (a symlink would resolve to the repository's own copy): the runtime files only.
  const runtimeOnly = (src: string) => !/\.d\.m?ts$|\.map$/.test(src) && !src.includes('/src/');
  for (const name of ['openai', 'openai-legacy']) {
    cpSync(join(root, 'node_modules/openai'), join(app, 'node_modules', name), { recursive: true, filter: runtimeOnly });
  }
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true }));
  // One request from a client of the given class: where it went, with what authorization.
  writeFileSync(
    join(app, 'probe.cjs'),
    `module.exports = async (OpenAI) => {
      let sent;
      const fetch = async (url, init) => {
        sent = { url: String(url), auth: new Headers(init && init.headers).get('authorization') || '' };
        return Response.json({ object: 'list', data: [] });
      };
      await new OpenAI({ fetch, maxRetries: 0 }).models.list();
      return sent;
    };`,
  );
  buildRegister();
});
test.after(() => rmSync(work, { recursive: true, force: true }));

/** Runs `code` as an ES module in the app's folder, from `cwd` (under tsx, for the source); returns what it printed as JSON. */
async function inApp(name: string, code: string, opts: { cwd?: string; nodeArgs?: string[]; tsx?: boolean } = {}): Promise<Record<string, Sent>> {
  const file = join(app, `${name}.mjs`);
  writeFileSync(file, `import { createRequire } from 'node:module';\nconst require = createRequire(import.meta.url);\nconst probe = require('./probe.cjs');\n${code}`);
  const { stdout, stderr } = await run(process.execPath, [...(opts.tsx === false ? [] : ['--import', TSX]), ...(opts.nodeArgs ?? []), file], {
    cwd: opts.cwd ?? app,
    env: {
      PATH: process.env.PATH,
      HOME: work,
      // A real key in the environment: whatever goes direct carries it, in the clear.
      OPENAI_API_KEY: 'sk-a-real-openai-key',
      // The original's convention: the dev stage's proxy is https://<id>.lambda-url.<region>.on.aws/.
      OPENAI_API_KEY_DEV: `sk-${URL_ID}`,
      AWS_REGION: 'eu-west-2',
      AWS_ACCESS_KEY_ID: 'AKIAEXAMPLEEXAMPLE',
      AWS_SECRET_ACCESS_KEY: 'secret',
      OPENAI_WRAPI_HOME: join(work, 'nowhere'),
    },
    timeout: 60_000,
  });
  assert.is(stderr, '', `${name} printed nothing on stderr`);
  return JSON.parse(stdout.trim().split('\n').pop()!);
}

function viaProxy(results: Record<string, Sent>, keys: string[]): void {
  for (const key of keys) {
    const sent = results[key];
    assert.ok(sent.url.startsWith(PROXY), `${key} went to ${sent.url}`);
    assert.match(sent.auth, /^AWS4-HMAC-SHA256 Credential=AKIAEXAMPLEEXAMPLE\//, `${key} is signed with SigV4`);
  }
}

test('a copy installed under an npm alias (package.json named "openai") is routed, from require and import', async () => {
  const results = await inApp(
    'alias',
    `await (await import(${JSON.stringify(REGISTER)})).registered;
    console.log(JSON.stringify({
      'require(openai-legacy)': await probe(require('openai-legacy').OpenAI),
      'import(openai-legacy)': await probe((await import('openai-legacy')).OpenAI),
      'require(openai-legacy/client)': await probe(require('openai-legacy/client').OpenAI),
    }));`,
  );
  viaProxy(results, ['require(openai-legacy)', 'import(openai-legacy)', 'require(openai-legacy/client)']);
});

test('the openai/client entry loaded alone is routed: require and import, nested copy or a copy found only as it loads', async () => {
  const code = `await (await import(${JSON.stringify(REGISTER)})).registered;
    const { OpenAI: Cjs } = require('openai/client'); // before anything loads the package's index
    const { OpenAI: Esm } = await import('openai/client');
    console.log(JSON.stringify({ 'require(openai/client)': await probe(Cjs), 'import(openai/client)': await probe(Esm) }));`;
  // From the app's folder (the copy is found on disk too), and from a folder where only the hooks see it.
  for (const cwd of [app, elsewhere]) viaProxy(await inApp('client', code, { cwd }), ['require(openai/client)', 'import(openai/client)']);
});

// Worker threads: each has its own module system, so the copy a worker loads is not patched by the
// thread that imported register. Workers preload the package's CommonJS register, so the worker
// cases run the built file (bundled as `npm run build` bundles dist/register.cjs) with plain node.
let pkg: string;
function buildRegister(): void {
  pkg = join(work, 'openai-wrapi');
  mkdirSync(join(pkg, 'dist'), { recursive: true });
  writeFileSync(
    join(pkg, 'package.json'),
    JSON.stringify({ name: 'openai-wrapi', exports: { './register': { import: './dist/register.cjs', require: './dist/register.cjs' } } }),
  );
  symlinkSync(join(root, 'node_modules'), join(pkg, 'node_modules')); // its dependencies
  buildSync({
    absWorkingDir: root,
    entryPoints: ['sdk/register.ts'],
    outfile: join(pkg, 'dist/register.cjs'),
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    external: ['openai', '@aws-sdk/*', '@smithy/*', 'require-in-the-middle', 'import-in-the-middle'],
    define: { 'import.meta.url': '__wrapi_import_meta_url' },
    banner: { js: "const __wrapi_import_meta_url = require('node:url').pathToFileURL(__filename).href;" },
    logLevel: 'error',
  });
  writeFileSync(
    join(app, 'worker.mjs'),
    `import { parentPort } from 'node:worker_threads';
    import { OpenAI } from 'openai';
    import probe from './probe.cjs';
    parentPort.postMessage({ ...(await probe(OpenAI)), execArgv: process.execArgv });`,
  );
  writeFileSync(
    join(app, 'worker.cjs'),
    `const { parentPort } = require('node:worker_threads');
    require('./probe.cjs')(require('openai').OpenAI).then((sent) => parentPort.postMessage({ ...sent, execArgv: process.execArgv }));`,
  );
}

const WORKERS = `
  const run = async (make) => {
    const w = make();
    const out = await new Promise((resolve, reject) => (w.on('message', resolve), w.on('error', reject)));
    await w.terminate();
    return out;
  };
  console.log(JSON.stringify({
    'esm worker': await run(() => new Worker(new URL('./worker.mjs', import.meta.url))),
    'cjs worker': await run(() => new (require('node:worker_threads').Worker)(new URL('./worker.cjs', import.meta.url))),
    // Node 20 runs no --import preload in an eval worker: register comes with --require.
    'eval worker': await run(() => new Worker(require('node:fs').readFileSync(new URL('./worker.cjs', import.meta.url), 'utf8'), { eval: true })),
    // Its own execArgv: left as asked, as a command-line preload would be (esbuild's workers pass []).
    'bare worker': await run(() => new Worker(new URL('./worker.cjs', import.meta.url), { execArgv: [] })),
  }));`;

const preloads = (results: Record<string, Sent>, w: string) => results[w].execArgv!.filter((a) => a === join(pkg, 'dist/register.cjs')).length;

test('worker threads started after register was imported in code are routed too (ESM, CommonJS, eval)', async () => {
  // `Worker` imported before register (a static import is evaluated first) still gets the preload.
  const results = await inApp(
    'workers',
    `import { Worker } from 'node:worker_threads';\nawait require(${JSON.stringify(join(pkg, 'dist/register.cjs'))}).registered;\n${WORKERS}`,
    { tsx: false },
  );
  viaProxy(results, ['esm worker', 'cjs worker', 'eval worker']);
  for (const w of ['esm worker', 'cjs worker', 'eval worker']) assert.is(preloads(results, w), 1, w);
  assert.equal(results['bare worker'].execArgv, []);
});

test('flags a worker refuses to be given (V8 and process-wide: --max-old-space-size, --title) stay the process\'s; workers still start, routed', async () => {
  const results = await inApp(
    'workers-flags',
    `import { Worker } from 'node:worker_threads';\nawait require(${JSON.stringify(join(pkg, 'dist/register.cjs'))}).registered;\n${WORKERS}`,
    { tsx: false, nodeArgs: ['--max-old-space-size=256', '--title=wrapi-workers'] },
  );
  viaProxy(results, ['esm worker', 'cjs worker', 'eval worker']);
  for (const w of ['esm worker', 'cjs worker', 'eval worker']) {
    assert.is(preloads(results, w), 1, w);
    assert.not.ok(results[w].execArgv!.some((a) => a.startsWith('--max-old-space-size') || a.startsWith('--title')), w);
  }
});

test('register named in -e code is no preload: its workers still get one', async () => {
  const register = join(pkg, 'dist/register.cjs');
  const file = join(app, 'workers-eval.mjs');
  const results = await inApp('workers-eval', `import { Worker } from 'node:worker_threads';\n${WORKERS}`, {
    tsx: false,
    // The app file is then only an argument: -e loads register, then the app.
    nodeArgs: ['-e', `require(${JSON.stringify(register)}).registered.then(() => import(${JSON.stringify(pathToFileURL(file).href)}))`],
  });
  viaProxy(results, ['esm worker', 'cjs worker', 'eval worker']);
  for (const w of ['esm worker', 'cjs worker', 'eval worker']) assert.is(preloads(results, w), 1, w);
});

test('a worker of a process started with --require register is routed, and not given register twice', async () => {
  const results = await inApp('workers-preloaded', `import { Worker } from 'node:worker_threads';\n${WORKERS}`, {
    tsx: false,
    nodeArgs: ['--require', join(pkg, 'dist/register.cjs')],
  });
  viaProxy(results, ['esm worker', 'cjs worker', 'eval worker']);
  for (const w of ['esm worker', 'cjs worker', 'eval worker']) assert.is(preloads(results, w), 1, w);
});

test('without register, the same workers go to OpenAI with the key (the probes can tell)', async () => {
  const results = await inApp('none', `import { Worker } from 'node:worker_threads';\n${WORKERS}`, { tsx: false });
  for (const w of ['esm worker', 'cjs worker', 'eval worker']) {
    assert.equal([results[w].url, results[w].auth], ['https://api.openai.com/v1/models', 'Bearer sk-a-real-openai-key'], w);
  }
});

test.run();
