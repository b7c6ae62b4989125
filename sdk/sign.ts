// A `fetch` that signs every request with SigV4 (service `lambda`), as function URLs with AWS_IAM
// auth require. Pass it to any client that accepts a custom fetch.
import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';

export interface SignedFetchOptions {
  /** Static credentials or a provider (e.g. the AWS SDK's default chain). */
  credentials: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  region: string;
  /** The fetch that sends the signed request. Default: global fetch. */
  fetch?: typeof fetch;
}

/** Headers that must not be signed or sent: the openai client's bearer token means nothing here. */
const DROPPED = ['authorization', 'x-amz-date', 'x-amz-security-token', 'x-amz-content-sha256', 'host', 'content-length'];

export function signedFetch(opts: SignedFetchOptions): typeof fetch {
  const signer = new SignatureV4({ credentials: opts.credentials, region: opts.region, service: 'lambda', sha256: Sha256 });
  const send = opts.fetch ?? fetch;
  return async (input, init) => {
    const request = input instanceof Request ? input : undefined;
    const url = new URL(request ? request.url : String(input));
    const method = (init?.method ?? request?.method ?? 'GET').toUpperCase();
    const headers = new Headers(init?.headers ?? request?.headers);
    for (const name of DROPPED) headers.delete(name);
    const body = await replayableBody(init?.body ?? (request && method !== 'GET' ? await request.arrayBuffer() : undefined));
    const query: Record<string, string> = {};
    url.searchParams.forEach((value, key) => (query[key] = value));
    const signed = await signer.sign({
      method,
      protocol: url.protocol,
      hostname: url.hostname,
      port: url.port ? Number(url.port) : undefined,
      path: url.pathname,
      query,
      headers: { ...Object.fromEntries(headers), host: url.host },
      body,
    });
    const out = new Headers(signed.headers as Record<string, string>);
    out.delete('host');
    // Send the query exactly as signed (spaces as %20, not the `+` that URLSearchParams writes).
    url.search = Object.keys(query).length
      ? '?' + Object.entries(query).map(([k, v]) => `${encodeRfc3986(k)}=${encodeRfc3986(v)}`).join('&')
      : '';
    return send(url.toString(), { ...init, method, headers: out, body: body as BodyInit | undefined });
  };
}

/** A signature covers the body, so it must be bytes we can hash and then send: no streams. */
async function replayableBody(body: BodyInit | null | undefined): Promise<string | Uint8Array | undefined> {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string') return body;
  if (body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  if (body instanceof URLSearchParams) return body.toString();
  if (body instanceof Blob) return new Uint8Array(await body.arrayBuffer());
  // FormData and streams: let the platform serialise them once, then sign those bytes.
  return new Uint8Array(await new Response(body as BodyInit).arrayBuffer());
}

const encodeRfc3986 = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
