// The local stack: both stages' proxies and admin functions on one node:http server, the same
// handler code as on Lambda, with SigV4 checked here the way a function URL with AWS_IAM does.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { rename, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { AddressInfo } from 'node:net';
import { createDashboard, DASHBOARD_PATH, type DashboardAnswer, type DashboardRequest } from '../../sdk/dashboard/serve.ts';
import { createAdmin, type AdminHandler } from '../core/admin.ts';
import { forbidden, notFound, tooLarge, WrapiError } from '../core/errors.ts';
import { DEFAULT_UPSTREAM_URL, readProxyConfig, type ProxyConfig } from '../core/config.ts';
import { createPolicyReader } from '../core/policy.ts';
import type { Ledger, Logger, ResponseCache, Upstream } from '../core/ports.ts';
import { adminFunctionName, STAGES } from '../core/protocol.ts';
import { createProxy, type ProxyHandler } from '../core/proxy.ts';
import { createHttpUpstream } from '../store/http-upstream.ts';
import { countTokens } from '../store/tokenizer.ts';
import { loadOrCreateCredentials, lookupByAccessKey, userArn, type LocalUser } from './credentials.ts';
import { BodyTooLarge, flatHeaders, readNodeBody, sendJson, writeResponse } from './node-http.ts';
import { createVerifier } from './sigv4.ts';
import { openLocalCache, openLocalLedger } from './stores.ts';

type Env = Record<string, string | undefined>;

export interface LocalStackOptions {
  /** Data folder: credentials, ledgers, outputs.json. Default `$OPENAI_WRAPI_HOME` or `.openai-wrapi`. */
  home?: string;
  host?: string;
  /** 0 picks a free port. Default `$PORT` or 8787. */
  port?: number;
  region?: string;
  env?: Env;
  /** The OpenAI hop; `fetch` unless a test or bench wants to watch it. */
  upstream?: Upstream;
  log?: Logger;
  /** Wrap each stage's ledger (the bench counts round trips this way). */
  wrapLedger?: (ledger: Ledger, stage: string) => Ledger;
  /** The clock that decides months and days (tests move it across a month's end). */
  now?: () => number;
  /** Demo mode: the upstream is the simulated OpenAI; outputs.json says so for the SDK and CLI. */
  simulatedUpstream?: boolean;
}

export interface StageRuntime {
  stage: string;
  config: ProxyConfig;
  ledger: Ledger;
  cache: ResponseCache;
  proxy: ProxyHandler;
  admin: AdminHandler;
  stores: string;
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
  close(): Promise<void>;
}

export const quietLogger: Logger = { info() {}, error() {} };

export async function startLocalStack(opts: LocalStackOptions = {}): Promise<LocalStack> {
  const env = opts.env ?? process.env;
  const home = resolve(opts.home ?? env.OPENAI_WRAPI_HOME ?? '.openai-wrapi');
  const host = opts.host ?? '127.0.0.1';
  const region = opts.region ?? env.OPENAI_WRAPI_REGION ?? 'us-east-1';
  const log = opts.log ?? quietLogger;
  const upstream: Upstream = opts.upstream ?? createHttpUpstream();

  const creds = await loadOrCreateCredentials(home);
  let users = creds.users;
  let lookup = lookupByAccessKey(users);
  let loadedAt = 0;
  let reloading: Promise<void> | undefined;
  // `openai-wrapi local users add` edits the file while we run: re-read it when a key is unknown
  // and the file changed since we last read it (one reload at a time, shared by waiting requests).
  const reload = async () => {
    const mtime = (await stat(creds.file).catch(() => undefined))?.mtimeMs ?? 0;
    if (mtime === loadedAt) return;
    users = (await loadOrCreateCredentials(home)).users;
    lookup = lookupByAccessKey(users);
    loadedAt = mtime;
  };
  const findUser = async (accessKeyId: string): Promise<LocalUser | undefined> => {
    if (lookup(accessKeyId)) return lookup(accessKeyId);
    reloading ??= reload().finally(() => (reloading = undefined));
    await reloading;
    return lookup(accessKeyId);
  };
  const verify = createVerifier({ lookup: (id) => lookup(id), region });

  const stages: Record<string, StageRuntime> = {};
  const warnings: string[] = [];
  for (const stage of STAGES) {
    const config = readProxyConfig(env, stage);
    const opened = await openLocalLedger(env, home, stage);
    const ledger = opts.wrapLedger ? opts.wrapLedger(opened.ledger, stage) : opened.ledger;
    const { cache, describe } = await openLocalCache(env, stage, log);
    const now = opts.now ?? Date.now;
    const policy = createPolicyReader(ledger, config.policyCacheMs, now);
    const proxy = createProxy({ config, ledger, cache, upstream, countTokens, log, policy, now });
    const admin = createAdmin({ stage, ledger, cache, now, log, onChange: () => policy.clear() });
    stages[stage] = { stage, config, ledger, cache, proxy, admin, stores: `${opened.describe}; cache: ${describe}` };
    if (!config.apiKey && config.upstreamUrl === DEFAULT_UPSTREAM_URL) {
      warnings.push(
        `stage ${stage}: no OpenAI API key, so its calls will be refused. Set OPENAI_API_KEY (or OPENAI_API_KEY_${stage.toUpperCase()}), ` +
          `or point OPENAI_WRAPI_UPSTREAM_URL at an OpenAI-compatible server, or try it with a simulated OpenAI: npm start -- --demo.`,
      );
    }
  }

  const pending = new Set<Promise<unknown>>();
  const track = (p: Promise<unknown>) => {
    pending.add(p);
    p.finally(() => pending.delete(p)).catch(() => undefined);
  };

  /** Verify like a function URL: unsigned or badly signed requests never reach a handler. */
  async function authenticate(req: IncomingMessage, body: Uint8Array): Promise<LocalUser | string> {
    const raw = req.url ?? '/';
    const q = raw.indexOf('?');
    const headers = flatHeaders(req);
    const accessKey = /Credential=([^/]+)\//.exec(headers.authorization ?? '')?.[1];
    if (accessKey) await findUser(accessKey);
    const verdict = await verify({
      method: req.method ?? 'GET',
      path: q < 0 ? raw : raw.slice(0, q),
      query: q < 0 ? '' : raw.slice(q + 1),
      headers,
      body,
    });
    if (!verdict.ok) return verdict.message;
    // Headers that decide who pays must be signed: else a captured request could be replayed with
    // another project (AWS's function URL does not check this; the SDK signs them).
    const unsigned = BILLING_HEADERS.find((name) => headers[name] !== undefined && !verdict.signedHeaders.includes(name));
    if (unsigned) return `The header '${unsigned}' must be signed (list it in SignedHeaders)`;
    return verdict.user;
  }

  async function handleProxy(stage: StageRuntime, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    let body: Uint8Array;
    try {
      body = await readNodeBody(req, stage.config.maxBodyBytes);
    } catch (err) {
      if (err instanceof BodyTooLarge) {
        return sendError(res, tooLarge(stage.config.maxBodyBytes), { connection: 'close' });
      }
      throw err;
    }
    const user = await authenticate(req, body);
    if (typeof user === 'string') {
      return sendError(res, forbidden(user, 'invalid_signature'));
    }
    const headers = new Headers();
    for (const [name, value] of Object.entries(flatHeaders(req))) {
      if (!HOP_HEADERS.has(name)) headers.set(name, value);
    }
    const method = req.method ?? 'GET';
    // The body was read (and signed over) already: hand it to the core as bytes, not a stream.
    const request = new Request(`http://${host}${path}`, { method, headers });
    const response = await stage.proxy(request, {
      caller: { user: user.name, arn: userArn(user.name) },
      waitUntil: track,
      body: method === 'GET' || method === 'HEAD' ? undefined : body,
    });
    await writeResponse(response, res);
  }

  /** Why `user` may not invoke a stage's admin function (undefined for admins): the one rule for both doors. */
  const denial = (user: LocalUser, stage: string): string | undefined =>
    user.admin
      ? undefined
      : `User ${userArn(user.name)} is not authorized to perform: lambda:InvokeFunction on ${adminFunctionName(stage)} (not an admin of the local stack)`;

  // The dashboard reads as the stack's first admin (normally `default`), whose keys sit in the same
  // credentials file as every other user's: whoever has the link printed at start may read usage.
  const dashboardToken = randomBytes(24).toString('base64url');
  const dashboardAdmin = () => users.find((u) => u.admin && u.name === 'default') ?? users.find((u) => u.admin);
  const dashboard = createDashboard({
    stages: Object.keys(stages),
    stage: Object.keys(stages)[0],
    token: dashboardToken,
    hosts: [host],
    identity: () => {
      const admin = dashboardAdmin();
      return admin ? `local admin "${admin.name}"` : 'no admin (none in the credentials file)';
    },
    async invoke(stageName: string, request: DashboardRequest): Promise<DashboardAnswer> {
      const admin = dashboardAdmin();
      if (!admin) {
        const message = `No user in ${creds.file} is an admin. Add one: openai-wrapi local users add NAME --admin`;
        return { ok: false, error: { kind: 'not_admin', message } };
      }
      const denied = denial(admin, stageName);
      if (denied) return { ok: false, error: { kind: 'not_admin', message: denied } };
      const result = await stages[stageName].admin(request);
      if (!result.ok) return { ok: false, error: { kind: 'refused', message: result.error.message, code: result.error.code } };
      return result;
    },
  });

  /** The Lambda Invoke API, enough of it for @aws-sdk/client-lambda to call the admin functions. */
  async function handleInvoke(req: IncomingMessage, res: ServerResponse, functionName: string): Promise<void> {
    const awsError = (status: number, type: string, message: string) =>
      sendJson(res, status, { Type: 'User', message }, { 'x-amzn-errortype': type });
    let body: Uint8Array;
    try {
      body = await readNodeBody(req, 6 * 1024 * 1024);
    } catch {
      return awsError(413, 'RequestTooLargeException', 'Request payload is too large');
    }
    const user = await authenticate(req, body);
    if (typeof user === 'string') return awsError(403, 'InvalidSignatureException', user);
    const stage = Object.values(stages).find((s) => adminFunctionName(s.stage) === functionName.split(':').pop());
    if (!stage) return awsError(404, 'ResourceNotFoundException', `Function not found: ${functionName}`);
    const denied = denial(user, stage.stage);
    if (denied) return awsError(403, 'AccessDeniedException', denied);
    let payload: unknown;
    try {
      payload = body.length ? JSON.parse(Buffer.from(body).toString('utf8')) : {};
    } catch {
      return awsError(400, 'InvalidRequestContentException', 'Could not parse request body into json');
    }
    sendJson(res, 200, await stage.admin(payload), { 'x-amz-executed-version': '$LATEST' });
  }

  const server: Server = createServer(async (req, res) => {
    try {
      const url = new URL(req.url ?? '/', 'http://local');
      const [, first, ...rest] = url.pathname.split('/');
      const invoke = /^\/2015-03-31\/functions\/([^/]+)\/invocations$/.exec(url.pathname);
      if (invoke && req.method === 'POST') {
        const name = safeDecode(invoke[1]);
        if (name === undefined) return sendError(res, notFound('Function not found: its name is not valid URL encoding.'));
        return await handleInvoke(req, res, name);
      }
      if (first === 'dashboard' && (await dashboard(req, res))) return;
      const stage = stages[first];
      if (stage) return await handleProxy(stage, req, res, `/${rest.join('/')}${url.search}`);
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

  const port = opts.port ?? Number(env.PORT ?? 8787);
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolveListen());
  });
  const url = `http://${host}:${(server.address() as AddressInfo).port}`;
  const outputsFile = join(home, 'outputs.json');
  await writeOutputs(outputsFile, url, region, creds.file, stages, opts.simulatedUpstream === true);

  return {
    url,
    dashboardUrl: `${url}${DASHBOARD_PATH}?token=${dashboardToken}`,
    home,
    outputsFile,
    credentialsFile: creds.file,
    stages,
    warnings,
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

/** Refusals of the local stack itself, in the same OpenAI envelope the core uses. */
function sendError(res: ServerResponse, err: WrapiError, headers: Record<string, string> = {}): void {
  sendJson(res, err.status, err.body(), { ...err.headers, ...headers });
}

/** The same output names the Pulumi stacks export, per stage, plus the local endpoint. */
async function writeOutputs(
  file: string,
  url: string,
  region: string,
  credentialsFile: string,
  stages: Record<string, StageRuntime>,
  simulated: boolean,
): Promise<void> {
  const outputs: Record<string, unknown> = {};
  for (const s of Object.values(stages)) {
    outputs[s.stage] = {
      proxyUrl: `${url}/${s.stage}/`,
      proxyFunctionName: `openai-proxy-${s.stage}`,
      adminFunctionName: adminFunctionName(s.stage),
      region,
      tableName: `openai-wrapi-${s.stage}`,
      cacheEndpoint: null,
      lambdaEndpoint: url,
      // The only keys this stack accepts: the SDK and CLI sign with them when they target it.
      credentialsFile,
      local: true,
      ...(simulated ? { simulatedUpstream: true } : {}),
    };
  }
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(outputs, null, 2) + '\n');
  await rename(tmp, file);
}

/** The client headers that change what a call is billed to. */
const BILLING_HEADERS = ['openai-proxy-project', 'openai-proxy-caching'];

function safeDecode(part: string): string | undefined {
  try {
    return decodeURIComponent(part);
  } catch {
    return undefined;
  }
}
