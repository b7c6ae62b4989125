/**
 * SigV4 verification for the local stack, doing what a Lambda function URL with `AWS_IAM` auth
 * does before our handler ever runs.
 *
 * Written on node:crypto rather than on @smithy/signature-v4: smithy is a *signer* — it picks
 * which headers to sign itself (skipping user-agent, x-amzn-trace-id, … and adding
 * x-amz-content-sha256), while a verifier must use exactly the client's SignedHeaders list. It is
 * also asynchronous and pure JS, and this runs on every request. The tests use smithy as the
 * independent signer, and the AWS documentation's example vectors.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { LocalUser } from './credentials.ts';

export interface SignedRequestParts {
  method: string;
  /** Raw path as sent, e.g. `/dev/v1/chat/completions`. */
  path: string;
  /** Raw query string without `?`. */
  query: string;
  /** Lowercase header names. */
  headers: Record<string, string>;
  body: Uint8Array;
}

export type VerifyResult =
  /** `signedHeaders`: the lower-case names the signature covers. */
  | { ok: true; user: LocalUser; signedHeaders: string[] }
  | { ok: false; status: 403; message: string };

export interface VerifierOptions {
  /** The user a signature's access key id names; asked only once the request is well formed. */
  lookup(accessKeyId: string): LocalUser | undefined | Promise<LocalUser | undefined>;
  region: string;
  /** The service a signature must be scoped to: `lambda` (function URLs, Invoke); a test's fake AWS API names its own. */
  service?: string;
  /** Allowed clock difference; 15 minutes by default. */
  maxSkewMs?: number;
  now?: () => number;
}

/** Everything that goes into a signature; `computeSignature` is exported for golden vectors. */
export interface SignatureInput {
  method: string;
  path: string;
  query: string;
  headers: Record<string, string>;
  signedHeaders: string;
  payloadHash: string;
  amzDate: string;
  region: string;
  service: string;
  secretAccessKey: string;
  omitQueryParam?: string;
}

const ALGORITHM = 'AWS4-HMAC-SHA256';
/** A presigned URL is a credential anyone holding it can replay: short-lived only. */
const MAX_PRESIGN_EXPIRES_S = 15 * 60;

export function createVerifier(opts: VerifierOptions): (req: SignedRequestParts) => Promise<VerifyResult> {
  const service = opts.service ?? 'lambda';
  const maxSkewMs = opts.maxSkewMs ?? 15 * 60_000;
  const now = opts.now ?? Date.now;
  const deny = (message: string): VerifyResult => ({ ok: false, status: 403, message });

  return async (req: SignedRequestParts): Promise<VerifyResult> => {
    const auth = readAuth(req);
    if (typeof auth === 'string') return deny(auth);
    const { credential, signedHeaders, signature, amzDate, expiresS } = auth;

    const [accessKeyId, scopeDate, region, scopeService, terminator, extra] = credential.split('/');
    if (terminator !== 'aws4_request' || extra !== undefined) {
      return deny('Credential must have the form <key>/<YYYYMMDD>/<region>/<service>/aws4_request');
    }
    const user = await opts.lookup(accessKeyId);
    if (!user) return deny('The security token included in the request is invalid');

    const signedAt = parseAmzDate(amzDate);
    if (signedAt === undefined) return deny('X-Amz-Date must have the form YYYYMMDDTHHMMSSZ');
    if (scopeDate !== amzDate.slice(0, 8)) return deny('Credential scope date does not match X-Amz-Date');
    if (region !== opts.region) return deny(`Credential should be scoped to region '${opts.region}'`);
    if (scopeService !== service) return deny(`Credential should be scoped to correct service: '${service}'`);

    const t = now();
    if (signedAt > t + maxSkewMs) return deny('Signature not yet current');
    const validUntil = expiresS === undefined ? signedAt + maxSkewMs : signedAt + expiresS * 1000;
    if (t > validUntil) return deny('Signature expired');

    if (!signedHeaders.split(';').includes('host')) return deny("'Host' must be a signed header");

    // The payload is always hashed: a client's x-amz-content-sha256 claim must match the body.
    const payloadHash = createHash('sha256').update(req.body).digest('hex');
    const claimed = req.headers['x-amz-content-sha256'];
    if (claimed !== undefined && claimed !== payloadHash) {
      return deny('The x-amz-content-sha256 header does not match the request body');
    }

    const expected = computeSignature({
      method: req.method,
      path: req.path,
      query: req.query,
      headers: req.headers,
      // Presigned URLs sign their query minus the signature itself.
      omitQueryParam: expiresS === undefined ? undefined : 'X-Amz-Signature',
      signedHeaders,
      payloadHash,
      amzDate,
      region,
      service,
      secretAccessKey: user.secretAccessKey,
    });
    const given = Buffer.from(signature.toLowerCase());
    const ok = given.length === 64 && timingSafeEqual(given, Buffer.from(expected));
    return ok ? { ok: true, user, signedHeaders: signedHeaders.toLowerCase().split(';') } : deny('The request signature does not match');
  };
}

interface AuthParams {
  credential: string;
  signedHeaders: string;
  signature: string;
  amzDate: string;
  /** Only for presigned (query-string) auth: X-Amz-Expires. */
  expiresS?: number;
}

/** Reads the Authorization header, or presigned query parameters; a string is the error. */
function readAuth(req: SignedRequestParts): AuthParams | string {
  const header = req.headers['authorization'];
  const query = /(?:^|&)X-Amz-Algorithm=/.test(req.query) ? queryParams(req.query) : undefined;
  if (header !== undefined && query) return 'Only one auth mechanism allowed';

  if (query) {
    const get = (k: string) => query.find(([name]) => name === k)?.[1];
    if (get('X-Amz-Algorithm') !== ALGORITHM) return `Unsupported algorithm: use ${ALGORITHM}`;
    const [credential, signedHeaders, signature, amzDate, expires] = [
      'X-Amz-Credential', 'X-Amz-SignedHeaders', 'X-Amz-Signature', 'X-Amz-Date', 'X-Amz-Expires',
    ].map(get);
    if (!credential || !signedHeaders || !signature || !amzDate || !expires) {
      return 'Presigned URL requires X-Amz-Credential, X-Amz-SignedHeaders, X-Amz-Signature, X-Amz-Date and X-Amz-Expires';
    }
    const expiresS = /^\d{1,7}$/.test(expires) ? Number(expires) : NaN;
    if (!(expiresS >= 1 && expiresS <= MAX_PRESIGN_EXPIRES_S)) {
      return `X-Amz-Expires must be between 1 and ${MAX_PRESIGN_EXPIRES_S} seconds`;
    }
    return { credential, signedHeaders, signature, amzDate, expiresS };
  }

  if (!header) return 'Missing Authentication Token';
  const space = header.indexOf(' ');
  if (space < 0 || header.slice(0, space) !== ALGORITHM) return `Unsupported algorithm: use ${ALGORITHM}`;
  const params = new Map<string, string>();
  for (const part of header.slice(space + 1).split(',')) {
    const eq = part.indexOf('=');
    if (eq > 0) params.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const [credential, signedHeaders, signature] = ['Credential', 'SignedHeaders', 'Signature'].map((k) => params.get(k));
  if (!credential || !signedHeaders || !signature) {
    return "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters";
  }
  const amzDate = req.headers['x-amz-date'];
  if (!amzDate) return 'Missing X-Amz-Date header';
  return { credential, signedHeaders, signature, amzDate };
}

export function computeSignature(i: SignatureInput): string {
  const names = i.signedHeaders.split(';');
  const canonicalRequest = [
    i.method.toUpperCase(),
    canonicalPath(i.path),
    canonicalQuery(i.query, i.omitQueryParam),
    // A signed header that is absent counts as empty (own keys only: `constructor` is no header).
    ...names.map((n) => `${n}:${canonicalHeaderValue(Object.hasOwn(i.headers, n) ? i.headers[n] : '')}`),
    '',
    i.signedHeaders,
    i.payloadHash,
  ].join('\n');
  const scope = `${i.amzDate.slice(0, 8)}/${i.region}/${i.service}/aws4_request`;
  const stringToSign = [ALGORITHM, i.amzDate, scope, createHash('sha256').update(canonicalRequest).digest('hex')].join('\n');
  const key = signingKey(i.secretAccessKey, i.amzDate.slice(0, 8), i.region, i.service);
  return createHmac('sha256', key).update(stringToSign).digest('hex');
}

/**
 * Derived keys change once a day per user: caching them saves four HMACs per request. FIFO-bounded
 * so that a flood of made-up dates cannot grow it (a key is only derived for a known user anyway).
 */
const keyCache = new Map<string, Buffer>();
const KEY_CACHE_MAX = 1000;

function signingKey(secret: string, date: string, region: string, service: string): Buffer {
  const cacheKey = `${date}\n${region}\n${service}\n${secret}`;
  let key = keyCache.get(cacheKey);
  if (!key) {
    key = [date, region, service, 'aws4_request'].reduce<Buffer>(
      (k, part) => createHmac('sha256', k).update(part).digest(),
      Buffer.from(`AWS4${secret}`),
    );
    if (keyCache.size >= KEY_CACHE_MAX) keyCache.delete(keyCache.keys().next().value!);
    keyCache.set(cacheKey, key);
  }
  return key;
}

/**
 * Non-S3 services normalise the path (empty, `.` and `..` segments) and URI-encode the path as
 * sent once more, so `%20` on the wire becomes `%2520` — the same as the AWS SDK's signer.
 */
function canonicalPath(raw: string): string {
  const segments: string[] = [];
  for (const s of raw.split('/')) {
    if (s === '' || s === '.') continue;
    if (s === '..') segments.pop();
    else segments.push(s);
  }
  const trailing = segments.length > 0 && raw.endsWith('/') ? '/' : '';
  return '/' + segments.map(uriEncode).join('/') + trailing;
}

/**
 * Decode each name and value, re-encode them strictly (RFC 3986), sort by name then value.
 * A literal `+` is a plus, not a space, as AWS reads it: clients must send spaces as `%20`.
 */
function canonicalQuery(raw: string, omit?: string): string {
  return queryParams(raw)
    .filter(([k]) => k !== omit)
    .map(([k, v]) => [uriEncode(k), uriEncode(v)])
    .sort(([ak, av], [bk, bv]) => (ak < bk ? -1 : ak > bk ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

function queryParams(raw: string): [string, string][] {
  return raw
    .split('&')
    .filter((p) => p !== '')
    .map((p) => {
      const eq = p.indexOf('=');
      return eq < 0 ? [decode(p), ''] : [decode(p.slice(0, eq)), decode(p.slice(eq + 1))];
    });
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s; // malformed escapes: sign the text as it is (its `%` is then encoded)
  }
}

/** encodeURIComponent leaves `!'()*` alone; SigV4 wants only A-Z a-z 0-9 - _ . ~ unescaped. */
function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** Line breaks and runs of spaces/tabs fold to one space, then trim (as the AWS SDK's signer). */
function canonicalHeaderValue(v: string): string {
  return v.replace(/[\r\n]/g, ' ').replace(/[ \t]+/g, ' ').replace(/^ | $/g, '');
}

function parseAmzDate(s: string): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (!m) return undefined;
  const [y, mo, d, h, mi, se] = m.slice(1).map(Number);
  const t = Date.UTC(y, mo - 1, d, h, mi, se);
  return new Date(t).getUTCDate() === d ? t : undefined; // rejects 20240231 and friends
}
