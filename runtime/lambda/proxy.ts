// Lambda entry point of the proxy: a streaming handler behind a function URL (AWS_IAM auth,
// RESPONSE_STREAM invoke mode). Everything heavy is built once per cold start.
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { badRequest, forbidden, toErrorResponse } from '../core/errors.ts';
import { createProxy, type Caller, type ProxyHandler } from '../core/proxy.ts';
import { bodyOf, callerOf, toRequest, type FunctionUrlEvent } from './function-url.ts';
import { identityRules } from '../core/caller.ts';
import { lambdaStores, lambdaLogger } from './stores.ts';
import { readProxyConfig } from '../core/config.ts';
import { createHttpUpstream } from '../store/http-upstream.ts';
import { countTokens } from '../store/tokenizer.ts';
import { loadSecrets } from './secrets.ts';

let proxy: Promise<ProxyHandler> | undefined;
/** Which roles' session names name a user: read once per instance, with the function's settings. */
const rules = identityRules(process.env);

async function build(): Promise<ProxyHandler> {
  const env = { ...process.env, ...(await loadSecrets(process.env)) };
  const config = readProxyConfig(env, env.OPENAI_WRAPI_STAGE ?? 'dev');
  const { ledger, cache } = lambdaStores(env);
  return createProxy({ config, ledger, cache, upstream: createHttpUpstream(), countTokens, log: lambdaLogger });
}

async function serve(event: FunctionUrlEvent, caller: Caller, pending: Promise<unknown>[]): Promise<Response> {
  let ready: ProxyHandler;
  try {
    ready = await (proxy ??= build());
  } catch (err) {
    proxy = undefined; // let the next invocation retry a failed cold start
    lambdaLogger.error('cold start failed', { error: err instanceof Error ? err.name : 'unknown' });
    return toErrorResponse(err);
  }
  let req: Request;
  let body: Uint8Array | undefined;
  try {
    req = toRequest(event);
    body = bodyOf(event);
  } catch {
    return toErrorResponse(badRequest('The request could not be read.'));
  }
  return ready(req, { caller, body, waitUntil: (p) => pending.push(p) });
}

export const handler = awslambda.streamifyResponse<FunctionUrlEvent>(async (event, responseStream) => {
  const pending: Promise<unknown>[] = [];
  let res: Response;
  const caller = callerOf(event, rules);
  if (!caller) {
    // Only reachable if the URL were deployed without AWS_IAM auth: never serve anonymous callers.
    res = toErrorResponse(forbidden('The proxy only serves callers verified by AWS IAM (SigV4).', 'unsigned_request'));
  } else {
    res = await serve(event, caller, pending);
  }
  const out = awslambda.HttpResponseStream.from(responseStream, {
    statusCode: res.status,
    headers: Object.fromEntries(res.headers),
  });
  // The runtime sends that prelude on the first write() only, never on end(): without this, an empty
  // body (null, or a stream with no bytes) would reach the client as a 200 without our headers.
  // https://github.com/aws/aws-lambda-nodejs-runtime-interface-client/issues/97
  out.write(new Uint8Array(0));
  try {
    if (res.body) await pipeline(Readable.fromWeb(res.body as NodeReadableStream<Uint8Array>), out);
    else out.end();
  } catch {
    // The client went away mid-stream; the proxy's cancel path already settled an estimate.
  }
  // Lambda freezes the instance once the handler returns: settle before that. Work may add work (a
  // stream the client left is read to its end, then settled), so wait until none is left.
  while (pending.length > 0) await Promise.allSettled(pending.splice(0));
});
