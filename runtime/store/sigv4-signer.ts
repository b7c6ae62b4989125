// A small SigV4 signer for the ledger's JSON POSTs to `/` (no query string, no path to encode), on
// node:crypto and synchronous: the SDK's signer is generic, asynchronous and re-derives what we can
// cache, and it runs on every ledger write. test/dynamo-http.test.ts checks it against
// @smithy/signature-v4.
import * as crypto from 'node:crypto';
import { createHash, createHmac, createSecretKey, type KeyObject } from 'node:crypto';

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  expiration?: Date;
}

export interface SignInput {
  credentials: AwsCredentials;
  region: string;
  service: string;
  /** `YYYYMMDDTHHMMSSZ` */
  amzDate: string;
  /** Lowercase names; must hold `host`. x-amz-date and x-amz-security-token are added here. */
  headers: Record<string, string>;
  /** Hex SHA-256 of the body (computed once per request, reused across retries). */
  payloadHash: string;
}

const ALGORITHM = 'AWS4-HMAC-SHA256';

// crypto.hash (Node ≥ 20.12) skips the Hash object: several times faster on a few hundred bytes.
const oneShot = (crypto as { hash?: (algorithm: string, data: string | Uint8Array, encoding: 'hex') => string }).hash;
export const sha256Hex: (data: string | Uint8Array) => string = oneShot
  ? (data) => oneShot('sha256', data, 'hex')
  : (data) => createHash('sha256').update(data).digest('hex');

/** `2026-11-26T10:00:00.123Z` → `20261126T100000Z` */
export const amzDateOf = (date: Date) => date.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');

let lastSecond = NaN;
let lastAmzDate = '';
/** amzDateOf(new Date(ms)), formatted once per second: a ledger write signs several per millisecond. */
export function amzDateAt(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second !== lastSecond) {
    lastAmzDate = amzDateOf(new Date(second * 1000));
    lastSecond = second;
  }
  return lastAmzDate;
}

/**
 * Adds x-amz-date, x-amz-security-token (when the credentials carry one) and authorization to
 * `headers` (mutated: the caller built it for this request) and returns it. Every header given is
 * signed, so pass only what the request needs.
 */
export function signRequest(i: SignInput): Record<string, string> {
  const { headers, credentials } = i;
  headers['x-amz-date'] = i.amzDate;
  if (credentials.sessionToken) headers['x-amz-security-token'] = credentials.sessionToken;
  const names = Object.keys(headers).sort();
  let canonicalHeaders = '';
  for (const name of names) canonicalHeaders += `${name}:${canonicalValue(headers[name])}\n`;
  const signedHeaders = names.join(';');
  const canonicalRequest = `POST\n/\n\n${canonicalHeaders}\n${signedHeaders}\n${i.payloadHash}`;
  const date = i.amzDate.slice(0, 8);
  const scope = `${date}/${i.region}/${i.service}/aws4_request`;
  const stringToSign = `${ALGORITHM}\n${i.amzDate}\n${scope}\n${sha256Hex(canonicalRequest)}`;
  const key = signingKey(credentials.secretAccessKey, date, i.region, i.service);
  const signature = createHmac('sha256', key).update(stringToSign).digest('hex');
  headers.authorization = `${ALGORITHM} Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
  return headers;
}

/**
 * A signer for JSON POSTs to `/` whose signed headers are exactly content-type, host, x-amz-date,
 * x-amz-security-token (with session credentials) and x-amz-target: what signRequest computes for
 * them, with the constant parts of the canonical request and the string to sign built once. Returns
 * the Authorization header value.
 */
export function createJsonPostSigner(o: { region: string; service: string; host: string; contentType: string }) {
  const head = `POST\n/\n\ncontent-type:${canonicalValue(o.contentType)}\nhost:${canonicalValue(o.host)}\nx-amz-date:`;
  const tail = `/${o.region}/${o.service}/aws4_request`;
  let token: { raw: string; line: string } | undefined;
  return (credentials: AwsCredentials, amzDate: string, target: string, payloadHash: string): string => {
    let signedHeaders = 'content-type;host;x-amz-date;x-amz-target';
    let tokenLine = '';
    if (credentials.sessionToken) {
      if (token?.raw !== credentials.sessionToken) {
        token = { raw: credentials.sessionToken, line: `x-amz-security-token:${canonicalValue(credentials.sessionToken)}\n` };
      }
      tokenLine = token.line;
      signedHeaders = 'content-type;host;x-amz-date;x-amz-security-token;x-amz-target';
    }
    const canonicalRequest = `${head}${amzDate}\n${tokenLine}x-amz-target:${canonicalValue(target)}\n\n${signedHeaders}\n${payloadHash}`;
    const date = amzDate.slice(0, 8);
    const scope = date + tail;
    const stringToSign = `${ALGORITHM}\n${amzDate}\n${scope}\n${sha256Hex(canonicalRequest)}`;
    const key = signingKey(credentials.secretAccessKey, date, o.region, o.service);
    const signature = createHmac('sha256', key).update(stringToSign).digest('hex');
    return `${ALGORITHM} Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
  };
}

const canonicalValue = (value: string) => value.trim().replace(/\s+/g, ' ');

/**
 * The derived key changes once a day (and with the secret on a credential refresh): cached, it saves
 * four HMACs per request, and kept as a KeyObject, the key is not imported again for each signature.
 * One entry: a process signs for one region and one set of credentials.
 */
let cached: { secret: string; date: string; region: string; service: string; key: KeyObject } | undefined;

function signingKey(secret: string, date: string, region: string, service: string): KeyObject {
  const c = cached;
  if (c && c.date === date && c.secret === secret && c.region === region && c.service === service) return c.key;
  const key = [date, region, service, 'aws4_request'].reduce<Buffer>(
    (k, part) => createHmac('sha256', k).update(part).digest(),
    Buffer.from(`AWS4${secret}`),
  );
  cached = { secret, date, region, service, key: createSecretKey(key) };
  return cached.key;
}
