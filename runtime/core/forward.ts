// The hop to OpenAI: which headers go up and come back, the key, and the timeout.
import { badGateway, WrapiError } from './errors.ts';
import type { ProxyConfig } from './config.ts';
import type { Upstream } from './ports.ts';

/** Client headers worth passing on; everything else (auth, AWS signature, our own) stays here. */
const FORWARDED_REQUEST_HEADERS = ['accept', 'openai-beta', 'idempotency-key'];

/** Upstream headers that must not reach the client: they name our account or describe framing. */
const DROPPED_RESPONSE_HEADERS = new Set([
  'openai-organization',
  'openai-project',
  'set-cookie',
  'content-length',
  'content-encoding',
  'transfer-encoding',
  'connection',
  'keep-alive',
]);

export interface ForwardInit {
  method: string;
  path: string;
  search: string;
  clientHeaders: Headers;
  body?: string | Uint8Array;
  /** Aborts the upstream call: client gone or timeout. */
  signal: AbortSignal;
}

export function upstreamHeaders(config: ProxyConfig, client: Headers, hasBody: boolean): Headers {
  const headers = new Headers();
  for (const name of FORWARDED_REQUEST_HEADERS) {
    const value = client.get(name);
    if (value) headers.set(name, value);
  }
  if (hasBody) headers.set('content-type', 'application/json');
  // Answers are small and the hop is short: decompressing costs more time than the bytes saved.
  headers.set('accept-encoding', 'identity');
  if (config.apiKey) headers.set('authorization', `Bearer ${config.apiKey}`);
  if (config.orgId) headers.set('openai-organization', config.orgId);
  return headers;
}

/** Calls the upstream. Rejects with the fetch error; see `gatewayError` and `mayHaveReached`. */
export function forward(upstream: Upstream, config: ProxyConfig, init: ForwardInit): Promise<Response> {
  return upstream(`${config.upstreamUrl}${init.path}${upstreamSearch(init.search)}`, {
    method: init.method,
    headers: upstreamHeaders(config, init.clientHeaders, init.body !== undefined),
    body: init.body as BodyInit | undefined,
    signal: init.signal,
  });
}

/**
 * The query without the caller's AWS signature parameters (`X-Amz-*` of a presigned URL): they are a
 * credential to this proxy, never something to hand to OpenAI.
 */
export function upstreamSearch(search: string): string {
  if (!/x-amz-/i.test(search)) return search;
  const params = new URLSearchParams(search);
  for (const name of [...params.keys()]) if (/^x-amz-/i.test(name)) params.delete(name);
  const rest = params.toString();
  return rest ? `?${rest}` : '';
}

export function gatewayError(err: unknown) {
  return isTimeout(err)
    ? badGateway('The upstream OpenAI API did not answer in time.', 504)
    : badGateway('The proxy could not reach the upstream OpenAI API.');
}

/** An answer that started and then broke off (or timed out) before it was complete. */
export function interruptedError(err: unknown) {
  return isTimeout(err)
    ? badGateway('The upstream OpenAI API did not finish its answer in time.', 504)
    : new WrapiError(502, 'The upstream OpenAI API answer broke off before it was complete.', 'server_error', 'upstream_interrupted');
}

/** Failures that happen before a request can leave: nothing reached OpenAI, nothing was billed. */
const NEVER_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ERR_INVALID_URL']);

/**
 * A failure after which OpenAI may have received (and billed) the request: everything except a
 * connection that could not be made. A reset or timeout after the request went out may follow a
 * complete run at OpenAI.
 */
export function mayHaveReached(err: unknown): boolean {
  const code = (err as { code?: string; cause?: { code?: string } } | null)?.code ?? (err as { cause?: { code?: string } } | null)?.cause?.code;
  return !(code && NEVER_SENT.has(code));
}

/** The proxy's deadline for one upstream call: its signal, and `clear` for when the call has ended. */
export interface CallDeadline {
  signal: AbortSignal;
  clear(): void;
}

/**
 * A deadline given back when its call ends. AbortSignal.timeout would do without `clear`, but it
 * leaves a weakly held timer behind every call for the whole deadline, which the GC pays for:
 * 10–15 µs a call more, measured with the upstream transport on loopback.
 */
export function callDeadline(ms: number): CallDeadline {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DOMException('The upstream call passed its deadline.', 'TimeoutError')), ms);
  timer.unref();
  return { signal: controller.signal, clear: () => clearTimeout(timer) };
}

export function isTimeout(err: unknown): boolean {
  return err instanceof Error && err.name === 'TimeoutError';
}

export function clientResponseHeaders(upstream: Headers): Headers {
  const headers = new Headers();
  upstream.forEach((value, name) => {
    if (!DROPPED_RESPONSE_HEADERS.has(name)) headers.set(name, value);
  });
  return headers;
}
