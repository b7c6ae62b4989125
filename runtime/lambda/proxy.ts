// Lambda entry point of the proxy: a streaming handler behind a function URL (AWS_IAM auth,
// RESPONSE_STREAM invoke mode). Everything heavy is built once per cold start.
import type { Writable } from 'node:stream';
import { DEPLOYED_ENV, type CallOutcome } from '../core/contract.ts';
import { badRequest, forbidden, toErrorResponse } from '../core/errors.ts';
import type { IdentityRules } from '../core/caller.ts';
import { createProxy, type Caller, type ProxyHandler, type ProxyRequest } from '../core/proxy.ts';
import { createPublicProxy } from '../core/public-access.ts';
import { matchRoute } from '../core/routes.ts';
import { createCallMetrics, type CallMetrics } from './call-metrics.ts';
import { bodyOf, callerOf, toRequest, type FunctionUrlEvent } from './function-url.ts';
import { startInvocation } from './logger.ts';
import { lambdaStores, lambdaLogger } from './stores.ts';
import { createHttpUpstream } from '../store/http-upstream.ts';
import { countTokens } from '../store/tokenizer.ts';
import { withCredentials } from './secrets.ts';
import { readProxySettings, type ProxySettings } from './settings.ts';
import type { ProxyConfig } from '../core/config.ts';

interface Instance {
  proxy: ProxyHandler;
  /** The public function's front (its environment names a public project); absent on the signed proxy. */
  publicFront?: ReturnType<typeof createPublicProxy>;
  /** Which roles' session names name a user: read once per instance, with the function's settings. */
  rules: IdentityRules;
  settings: ProxySettings;
  stores: ReturnType<typeof lambdaStores>;
  apiKey?: string;
}

/** After OpenAI refuses the key, an instance re-reads the secret at most this often. */
const KEY_RECHECK_MS = 60_000;

/** The event as the core takes it, or the 400 of an unreadable one. */
function readEvent(event: FunctionUrlEvent): { req: ProxyRequest; body?: Uint8Array } | Response {
  try {
    return { req: toRequest(event), body: bodyOf(event) };
  } catch {
    return toErrorResponse(badRequest('The request could not be read.'));
  }
}

async function serve(event: FunctionUrlEvent, caller: Caller, proxy: ProxyHandler, pending: Promise<unknown>[]): Promise<Response> {
  const read = readEvent(event);
  if (read instanceof Response) return read;
  return proxy(read.req, { caller, body: read.body, waitUntil: (p) => pending.push(p) });
}

/** The public function: no identity to verify; the front bills the configured project per source address. */
async function servePublic(event: FunctionUrlEvent, front: NonNullable<Instance['publicFront']>, pending: Promise<unknown>[]): Promise<Response> {
  const read = readEvent(event);
  if (read instanceof Response) return read;
  return front({ ...read, sourceIp: event.requestContext.http.sourceIp ?? '', waitUntil: (p) => pending.push(p) });
}

/**
 * Writes the answer's body to the response stream, waiting for 'drain' so a slow client slows the
 * producer. If the client goes away (the stream is destroyed or fails: before the first byte, while
 * waiting for drain, or on a write) the body is cancelled, which makes the proxy read OpenAI's answer
 * to its end, unsent, and settle the call from its usage. Not `pipeline`: the runtime hands the
 * handler a view of its stream, not the stream, and on a view destroyed before it starts `pipeline`
 * waits forever for a 'close' that was already emitted, never cancelling the body.
 */
async function writeBody(body: ReadableStream<Uint8Array>, out: Writable, onFirstByte: () => void): Promise<void> {
  const reader = body.getReader();
  let gone = false;
  const leave = () => {
    if (gone) return;
    gone = true;
    reader.cancel().catch(() => undefined);
  };
  const onGone = () => {
    if (!out.writableFinished) leave();
  };
  // Listen first, then look: a close emitted before this function ran is seen by `left()`.
  out.on('close', onGone);
  out.on('error', onGone);
  const left = () => gone || out.destroyed === true;
  let first = true;
  try {
    if (left()) return leave();
    for (;;) {
      const { value, done } = await reader.read();
      if (done || gone) break;
      if (left()) return leave();
      if (first) {
        first = false;
        onFirstByte();
      }
      // A failed write means the client left too.
      if (!out.write(value, (err?: Error | null) => err && leave())) {
        await new Promise<void>((resolve) => {
          const go = () => {
            out.off('drain', go);
            out.off('close', go);
            out.off('error', go);
            resolve();
          };
          out.on('drain', go);
          out.on('close', go);
          out.on('error', go);
          if (left()) go();
        });
        if (left()) return leave();
      }
    }
    if (gone) return;
    // Finished (or failed: the client left after the last byte, nothing to cancel) before the handler returns.
    await new Promise<void>((resolve) => out.end(() => resolve()));
  } catch (err) {
    // The body failed (not cancelled by us): cut the response so the client does not take it as whole.
    if (!gone) out.destroy(err instanceof Error ? err : new Error('the answer failed'));
  } finally {
    // The 'error' listener stays: an error after this (the runtime's request failing late) is no crash.
    out.off('close', onGone);
  }
}

/**
 * The streaming handler, with its instance (built on the first call) and the metrics it publishes
 * through. One per function instance; `metrics` is a parameter so that a bench can compare it with
 * a stand-in that publishes nothing.
 */
export function createProxyHandler(metrics: CallMetrics) {
  let instance: Promise<Instance> | undefined;
  let recheck: Promise<void> | undefined;
  let lastRecheck = 0;

  async function build(): Promise<Instance> {
    const settings = readProxySettings(process.env);
    const credentials = await withCredentials(settings);
    if (credentials.notDeployed) {
      lambdaLogger.info('the secret\'s current version is not the one deployed with this function: rotated outside pulumi up?', {
        versionId: credentials.versionId,
      });
    }
    return assemble(settings, lambdaStores(settings.stores), credentials.config);
  }

  function assemble(settings: ProxySettings, stores: Instance['stores'], config: ProxyConfig): Instance {
    const proxy = createProxy({
      config, ledger: stores.ledger, cache: stores.cache, upstream: metrics.timed(createHttpUpstream()), countTokens, log: metrics.logger, onKeyRejected,
    });
    // The function URL's own CORS configuration answers preflights and adds the CORS headers.
    const publicFront = settings.publicAccess && createPublicProxy(proxy, settings.publicAccess, { cors: false });
    return { proxy, publicFront, rules: settings.identity, settings, stores, apiKey: config.apiKey };
  }

  /**
   * OpenAI refused the key this instance holds. A key rotated by `pulumi up` never gets here (the new
   * version id replaces the instances); one rotated in Secrets Manager directly does: read the
   * current version and, if it holds another key, serve the next calls with it.
   */
  function onKeyRejected(): void {
    const built = instance;
    if (!built || recheck || Date.now() - lastRecheck < KEY_RECHECK_MS) return;
    lastRecheck = Date.now();
    recheck = (async () => {
      const old = await built;
      const { config, versionId } = await withCredentials(old.settings);
      if (config.apiKey && config.apiKey !== old.apiKey && instance === built) {
        instance = Promise.resolve(assemble(old.settings, old.stores, config));
        lambdaLogger.info('OpenAI rejected the stage key; the secret holds another one now, used from the next call', { versionId });
      }
    })()
      .catch((err) => lambdaLogger.error('could not re-read the secret', { error: err instanceof Error ? err.name : 'unknown' }))
      .finally(() => (recheck = undefined));
  }

  /** The instance, built on the first call; a failed cold start answers an error and is retried next time. */
  async function ready(): Promise<Instance | Response> {
    try {
      return await (instance ??= build());
    } catch (err) {
      instance = undefined;
      lambdaLogger.error('cold start failed', { error: err instanceof Error ? err.name : 'unknown' });
      return toErrorResponse(err);
    }
  }

  // Not wrapped in any middleware: the runtime recognises a streaming handler by a mark that
  // streamifyResponse puts on this very function. Metrics are published at the end of it instead.
  return awslambda.streamifyResponse<FunctionUrlEvent>(async (event, responseStream, context) => {
    startInvocation(context);
    const record = metrics.begin();
    const pending: Promise<unknown>[] = [];
    let res: Response;
    let outcome: CallOutcome | undefined;
    const built = await ready();
    const caller = built instanceof Response || built.publicFront ? undefined : callerOf(event, built.rules);
    if (built instanceof Response) {
      res = built;
      outcome = 'proxy_error';
    } else if (built.publicFront) res = await servePublic(event, built.publicFront, pending);
    else if (caller) res = await serve(event, caller, built.proxy, pending);
    // Only reachable if the URL were deployed without AWS_IAM auth: never serve anonymous callers.
    else {
      res = toErrorResponse(forbidden('The proxy only serves callers verified by AWS IAM (SigV4).', 'unsigned_request'));
      outcome = 'refused_membership';
    }
    const out = awslambda.HttpResponseStream.from(responseStream, {
      statusCode: res.status,
      headers: Object.fromEntries(res.headers),
    });
    // The runtime sends that prelude on the first write() only, never on end(): without this, an empty
    // body (null, or a stream with no bytes) would reach the client as a 200 without our headers.
    // https://github.com/aws/aws-lambda-nodejs-runtime-interface-client/issues/97
    out.write(new Uint8Array(0));
    if (res.body) await writeBody(res.body, out, () => metrics.firstByte(record));
    else out.end();
    metrics.firstByte(record); // no body byte: the end of the answer was the first the caller saw
    // Lambda freezes the instance once the handler returns: settle before that. Work may add work (a
    // stream the client left is read to its end, then settled), so wait until none is left.
    while (pending.length > 0) await Promise.allSettled(pending.splice(0));
    await recheck; // a secret re-read started by this call, before Lambda freezes the instance
    const route = matchRoute(event.requestContext.http.method, event.rawPath)?.kind ?? 'unknown';
    metrics.publish(record, { route, status: res.status, outcome });
  });
}

/** One metrics publisher per function instance, not per build: a failed cold start is counted too. */
export const handler = createProxyHandler(createCallMetrics({ stage: process.env[DEPLOYED_ENV.stage] ?? 'unknown', log: lambdaLogger }));
