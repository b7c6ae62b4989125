// The ledger on DynamoDB: one on-demand table (layout in dynamo-codec.ts). Every write is a single-item
// UpdateItem/PutItem/DeleteItem with atomic ADDs and conditions, never read-modify-write. No
// TransactWriteItems: it doubles the cost and latency of the hot path and dynalite (our test server)
// lacks it; reserve() gets all-or-none by undoing the holds already taken instead, and each call's
// marker on a row (set with its hold, removed with its settlement) makes every write apply once.
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
import type { ExpiredHold, Hold, Ledger, Nano, Reservation, Scope } from '../core/ports.ts';
import { LEDGER_TABLE } from '../core/contract.ts';
import { COUNTERS, isListed, sortDaily, sortLimits, sortMembers, sortNames, sortUsage } from './ledger-common.ts';
import {
  LIMIT_PK,
  MEMBERS_PK,
  MONTHS_PK,
  PRICE_PK,
  USAGE_PREFIX,
  addExpression,
  dailyName,
  holdName,
  holdsOf,
  holdValue,
  keyId,
  limitItem,
  limitKey,
  memberKey,
  monthKey,
  monthMark,
  num,
  priceItem,
  priceKey,
  responseKey,
  TTL_ATTRIBUTE,
  toDaily,
  toLimit,
  toMembers,
  toPrice,
  toUsage,
  usageKey,
  usagePk,
  type Item,
} from './dynamo-codec.ts';

export { LEDGER_TABLE } from '../core/contract.ts';

/**
 * Client settings for the Lambdas (merge with region): a dead or hanging DynamoDB must turn into a
 * fast error (the core answers 503) rather than hold the request for the SDK's default minutes.
 * Retries are safe: every usage write carries the call's marker and applies at most once.
 */
export const LEDGER_CLIENT_CONFIG = {
  maxAttempts: 3,
  requestHandler: { connectionTimeout: 250, requestTimeout: 400, throwOnRequestTimeout: true },
} satisfies DynamoDBClientConfig;

const BATCH_GET_MAX = 100;
const UNPROCESSED_RETRIES = 8;

const isRefusal = (error: unknown) => (error as { name?: string } | null)?.name === 'ConditionalCheckFailedException';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * What the ledger needs of a client: the SDK's DynamoDBClient or the lean one (dynamo-http.ts). The
 * output type is read off the SDK command's middleware, so `send(new GetItemCommand(…))` stays typed.
 */
export type LedgerClient = {
  send<O>(command: { input: object; resolveMiddleware(...args: never[]): (args: never) => Promise<{ output: O }> }): Promise<O>;
};

export function createDynamoLedger(opts: { tableName: string; client: LedgerClient }): Ledger {
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

  /** The row's committed total and whether `callId` holds it, read strongly consistent. */
  async function rowState(month: string, scope: Scope, callId: string): Promise<{ committed: Nano; held: boolean }> {
    const out = await client.send(
      new GetItemCommand({
        TableName,
        Key: usageKey(month, scope),
        ConsistentRead: true,
        ProjectionExpression: '#c, #h',
        ExpressionAttributeNames: { '#c': 'committed', '#h': holdName(callId) },
      }),
    );
    return { committed: Number(out.Item?.committed?.N ?? 0), held: out.Item?.[holdName(callId)] !== undefined };
  }

  /**
   * committed += amount and the call's marker, only if the marker is not there yet and, on a limited
   * row, committed + amount <= limit (a missing row counts as 0). A refused condition is told apart
   * by reading the row: the marker present means an earlier attempt landed and its reply was lost.
   */
  async function take(r: Reservation, { scope, amount, limit }: Hold): Promise<{ committed: Nano } | { refused: Nano }> {
    let condition = 'attribute_not_exists(#h)';
    const values: Item = { ':amount': num(amount), ':hold': holdValue(amount, r.expiresAt, r.day) };
    if (limit !== undefined) {
      const max = limit - amount;
      // Conditions have no arithmetic, so the caller-side subtraction; a missing row passes only if 0 fits.
      condition += max >= 0 ? ' AND (attribute_not_exists(#c) OR #c <= :max)' : ' AND #c <= :max';
      values[':max'] = num(max);
    }
    try {
      const out = await client.send(
        new UpdateItemCommand({
          TableName,
          Key: usageKey(r.month, scope),
          UpdateExpression: 'ADD #c :amount SET #h = :hold',
          ConditionExpression: condition,
          ExpressionAttributeNames: { '#c': 'committed', '#h': holdName(r.callId) },
          ExpressionAttributeValues: values,
          ReturnValues: 'UPDATED_NEW',
        }),
      );
      return { committed: Number(out.Attributes?.committed?.N ?? 0) };
    } catch (error) {
      if (!isRefusal(error)) throw error;
      const state = await rowState(r.month, scope, r.callId);
      return state.held ? { committed: state.committed } : { refused: state.committed };
    }
  }

  /** Give one hold back: committed -= amount and the marker removed, once. */
  async function untake(r: Reservation, { scope, amount }: Hold): Promise<void> {
    await client
      .send(
        new UpdateItemCommand({
          TableName,
          Key: usageKey(r.month, scope),
          ...addExpression({ committed: -amount }, { removeHold: holdName(r.callId) }),
          ConditionExpression: 'attribute_exists(#h)',
        }),
      )
      .catch((error) => {
        if (!isRefusal(error)) throw error;
      });
  }

  /** False when the condition refused: the member was already there (ADD) or was not (DELETE). */
  async function changeMember(project: string, member: string, update: string, condition: string): Promise<boolean> {
    try {
      await client.send(
        new UpdateItemCommand({
          TableName,
          Key: memberKey(project),
          UpdateExpression: update,
          ConditionExpression: condition,
          ExpressionAttributeNames: { '#m': 'members' },
          ExpressionAttributeValues: { ':m': { SS: [member] }, ':member': { S: member } },
        }),
      );
      return true;
    } catch (error) {
      if (isRefusal(error)) return false;
      throw error;
    }
  }

  /** Marks the month as having usage: once per instance and month, with the first write of it. */
  function markMonth(month: string, day: string): Promise<unknown> | undefined {
    if (marked.has(month)) return undefined;
    return client
      .send(new UpdateItemCommand({ TableName, Key: monthKey(month), ...monthMark(day) }))
      .then(() => marked.add(month));
  }

  return {
    async read(scopes, models, responses) {
      const projects = [...new Set(scopes.map((s) => s.project))];
      const found = await batchGet([
        ...scopes.map(limitKey), ...models.map(priceKey), ...projects.map(memberKey), ...(responses ?? []).map(responseKey),
      ]);
      const get = (k: Item) => found.get(keyId(k));
      const now = Date.now();
      return {
        members: new Map(
          projects
            .map((project) => [project, sortNames(toMembers(get(memberKey(project)) ?? memberKey(project)).members)] as const)
            .filter(([, members]) => members.length > 0),
        ),
        // TTL deletes expired items within a day or two: until then they are skipped here.
        ...(responses
          ? {
              responses: responses.map((id) => {
                const item = get(responseKey(id));
                return item && Number(item[TTL_ATTRIBUTE]?.N) * 1000 >= now ? Number(item.tokens?.N) : undefined;
              }),
            }
          : {}),
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

    async rememberResponse(id, tokens, expiresAt) {
      await client.send(
        new PutItemCommand({
          TableName,
          Item: { ...responseKey(id), tokens: num(tokens), [TTL_ATTRIBUTE]: num(Math.ceil(expiresAt / 1000)) },
        }),
      );
    },

    async reserve(r) {
      // All holds at once (one round trip); then give back the ones taken if any hold refused.
      const results = await Promise.allSettled(r.holds.map((hold) => take(r, hold)));
      const failure = results.find((x) => x.status === 'rejected');
      if (failure) throw (failure as PromiseRejectedResult).reason; // the core retries, then releases
      const taken = results.map((x) => (x as PromiseFulfilledResult<{ committed: Nano } | { refused: Nano }>).value);
      const index = taken.findIndex((t) => 'refused' in t);
      if (index < 0) return { ok: true, committed: taken.map((t) => (t as { committed: Nano }).committed) };
      // Answer only once every undo is done: a retry started while one is still on its way would count
      // that row's hold as taken (the marker is still there), and the late undo would then remove it.
      const undone = await Promise.allSettled(r.holds.map((hold, i) => ('committed' in taken[i] ? untake(r, hold) : null)));
      const undoFailure = undone.find((x) => x.status === 'rejected');
      if (undoFailure) throw (undoFailure as PromiseRejectedResult).reason; // the core retries, then releases
      return { ok: false, index, committed: (taken[index] as { refused: Nano }).refused };
    },

    async release(r) {
      await Promise.all(r.holds.map((hold) => untake(r, hold)));
    },

    async settle(s) {
      const counts = Object.fromEntries(COUNTERS.map((c) => [c, s.delta[c]]));
      const daily = Object.fromEntries(COUNTERS.map((c) => [dailyName(s.day, c), s.delta[c]]));
      const writes: Promise<unknown>[] = s.rows.map((row) =>
        client
          .send(
            new UpdateItemCommand({
              TableName,
              Key: usageKey(s.month, row.scope),
              ...addExpression(
                { ...counts, ...(row.daily ? daily : {}), committed: row.committed },
                { priceVersion: s.priceVersion, removeHold: holdName(s.callId) },
              ),
              // Without the marker the row was settled (or charged as expired) already.
              ConditionExpression: 'attribute_exists(#h)',
            }),
          )
          .catch((error) => {
            if (!isRefusal(error)) throw error;
          }),
      );
      const mark = markMonth(s.month, s.day);
      if (mark) writes.push(mark);
      await Promise.all(writes);
    },

    async recordHit(month, day, scope, saved) {
      const counts = { cacheHits: 1, saved, [dailyName(day, 'cacheHits')]: 1, [dailyName(day, 'saved')]: saved };
      await Promise.all([
        client.send(new UpdateItemCommand({ TableName, Key: usageKey(month, scope), ...addExpression(counts) })),
        markMonth(month, day),
      ]);
    },

    async expired(month, now) {
      const expired: ExpiredHold[] = [];
      for (const item of await queryPartition(usagePk(month), USAGE_PREFIX)) {
        const { month: m, project, user, model } = toUsage(item);
        for (const hold of holdsOf(item)) {
          if (hold.expiresAt < now) {
            expired.push({ callId: hold.callId, month: m, day: hold.day, amount: hold.amount, scope: { project, user, model } });
          }
        }
      }
      return expired;
    },

    async usage(month) {
      return sortUsage((await queryPartition(usagePk(month), USAGE_PREFIX)).map(toUsage).filter(isListed));
    },
    async daily(month) {
      return sortDaily((await queryPartition(usagePk(month), USAGE_PREFIX)).flatMap(toDaily));
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

    // One item per project, its members a string set: ADD and DELETE change it atomically, and the
    // condition tells whether the member was (not) there without a read first.
    async addMember(project, member) {
      return changeMember(project, member, 'ADD #m :m', 'NOT contains(#m, :member)');
    },
    async removeMember(project, member) {
      return changeMember(project, member, 'DELETE #m :m', 'contains(#m, :member)');
    },
    async listMembers() {
      return sortMembers((await queryPartition(MEMBERS_PK)).map(toMembers));
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
