// The global patch behind `openai-wrapi/register`: clients that other libraries construct from the
// `openai` package (LangChain's ChatOpenAI, ...) go to the stage's proxy, signed, with the module's
// current project, staging and caching. openai ships separate CommonJS and ESM classes and a
// library may load either, so both get patched (and the app's own copy, if it differs from ours).
//
// Three methods of the OpenAI prototype are wrapped, each calling the original:
//   buildURL          rewrites https://api.openai.com/v1/... to the proxy (clients pointed anywhere
//                     else, e.g. Azure or a local model server, are left alone);
//   prepareRequest    openai-node's documented per-attempt hook: signs every attempt afresh;
//   fetchWithTimeout  watches the budget headers of the answer.
import { OpenAI as BaseOpenAI } from 'openai';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { watchBudget } from './budget.ts';
import { WRAPI_CLIENT } from './client.ts';
import { WrapiError } from './errors.ts';
import { prepareProxyRequest, sharedSigner, type MutableRequest } from './proxy-call.ts';
import { getSettings } from './settings.ts';
import { OPENAI_BASE_URL, resolveTarget, type StageTarget } from './target.ts';

const PATCHED = Symbol.for('openai-wrapi.patched');
const ROUTES = Symbol.for('openai-wrapi.routes');

interface Patchable {
  baseURL?: string;
  _provider?: unknown;
  buildURL(path: string, query: unknown, defaultBaseURL?: string): string;
  prepareRequest(request: MutableRequest, context: { url: string; options: unknown }): Promise<void>;
  fetchWithTimeout?(url: string, init: unknown, ms: number, controller: AbortController): Promise<Response>;
}

/** Proxy base URLs we routed to, by base URL: lets `prepareRequest` know what to sign. */
const routes: Map<string, StageTarget> = ((globalThis as Record<symbol, unknown>)[ROUTES] as Map<string, StageTarget>) ??
  ((globalThis as Record<symbol, unknown>)[ROUTES] = new Map<string, StageTarget>());

const routed = (client: Patchable) =>
  !(WRAPI_CLIENT in client) && !client._provider && (client.baseURL ?? OPENAI_BASE_URL).replace(/\/+$/, '') === OPENAI_BASE_URL;

/** Clients whose URLs this patch rewrote: only their requests get signed and watched. */
const rerouted = new WeakSet<object>();

function routeOf(url: string): StageTarget | undefined {
  for (const [base, target] of routes) if (url === base || url.startsWith(`${base}/`) || url.startsWith(`${base}?`)) return target;
  return undefined;
}

/**
 * Patches one `OpenAI` class (from any copy or module format of the `openai` package). Returns
 * false when it was patched already.
 */
export function patchOpenAIClass(OpenAIClass: { prototype: object; name?: string }): boolean {
  const proto = OpenAIClass.prototype as Patchable & Record<symbol, unknown>;
  if (proto[PATCHED]) return false;
  const { buildURL, prepareRequest, fetchWithTimeout } = proto;
  if (typeof buildURL !== 'function' || typeof prepareRequest !== 'function') {
    throw new WrapiError('openai-wrapi/register cannot patch this version of the openai package (no buildURL/prepareRequest); use openai 6 or 7.');
  }
  Object.defineProperty(proto, PATCHED, { value: { buildURL, prepareRequest, fetchWithTimeout }, configurable: true });

  proto.buildURL = function (this: Patchable, path, query, defaultBaseURL) {
    const url = buildURL.call(this, path, query, defaultBaseURL);
    if (!routed(this) || !(url === OPENAI_BASE_URL || url.startsWith(`${OPENAI_BASE_URL}/`) || url.startsWith(`${OPENAI_BASE_URL}?`))) {
      return url;
    }
    const target = resolveTarget(getSettings().staging);
    routes.set(target.baseURL, target);
    rerouted.add(this);
    return target.baseURL + url.slice(OPENAI_BASE_URL.length);
  };

  proto.prepareRequest = async function (this: Patchable, request, context) {
    await prepareRequest.call(this, request, context);
    const target = rerouted.has(this) ? routeOf(context.url) : undefined;
    if (!target) return;
    const { project, caching } = getSettings();
    await prepareProxyRequest(sharedSigner(target), request, context.url, { project, caching });
  };

  if (typeof fetchWithTimeout === 'function') {
    proto.fetchWithTimeout = async function (this: Patchable, url, init, ms, controller) {
      const res = await fetchWithTimeout.call(this, url, init, ms, controller);
      const target = rerouted.has(this) ? routeOf(String(url)) : undefined;
      if (target) watchBudget(res, target.stage);
      return res;
    };
  }
  return true;
}

/** Undoes {@link patchOpenAIClass} (tests; code that wants plain clients again). */
export function unpatchOpenAIClass(OpenAIClass: { prototype: object }): boolean {
  const proto = OpenAIClass.prototype as Patchable & Record<symbol, unknown>;
  const original = proto[PATCHED] as Pick<Patchable, 'buildURL' | 'prepareRequest' | 'fetchWithTimeout'> | undefined;
  if (!original) return false;
  proto.buildURL = original.buildURL;
  proto.prepareRequest = original.prepareRequest;
  if (original.fetchWithTimeout) proto.fetchWithTimeout = original.fetchWithTimeout;
  delete proto[PATCHED];
  return true;
}

/**
 * Every `OpenAI` class in reach: this module's, the other module format's, and those of the copy
 * the application itself resolves (when a library brings its own copy, pass its class to
 * {@link patchOpenAIClass}). Loads ESM through `require` where Node can (20.19+, 22.12+), else
 * asynchronously: `pending` settles once those are patched too.
 */
export function openAIClasses(): { classes: object[]; pending: Promise<object[]> } {
  const classes = new Set<object>([BaseOpenAI]);
  const later: Promise<object | undefined>[] = [];
  const requireModule = Boolean((process.features as { require_module?: boolean }).require_module);
  const bases = [import.meta.url, pathToFileURL(join(process.cwd(), 'index.js')).href];
  for (const base of bases) {
    const req = createRequire(base);
    let main: string;
    try {
      main = req.resolve('openai');
    } catch {
      continue;
    }
    try {
      classes.add((req(main) as { OpenAI: object }).OpenAI);
    } catch {
      // An unusual install without the CommonJS build; the ESM class below is enough.
    }
    const esm = join(dirname(main), 'index.mjs');
    if (requireModule) {
      try {
        classes.add((req(esm) as { OpenAI: object }).OpenAI);
        continue;
      } catch {
        // fall through to import()
      }
    }
    later.push(import(pathToFileURL(esm).href).then((m: { OpenAI: object }) => m.OpenAI, () => undefined));
  }
  const pending = Promise.all(later).then((found) => found.filter((c): c is object => c !== undefined));
  return { classes: [...classes], pending };
}
