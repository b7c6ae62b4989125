// The local stack's stores: SQLite by default (one file per stage, as one table per stack on AWS),
// or DynamoDB (a real table or dynalite) when an endpoint is configured; an in-process LRU cache
// unless memcached servers are configured.
import { join } from 'node:path';
import { ENV, LOCAL_ENV, ledgerTableName } from '../core/contract.ts';
import type { Ledger, Logger, ResponseCache } from '../core/ports.ts';
import { createLruCache } from '../store/lru-cache.ts';

type Env = Record<string, string | undefined>;

export async function openLocalLedger(env: Env, home: string, stage: string): Promise<{ ledger: Ledger; describe: string }> {
  const endpoint = env[ENV.dynamodbEndpoint];
  if (endpoint) {
    const { DynamoDBClient } = await import('@aws-sdk/client-dynamodb');
    const { createDynamoLedger, ensureLedgerTable, LEDGER_CLIENT_CONFIG } = await import('../store/dynamo-ledger.ts');
    const { createDynamoHttpClient } = await import('../store/dynamo-http.ts');
    const region = env.AWS_REGION ?? 'us-east-1';
    // dynalite and DynamoDB Local accept any key; a real endpoint uses the normal AWS chain.
    const credentials =
      /^https?:\/\/(127\.|localhost)/.test(endpoint) && !env.AWS_ACCESS_KEY_ID
        ? { accessKeyId: 'local', secretAccessKey: 'local' }
        : (await import('@aws-sdk/credential-provider-node')).defaultProvider();
    const tableName = ledgerTableName(stage, env[LOCAL_ENV.tablePrefix]);
    // Creating the table (and waiting for it) stays on the SDK client; the ledger's calls use the lean
    // one, as the Lambdas do.
    const admin = new DynamoDBClient({ ...LEDGER_CLIENT_CONFIG, endpoint, region, credentials });
    try {
      await ensureLedgerTable(admin, tableName);
    } finally {
      admin.destroy();
    }
    const timeoutMs = Number(env[LOCAL_ENV.dynamodbTimeoutMs]);
    const deadline = Number.isFinite(timeoutMs) && timeoutMs > 0 ? { connectTimeoutMs: timeoutMs, requestTimeoutMs: timeoutMs } : {};
    const client = createDynamoHttpClient({ endpoint, region, credentials, ...deadline });
    return { ledger: createDynamoLedger({ tableName, client }), describe: `DynamoDB table ${tableName} at ${endpoint}` };
  }
  let openSqliteLedger: typeof import('../store/sqlite-ledger.ts').openSqliteLedger;
  try {
    ({ openSqliteLedger } = await import('../store/sqlite-ledger.ts'));
  } catch {
    throw new Error('The local ledger needs better-sqlite3: npm install better-sqlite3@12');
  }
  const file = join(home, `ledger-${stage}.sqlite`);
  return { ledger: openSqliteLedger(file), describe: `SQLite ${file}` };
}

export async function openLocalCache(env: Env, stage: string, log: Logger): Promise<{ cache: ResponseCache; describe: string }> {
  const servers = env[ENV.memcached];
  if (servers) {
    const { createMemcachedCache } = await import('../store/memcached-cache.ts');
    // 250 ms, not Lambda's 50: on a busy laptop a scheduler pause outlasts a loopback round trip,
    // and one timeout skips the cache for its 5 s cool-down.
    const cache = createMemcachedCache({ servers, keyPrefix: `${stage}:`, logger: log, timeoutMs: 250 });
    return { cache, describe: `memcached ${servers}` };
  }
  return { cache: createLruCache(), describe: 'in-process LRU' };
}
