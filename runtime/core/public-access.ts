// The public URL: pages of a few allowed origins call chat completions and responses (embeddings if
// configured) from the browser, without signing. Nobody is verified, so nothing the caller says is
// trusted: every call is billed to one configured project, as the user `public:<client>` (its source
// address), held to per-client rate limits, and refused without an allowed Origin. An Origin header
// stops other web pages (browsers set it and scripts on a page cannot), not scripts run elsewhere:
// the per-client limits and the project's budget are the real ceiling.
import { ConfigError } from './config.ts';
import { ENV } from './contract.ts';
import { forbidden, toErrorResponse } from './errors.ts';
import type { RateLimits } from './ports.ts';
import * as P from './protocol.ts';
import type { CallContext, ProxyHandler, ProxyRequest } from './proxy.ts';
import { matchRoute, type RouteKind } from './routes.ts';

export interface PublicAccess {
  /** Every public call is billed to this project; its limits apply. */
  project: string;
  /** Exact origins (`https://app.example.com`), as browsers send them in `Origin`. */
  origins: readonly string[];
  /** Requests and tokens per minute, per client. */
  perClient: RateLimits;
  routes: readonly RouteKind[];
}

/** CORS, as the function URL is configured on AWS and as the local stack answers it itself. */
export const PUBLIC_CORS = {
  allowMethods: ['POST'],
  // Nothing a request header says grants anything here (no credentials are read), so any is allowed:
  // the official client adds its own `x-stainless-*` ones. `*` does not cover Authorization, which
  // the client always sends (with whatever key the page gave it; the proxy uses the stage's).
  allowHeaders: ['*', 'authorization'],
  /** What a page may read of an answer: OpenAI's rate-limit headers and the proxy's own. */
  exposeHeaders: [
    'retry-after', 'x-should-retry', 'x-request-id', 'openai-processing-ms',
    'x-ratelimit-limit-requests', 'x-ratelimit-remaining-requests', 'x-ratelimit-reset-requests',
    'x-ratelimit-limit-tokens', 'x-ratelimit-remaining-tokens', 'x-ratelimit-reset-tokens',
    P.HEADER_CACHE, P.HEADER_COST, P.HEADER_BUDGET_REMAINING, P.HEADER_BUDGET_LIMIT, P.HEADER_BUDGET_SCOPE,
  ],
  maxAgeSeconds: 600,
} as const;

type Env = Record<string, string | undefined>;

/**
 * The public URL's settings, or undefined where `OPENAI_WRAPI_PUBLIC_PROJECT` is unset (no public
 * URL). Throws ConfigError listing every bad value.
 */
export function readPublicAccess(env: Env): PublicAccess | undefined {
  const get = (name: string) => env[name]?.trim() || undefined;
  const project = get(ENV.publicProject);
  if (project === undefined) return undefined;
  const problems: string[] = [];
  const origins = parseOrigins(get(ENV.publicOrigins), problems);
  const perMinute = (name: string): number | undefined => {
    const raw = get(name);
    if (raw === undefined) return undefined;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1) problems.push(`${name} must be a whole number >= 1 (got "${raw}")`);
    return n;
  };
  const rpm = perMinute(ENV.publicRpm);
  const tpm = perMinute(ENV.publicTpm);
  if (rpm === undefined && tpm === undefined) {
    problems.push(`set ${ENV.publicRpm} or ${ENV.publicTpm} (or both): without a per-client limit one script could spend the whole project's budget`);
  }
  const embeddings = get(ENV.publicEmbeddings);
  if (problems.length) throw new ConfigError(problems);
  return {
    project,
    origins,
    perClient: { ...(rpm !== undefined ? { rpm } : {}), ...(tpm !== undefined ? { tpm } : {}) },
    routes: embeddings === '1' || embeddings === 'true' ? ['chat', 'responses', 'embeddings'] : ['chat', 'responses'],
  };
}

/** Each origin as a browser writes it (scheme, host, port if not the default; no path), or a problem. */
function parseOrigins(raw: string | undefined, problems: string[]): string[] {
  const listed = (raw ?? '').split(',').map((o) => o.trim()).filter(Boolean);
  if (listed.length === 0) problems.push(`${ENV.publicOrigins} must list the origins allowed to call the public URL, e.g. https://app.example.com`);
  const origins: string[] = [];
  for (const o of listed) {
    if (o === '*') {
      problems.push(`${ENV.publicOrigins} cannot be "*": name each origin (any page on the web could spend the budget otherwise)`);
      continue;
    }
    const url = URL.canParse(o) ? new URL(o) : undefined;
    if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:') || o.replace(/\/$/, '') !== url.origin) {
      problems.push(`${ENV.publicOrigins}: "${o}" is not an origin like https://app.example.com (scheme and host, no path)`);
    } else origins.push(url.origin);
  }
  return origins;
}

/**
 * Who a source address is, for the per-client limits: an IPv4 address, or an IPv6 address's /64
 * network (one subscriber's; anyone holds a whole /64 and could otherwise take a fresh address per call).
 */
export function clientOf(sourceIp: string): string {
  const ip = sourceIp.trim().toLowerCase().replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(ip)) return ip;
  return ipv6Network(ip) ?? 'unknown';
}

function ipv6Network(ip: string): string | undefined {
  const halves = ip.split('%')[0].split('::');
  if (halves.length > 2) return undefined;
  const groupsOf = (part: string) => (part ? part.split(':') : []);
  const head = groupsOf(halves[0]);
  const tail = halves.length === 2 ? groupsOf(halves[1]) : [];
  // A trailing dotted IPv4 part stands for two groups.
  const width = (groups: string[]) => groups.reduce((n, g) => n + (g.includes('.') ? 2 : 1), 0);
  const missing = 8 - width(head) - width(tail);
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...tail].slice(0, 4);
  if (!groups.every((g) => /^[0-9a-f]{1,4}$/.test(g))) return undefined;
  return `${groups.map((g) => parseInt(g, 16).toString(16)).join(':')}::/64`;
}

export interface PublicRequest {
  req: ProxyRequest;
  /** The caller's address as the platform saw it (the function URL event; the local socket). */
  sourceIp: string;
  waitUntil: CallContext['waitUntil'];
  body?: Uint8Array;
}

/**
 * The public URL in front of the proxy. `cors`: answer preflights and add the CORS headers here (the
 * local stack); on AWS the function URL's CORS configuration does both, and headers added here
 * would come out twice.
 */
export function createPublicProxy(proxy: ProxyHandler, access: PublicAccess, opts: { cors: boolean }) {
  return async ({ req, sourceIp, waitUntil, body }: PublicRequest): Promise<Response> => {
    const origin = req.headers.get('origin');
    if (!origin || !access.origins.includes(origin)) {
      return toErrorResponse(
        forbidden(
          origin
            ? `Origin ${origin.slice(0, 100)} may not call this URL. An admin can allow it in the stage's publicAccess.allowedOrigins.`
            : 'This URL serves web pages of its allowed origins only (the request had no Origin header). Elsewhere, sign your calls with the openai-wrapi SDK.',
          'origin_not_allowed',
        ),
      );
    }
    const cors = opts.cors ? corsHeaders(origin) : {};
    if (req.method === 'OPTIONS') return new Response(null, { status: 204, headers: { ...cors, ...preflightHeaders() } });
    const route = matchRoute(req.method, new URL(req.url).pathname);
    if (!route || !access.routes.includes(route.kind)) {
      const served = access.routes.map((r) => ROUTE_PATHS[r]).join(', ');
      return withHeaders(toErrorResponse(forbidden(`The public URL serves only ${served}.`, 'route_not_public')), cors);
    }
    const caller = { user: `${P.PUBLIC_USER_PREFIX}${clientOf(sourceIp)}`, arn: 'public' };
    const res = await proxy(req, { caller, waitUntil, body, publicClient: { project: access.project, limits: access.perClient } });
    return withHeaders(res, cors);
  };
}

const ROUTE_PATHS: Partial<Record<RouteKind, string>> = {
  chat: 'POST /v1/chat/completions',
  responses: 'POST /v1/responses',
  embeddings: 'POST /v1/embeddings',
};

function corsHeaders(origin: string): Record<string, string> {
  return { 'access-control-allow-origin': origin, 'access-control-expose-headers': PUBLIC_CORS.exposeHeaders.join(', '), vary: 'Origin' };
}

function preflightHeaders(): Record<string, string> {
  return {
    'access-control-allow-methods': PUBLIC_CORS.allowMethods.join(', '),
    'access-control-allow-headers': PUBLIC_CORS.allowHeaders.join(', '),
    'access-control-max-age': String(PUBLIC_CORS.maxAgeSeconds),
  };
}

function withHeaders(res: Response, headers: Record<string, string>): Response {
  if (Object.keys(headers).length === 0) return res;
  const merged = new Headers(res.headers);
  for (const [name, value] of Object.entries(headers)) merged.set(name, value);
  return new Response(res.body, { status: res.status, statusText: res.statusText, headers: merged });
}
