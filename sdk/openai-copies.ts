// Every copy of the `openai` package a process loads, handed to one callback: the app's copy, a
// library's nested one (LangChain 0.x brings its own openai 4 or 5), the CommonJS and the ESM build
// of each. A copy that is missed sends its calls straight to OpenAI, unmetered: the one failure the
// register patch must never have. So copies are caught three ways:
//
//   loaded later        module loading hooks: require-in-the-middle for `require`, and
//                       import-in-the-middle's loader (registered here) for `import`;
//   loaded already      CommonJS builds from `require.cache`; ESM builds cannot be listed, so every
//                       copy installed under node_modules is imported (a loaded one is returned
//                       from the module map, a new one is loaded and patched before any use);
//   never patchable     a copy without the request hooks (openai 3 and older) throws a WrapiError
//                       naming its version and place, at import or as it loads: never a silent call.
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import module, { createRequire } from 'node:module';
import { dirname, join, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { WrapiError } from './errors.ts';

/** The oldest `openai` with the hooks the patch needs (`buildURL`, `prepareRequest`). */
export const OLDEST_SUPPORTED_OPENAI = '4.0.0';

export interface OpenAICopy {
  /** The module's exports (a namespace for ESM). */
  exports: unknown;
  /** The package directory. */
  dir: string;
}

type OnCopy = (copy: OpenAICopy) => void;
/** Called with the exports of a Realtime module (`openai/realtime/ws`, ...), which it may replace. */
type OnRealtime = (exports: Record<string, unknown>) => void;

/** The Realtime modules: they open a WebSocket to `client.baseURL` with `client.apiKey`. */
const REALTIME = ['openai/realtime/ws', 'openai/realtime/websocket', 'openai/beta/realtime/ws', 'openai/beta/realtime/websocket'];
const REALTIME_FILE = /^openai\/(beta\/)?realtime\/(ws|websocket)\.js$/;

const HOOKED = Symbol.for('openai-wrapi.openai-hooks');
const req = createRequire(import.meta.url);

/**
 * Calls `onCopy` for each copy of `openai` loaded now and for each loaded from now on. Returns a
 * promise that settles when copies that had to be imported asynchronously (Node before 20.19,
 * which cannot `require` ESM) were handed over too.
 */
export function watchOpenAICopies(onCopy: OnCopy, onRealtime: OnRealtime): Promise<void> {
  installHooks(onCopy, onRealtime);
  sweepRequireCache(onCopy, onRealtime);
  return sweepEsmCopies(onCopy);
}

/** Module hooks, once per process (the ESM and the CommonJS build of register may both load). */
function installHooks(onCopy: OnCopy, onRealtime: OnRealtime): void {
  const g = globalThis as Record<symbol, unknown>;
  if (g[HOOKED]) return;
  g[HOOKED] = true;
  const { Hook: RequireHook } = req('require-in-the-middle') as typeof import('require-in-the-middle');
  new RequireHook(['openai'], { internals: true }, (exports, name, dir) => {
    if (name === 'openai' && dir) onCopy({ exports, dir });
    else if (REALTIME_FILE.test(name)) onRealtime(exports as Record<string, unknown>);
    return exports;
  });
  // The loader runs on its own thread and wraps only these modules; the hook below runs here.
  if (typeof module.register === 'function') {
    module.register('import-in-the-middle/hook.mjs', import.meta.url, { data: { include: ['openai', ...REALTIME] } });
    const { Hook: ImportHook } = req('import-in-the-middle') as typeof import('import-in-the-middle');
    new ImportHook(['openai', ...REALTIME], (exports, name, dir) => {
      if (name === 'openai' && dir) onCopy({ exports, dir });
      else if (REALTIME.includes(name)) onRealtime(exports as Record<string, unknown>);
    });
  }
}

/** CommonJS: only what is loaded already (the require hook sees the rest as it loads). */
function sweepRequireCache(onCopy: OnCopy, onRealtime: OnRealtime): void {
  const mains = new Map<string, string | undefined>(); // per copy, resolved once
  for (const [file, entry] of Object.entries(req.cache)) {
    const dir = packageDirOf(file);
    if (!dir || !entry?.loaded) continue;
    if (!mains.has(dir)) mains.set(dir, mainOf(dir));
    if (file === mains.get(dir)) onCopy({ exports: entry.exports, dir });
    else if (REALTIME_FILE.test(`openai/${file.slice(dir.length + 1).split(sep).join('/')}`)) {
      onRealtime(entry.exports as Record<string, unknown>);
    }
  }
}

/** ESM builds cannot be listed as loaded: each installed copy's is loaded (or found loaded) here. */
async function sweepEsmCopies(onCopy: OnCopy): Promise<void> {
  const later: Promise<void>[] = [];
  const requireModule = Boolean((process.features as { require_module?: boolean }).require_module);
  for (const dir of installedCopies()) {
    const esm = join(dir, 'index.mjs');
    if (!existsSync(esm)) {
      // No ESM build: openai 3 and older. Refuse it if it is loaded; the hook refuses it on load.
      continue;
    }
    if (requireModule) {
      try {
        onCopy({ exports: req(esm), dir });
        continue;
      } catch (err) {
        if (err instanceof WrapiError) throw err;
        // e.g. an ESM build that needs an async load: import it below.
      }
    }
    later.push(import(pathToFileURL(esm).href).then((exports) => onCopy({ exports, dir })));
  }
  await Promise.all(later);
}

/**
 * Package directories named `openai` in the node_modules trees around the working directory and
 * this SDK (nested copies and pnpm's store included), by real path.
 */
export function installedCopies(starts = [process.cwd(), dirname(new URL(import.meta.url).pathname)]): string[] {
  const found = new Set<string>();
  const seen = new Set<string>();
  const visit = (nodeModules: string, depth: number) => {
    let real: string;
    try {
      real = realpathSync(nodeModules);
    } catch {
      return;
    }
    if (seen.has(real) || depth > 12) return;
    seen.add(real);
    for (const name of safeReaddir(real)) {
      if (name === '.bin') continue;
      if (name === '.pnpm') {
        for (const stored of safeReaddir(join(real, name))) visit(join(real, name, stored, 'node_modules'), depth + 1);
        continue;
      }
      const pkgs = name.startsWith('@') ? safeReaddir(join(real, name)).map((n) => join(name, n)) : [name];
      for (const pkg of pkgs) {
        const dir = join(real, pkg);
        if (pkg === 'openai' && existsSync(join(dir, 'package.json'))) found.add(realpathSync(dir));
        visit(join(dir, 'node_modules'), depth + 1);
      }
    }
  };
  for (const start of starts) {
    for (let dir = start; ; dir = dirname(dir)) {
      if (!dir.split(sep).includes('node_modules')) visit(join(dir, 'node_modules'), 0);
      if (dirname(dir) === dir) break;
    }
  }
  return [...found];
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** The `openai` package directory a file belongs to, if it is the package's entry point's. */
function packageDirOf(file: string): string | undefined {
  const at = file.lastIndexOf(`${sep}node_modules${sep}openai${sep}`);
  if (at < 0) return undefined;
  return file.slice(0, at + `${sep}node_modules${sep}openai`.length);
}

function mainOf(dir: string): string | undefined {
  try {
    return createRequire(join(dir, 'package.json')).resolve(dir);
  } catch {
    return undefined;
  }
}

/** The directory of the copy of `openai` this SDK itself resolves. */
export function ownCopyDir(): string {
  try {
    return packageDirOf(req.resolve('openai')) ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** The version in a copy's package.json (its `exports` hide the file from `require`). */
export function versionOf(dir: string): string {
  try {
    return String(JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).version ?? 'unknown');
  } catch {
    return 'unknown';
  }
}

/** The error for a copy the patch cannot route. */
export function unsupportedCopy(dir: string): WrapiError {
  return new WrapiError(
    `openai-wrapi cannot route openai ${versionOf(dir)} (at ${dir}) through the proxy: it lacks the request hooks ` +
      `the SDK needs. Use openai ${OLDEST_SUPPORTED_OPENAI} or newer (openai-wrapi supports openai >=4 <8).`,
  );
}
