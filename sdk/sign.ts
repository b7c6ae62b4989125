// SigV4 (service `lambda`), as function URLs with AWS_IAM auth require: the signing step shared by
// the OpenAI client hook, the register patch and the exported fetch, plus `signedFetch`, a fetch
// that signs whatever it sends.
import { SignatureV4 } from '@smithy/signature-v4';
import { sendCorrectingSkew, signingDate } from './clock.ts';
import { credentialsProvider, NodeSha256, type AwsCredentials, type CredentialsProvider } from './credentials.ts';

export interface SignedFetchOptions {
  /** Static credentials or a provider (e.g. the AWS SDK's default chain). */
  credentials: AwsCredentials | CredentialsProvider;
  region: string;
  /** The fetch that sends the signed request. Default: global fetch. */
  fetch?: typeof fetch;
}

export interface RequestToSign {
  method: string;
  url: string;
  headers: Headers;
  body?: unknown;
}

export interface SignedParts {
  /** The headers to send (without `host`, which fetch sets from the URL). */
  headers: Headers;
  /** The body exactly as signed: send this, not the original (streams and forms are read once). */
  body?: string | Uint8Array;
}

/**
 * Headers never signed: a stale signature, what fetch sets itself, and the openai client's bearer
 * token, which means nothing to the proxy and must not travel.
 */
const UNSIGNED = ['authorization', 'x-amz-date', 'x-amz-security-token', 'x-amz-content-sha256', 'host', 'content-length'];

export function createSigner(credentials: AwsCredentials | CredentialsProvider, region: string): SignatureV4 {
  return new SignatureV4({ credentials: credentialsProvider({ credentials }), region, service: 'lambda', sha256: NodeSha256 });
}

/** Signs one request. Call it again for every attempt: a signature carries its time. */
export async function signRequest(signer: SignatureV4, req: RequestToSign): Promise<SignedParts> {
  const url = new URL(req.url);
  const headers = new Headers(req.headers);
  for (const name of UNSIGNED) headers.delete(name);
  const body = await replayableBody(req.body, headers);
  const query = queryOf(url.search);
  const signed = await signer.sign({
    method: req.method.toUpperCase(),
    protocol: url.protocol,
    hostname: url.hostname,
    port: url.port ? Number(url.port) : undefined,
    path: url.pathname,
    query,
    headers: { ...Object.fromEntries(headers), host: url.host },
    body,
  }, { signingDate: signingDate(url.host) });
  const out = new Headers(signed.headers as Record<string, string>);
  out.delete('host');
  return { headers: out, body };
}

/** A fetch that signs every request it sends with SigV4 (service `lambda`). */
export function signedFetch(opts: SignedFetchOptions): typeof fetch {
  const signer = createSigner(opts.credentials, opts.region);
  const send = opts.fetch ?? ((input, init) => fetch(input, init));
  return async (input, init) => {
    const request = input instanceof Request ? input : undefined;
    const url = new URL(request ? request.url : String(input));
    // Send the query exactly as signed (spaces as %20, not the `+` that URLSearchParams writes).
    url.search = canonicalSearch(url);
    const method = (init?.method ?? request?.method ?? 'GET').toUpperCase();
    const raw = init?.body ?? (request && method !== 'GET' && method !== 'HEAD' ? request.body : undefined);
    const signed = await signRequest(signer, { method, url: url.href, headers: new Headers(init?.headers ?? request?.headers), body: raw });
    const { duplex: _duplex, ...rest } = (init ?? {}) as RequestInit & { duplex?: string };
    return sendSigned(signer, send, url.toString(), {
      ...rest,
      method,
      headers: signed.headers,
      body: signed.body as BodyInit | undefined,
      signal: init?.signal ?? request?.signal,
    });
  };
}

/**
 * Sends a request signed by {@link signRequest} (its body bytes). When the server refuses the
 * signature's time, signs it once more with the clock corrected by the server's `Date` and resends.
 */
export function sendSigned(
  signer: SignatureV4,
  send: (url: string, init: RequestInit) => Promise<Response>,
  url: string,
  init: RequestInit,
): Promise<Response> {
  return sendCorrectingSkew(url, async (retry) => {
    if (!retry) return send(url, init);
    const method = init.method ?? 'GET';
    const signed = await signRequest(signer, { method, url, headers: new Headers(init.headers), body: init.body ?? undefined });
    return send(url, { ...init, headers: signed.headers, body: signed.body as BodyInit | undefined });
  });
}

/** The query as AWS reads it: `+` is a plus, not a space. */
function queryOf(search: string): Record<string, string | string[]> {
  const query: Record<string, string | string[]> = {};
  for (const part of search.replace(/^\?/, '').split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const key = decode(eq < 0 ? part : part.slice(0, eq));
    const value = eq < 0 ? '' : decode(part.slice(eq + 1));
    const seen = query[key];
    query[key] = seen === undefined ? value : [...(Array.isArray(seen) ? seen : [seen]), value];
  }
  return query;
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

export function canonicalSearch(url: URL): string {
  const pairs: string[] = [];
  url.searchParams.forEach((v, k) => pairs.push(`${encodeRfc3986(k)}=${encodeRfc3986(v)}`));
  return pairs.length ? `?${pairs.join('&')}` : '';
}

/**
 * A signature covers the body, so it must be bytes we can hash and then send. Forms, blobs and
 * streams are serialised once here; a form's content type carries the boundary of these bytes.
 */
async function replayableBody(body: unknown, headers: Headers): Promise<string | Uint8Array | undefined> {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string') return body;
  if (body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  // Streams and async generators (openai wraps a generator body in a ReadableStream) may yield
  // strings or buffers, which `new Response(stream)` refuses: read them chunk by chunk.
  if (isAsyncIterable(body)) {
    const chunks: Uint8Array[] = [];
    for await (const chunk of body) chunks.push(bytesOf(chunk));
    return new Uint8Array(Buffer.concat(chunks));
  }
  const res = new Response(body as BodyInit);
  const bytes = new Uint8Array(await res.arrayBuffer());
  const type = res.headers.get('content-type');
  if (type && (body instanceof FormData || !headers.has('content-type'))) headers.set('content-type', type);
  return bytes;
}

const isAsyncIterable = (v: unknown): v is AsyncIterable<unknown> =>
  typeof v === 'object' && v !== null && Symbol.asyncIterator in v;

function bytesOf(chunk: unknown): Uint8Array {
  if (typeof chunk === 'string') return new TextEncoder().encode(chunk);
  if (chunk instanceof Uint8Array) return chunk;
  if (chunk instanceof ArrayBuffer) return new Uint8Array(chunk);
  if (ArrayBuffer.isView(chunk)) return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw new TypeError(`A request body stream may yield strings or bytes, not ${chunk === null ? 'null' : typeof chunk}.`);
}

const encodeRfc3986 = (s: string) =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
