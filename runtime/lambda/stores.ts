// The Lambdas' stores: the DynamoDB ledger and ElastiCache memcached (or a small per-instance
// LRU when the stack runs without ElastiCache).
import type { Ledger, Logger, ResponseCache } from '../core/ports.ts';
import { createDynamoHttpClient, envCredentials } from '../store/dynamo-http.ts';
import { createDynamoLedger } from '../store/dynamo-ledger.ts';
import { createLruCache } from '../store/lru-cache.ts';
import { createMemcachedCache } from '../store/memcached-cache.ts';

type Env = Record<string, string | undefined>;

/** One JSON line per event in CloudWatch; callers never pass prompts or keys. */
export const lambdaLogger: Logger = {
  info: (message, fields) => console.log(JSON.stringify({ level: 'info', message, ...fields })),
  error: (message, fields) => console.error(JSON.stringify({ level: 'error', message, ...fields })),
};

export function lambdaStores(env: Env): { ledger: Ledger; cache: ResponseCache } {
  const tableName = env.OPENAI_WRAPI_TABLE;
  if (!tableName) throw new Error('OPENAI_WRAPI_TABLE is not set');
  // The lean client (a fraction of the SDK's CPU per call) with the role's credentials, which Lambda
  // puts in the environment; timeouts and retries are LEDGER_HTTP_CONFIG's.
  const client = createDynamoHttpClient({
    region: env.AWS_REGION ?? 'us-east-1',
    endpoint: env.OPENAI_WRAPI_DYNAMODB_ENDPOINT || undefined,
    credentials: envCredentials(env),
  });
  const ledger = createDynamoLedger({ tableName, client });
  const servers = env.OPENAI_WRAPI_MEMCACHED;
  const cache = servers
    ? createMemcachedCache({ servers, logger: lambdaLogger })
    : createLruCache({ maxBytes: 16 * 1024 * 1024 });
  return { ledger, cache };
}
