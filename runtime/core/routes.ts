// The allow-list. An endpoint the proxy cannot price would let calls escape the limits, so anything
// not listed here is refused.

import { RESPONSE_ID } from './request-facts.ts';

export type RouteKind = 'chat' | 'completions' | 'embeddings' | 'responses' | 'moderations' | 'models' | 'retrieve';

export interface Route {
  kind: RouteKind;
  /** Upstream path without the `/v1` prefix, e.g. `/chat/completions` or `/models/gpt-4o`. */
  path: string;
  /** Metered: needs a model, a price, limits and settlement. */
  priced: boolean;
  /** Identical requests may be answered from the cache. */
  cacheable: boolean;
}

const POST_ROUTES: Record<string, Omit<Route, 'path'>> = {
  '/chat/completions': { kind: 'chat', priced: true, cacheable: true },
  '/completions': { kind: 'completions', priced: true, cacheable: true },
  '/embeddings': { kind: 'embeddings', priced: true, cacheable: true },
  '/responses': { kind: 'responses', priced: true, cacheable: true },
  // Moderations are free at OpenAI: forwarded without metering.
  '/moderations': { kind: 'moderations', priced: false, cacheable: false },
};

/** Accepts paths with and without the `/v1` prefix. Returns undefined for anything else. */
export function matchRoute(method: string, pathname: string): Route | undefined {
  const path = stripPrefix(pathname.replace(/\/+$/, '') || '/');
  if (method === 'POST') {
    const route = POST_ROUTES[path];
    return route && { ...route, path };
  }
  if (method === 'GET' && (path === '/models' || /^\/models\/[A-Za-z0-9._:\-]+$/.test(path))) {
    return { kind: 'models', path, priced: false, cacheable: false };
  }
  // Reading back a stored response is free. Not its deletion, cancellation or input items: those
  // are not needed to use what the proxy metered, and each would be one more path to vet.
  if (method === 'GET' && path.startsWith('/responses/') && RESPONSE_ID.test(path.slice('/responses/'.length))) {
    return { kind: 'retrieve', path, priced: false, cacheable: false };
  }
  return undefined;
}

function stripPrefix(path: string): string {
  return path === '/v1' ? '/' : path.startsWith('/v1/') ? path.slice(3) : path;
}
