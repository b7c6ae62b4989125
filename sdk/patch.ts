// The global patch behind `openai-wrapi/register`: clients that other libraries construct from the
// `openai` package (LangChain's ChatOpenAI, ...) go to the stage's proxy, signed, with the module's
// current project, staging and caching. openai ships separate CommonJS and ESM classes and a
// library may load either, and libraries bring their own copies: `openai-copies.ts` finds them all.
//
// Three methods of the OpenAI prototype are wrapped, each calling the original:
//   buildURL          rewrites a request bound for OpenAI's API (api.openai.com or a regional
//                     *.api.openai.com, however spelled) to the proxy (clients pointed anywhere
//                     else, e.g. Azure or a local model server, are left alone);
//   prepareRequest    openai-node's documented per-attempt hook: signs every attempt afresh;
//   fetchWithTimeout  watches the budget headers of the answer.
import { watchBudget } from './budget.ts';
import { WRAPI_CLIENT } from './client.ts';
import { WrapiError } from './errors.ts';
import { OLDEST_SUPPORTED_OPENAI, unsupportedCopy, type OpenAICopy } from './openai-copies.ts';
import { prepareProxyRequest, sharedSigner, type MutableRequest } from './proxy-call.ts';
import { sendSigned } from './sign.ts';
import { getSettings } from './settings.ts';
import { OPENAI_BASE_URL, proxyTargetOf, reachesOpenAI, resolveTarget, type StageTarget } from './target.ts';

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

const ours = (client: Patchable) => !(WRAPI_CLIENT in client) && !client._provider;

/**
 * A client whose base URL is OpenAI's API. Decided on the parsed host, not the string: a base URL
 * spelled `https://API.OPENAI.COM/v1`, `https://api.openai.com:443/v1` or `.../v1/.`, or a regional
 * host (`https://eu.api.openai.com/v1`), also reaches OpenAI and must not bypass the proxy.
 */
const routed = (client: Patchable) => ours(client) && reachesOpenAI(client.baseURL ?? OPENAI_BASE_URL);

/** `https://<an OpenAI host>/v1/x?y` on the proxy: `<proxyUrl>v1/x?y` (a doubled `/` collapsed). */
const onProxy = (url: string, target: StageTarget) => {
  const { pathname, search } = new URL(url);
  return target.proxyUrl + pathname.replace(/\/{2,}/g, '/').slice(1) + search;
};

/** Clients whose URLs this patch rewrote: only their requests get signed and watched. */
const rerouted = new WeakSet<object>();

/** Per client: the proxy its own base URL names, if any (a base URL does not change). */
const proxies = new WeakMap<object, StageTarget | null>();
function proxyOf(client: Patchable): StageTarget | undefined {
  let target = proxies.get(client);
  if (target === undefined) {
    target = client.baseURL ? proxyTargetOf(client.baseURL, getSettings().staging) ?? null : null;
    proxies.set(client, target);
  }
  return target ?? undefined;
}

function routeOf(url: string): StageTarget | undefined {
  // By the proxy's root, not its /v1 base: whatever path a rerouted request has, it is signed.
  for (const target of routes.values()) if (url.startsWith(target.proxyUrl)) return target;
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
    throw new WrapiError(`openai-wrapi/register cannot patch this openai client class (no buildURL/prepareRequest); use openai ${OLDEST_SUPPORTED_OPENAI} or newer.`);
  }
  Object.defineProperty(proto, PATCHED, { value: { buildURL, prepareRequest, fetchWithTimeout }, configurable: true });

  proto.buildURL = function (this: Patchable, path, query, defaultBaseURL) {
    const url = buildURL.call(this, path, query, defaultBaseURL);
    // Decided by where this request would go (not only the base URL): nothing reaches OpenAI directly.
    if (!ours(this) || !reachesOpenAI(url)) {
      // A plain client pointed at a proxy itself must be signed too, or it only collects 403s.
      const proxy = ours(this) ? proxyOf(this) : undefined;
      if (proxy) {
        routes.set(proxy.baseURL, proxy);
        rerouted.add(this);
      }
      return url;
    }
    const target = resolveTarget(getSettings().staging);
    routes.set(target.baseURL, target);
    rerouted.add(this);
    return onProxy(url, target);
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
      const target = rerouted.has(this) ? routeOf(String(url)) : undefined;
      if (!target) return fetchWithTimeout.call(this, url, init, ms, controller);
      // A refusal for a wrong clock is re-signed with the server's time and sent once more.
      const send = (u: string, i: RequestInit) => fetchWithTimeout.call(this, u, i, ms, controller);
      const res = await sendSigned(sharedSigner(target), send, String(url), init as RequestInit);
      watchBudget(res, target.stage);
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
 * Patches the client class of one copy of `openai` (its module's exports, CommonJS or ESM) and
 * returns it; throws when the copy has none that can be routed (openai 3 and older).
 */
export function patchOpenAICopy(copy: OpenAICopy): object {
  const exports = copy.exports as Record<string, unknown> | undefined;
  const candidates = new Set([exports, exports?.OpenAI, exports?.default]);
  for (const c of candidates) {
    const proto = (c as { prototype?: Partial<Patchable> } | undefined)?.prototype;
    if (typeof c === 'function' && typeof proto?.buildURL === 'function' && typeof proto.prepareRequest === 'function') {
      patchOpenAIClass(c as { prototype: object });
      return c;
    }
  }
  throw unsupportedCopy(copy.dir);
}

const GUARDED = Symbol.for('openai-wrapi.realtime-guard');

/**
 * The proxy does not serve the Realtime API, and a Realtime class connects to `client.baseURL`
 * with `client.apiKey` without any hook the patch could use: for a client the patch routes (or
 * none, which means a default one) it would reach OpenAI directly, unmetered. Replaces each
 * Realtime class in `exports` with one that refuses such clients; clients pointed elsewhere
 * (Azure, a model server) connect as before.
 */
export function guardRealtime(exports: Record<string, unknown>): void {
  for (const [name, value] of Object.entries(exports)) {
    if (!/^OpenAIRealtime(WS|WebSocket)$/.test(name) || typeof value !== 'function' || GUARDED in value) continue;
    const Original = value as new (...args: unknown[]) => object;
    const refuse = (client: unknown) => {
      const c = client as Patchable | undefined;
      if (c && !(WRAPI_CLIENT in c) && !routed(c)) return; // pointed elsewhere on purpose
      throw new WrapiError(
        `openai-wrapi: ${name} would connect to OpenAI's Realtime API directly, unmetered; the proxy does not serve Realtime, ` +
          'so under openai-wrapi/register it is refused. Pass a client with its own baseURL (e.g. Azure) to connect elsewhere.',
      );
    };
    const Guarded = class extends Original {
      constructor(...args: unknown[]) {
        refuse(args[1]);
        super(...args);
      }
      static async create(client: unknown, ...rest: unknown[]): Promise<unknown> {
        refuse(client);
        return (Original as unknown as { create(...a: unknown[]): Promise<unknown> }).create(client, ...rest);
      }
    };
    Object.defineProperty(Guarded, 'name', { value: name });
    Object.defineProperty(Guarded, GUARDED, { value: true });
    exports[name] = Guarded;
  }
}
