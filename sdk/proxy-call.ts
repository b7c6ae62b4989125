// What turns an OpenAI request into a proxy request: our headers (project, caching) instead of the
// OpenAI key and account, then a fresh SigV4 signature. Shared by the client's `prepareRequest`,
// the register patch and the exported fetch.
import type { SignatureV4 } from '@smithy/signature-v4';
import { HEADER_CACHING, HEADER_PROJECT } from '../runtime/core/protocol.ts';
import { credentialsProvider, type CredentialOptions } from './credentials.ts';
import { createSigner, signRequest } from './sign.ts';
import type { StageTarget } from './target.ts';

export interface CallSettings {
  project: string;
  caching: boolean;
}

/** The mutable request the openai client hands to `prepareRequest` (its `FinalizedRequestInit`). */
export interface MutableRequest {
  method?: string;
  headers?: unknown;
  body?: unknown;
  duplex?: string;
}

/** Headers of the OpenAI account that must not reach the proxy (it uses the stage's own). */
const OPENAI_ACCOUNT_HEADERS = ['authorization', 'openai-organization', 'openai-project'];

/**
 * Sets the proxy headers (a header already on the request, e.g. a per-request
 * `openai-proxy-project`, wins over the settings) and signs. Mutates `request` in place.
 */
export async function prepareProxyRequest(signer: SignatureV4, request: MutableRequest, url: string, settings: CallSettings): Promise<void> {
  const headers = new Headers(request.headers as HeadersInit | undefined);
  for (const name of OPENAI_ACCOUNT_HEADERS) headers.delete(name);
  if (!headers.has(HEADER_PROJECT)) headers.set(HEADER_PROJECT, settings.project);
  if (!headers.has(HEADER_CACHING)) headers.set(HEADER_CACHING, settings.caching ? '1' : '0');
  const signed = await signRequest(signer, { method: request.method ?? 'GET', url, headers, body: request.body });
  request.headers = signed.headers;
  if (signed.body === undefined) delete request.body;
  else request.body = signed.body;
  // The body is bytes now, never a stream.
  delete request.duplex;
}

const KEY = Symbol.for('openai-wrapi.signers');
const signers: Map<string, SignatureV4> = ((globalThis as Record<symbol, unknown>)[KEY] as Map<string, SignatureV4>) ??
  ((globalThis as Record<symbol, unknown>)[KEY] = new Map<string, SignatureV4>());

/**
 * A signer for a stage with the standard chain (or a profile; for the local stack, its own
 * credentials file), shared by the whole process.
 */
export function sharedSigner(target: StageTarget, profile = process.env.AWS_PROFILE ?? ''): SignatureV4 {
  const key = `${target.region}\u0000${profile}\u0000${target.credentialsFile ?? ''}`;
  let signer = signers.get(key);
  if (!signer) {
    signer = createSigner(credentialsProvider({ ...(profile ? { profile } : {}), credentialsFile: target.credentialsFile }), target.region);
    signers.set(key, signer);
  }
  return signer;
}

/** A signer for explicit credential options, else the shared one. */
export function signerFor(target: StageTarget, opts: CredentialOptions): SignatureV4 {
  if (opts.credentials) return createSigner(credentialsProvider({ credentials: opts.credentials }), target.region);
  return sharedSigner(target, opts.profile);
}
