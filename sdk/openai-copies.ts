// Every copy of the `openai` package a process loads, handed to one callback: the app's copy, a
// library's nested one (LangChain 0.x brings its own openai 4 or 5), the CommonJS and the ESM build
// of each. A copy that is missed sends its calls straight to OpenAI, unmetered: the one failure the
// register patch must never have. So copies are caught three ways:
//
//   loaded later        module loading hooks: require-in-the-middle for `require`, and
//                       import-in-the-middle's loader (registered here) for `import`; both for the
//                       package and its `openai/client` entry (which loads the class alone);
//   loaded already      CommonJS builds from `require.cache`; ESM builds cannot be listed, so every
//                       copy installed under node_modules is imported (a loaded one is returned
//                       from the module map, a new one is loaded and patched before any use);
//   never patchable     a copy without the request hooks (openai 3 and older) throws a WrapiError
//                       naming its version and place, at import or as it loads: never a silent call.
//
// A copy is known by its package.json name, not its folder: an npm alias (`"openai-legacy":
// "npm:openai@4"` installs node_modules/openai-legacy, named "openai") is a copy too, and the hooks
// watch the names such copies are installed under.
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
const REALTIME_SUBPATHS = ['realtime/ws', 'realtime/websocket', 'beta/realtime/ws', 'beta/realtime/websocket'];
const REALTIME = REALTIME_SUBPATHS.map((p) => `openai/${p}`);
const REALTIME_FILE = /^openai\/(beta\/)?realtime\/(ws|websocket)\.js$/;
/** `openai/client` (openai 5 and later): the class without the package's index, ESM or CommonJS. */
const CLIENT = /^openai\/client(\.m?js)?$/;

const HOOKED = Symbol.for('openai-wrapi.openai-hooks');
const req = createRequire(import.meta.url);

/**
 * Calls `onCopy` for each copy of `openai` loaded now and for each loaded from now on. Returns a
 * promise that settles when copies that had to be imported asynchronously (Node before 20.19,
 * which cannot `require` ESM) were handed over too.
 */
export function watchOpenAICopies(onCopy: OnCopy, onRealtime: OnRealtime): Promise<void> {
  const installed = installedCopies();
  installHooks(onCopy, onRealtime, [...new Set(['openai', ...installed.map((c) => c.name)])]);
  sweepRequireCache(onCopy, onRealtime);
  return sweepEsmCopies(onCopy, [...new Set(installed.map((c) => c.dir))]);
}

/**
 * A module name a hook reports (`<install name>` or `<install name>/<file>`) as `openai` or
 * `openai/<file>`, when `dir` is a copy of openai installed under one of `names`.
 */
function asOpenAI(name: string, dir: string | undefined, names: string[]): string | undefined {
  if (!dir || !isOpenAIPackage(dir)) return undefined;
  const id = name.split(sep).join('/');
  const as = names.find((n) => id === n || id.startsWith(`${n}/`));
  return as === undefined ? undefined : `openai${id.slice(as.length)}`;
}

/** Module hooks, once per process (the ESM and the CommonJS build of register may both load). */
function installHooks(onCopy: OnCopy, onRealtime: OnRealtime, names: string[]): void {
  const g = globalThis as Record<symbol, unknown>;
  if (g[HOOKED]) return;
  g[HOOKED] = true;
  const { Hook: RequireHook } = req('require-in-the-middle') as typeof import('require-in-the-middle');
  new RequireHook(names, { internals: true }, (exports, name, dir) => {
    const id = asOpenAI(name, dir, names);
    if (id === 'openai' || (id && CLIENT.test(id))) onCopy({ exports, dir: dir! });
    else if (id && REALTIME_FILE.test(id)) onRealtime(exports as Record<string, unknown>);
    return exports;
  });
  // The loader runs on its own thread and wraps only these modules; the hook below runs here.
  if (typeof module.register === 'function') {
    const specifiers = names.flatMap((n) => [n, `${n}/client`, ...REALTIME_SUBPATHS.map((p) => `${n}/${p}`)]);
    module.register('import-in-the-middle/hook.mjs', import.meta.url, { data: { include: specifiers } });
    const { Hook: ImportHook } = req('import-in-the-middle') as typeof import('import-in-the-middle');
    new ImportHook(specifiers, (exports, name, dir) => {
      const id = asOpenAI(name, dir || undefined, names);
      if (id === 'openai' || (id && CLIENT.test(id))) onCopy({ exports, dir: dir! });
      else if (id && REALTIME.includes(id)) onRealtime(exports as Record<string, unknown>);
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
    const id = `openai/${file.slice(dir.length + 1).split(sep).join('/')}`;
    if (file === mains.get(dir) || CLIENT.test(id)) onCopy({ exports: entry.exports, dir });
    else if (REALTIME_FILE.test(id)) onRealtime(entry.exports as Record<string, unknown>);
  }
}

/** ESM builds cannot be listed as loaded: each installed copy's is loaded (or found loaded) here. */
async function sweepEsmCopies(onCopy: OnCopy, dirs: string[]): Promise<void> {
  const later: Promise<void>[] = [];
  const requireModule = Boolean((process.features as { require_module?: boolean }).require_module);
  for (const dir of dirs) {
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

/** A copy of openai on disk, and the name it is installed under (`openai`, or an npm alias). */
export interface InstalledCopy {
  dir: string;
  name: string;
}

/**
 * Copies of openai (packages whose package.json is named `openai`, whatever their folder) in the
 * node_modules trees around the working directory and this SDK (nested copies and pnpm's store
 * included), by real path.
 */
export function installedCopies(starts = [process.cwd(), dirname(new URL(import.meta.url).pathname)]): InstalledCopy[] {
  const found = new Map<string, InstalledCopy>();
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
        if (isOpenAIPackage(dir)) {
          const copy = { dir: realpathSync(dir), name: pkg.split(sep).join('/') };
          found.set(`${copy.dir}\0${copy.name}`, copy); // a copy may be installed under two names
        }
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
  return [...found.values()];
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** The directory of the copy of openai a file belongs to, if it belongs to one (under any name). */
function packageDirOf(file: string): string | undefined {
  const marker = `${sep}node_modules${sep}`;
  const at = file.lastIndexOf(marker);
  if (at < 0) return undefined;
  const parts = file.slice(at + marker.length).split(sep);
  const n = parts[0].startsWith('@') ? 2 : 1; // a scoped folder: @scope/name
  if (parts.length <= n) return undefined;
  const dir = file.slice(0, at + marker.length) + parts.slice(0, n).join(sep);
  return isOpenAIPackage(dir) ? dir : undefined;
}

const openaiDirs = new Map<string, boolean>();
/** Whether a package folder holds openai: its package.json's name says so, whatever the folder's. */
function isOpenAIPackage(dir: string): boolean {
  let is = openaiDirs.get(dir);
  if (is === undefined) {
    try {
      is = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).name === 'openai';
    } catch {
      is = false;
    }
    openaiDirs.set(dir, is);
  }
  return is;
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
