// The ledger on DynamoDB: one on-demand table (layout in dynamo-codec.ts). Every write is a single-item
// UpdateItem/PutItem/DeleteItem with atomic ADDs and conditions, never read-modify-write. No
// TransactWriteItems: it doubles the cost and latency of the hot path and dynalite (our test server)
// lacks it; reserve() gets all-or-none by undoing the holds already taken instead.
import {
  BatchGetItemCommand,
  CreateTableCommand,
  DeleteItemCommand,
  DescribeTableCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  UpdateItemCommand,
  waitUntilTableExists,
  type DynamoDBClientConfig,
  type QueryCommandInput,
} from '@aws-sdk/client-dynamodb';
import type { Hold, Ledger, Nano, Scope } from '../core/ports.ts';
import { LEDGER_TABLE } from './ledger-table.ts';
import { COUNTERS, detailScope, sortDaily, sortLimits, sortUsage } from './ledger-common.ts';
import {
  LIMIT_PK,
  MONTHS_PK,
  PRICE_PK,
  USAGE_PREFIX,
  addExpression,
  dailyKey,
  dailyPk,
  keyId,
  limitItem,
  limitKey,
  monthKey,
  monthMark,
  num,
  priceItem,
  priceKey,
  toDaily,
  toLimit,
  toPrice,
  toUsage,
  usageKey,
  usagePk,
  type Item,
} from './dynamo-codec.ts';

export { LEDGER_TABLE } from './ledger-table.ts';

/**
 * Client settings for the Lambdas (merge with region): a dead or hanging DynamoDB must turn into a
 * fast error (the core answers 503) rather than hold the request for the SDK's default minutes.
 * One retry only: ADD updates are not idempotent, so a retry after a timeout whose request did
 * land counts twice (a reservation would then stay held until the month ends).
 */
export const LEDGER_CLIENT_CONFIG = {
  maxAttempts: 2,
  requestHandler: { connectionTimeout: 250, requestTimeout: 600, throwOnRequestTimeout: true },
} satisfies DynamoDBClientConfig;

const BATCH_GET_MAX = 100;
const UNPROCESSED_RETRIES = 8;

const isRefusal = (error: unknown) => (error as { name?: string } | null)?.name === 'ConditionalCheckFailedException';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function createDynamoLedger(opts: { tableName: string; client: DynamoDBClient }): Ledger {
  const { tableName: TableName, client } = opts;
  /** Months this instance has marked: the mark costs one write per month and instance, not one per call. */
  const marked = new Set<string>();

  async function queryAll(input: Omit<QueryCommandInput, 'TableName'>): Promise<Item[]> {
    const items: Item[] = [];
    let ExclusiveStartKey: Item | undefined;
    do {
      const page = await client.send(new QueryCommand({ ...input, TableName, ExclusiveStartKey }));
      items.push(...(page.Items ?? []));
      ExclusiveStartKey = page.LastEvaluatedKey;
    } while (ExclusiveStartKey);
    return items;
  }

  const queryPartition = (pk: string, skPrefix?: string) =>
    queryAll({
      KeyConditionExpression: skPrefix ? 'pk = :pk AND begins_with(sk, :prefix)' : 'pk = :pk',
      ExpressionAttributeValues: { ':pk': { S: pk }, ...(skPrefix ? { ':prefix': { S: skPrefix } } : {}) },
    });

  /** BatchGetItem over distinct keys (it rejects duplicates), retrying what DynamoDB left unprocessed. */
  async function batchGet(keys: Item[]): Promise<Map<string, Item>> {
    const found = new Map<string, Item>();
    const distinct = [...new Map(keys.map((k) => [keyId(k), k])).values()];
    const chunks: Item[][] = [];
    for (let i = 0; i < distinct.length; i += BATCH_GET_MAX) chunks.push(distinct.slice(i, i + BATCH_GET_MAX));
    await Promise.all(
      chunks.map(async (chunk) => {
        let pending: Item[] = chunk;
        for (let attempt = 0; pending.length > 0; attempt++) {
          if (attempt > UNPROCESSED_RETRIES) throw new Error('DynamoDB left keys unprocessed (throttled)');
          if (attempt > 0) await sleep(10 * 2 ** attempt);
          const out = await client.send(new BatchGetItemCommand({ RequestItems: { [TableName]: { Keys: pending } } }));
          for (const item of out.Responses?.[TableName] ?? []) found.set(keyId(item), item);
          pending = out.UnprocessedKeys?.[TableName]?.Keys ?? [];
        }
      }),
    );
    return found;
  }

  /**
   * Give a hold back. A row that only existed for this hold is deleted again (conditionally, so a
   * concurrent hold or settlement keeps it): usage() then lists the same rows as SQLite's rollback.
   */
  async function undo(month: string, { scope, amount }: Hold): Promise<void> {
    const Key = usageKey(month, scope);
    const out = await client.send(
      new UpdateItemCommand({ TableName, Key, ...addExpression({ committed: -amount }), ReturnValues: 'ALL_NEW' }),
    );
    if (out.Attributes?.committed?.N !== '0' || out.Attributes.requests !== undefined) return;
    await client
      .send(
        new DeleteItemCommand({
          TableName,
          Key,
          ConditionExpression: '#c = :zero AND attribute_not_exists(#r)',
          ExpressionAttributeNames: { '#c': 'committed', '#r': 'requests' },
          ExpressionAttributeValues: { ':zero': num(0) },
        }),
      )
      .catch((error) => {
        if (!isRefusal(error)) throw error;
      });
  }

  /** committed += amount only if committed + amount <= limit (a missing row counts as 0). */
  async function take(month: string, { scope, amount, limit }: Hold): Promise<Nano> {
    const max = limit - amount;
    const out = await client.send(
      new UpdateItemCommand({
        TableName,
        Key: usageKey(month, scope),
        UpdateExpression: 'ADD #c :amount',
        // Conditions have no arithmetic, so the caller-side subtraction; a missing row passes only if 0 fits.
        ConditionExpression: max >= 0 ? 'attribute_not_exists(#c) OR #c <= :max' : '#c <= :max',
        ExpressionAttributeNames: { '#c': 'committed' },
        ExpressionAttributeValues: { ':amount': num(amount), ':max': num(max) },
        ReturnValues: 'UPDATED_NEW',
      }),
    );
    return Number(out.Attributes?.committed?.N ?? 0);
  }

  async function committedOf(month: string, scope: Scope): Promise<Nano> {
    const out = await client.send(
      new GetItemCommand({
        TableName,
        Key: usageKey(month, scope),
        ConsistentRead: true,
        ProjectionExpression: '#c',
        ExpressionAttributeNames: { '#c': 'committed' },
      }),
    );
    return Number(out.Item?.committed?.N ?? 0);
  }

  return {
    async read(scopes, models) {
      const found = await batchGet([...scopes.map(limitKey), ...models.map(priceKey)]);
      const get = (k: Item) => found.get(keyId(k));
      return {
        limits: scopes.map((scope) => {
          const item = get(limitKey(scope));
          return item && toLimit(item).limit;
        }),
        prices: models.map((model) => {
          const item = get(priceKey(model));
          return item && toPrice(item);
        }),
      };
    },

    async reserve(month, holds) {
      // All holds at once (one round trip); then give back the ones taken if any hold refused.
      const results = await Promise.allSettled(holds.map((hold) => take(month, hold)));
      const failure = results.find((r) => r.status === 'rejected' && !isRefusal(r.reason));
      const refused = results.findIndex((r) => r.status === 'rejected');
      if (refused < 0) return { ok: true, committed: results.map((r) => (r as PromiseFulfilledResult<Nano>).value) };

      const undone = Promise.all(holds.map((hold, i) => (results[i].status === 'fulfilled' ? undo(month, hold) : null)));
      if (failure) {
        await undone;
        throw (failure as PromiseRejectedResult).reason;
      }
      const [, committed] = await Promise.all([undone, committedOf(month, holds[refused].scope)]);
      return { ok: false, index: refused, committed };
    },

    async settle(s) {
      const counts = Object.fromEntries(COUNTERS.map((c) => [c, s.delta[c]]));
      const updates = s.scopes.map(({ scope, release }) =>
        addExpression({ ...counts, committed: s.delta.spent - release }, s.priceVersion),
      );
      const keys = s.scopes.map(({ scope }) => usageKey(s.month, scope));
      const detail = detailScope(s.scopes);
      if (detail) {
        updates.push(addExpression(counts));
        keys.push(dailyKey(s.day, detail));
      }
      // Rides along in the same parallel round trip; if it fails, the settlement is retried with it.
      const mark = !marked.has(s.month);
      if (mark) {
        updates.push(monthMark(s.day));
        keys.push(monthKey(s.month));
      }
      await Promise.all(updates.map((u, i) => client.send(new UpdateItemCommand({ TableName, Key: keys[i], ...u }))));
      if (mark) marked.add(s.month);
    },

    async usage(month) {
      return sortUsage((await queryPartition(usagePk(month), USAGE_PREFIX)).map(toUsage));
    },
    async daily(month) {
      return sortDaily((await queryPartition(dailyPk(month))).map(toDaily));
    },
    async months() {
      return (await queryPartition(MONTHS_PK)).map((item) => item.sk.S!).sort().reverse();
    },

    async setLimit(scope, limit) {
      await client.send(new PutItemCommand({ TableName, Item: limitItem(scope, limit) }));
    },
    async removeLimit(scope) {
      const out = await client.send(new DeleteItemCommand({ TableName, Key: limitKey(scope), ReturnValues: 'ALL_OLD' }));
      return out.Attributes !== undefined;
    },
    async listLimits() {
      return sortLimits((await queryPartition(LIMIT_PK)).map(toLimit));
    },

    async setPrice(price) {
      await client.send(new PutItemCommand({ TableName, Item: priceItem(price) }));
    },
    async removePrice(model) {
      const out = await client.send(new DeleteItemCommand({ TableName, Key: priceKey(model), ReturnValues: 'ALL_OLD' }));
      return out.Attributes !== undefined;
    },
    async listPrices() {
      return (await queryPartition(PRICE_PK)).map(toPrice);
    },
  };
}

/** Create the ledger table if it is missing (local stack, dynalite, tests) and wait until ACTIVE. */
export async function ensureLedgerTable(client: DynamoDBClient, tableName: string): Promise<void> {
  try {
    const { Table } = await client.send(new DescribeTableCommand({ TableName: tableName }));
    if (Table?.TableStatus === 'ACTIVE') return;
  } catch (error) {
    if ((error as { name?: string }).name !== 'ResourceNotFoundException') throw error;
    try {
      await client.send(
        new CreateTableCommand({
          TableName: tableName,
          BillingMode: 'PAY_PER_REQUEST',
          AttributeDefinitions: LEDGER_TABLE.attributes.map((a) => ({ AttributeName: a.name, AttributeType: a.type })),
          KeySchema: [
            { AttributeName: LEDGER_TABLE.hashKey, KeyType: 'HASH' },
            { AttributeName: LEDGER_TABLE.rangeKey, KeyType: 'RANGE' },
          ],
        }),
      );
    } catch (createError) {
      // Another process created it first: fine, wait for it below.
      if ((createError as { name?: string }).name !== 'ResourceInUseException') throw createError;
    }
  }
  await waitUntilTableExists({ client, minDelay: 1, maxWaitTime: 120 }, { TableName: tableName });
}
