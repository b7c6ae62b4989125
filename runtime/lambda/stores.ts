// The Lambdas' stores: the DynamoDB ledger and ElastiCache memcached (or a small per-instance
// LRU when the stack runs without ElastiCache).
import type { Ledger, ResponseCache } from '../core/ports.ts';
import { createDynamoHttpClient, envCredentials } from '../store/dynamo-http.ts';
import { createDynamoLedger, type LedgerClient } from '../store/dynamo-ledger.ts';
import { createLruCache } from '../store/lru-cache.ts';
import { createMemcachedCache } from '../store/memcached-cache.ts';
import { lambdaLogger } from './logger.ts';
import type { StoreSettings } from './settings.ts';

export { lambdaLogger };

export function lambdaStores(settings: StoreSettings): { ledger: Ledger; cache: ResponseCache; client: LedgerClient } {
  // The lean client (a fraction of the SDK's CPU per call) with the role's credentials, which Lambda
  // puts in the environment; timeouts and retries are LEDGER_HTTP_CONFIG's.
  const client = createDynamoHttpClient({
    region: settings.region,
    endpoint: settings.dynamodbEndpoint,
    credentials: envCredentials(process.env),
  });
  const ledger = createDynamoLedger({ tableName: settings.tableName, client });
  const cache = settings.memcachedServers
    ? createMemcachedCache({ servers: settings.memcachedServers, logger: lambdaLogger })
    : createLruCache({ maxBytes: 16 * 1024 * 1024 });
  return { ledger, cache, client };
}
