// A lean DynamoDB client for the ledger's hot path. The AWS SDK spends ~0.9 ms of CPU per call in
// middleware, endpoint rules, serde, signing and retry strategy; the ledger makes 8+ calls per proxied
// request. DynamoDB's wire format is the AttributeValue JSON the ledger already builds, so this client
// takes the SDK's own command objects (the ledger code is the same for both clients), POSTs
// `command.input` as JSON over kept-alive connections (http1-pool.ts), signs with sigv4-signer.ts and
// parses the reply.
import {
  BatchGetItemCommand,
  DeleteItemCommand,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { LEDGER_CLIENT_CONFIG, type LedgerClient, type SendOptions } from './dynamo-ledger.ts';
import { createHttp1Pool } from './http1-pool.ts';
import { amzDateAt, createJsonPostSigner, sha256Hex, type AwsCredentials } from './sigv4-signer.ts';

export type { AwsCredentials } from './sigv4-signer.ts';
export type CredentialProvider = () => Promise<AwsCredentials>;

export interface DynamoHttpOptions {
  region: string;
  /** Default `https://dynamodb.<region>.amazonaws.com`; e.g. dynalite's `http://127.0.0.1:port`. */
  endpoint?: string;
  credentials: AwsCredentials | CredentialProvider;
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
  maxAttempts?: number;
}

export interface DynamoHttpClient extends LedgerClient {
  /** Closes the kept-alive sockets. */
  destroy(): void;
}

/** The same budget as the SDK client's LEDGER_CLIENT_CONFIG: a dead DynamoDB is a fast 503. */
export const LEDGER_HTTP_CONFIG = {
  connectTimeoutMs: LEDGER_CLIENT_CONFIG.requestHandler.connectionTimeout,
  requestTimeoutMs: LEDGER_CLIENT_CONFIG.requestHandler.requestTimeout,
  maxAttempts: LEDGER_CLIENT_CONFIG.maxAttempts,
};

// By the class itself, not its name: a minifier or a second copy of a name cannot confuse it.
const OPERATIONS = new Map<unknown, string>([
  [UpdateItemCommand, 'UpdateItem'],
  [GetItemCommand, 'GetItem'],
  [BatchGetItemCommand, 'BatchGetItem'],
  [QueryCommand, 'Query'],
  [PutItemCommand, 'PutItem'],
  [DeleteItemCommand, 'DeleteItem'],
]);

/** DynamoDB's answers (HTTP 400) that mean "slow down", not "wrong request". */
const THROTTLES = new Set([
  'ProvisionedThroughputExceededException',
  'ThrottlingException',
  'RequestLimitExceeded',
  'InternalServerError',
]);

/** An error DynamoDB (or the way to it) gave; `name` is DynamoDB's type, as the SDK's errors. */
export class DynamoHttpError extends Error {
  $metadata: { httpStatusCode?: number; requestId?: string; attempts?: number };
  $retryable: boolean;
  constructor(name: string, message: string, status: number | undefined, retryable: boolean, requestId?: string) {
    super(message);
    this.name = name;
    this.$metadata = { httpStatusCode: status, requestId };
    this.$retryable = retryable;
  }
}

export function createDynamoHttpClient(opts: DynamoHttpOptions): DynamoHttpClient {
  const url = new URL(opts.endpoint ?? `https://dynamodb.${opts.region}.amazonaws.com`);
  const secure = url.protocol === 'https:';
  const { connectTimeoutMs, requestTimeoutMs, maxAttempts } = { ...LEDGER_HTTP_CONFIG, ...definedOnly(opts) };
  const credentials = cachedCredentials(opts.credentials);
  const pool = createHttp1Pool({
    hostname: url.hostname.replace(/^\[|\]$/g, ''),
    port: Number(url.port) || (secure ? 443 : 80),
    secure,
    connectTimeoutMs,
  });
  const sign = createJsonPostSigner({ region: opts.region, service: 'dynamodb', host: url.host, contentType: CONTENT_TYPE });
  // Everything before x-amz-date is the same on every request of an operation.
  const heads = new Map([...OPERATIONS.values()].map((op) => [op, `POST / HTTP/1.1\r\nhost: ${url.host}\r\ncontent-type: ${CONTENT_TYPE}\r\nx-amz-target: ${TARGET_PREFIX}${op}\r\n`]));
  let checked: AwsCredentials | undefined;

  /** The whole request, signed now: head and body in one buffer, written in one piece. */
  function serialise(operation: string, json: string, length: number, payloadHash: string, creds: AwsCredentials): Buffer {
    if (creds !== checked) {
      // Header values must not end the line early (the pool writes the head as given).
      for (const v of [creds.accessKeyId, creds.sessionToken ?? '']) if (/[\r\n\0]/.test(v)) throw new TypeError('invalid AWS credentials');
      checked = creds;
    }
    const amzDate = amzDateAt(Date.now());
    const authorization = sign(creds, amzDate, TARGET_PREFIX + operation, payloadHash);
    const head =
      `${heads.get(operation)}x-amz-date: ${amzDate}\r\n` +
      (creds.sessionToken ? `x-amz-security-token: ${creds.sessionToken}\r\n` : '') +
      `authorization: ${authorization}\r\ncontent-length: ${length}\r\naccept-encoding: identity\r\nconnection: keep-alive\r\n\r\n`;
    const headLength = Buffer.byteLength(head, 'latin1');
    const request = Buffer.allocUnsafe(headLength + length);
    request.write(head, 0, 'latin1');
    request.write(json, headLength, 'utf8');
    return request;
  }

  async function attempt(operation: string, json: string, length: number, payloadHash: string): Promise<any> {
    const request = serialise(operation, json, length, payloadHash, await credentials());
    let reply;
    try {
      reply = await pool.request(request, requestTimeoutMs);
    } catch (error) {
      throw networkError(error as Error);
    }
    const [error, value] = readReply(reply.status, reply.requestId, reply.body);
    if (error) throw error;
    return value;
  }

  return {
    async send(command: { input: object }, options?: object) {
      const asked = (options as SendOptions | undefined)?.maxAttempts;
      const attempts = Math.max(1, Math.min(asked ?? maxAttempts, maxAttempts));
      const operation = OPERATIONS.get(command?.constructor);
      if (!operation) throw new TypeError(`the lean DynamoDB client does not send ${command?.constructor?.name}`);
      const json = JSON.stringify(command.input);
      const length = Buffer.byteLength(json);
      const payloadHash = sha256Hex(json);
      for (let n = 1; ; n++) {
        try {
          const out = await attempt(operation, json, length, payloadHash);
          out.$metadata.attempts = n;
          return out;
        } catch (error) {
          if (n >= attempts || !(error as DynamoHttpError).$retryable) {
            if (error instanceof DynamoHttpError) error.$metadata.attempts = n;
            throw error;
          }
          // Jittered and short: the ledger's budget is a few hundred ms; the core retries on top.
          await new Promise((resolve) => setTimeout(resolve, (10 + Math.random() * 15) * 2 ** (n - 1)));
        }
      }
    },
    destroy: () => pool.destroy(),
  } as DynamoHttpClient;
}

const CONTENT_TYPE = 'application/x-amz-json-1.0';
const TARGET_PREFIX = 'DynamoDB_20120810.';

/** The parsed output (with `$metadata`, as the SDK's), or DynamoDB's error as a DynamoHttpError. */
function readReply(status: number, requestId: string | undefined, raw: Buffer): [DynamoHttpError | undefined, unknown?] {
  let json: any;
  try {
    json = raw.length === 0 ? {} : JSON.parse(raw.toString('utf8'));
  } catch {
    json = undefined;
  }
  if (status === 200 && json && typeof json === 'object') {
    json.$metadata = { httpStatusCode: status, requestId };
    return [undefined, json];
  }
  const type: string | undefined = typeof json?.__type === 'string' ? json.__type : undefined;
  const name = type ? type.slice(type.lastIndexOf('#') + 1) : status === 200 ? 'InvalidResponse' : `HTTP${status}`;
  // DynamoDB's own message (it names no secrets); never our request body or headers.
  const message = String(json?.message ?? json?.Message ?? `DynamoDB answered HTTP ${status}`).slice(0, 500);
  // A 200 we could not read may hide a landed write: retry (idempotent), as a network error.
  const retryable = status >= 500 || status === 200 || THROTTLES.has(name);
  return [new DynamoHttpError(name, message, status, retryable, requestId)];
}

/** Connection refused, reset, DNS, timeouts…: retryable. Keeps Node's code (ECONNREFUSED…) and message. */
function networkError(error: Error): Error {
  return Object.assign(error, { $retryable: true });
}

function definedOnly(o: DynamoHttpOptions) {
  const out: Partial<typeof LEDGER_HTTP_CONFIG> = {};
  if (o.connectTimeoutMs !== undefined) out.connectTimeoutMs = o.connectTimeoutMs;
  if (o.requestTimeoutMs !== undefined) out.requestTimeoutMs = o.requestTimeoutMs;
  if (o.maxAttempts !== undefined) out.maxAttempts = o.maxAttempts;
  return out;
}

/**
 * Credentials, fetched once and kept until five minutes before they expire (a role's credentials);
 * concurrent callers share one fetch.
 */
export function cachedCredentials(source: AwsCredentials | CredentialProvider): CredentialProvider {
  if (typeof source !== 'function') {
    const fixed = Promise.resolve(source);
    return () => fixed;
  }
  let current: { value: Promise<AwsCredentials>; refreshAt: number } | undefined;
  let pending: Promise<AwsCredentials> | undefined;
  return () => {
    if (current && Date.now() < current.refreshAt) return current.value;
    pending ??= source()
      .then((creds) => {
        const expires = creds.expiration?.getTime();
        current = { value: Promise.resolve(creds), refreshAt: expires === undefined ? Infinity : expires - 5 * 60_000 };
        return creds;
      })
      .finally(() => (pending = undefined));
    return pending;
  };
}

/** Lambda's role credentials, from the environment the runtime gives the function. */
export function envCredentials(env: Record<string, string | undefined>): CredentialProvider {
  return async () => {
    const { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey, AWS_SESSION_TOKEN: sessionToken } = env;
    if (!accessKeyId || !secretAccessKey) throw new Error('AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set');
    return { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) };
  };
}
