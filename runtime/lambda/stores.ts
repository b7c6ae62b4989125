// The Lambdas' stores: the DynamoDB ledger and ElastiCache memcached (or a small per-instance
// LRU when the stack runs without ElastiCache).
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { Ledger, Logger, ResponseCache } from '../core/ports.ts';
import { createDynamoLedger, LEDGER_CLIENT_CONFIG } from '../store/dynamo-ledger.ts';
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
  const client = new DynamoDBClient({
    ...LEDGER_CLIENT_CONFIG,
    region: env.AWS_REGION,
    ...(env.OPENAI_WRAPI_DYNAMODB_ENDPOINT ? { endpoint: env.OPENAI_WRAPI_DYNAMODB_ENDPOINT } : {}),
  });
  const ledger = createDynamoLedger({ tableName, client });
  const servers = env.OPENAI_WRAPI_MEMCACHED;
  const cache = servers
    ? createMemcachedCache({ servers, logger: lambdaLogger })
    : createLruCache({ maxBytes: 16 * 1024 * 1024 });
  return { ledger, cache };
}
