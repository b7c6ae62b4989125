// The dashboard over node:http, shared by `openai-wrapi dashboard` and the local stack's /dashboard:
// the static page, and a JSON API through which the page makes read-only admin requests. Whoever
// mounts it decides how those reach the admin function (`invoke`); the page never holds a credential.
//
// Access: a secret token, printed with the link when the server starts (as Jupyter does). Opening
// the link swaps the token for an HttpOnly, SameSite=Strict cookie and drops it from the address.
// Without it, other users of the machine and web pages in the browser (cross-site requests, DNS
// rebinding: the Host header is checked too) get nothing but the static files.
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AdminRequest } from '../../runtime/core/protocol.ts';
import { loadAssets } from './assets.ts';

/** Where the dashboard lives on its server. */
export const DASHBOARD_PATH = '/dashboard/';

/** Why an answer has no data, so the page can say what to do (see page/problems.ts). */
export type ProblemKind = 'session' | 'not_admin' | 'unreachable' | 'config' | 'refused';

export type DashboardAnswer =
  | ({ ok: true } & Record<string, unknown>)
  | { ok: false; error: { kind: ProblemKind; message: string; code?: string | null } };

/** The only admin requests the page may make: it reads, and never changes anything. */
export type DashboardRequest = Extract<AdminRequest, { action: 'usage' | 'listLimits' | 'listAlerts' | 'months' }>;
const READ_ACTIONS = new Set<string>(['usage', 'listLimits', 'listAlerts', 'months']);

export interface DashboardOptions {
  stages: string[];
  /** The stage shown first. */
  stage: string;
  /** Who the admin requests run as, for the page (never a secret). */
  identity: () => string;
  /** A line the page shows above everything (the local stack's demo mode says its answers are simulated). */
  notice?: string;
  /** The secret of the link; see above. */
  token: string;
  invoke(stage: string, request: DashboardRequest): Promise<DashboardAnswer>;
  /** Host names the browser may use besides the loopback ones. */
  hosts?: string[];
}

/** Handles a request under /dashboard; false for any other path. */
export type DashboardHandler = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;

const LOOPBACK = ['127.0.0.1', 'localhost', '[::1]'];
const MAX_BODY = 16 * 1024;

const HEADERS = {
  // Plot styles its SVG with style attributes, hence 'unsafe-inline' for styles (never for scripts).
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; " +
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
};

export function createDashboard(opts: DashboardOptions): DashboardHandler {
  const hosts = new Set([...LOOPBACK, ...(opts.hosts ?? [])]);
  const token = Buffer.from(opts.token);

  const validToken = (given: string | null | undefined) => {
    const g = Buffer.from(given ?? '');
    return g.length === token.length && timingSafeEqual(g, token);
  };

  return async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://dashboard');
    const path = url.pathname;
    if (path !== '/dashboard' && !path.startsWith(DASHBOARD_PATH)) return false;
    const send = (status: number, body: string | Buffer, headers: Record<string, string> = {}) => {
      res.writeHead(status, { ...HEADERS, 'content-length': String(Buffer.byteLength(body)), ...headers });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    const json = (status: number, body: unknown) =>
      send(status, JSON.stringify(body), { 'content-type': 'application/json', 'cache-control': 'no-store' });

    const host = req.headers.host ?? '';
    if (!hosts.has(host.replace(/:\d+$/, ''))) {
      send(421, `This dashboard answers only at ${[...hosts].join(', ')}.\n`, { 'content-type': 'text/plain' });
      return true;
    }
    if (path === '/dashboard') {
      send(308, '', { location: `${DASHBOARD_PATH}${url.search}` });
      return true;
    }
    const cookie = `wrapi_dashboard_${req.socket.localPort ?? 0}`;
    const signedIn = validToken(cookieOf(req, cookie));

    if (path === DASHBOARD_PATH && url.searchParams.has('token')) {
      const ok = validToken(url.searchParams.get('token'));
      url.searchParams.delete('token');
      send(303, '', {
        location: `${DASHBOARD_PATH}${url.search}`,
        'cache-control': 'no-store',
        ...(ok ? { 'set-cookie': `${cookie}=${opts.token}; Path=${DASHBOARD_PATH}; HttpOnly; SameSite=Strict` } : {}),
      });
      return true;
    }

    if (path.startsWith(`${DASHBOARD_PATH}api/`)) {
      if (!signedIn) {
        json(401, { ok: false, error: { kind: 'session', message: 'This browser has no session with this dashboard (or the dashboard was restarted since).' } });
        return true;
      }
      if (path === `${DASHBOARD_PATH}api/session` && req.method === 'GET') {
        json(200, { ok: true, stages: opts.stages, stage: opts.stage, identity: opts.identity(), ...(opts.notice ? { notice: opts.notice } : {}) });
        return true;
      }
      if (path === `${DASHBOARD_PATH}api/admin` && req.method === 'POST') {
        // A cross-site page cannot send JSON without a preflight we never grant, nor forge Origin.
        const origin = req.headers.origin;
        if (!/^application\/json\b/.test(req.headers['content-type'] ?? '') || (origin !== undefined && origin !== `http://${host}`)) {
          json(403, { ok: false, error: { kind: 'session', message: 'Requests to this dashboard must come from its own page.' } });
          return true;
        }
        const call = parseCall(await readBody(req), opts.stages);
        if ('error' in call) {
          json(400, { ok: false, error: { kind: 'refused', message: call.error } });
          return true;
        }
        json(200, await opts.invoke(call.stage, call.request));
        return true;
      }
      json(404, { ok: false, error: { kind: 'refused', message: `No such dashboard API: ${req.method} ${path}` } });
      return true;
    }

    const name = path === DASHBOARD_PATH ? 'index.html' : path.slice(DASHBOARD_PATH.length);
    const asset = (await loadAssets()).get(name);
    if (!asset || (req.method !== 'GET' && req.method !== 'HEAD')) {
      send(404, 'Not found\n', { 'content-type': 'text/plain' });
      return true;
    }
    const common = { 'content-type': asset.type, etag: asset.etag, 'cache-control': 'no-cache', vary: 'accept-encoding' };
    if (req.headers['if-none-match'] === asset.etag) {
      res.writeHead(304, { ...HEADERS, ...common });
      res.end();
      return true;
    }
    const gzip = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
    send(200, gzip ? asset.gzip : asset.body, { ...common, ...(gzip ? { 'content-encoding': 'gzip' } : {}) });
    return true;
  };
}

function cookieOf(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      body += chunk;
      if (body.length > MAX_BODY) req.destroy(new Error('body too large'));
    });
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

/** `{stage, request}` with a known stage and a read-only action; the admin function checks the rest. */
function parseCall(body: string, stages: string[]): { stage: string; request: DashboardRequest } | { error: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return { error: 'The body must be JSON: {"stage": ..., "request": {"action": ...}}.' };
  }
  const { stage, request } = (parsed ?? {}) as { stage?: unknown; request?: { action?: unknown } };
  if (typeof stage !== 'string' || !stages.includes(stage)) return { error: `Unknown stage ${JSON.stringify(stage)}: one of ${stages.join(', ')}.` };
  if (!request || typeof request !== 'object' || !READ_ACTIONS.has(String(request.action))) {
    return { error: `The dashboard only reads: the action must be one of ${[...READ_ACTIONS].join(', ')}.` };
  }
  return { stage, request: request as DashboardRequest };
}
