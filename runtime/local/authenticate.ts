// The gate in front of every local handler, doing what a function URL with AWS_IAM auth does:
// unsigned or badly signed requests never reach a handler.
import type { IncomingMessage } from 'node:http';
import { HEADER_CACHING, HEADER_PROJECT } from '../core/protocol.ts';
import type { LocalUser } from './credentials.ts';
import { flatHeaders } from './node-http.ts';
import { createVerifier } from './sigv4.ts';
import type { UserDirectory } from './users.ts';

/** The verified user, or why the request is refused (a 403's message). */
export type Authenticate = (req: IncomingMessage, body: Uint8Array) => Promise<LocalUser | string>;

/** The client headers that change what a call is billed to. */
const BILLING_HEADERS = [HEADER_PROJECT, HEADER_CACHING];

export function createAuthenticator(users: UserDirectory, region: string): Authenticate {
  const verify = createVerifier({ lookup: (accessKeyId) => users.find(accessKeyId), region });
  return async (req, body) => {
    const raw = req.url ?? '/';
    const q = raw.indexOf('?');
    const headers = flatHeaders(req);
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
  };
}
