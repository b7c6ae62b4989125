/**
 * `import 'openai-wrapi/register'` (or `require('openai-wrapi/register')`, or `node --import
 * openai-wrapi/register app.js`): clients that other libraries construct from the `openai` package
 * — LangChain's `ChatOpenAI` and `OpenAIEmbeddings`, and any `new OpenAI()` — call the current
 * stage's proxy, signed with AWS credentials, billed to the current project (see `setProject`,
 * `setStaging`, `setCaching`). Every copy of `openai` in the process is patched, nested ones and
 * ones loaded later included, and worker threads started afterwards get it too. Clients given a
 * base URL other than OpenAI's are left alone. Importing `openai-wrapi` does the same.
 */
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { pathToFileURL } from 'node:url';
import type { WorkerOptions } from 'node:worker_threads';
import * as ownOpenAI from 'openai';
import { guardRealtime, patchOpenAICopy, unpatchOpenAIClass } from './patch.ts';
import { API_KEY_PLACEHOLDER } from './client.ts';
import { ownCopyDir, watchOpenAICopies, type OpenAICopy } from './openai-copies.ts';

export { getSettings, resetSettings, setCaching, setProject, setStaging } from './settings.ts';
export { patchOpenAIClass } from './patch.ts';

const threads = createRequire(import.meta.url)('node:worker_threads') as typeof import('node:worker_threads');
const patched = new Set<object>();
let active = false;

function patchCopy(copy: OpenAICopy): void {
  if (!active) return;
  patched.add(patchOpenAICopy(copy));
}

/**
 * Patches every copy of `openai` loaded now or later (done on import; call again after
 * {@link unregister}). The promise settles once copies that had to be imported asynchronously
 * (Node before 20.19) are patched too.
 */
export function register(): Promise<void> {
  // Node runs module hooks on an internal thread (no parentPort) that gets the same preloads:
  // there is no openai to patch there, and hooks registered from it would be initialised twice.
  if (!threads.isMainThread && threads.parentPort === null) return Promise.resolve();
  // `openai` (and LangChain) refuse to build a client without a key; the proxy never sees it.
  if (typeof process !== 'undefined' && !process.env.OPENAI_API_KEY) process.env.OPENAI_API_KEY = API_KEY_PLACEHOLDER;
  active = true;
  patchCopy({ exports: ownOpenAI, dir: ownCopyDir() });
  preloadInWorkers();
  return watchOpenAICopies(patchCopy, guardRealtime);
}

const WORKERS = Symbol.for('openai-wrapi.workers');
/** A preload of register that is already there: `--import openai-wrapi/register`, `-r .../dist/register.cjs`. */
const REGISTER_SPEC = /openai-wrapi[\\/](dist[\\/])?register/;

/**
 * A worker thread has its own module system: a copy of `openai` it loads is not patched by this
 * thread, and would call OpenAI directly. Workers inherit `execArgv`, so `node --require
 * openai-wrapi/register` covers them; when register was loaded by code instead, `Worker` (the
 * `node:worker_threads` export, for `require` and `import` alike) is replaced by a subclass that
 * adds register to the preloads a new thread inherits, while register is active. `--require`,
 * because Node 20 runs no `--import` preload in `eval` workers. A Worker given its own `execArgv`
 * is left alone, as a command-line preload would leave it: that is how tools keep their internal
 * workers bare (esbuild's passes `execArgv: []`; a preload there would deadlock its sync API).
 */
function preloadInWorkers(): void {
  const g = globalThis as Record<symbol, unknown>;
  const found = g[WORKERS] ? undefined : registerFile();
  if (!found) return;
  const file: string = found;
  g[WORKERS] = true;
  const Original = threads.Worker;
  const esm = [file.replace(/\.cjs$/, '.mjs'), pathToFileURL(file.replace(/\.cjs$/, '.mjs')).href];
  // Already preloaded: this file, or register by name or path, as the value of a preload flag (not
  // any argument: `node -e "require('openai-wrapi/register')"` names it in code, preloading nothing).
  // `--import` counts outside eval only.
  const has = (argv: string[], evalCode: boolean) =>
    argv.some((arg, i) => {
      const [flag, value] = arg.startsWith('-') && arg.includes('=') ? arg.split('=', 2) : [argv[i - 1], arg];
      if (value === undefined || !PRELOAD_FLAGS.has(flag)) return false;
      return value === file || ((REGISTER_SPEC.test(value) || esm.includes(value)) && (!evalCode || flag === '--require' || flag === '-r'));
    });
  threads.Worker = class Worker extends Original {
    constructor(filename: string | URL, options: WorkerOptions = {}) {
      if (!active || options.execArgv || has(process.execArgv, Boolean(options.eval))) {
        super(filename, options);
        return;
      }
      // A worker inherits V8 and process-wide flags (--max-old-space-size, --stack-size, --title...)
      // but refuses them when they are listed: they apply to the whole process already, so they are
      // left out (learnt from the first refusal; a failed super() leaves `this` unbound to retry).
      const execArgv = [...process.execArgv.filter((arg) => !processWide.has(arg)), '--require', file];
      try {
        super(filename, { ...options, execArgv });
      } catch (error) {
        const refused = refusedFlags(error);
        if (!refused.length) throw error;
        for (const flag of refused) processWide.add(flag);
        super(filename, { ...options, execArgv: execArgv.filter((arg) => !processWide.has(arg)) });
      }
    }
  };
  syncBuiltinESMExports(); // `import { Worker } from 'node:worker_threads'` sees the subclass too
}

/** Flags whose value is a module preloaded into every thread. */
const PRELOAD_FLAGS = new Set(['--require', '-r', '--import', '--loader', '--experimental-loader']);
/** Flags of this process a worker refused in its execArgv (they are the process's, not the thread's). */
const processWide = new Set<string>();

/** The flags an ERR_WORKER_INVALID_EXEC_ARGV names ("...invalid execArgv flags: --a=1, --b"). */
function refusedFlags(error: unknown): string[] {
  const e = error as { code?: unknown; message?: unknown } | null;
  if (e?.code !== 'ERR_WORKER_INVALID_EXEC_ARGV' || typeof e.message !== 'string') return [];
  const at = e.message.indexOf('flags:');
  const list = at < 0 ? '' : e.message.slice(at + 'flags:'.length);
  return list.split(',').map((f) => f.trim()).filter((f) => f.startsWith('-'));
}

/**
 * The file a worker preloads: the package's CommonJS register, found by the package's own name from
 * its ESM or CommonJS build. None from the TypeScript source (a `.ts` preload cannot load in Node's
 * module-hooks thread, which gets the same preloads), nor when no such package is installed.
 */
function registerFile(): string | undefined {
  if (import.meta.url.endsWith('.ts')) return undefined;
  try {
    return createRequire(import.meta.url).resolve('openai-wrapi/register');
  } catch {
    return undefined;
  }
}

/** Settles when every `openai` class in reach is patched. */
export const registered: Promise<void> = register();

/** Removes the patch from every class this module patched. */
export function unregister(): void {
  active = false;
  for (const c of patched) unpatchOpenAIClass(c as { prototype: object });
  patched.clear();
}
