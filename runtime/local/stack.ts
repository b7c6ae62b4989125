// The local stack: both stages' proxies and admin functions on one node:http server, the same
// handler code as on Lambda, with SigV4 checked here the way a function URL with AWS_IAM does.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join, resolve } from 'node:path';
import type { AddressInfo } from 'node:net';
import { createDashboard, DASHBOARD_PATH, type DashboardAnswer, type DashboardRequest } from '../../sdk/dashboard/serve.ts';
import { createAdmin, type AdminHandler } from '../core/admin.ts';
import { forbidden, notFound, tooLarge, WrapiError } from '../core/errors.ts';
import { DEFAULT_UPSTREAM_URL, readProxyConfig, type ProxyConfig } from '../core/config.ts';
import { ENV, LOCAL_ENV, stageEnvName } from '../core/contract.ts';
import { eventBytes, FUNCTION_URL_MAX_EVENT_BYTES, tooLargeForFunctionUrl } from '../core/function-url-limits.ts';
import { createPolicyReader } from '../core/policy.ts';
import type { Ledger, Logger, ResponseCache, Upstream } from '../core/ports.ts';
import { STAGES } from '../core/protocol.ts';
import { createProxy, type ProxyHandler } from '../core/proxy.ts';
import { createPublicProxy, readPublicAccess, type PublicAccess } from '../core/public-access.ts';
import { createHttpUpstream } from '../store/http-upstream.ts';
import { countTokens } from '../store/tokenizer.ts';
import { createAlertDelivery } from './alert-webhook.ts';
import { createAuthenticator } from './authenticate.ts';
import { userArn } from './credentials.ts';
import { adminDenial, createInvokeApi } from './invoke-api.ts';
import { BodyTooLarge, flatHeaders, readNodeBody, sendJson, writeResponse } from './node-http.ts';
import { writeOutputs } from './outputs.ts';
import { openLocalCache, openLocalLedger } from './stores.ts';
import { openUserDirectory } from './users.ts';

type Env = Record<string, string | undefined>;

/**
 * The writes after a response wait this long (ProxyDeps.writeDelayMs): every request shares this
 * event loop, and a request arriving just as the last one ends should not queue behind its
 * settlement. Measured in bench/proxy.ts, four A/B pairs: a stream's added first byte 1.40 ms
 * against 1.75 ms without the wait.
 */
const WRITE_DELAY_MS = 3;

export interface LocalStackOptions {
  /** Data folder: credentials, ledgers, outputs.json. Default `$OPENAI_WRAPI_HOME` or `.openai-wrapi`. */
  home?: string;
  host?: string;
  /** 0 picks a free port. Default `$PORT` or 8787. */
  port?: number;
  region?: string;
  env?: Env;
  /** The OpenAI hop; node:http keep-alive agents (http-upstream.ts) unless a test or bench wants another. */
  upstream?: Upstream;
  log?: Logger;
  /** Wrap each stage's ledger (the bench counts round trips this way). */
  wrapLedger?: (ledger: Ledger, stage: string) => Ledger;
  /** The clock that decides months and days (tests move it across a month's end). */
  now?: () => number;
  /** Demo mode: the upstream is the simulated OpenAI; outputs.json says so for the SDK and CLI. */
  simulatedUpstream?: boolean;
  /** Prints each budget alert (the CLI's console); unset: alerts are only logged and POSTed. */
  printAlert?: (text: string) => void;
}

export interface StageRuntime {
  stage: string;
  config: ProxyConfig;
  ledger: Ledger;
  cache: ResponseCache;
  proxy: ProxyHandler;
  admin: AdminHandler;
  stores: string;
  /** The stage's public front, served at `/public/<stage>/v1/…` when the public variables are set. */
  publicFront?: ReturnType<typeof createPublicProxy>;
}

export interface LocalStack {
  url: string;
  home: string;
  outputsFile: string;
  credentialsFile: string;
  stages: Record<string, StageRuntime>;
  /** The dashboard's link, with the secret token that opens it (new at every start). */
  dashboardUrl: string;
  /** Human-readable problems that do not stop the stack (e.g. no OpenAI key). */
  warnings: string[];
  /** Set when the public URL is on (`/public/<stage>/v1/…`, see public-access.ts). */
  publicAccess?: PublicAccess;
  close(): Promise<void>;
}

export const quietLogger: Logger = { info() {}, error() {} };

export async function startLocalStack(opts: LocalStackOptions = {}): Promise<LocalStack> {
  const env = opts.env ?? process.env;
  const home = resolve(opts.home ?? env[LOCAL_ENV.home] ?? '.openai-wrapi');
  const host = opts.host ?? '127.0.0.1';
  const region = opts.region ?? env[LOCAL_ENV.region] ?? 'us-east-1';
  const log = opts.log ?? quietLogger;
  const upstream: Upstream = opts.upstream ?? createHttpUpstream();

  const users = await openUserDirectory(home);
  const authenticate = createAuthenticator(users, region);

  const stages: Record<string, StageRuntime> = {};
  const warnings: string[] = [];
  // Like the public function on AWS, except that no function URL answers CORS here: the front does.
  const publicAccess: PublicAccess | undefined = readPublicAccess(env);
  for (const stage of STAGES) {
    const config = readProxyConfig(env, stage);
    const opened = await openLocalLedger(env, home, stage);
    const ledger = opts.wrapLedger ? opts.wrapLedger(opened.ledger, stage) : opened.ledger;
    const { cache, describe } = await openLocalCache(env, stage, log);
    const now = opts.now ?? Date.now;
    const policy = createPolicyReader(ledger, config.policyCacheMs, now);
    const onAlerts = createAlertDelivery({ stage, ledger, url: env[LOCAL_ENV.alertWebhook] || undefined, print: opts.printAlert, log });
    const proxy = createProxy({ config, ledger, cache, upstream, countTokens, log, policy, now, onAlerts, writeDelayMs: WRITE_DELAY_MS });
    const admin = createAdmin({ stage, ledger, cache, now, log, onAlerts, onChange: () => policy.clear() });
    const publicFront = publicAccess && createPublicProxy(proxy, publicAccess, { cors: true });
    stages[stage] = { stage, config, ledger, cache, proxy, admin, publicFront, stores: `${opened.describe}; cache: ${describe}` };
    if (!config.apiKey && config.upstreamUrl === DEFAULT_UPSTREAM_URL) {
      warnings.push(
        `stage ${stage}: no OpenAI API key, so its calls will be refused. Set ${ENV.apiKey} (or ${stageEnvName(ENV.apiKey, stage)}), ` +
          `or point ${ENV.upstreamUrl} at an OpenAI-compatible server, or try it with a simulated OpenAI: npm start -- --demo.`,
      );
    }
  }

  const pending = new Set<Promise<unknown>>();
  const track = (p: Promise<unknown>) => {
    pending.add(p);
    p.finally(() => pending.delete(p)).catch(() => undefined);
  };

  /**
   * The body, or undefined once a refusal was sent: past the stage's limit, or more than a function
   * URL's event can carry (AWS would refuse it before the proxy ran).
   */
  async function readBody(stage: StageRuntime, req: IncomingMessage, res: ServerResponse): Promise<Uint8Array | undefined> {
    let body: Uint8Array;
    try {
      body = await readNodeBody(req, stage.config.maxBodyBytes);
    } catch (err) {
      if (!(err instanceof BodyTooLarge)) throw err;
      sendError(res, tooLarge(stage.config.maxBodyBytes), { connection: 'close' });
      return undefined;
    }
    const size = eventBytes(body.byteLength, req.headers['content-type'], flatHeaders(req));
    if (size <= FUNCTION_URL_MAX_EVENT_BYTES) return body;
    sendError(res, tooLargeForFunctionUrl(size));
    return undefined;
  }

  async function handleProxy(stage: StageRuntime, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const body = await readBody(stage, req, res);
    if (!body) return;
    const user = await authenticate(req, body);
    if (typeof user === 'string') {
      return sendError(res, forbidden(user, 'invalid_signature'));
    }
    const headers = endToEndHeaders(req);
    const method = req.method ?? 'GET';
    // The body was read (and signed over) already: hand it to the core as bytes, not a stream.
    const request = { url: `http://${host}${path}`, method, headers, body: null };
    const response = await stage.proxy(request, {
      caller: { user: user.name, arn: userArn(user.name) },
      waitUntil: track,
      body: method === 'GET' || method === 'HEAD' ? undefined : body,
    });
    await writeResponse(response, res);
  }

  /** The public URL: nobody signs; the caller is its socket's address (no forwarding header is trusted). */
  async function handlePublic(front: NonNullable<StageRuntime['publicFront']>, stage: StageRuntime, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const method = req.method ?? 'GET';
    let body: Uint8Array | undefined;
    if (method === 'POST') {
      body = await readBody(stage, req, res);
      if (!body) return;
    }
    const headers = endToEndHeaders(req);
    const request = { url: `http://${host}${path}`, method, headers, body: null };
    const response = await front({ req: request, body, sourceIp: req.socket.remoteAddress ?? '', waitUntil: track });
    await writeResponse(response, res);
  }

  // The dashboard reads as the stack's first admin (normally `default`), whose keys sit in the same
  // credentials file as every other user's: whoever has the link printed at start may read usage.
  const dashboardToken = randomBytes(24).toString('base64url');
  const dashboardAdmin = () => users.list().find((u) => u.admin && u.name === 'default') ?? users.list().find((u) => u.admin);
  const dashboard = createDashboard({
    stages: Object.keys(stages),
    stage: Object.keys(stages)[0],
    token: dashboardToken,
    hosts: [host],
    ...(opts.simulatedUpstream ? { notice: 'Demo mode: a simulated OpenAI answers every call. Nothing was billed; costs are what OpenAI would charge.' } : {}),
    identity: () => {
      const admin = dashboardAdmin();
      return admin ? `local admin "${admin.name}"` : 'no admin (none in the credentials file)';
    },
    async invoke(stageName: string, request: DashboardRequest): Promise<DashboardAnswer> {
      const admin = dashboardAdmin();
      if (!admin) {
        const message = `No user in ${users.file} is an admin. Add one: openai-wrapi local users add NAME --admin`;
        return { ok: false, error: { kind: 'not_admin', message } };
      }
      const denied = adminDenial(admin, stageName);
      if (denied) return { ok: false, error: { kind: 'not_admin', message: denied } };
      const result = await stages[stageName].admin(request);
      if (!result.ok) return { ok: false, error: { kind: 'refused', message: result.error.message, code: result.error.code } };
      return result;
    },
  });

  const invokeApi = createInvokeApi(Object.fromEntries(Object.values(stages).map((s) => [s.stage, s.admin])), authenticate);

  const server: Server = createServer(async (req, res) => {
    try {
      const url = new URL(req.url ?? '/', 'http://local');
      const [, first, ...rest] = url.pathname.split('/');
      if (await invokeApi(req, res, url.pathname)) return;
      if (first === 'dashboard' && (await dashboard(req, res))) return;
      const stage = stages[first];
      if (stage) return await handleProxy(stage, req, res, `/${rest.join('/')}${url.search}`);
      const front = first === 'public' ? stages[rest[0]]?.publicFront : undefined;
      if (front) return await handlePublic(front, stages[rest[0]], req, res, `/${rest.slice(1).join('/')}${url.search}`);
      if (url.pathname === '/' && req.method === 'GET') {
        return sendJson(res, 200, { name: 'openai-wrapi local stack', stages: Object.keys(stages), outputs: outputsFile, dashboard: DASHBOARD_PATH });
      }
      sendError(res, notFound(`Nothing here: use /<stage>/v1/... with a stage of ${Object.keys(stages).join(', ')}.`));
    } catch (err) {
      log.error('local stack error', { error: err instanceof Error ? err.name : 'unknown' });
      if (!res.headersSent) sendError(res, new WrapiError(500, 'The local stack failed to handle this request.', 'server_error', 'proxy_error'));
      else res.destroy();
    }
  });
  server.keepAliveTimeout = 65_000;
  // `Expect: 100-continue`: refuse an oversized body before the client sends it, so that it reads the
  // 413 instead of meeting a closed connection half way through its upload.
  const maxBody = Math.max(...Object.values(stages).map((st) => st.config.maxBodyBytes));
  server.on('checkContinue', (req, res) => {
    if (Number(req.headers['content-length'] ?? 0) > maxBody) return sendError(res, tooLarge(maxBody), { connection: 'close' });
    res.writeContinue();
    server.emit('request', req, res);
  });

  const port = opts.port ?? Number(env[LOCAL_ENV.port] ?? 8787);
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolveListen());
  });
  const url = `http://${host}:${(server.address() as AddressInfo).port}`;
  const outputsFile = join(home, 'outputs.json');
  await writeOutputs(outputsFile, { url, region, credentialsFile: users.file, stages: Object.keys(stages), simulatedUpstream: opts.simulatedUpstream === true });

  return {
    url,
    dashboardUrl: `${url}${DASHBOARD_PATH}?token=${dashboardToken}`,
    home,
    outputsFile,
    credentialsFile: users.file,
    stages,
    warnings,
    publicAccess,
    async close() {
      await new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      });
      await Promise.allSettled([...pending]);
      for (const s of Object.values(stages)) {
        await s.ledger.close?.();
        await s.cache.close?.();
      }
    },
  };
}

const HOP_HEADERS = new Set(['host', 'connection', 'keep-alive', 'content-length', 'transfer-encoding', 'expect', 'upgrade']);

/** The request's headers as a function URL passes them on: without the connection's own. */
function endToEndHeaders(req: IncomingMessage): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(flatHeaders(req))) {
    if (!HOP_HEADERS.has(name)) headers.set(name, value);
  }
  return headers;
}

/** Refusals of the local stack itself, in the same OpenAI envelope the core uses. */
function sendError(res: ServerResponse, err: WrapiError, headers: Record<string, string> = {}): void {
  sendJson(res, err.status, err.body(), { ...err.headers, ...headers });
}
