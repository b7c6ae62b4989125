// A lean DynamoDB client for the ledger's hot path. The AWS SDK spends ~0.9 ms of CPU per call in
// middleware, endpoint rules, serde, signing and retry strategy; the ledger makes 8+ calls per proxied
// request. DynamoDB's wire format is the AttributeValue JSON the ledger already builds, so this client
// takes the SDK's own command objects (the ledger code is the same for both clients), POSTs
// `command.input` as JSON over a keep-alive agent, signs with sigv4-signer.ts and parses the reply.
import http from 'node:http';
import https from 'node:https';
import {
  BatchGetItemCommand,
  DeleteItemCommand,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { LEDGER_CLIENT_CONFIG, type LedgerClient } from './dynamo-ledger.ts';
import { amzDateOf, sha256Hex, signRequest, type AwsCredentials } from './sigv4-signer.ts';

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
  const transport = secure ? https : http;
  const agent = new transport.Agent({ keepAlive: true });
  const { connectTimeoutMs, requestTimeoutMs, maxAttempts } = { ...LEDGER_HTTP_CONFIG, ...definedOnly(opts) };
  const credentials = cachedCredentials(opts.credentials);
  const base = {
    agent,
    hostname: url.hostname.replace(/^\[|\]$/g, ''),
    port: url.port || (secure ? 443 : 80),
    method: 'POST',
    path: '/',
  };

  function attempt(operation: string, body: Buffer, payloadHash: string, creds: AwsCredentials): Promise<any> {
    const headers = signRequest({
      credentials: creds,
      region: opts.region,
      service: 'dynamodb',
      amzDate: amzDateOf(new Date()),
      headers: {
        host: url.host,
        'content-type': 'application/x-amz-json-1.0',
        'x-amz-target': `DynamoDB_20120810.${operation}`,
      },
      payloadHash,
    });
    headers['content-length'] = String(body.length);
    headers['accept-encoding'] = 'identity';
    return new Promise((resolve, reject) => {
      let settled = false;
      let connectTimer: NodeJS.Timeout | undefined;
      const finish = (error: Error | undefined, value?: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        clearTimeout(connectTimer);
        if (error) {
          req.destroy();
          reject(error);
        } else resolve(value);
      };
      const req = transport.request({ ...base, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const [error, value] = readReply(res, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
          finish(error, value);
        });
        res.on('error', (error) => finish(networkError(error)));
        res.on('close', () => settled || finish(networkError(new Error('connection closed before the answer ended'))));
      });
      // The write may have landed when a timer fires: retrying is still safe (every write is idempotent).
      const timer = setTimeout(
        () => finish(new DynamoHttpError('TimeoutError', `DynamoDB did not answer within ${requestTimeoutMs} ms`, undefined, true)),
        requestTimeoutMs,
      );
      req.on('socket', (socket) => {
        if (!socket.connecting) return; // a kept-alive socket
        connectTimer = setTimeout(
          () => finish(new DynamoHttpError('TimeoutError', `no connection to DynamoDB within ${connectTimeoutMs} ms`, undefined, true)),
          connectTimeoutMs,
        );
        socket.once(secure ? 'secureConnect' : 'connect', () => clearTimeout(connectTimer));
      });
      req.on('error', (error) => finish(networkError(error)));
      req.end(body);
    });
  }

  return {
    async send(command: { input: object }) {
      const operation = OPERATIONS.get(command?.constructor);
      if (!operation) throw new TypeError(`the lean DynamoDB client does not send ${command?.constructor?.name}`);
      const body = Buffer.from(JSON.stringify(command.input));
      const payloadHash = sha256Hex(body);
      for (let n = 1; ; n++) {
        try {
          const out = await attempt(operation, body, payloadHash, await credentials());
          out.$metadata.attempts = n;
          return out;
        } catch (error) {
          if (n >= maxAttempts || !(error as DynamoHttpError).$retryable) {
            if (error instanceof DynamoHttpError) error.$metadata.attempts = n;
            throw error;
          }
          // Jittered and short: the ledger's budget is a few hundred ms; the core retries on top.
          await new Promise((resolve) => setTimeout(resolve, (10 + Math.random() * 15) * 2 ** (n - 1)));
        }
      }
    },
    destroy: () => agent.destroy(),
  } as DynamoHttpClient;
}

/** The parsed output (with `$metadata`, as the SDK's), or DynamoDB's error as a DynamoHttpError. */
function readReply(res: http.IncomingMessage, raw: Buffer): [DynamoHttpError | undefined, unknown?] {
  const status = res.statusCode ?? 0;
  const requestId = res.headers['x-amzn-requestid'] as string | undefined;
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

/** Connection refused, reset, DNS…: retryable. Keeps Node's code (ECONNREFUSED…) and message. */
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
