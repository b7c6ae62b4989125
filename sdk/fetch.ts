// A signing fetch for clients that do not use the `openai` package (the Vercel AI SDK's
// @ai-sdk/openai, plain fetch code...): pass it as their `fetch`, with `baseURL` from
// `proxyBaseURL()`. It also reroutes https://api.openai.com/v1 to the proxy, so `fetch` alone works
// for clients that keep OpenAI's URL.
import { watchBudget } from './budget.ts';
import type { CredentialOptions } from './credentials.ts';
import { WrapiConfigError } from './errors.ts';
import { prepareProxyRequest, signerFor } from './proxy-call.ts';
import { checkProject, checkStaging, getSettings } from './settings.ts';
import { canonicalSearch, sendSigned } from './sign.ts';
import { OPENAI_BASE_URL, resolveTarget, type StageTarget } from './target.ts';

export interface FetchOptions extends CredentialOptions {
  /** Fixed project; default: the module's project at each call. */
  project?: string;
  /** Fixed stage; default: the module's staging at each call. */
  staging?: string;
  /** Fixed caching; default: the module's caching at each call. */
  caching?: boolean;
  /** The stage's proxy URL (default: resolved like the client's). */
  proxyUrl?: string;
  region?: string;
  /** The fetch that sends the signed request. Default: global fetch. */
  fetch?: typeof fetch;
}

/**
 * A `fetch` that sends requests to a stage's proxy: it adds the project and caching headers,
 * drops any `Authorization`, signs with SigV4 and watches the budget headers of the answer. It
 * refuses to sign requests for any other host. Settings not given follow the module's at each call.
 *
 * @example
 * import { createOpenAI } from '@ai-sdk/openai';
 * import { createFetch, proxyBaseURL } from 'openai-wrapi';
 * const openai = createOpenAI({ apiKey: 'unused', baseURL: proxyBaseURL(), fetch: createFetch({ project: 'my-project' }) });
 */
export function createFetch(options: FetchOptions = {}): typeof fetch {
  if (options.project !== undefined) checkProject(options.project);
  if (options.staging !== undefined) checkStaging(options.staging);
  const send = options.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => fetch(input, init));
  return async (input, init) => {
    const settings = getSettings();
    const target = resolveTarget(options.staging ?? settings.staging, { proxyUrl: options.proxyUrl, region: options.region });
    const request = input instanceof Request ? input : undefined;
    const url = new URL(proxyUrlFor(request ? request.url : String(input), target));
    url.search = canonicalSearch(url);
    const method = (init?.method ?? request?.method ?? 'GET').toUpperCase();
    const { duplex: _duplex, ...rest } = (init ?? {}) as RequestInit & { duplex?: string };
    const out: RequestInit & { headers?: unknown; body?: unknown } = {
      ...rest,
      method,
      headers: new Headers(init?.headers ?? request?.headers),
      body: init?.body ?? (request && method !== 'GET' && method !== 'HEAD' ? request.body : undefined),
      signal: init?.signal ?? request?.signal,
    };
    const signer = signerFor(target, options);
    await prepareProxyRequest(signer, out, url.href, {
      project: options.project ?? settings.project,
      caching: options.caching ?? settings.caching,
    });
    const res = await sendSigned(signer, send, url.href, out as RequestInit);
    watchBudget(res, target.stage);
    return res;
  };
}

/** The base URL for OpenAI-compatible clients: the stage's proxy + `v1`. */
export function proxyBaseURL(staging?: string, options: Pick<FetchOptions, 'proxyUrl' | 'region'> = {}): string {
  return resolveTarget(staging ?? getSettings().staging, options).baseURL;
}

function proxyUrlFor(url: string, target: StageTarget): string {
  if (url === OPENAI_BASE_URL || url.startsWith(`${OPENAI_BASE_URL}/`) || url.startsWith(`${OPENAI_BASE_URL}?`)) {
    return target.baseURL + url.slice(OPENAI_BASE_URL.length);
  }
  if (url.startsWith(target.proxyUrl) || url === target.baseURL) return url;
  throw new WrapiConfigError(
    `Refusing to sign a request to ${new URL(url).origin}: it is not the proxy of stage ${target.stage} (${target.proxyUrl}).`,
  );
}
