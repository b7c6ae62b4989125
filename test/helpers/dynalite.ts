// An in-process dynalite (a DynamoDB-compatible server) on 127.0.0.1 and a free port, in memory.
import { createRequire } from 'node:module';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DynamoDBClient, type DynamoDBClientConfig } from '@aws-sdk/client-dynamodb';
import { createDynamoHttpClient, type DynamoHttpClient, type DynamoHttpOptions } from '../../runtime/store/dynamo-http.ts';

// dynalite ships no types; this is the one call we use.
const dynalite = createRequire(import.meta.url)('dynalite') as (opts: { createTableMs?: number }) => Server;

export interface DynaliteServer {
  endpoint: string;
  /** The HTTP server itself (the bench delays its answers). */
  server: Server;
  /** A client for this server; `extra` overrides (e.g. timeouts). */
  client(extra?: DynamoDBClientConfig): DynamoDBClient;
  /** The lean client (runtime/store/dynamo-http.ts) for this server. */
  lean(extra?: Partial<DynamoHttpOptions>): DynamoHttpClient;
  close(): Promise<void>;
}

export function dynamoClient(endpoint: string, extra: DynamoDBClientConfig = {}) {
  return new DynamoDBClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    ...extra,
  });
}

export function leanClient(endpoint: string, extra: Partial<DynamoHttpOptions> = {}) {
  return createDynamoHttpClient({ endpoint, region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' }, ...extra });
}

export async function startDynalite(): Promise<DynaliteServer> {
  const server = dynalite({ createTableMs: 0 });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    endpoint,
    server,
    client: (extra) => dynamoClient(endpoint, extra),
    lean: (extra) => leanClient(endpoint, extra),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
