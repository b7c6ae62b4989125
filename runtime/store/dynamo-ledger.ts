// The ledger on DynamoDB: one on-demand table (layout in dynamo-codec.ts). Every write is a single-item
// UpdateItem/PutItem/DeleteItem with atomic ADDs and conditions, never read-modify-write. No
// TransactWriteItems: it doubles the cost and latency of the hot path and dynalite (our test server)
// lacks it; reserve() gets all-or-none by undoing the holds already taken instead, and each call's
// marker on a row (set with its hold, removed with its settlement) makes every write apply once.
// Writes whose reply was lost may land late, after the core moved on; two rules keep those from
// changing anything: a marker records the reserve try that holds it, and an undo applies only to its
// own try's (a retry that finds the marker makes it its own); and a call with such a write ends its
// markers as tombstones, which refuse a hold that lands after the settlement or the release.
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
import { randomBytes } from 'node:crypto';
import type { ExpiredHold, Hold, Ledger, Nano, RateHold, RateUse, Reservation, Scope, SettledRow, Settlement } from '../core/ports.ts';
import { formatAlerts, reached, type BudgetAlert } from '../core/alerts.ts';
import { LEDGER_TABLE } from '../core/contract.ts';
import { COUNTERS, isListed, sortAlerts, sortDaily, sortLimits, sortMembers, sortNames, sortUsage } from './ledger-common.ts';
import {
  LIMIT_PK,
  MEMBERS_PK,
  MONTHS_PK,
  PRICE_PK,
  USAGE_PREFIX,
  addExpression,
  ALERT_ATTRIBUTES,
  ALERT_CARRIER,
  alertCarrier,
  dailyName,
  daySpentName,
  markName,
  markPrefix,
  markValue,
  markFrom,
  marksOf,
  ownPrefix,
  dayCommittedName,
  hasLimit,
  LIMIT_ATTRIBUTES,
  RATE_TTL_SECONDS,
  rateKey,
  holdName,
  holdsOf,
  holdValue,
  LIVE_MARKER,
  rateHoldValue,
  staleTombstones,
  tombstoneValue,
  keyId,
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
/** The client sent the request more than once: an earlier try may land after the answer we got. */
const retried = (outcome: unknown) => ((outcome as { $metadata?: { attempts?: number } } | null)?.$metadata?.attempts ?? 1) > 1;
/** A conditional write's outcome: true when it applied, false when its condition refused it. */
const applied = (write: Promise<unknown>): Promise<boolean> =>
  write.then(
    () => true,
    (error: unknown) => {
      if (isRefusal(error)) return false;
      throw error;
    },
  );
/**
 * Makes an update apply only while the call's marker `#h` is a live hold (not a tombstone) and, with
 * `owner`, one that reserve try holds.
 */
function whileHeld<T extends { ExpressionAttributeValues: Item }>(update: T, owner?: string) {
  return {
    ...update,
    ConditionExpression: owner === undefined ? 'attribute_type(#h, :held)' : 'attribute_type(#h, :held) AND #h.t = :owner',
    ExpressionAttributeValues: { ...update.ExpressionAttributeValues, ':held': LIVE_MARKER, ...(owner === undefined ? {} : { ':owner': { S: owner } }) },
  };
}
/**
 * A fresh id for one reserve try: the markers it takes carry it (see `owns`). Cut from a pooled
 * buffer: randomBytes for each reservation costs about 5 µs of entropy calls.
 */
let tryPool = Buffer.alloc(0);
let tryAt = 0;
const newTry = () => {
  if (tryAt + 6 > tryPool.length) [tryPool, tryAt] = [randomBytes(6 * 256), 0];
  return tryPool.toString('base64url', tryAt, (tryAt += 6));
};
/** How often a take may find the call's marker gone again between reading and owning it. */
const TAKE_ROUNDS = 3;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * What the ledger needs of a client: the SDK's DynamoDBClient or the lean one (dynamo-http.ts). The
 * output type is read off the SDK command's middleware, so `send(new GetItemCommand(…))` stays typed.
 */
export type LedgerClient = {
  // `object`: the SDK's client takes its own options there (and ignores ours).
  send<O>(command: { input: object; resolveMiddleware(...args: never[]): (args: never) => Promise<{ output: O }> }, options?: object): Promise<O>;
};

/**
 * Per-send options of the lean client. `maxAttempts: 1` for a write that is not idempotent: a retry
 * after a lost reply would apply it again. (The SDK's client ignores it; the Lambdas use the lean one.)
 */
export interface SendOptions {
  maxAttempts?: number;
}
/** A cache hit's counts carry no marker (one per hit would grow the item without end): sent once. */
const ONE_TRY: SendOptions = { maxAttempts: 1 };

export function createDynamoLedger(opts: { tableName: string; client: LedgerClient }): Ledger {
  const { tableName: TableName, client } = opts;
  /** Months this instance has marked: the mark costs one write per month and instance, not one per call. */
  const marked = new Set<string>();
  /**
   * Alert marks this instance knows are made (month, row, mark, limit). The settlement's write does
   * not return the marks (that would cost every watched settlement a bigger answer), so a threshold
   * already passed costs each instance one refused conditional write per period, then nothing.
   */
  const knownMarks = new Set<string>();
  /**
   * Calls with a hold write whose outcome was not seen for sure (it threw, or the client sent it
   * more than once): that write may still land, after the call is settled or given back. Their
   * markers end as tombstones (see holdName), so it is refused when it does. Cleared once the call
   * ends; a bound keeps a run of failed settlements from growing it forever (forgetting costs only
   * the over-count tombstones prevent: a late hold charged at its deadline).
   */
  const unsure = new Set<string>();
  const UNSURE_MAX = 10_000;

  function noteUnsure(callId: string): void {
    if (unsure.size >= UNSURE_MAX) unsure.clear();
    unsure.add(callId);
  }
  /** The tombstone a call's markers end as, or undefined when they are simply removed. */
  const tombstoneFor = (callId: string) => (unsure.has(callId) ? tombstoneValue(Date.now()) : undefined);

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

  /** The call's marker on an item and the attributes `names`, read strongly consistent. */
  async function readHeld(Key: Item, callId: string, names: string[]): Promise<{ item: Item; marker?: Item[string] }> {
    const all = [holdName(callId), ...names];
    const out = await client.send(
      new GetItemCommand({
        TableName,
        Key,
        ConsistentRead: true,
        ProjectionExpression: all.map((_, i) => `#p${i}`).join(', '),
        ExpressionAttributeNames: Object.fromEntries(all.map((n, i) => [`#p${i}`, n])),
      }),
    );
    const item = out.Item ?? {};
    return { item, marker: item[holdName(callId)] };
  }

  /**
   * A take's condition refused it and the call's live marker is there: an earlier send of this try
   * landed with its reply lost, or an earlier try's take did. The try makes the marker its own, so
   * that an earlier try's undo still on its way cannot take it away (undos are conditioned on
   * their try). False when the marker changed meanwhile.
   */
  async function owns(Key: Item, callId: string, marker: Item[string], owner: string): Promise<boolean> {
    const theirs = marker.M?.t?.S;
    if (theirs === owner) return true;
    return applied(
      client.send(
        new UpdateItemCommand({
          TableName,
          Key,
          UpdateExpression: 'SET #h.t = :mine',
          // Markers written before tries were recorded have no `t`.
          ConditionExpression: `attribute_type(#h, :held) AND ${theirs === undefined ? 'attribute_not_exists(#h.t)' : '#h.t = :theirs'}`,
          ExpressionAttributeNames: { '#h': holdName(callId) },
          ExpressionAttributeValues: { ':held': LIVE_MARKER, ':mine': { S: owner }, ...(theirs === undefined ? {} : { ':theirs': { S: theirs } }) },
        }),
      ),
    );
  }

  /**
   * Sends a take: its condition is that the call has no marker there yet (and, on a limited item,
   * that it fits). Refused, the item is read: the call's live marker there means it holds the item
   * already (`held`, once this try owns it); else the take was refused, by a limit or by a tombstone
   * (the call ended: this is a stale try). A marker gone between the refusal and the read (an
   * earlier try's undo landed) is taken again. `item` holds `names`, after the take.
   */
  async function sendTake(Key: Item, callId: string, owner: string, command: UpdateItemCommand, names: string[]): Promise<{ held: boolean; item: Item }> {
    for (let round = 1; ; round++) {
      try {
        const out = await client.send(command);
        // Sent more than once by the client: an earlier send may land later.
        if (retried(out)) noteUnsure(callId);
        return { held: true, item: out.Attributes ?? {} };
      } catch (error) {
        if (!isRefusal(error) || retried(error)) noteUnsure(callId);
        if (!isRefusal(error)) throw error;
      }
      const { item, marker } = await readHeld(Key, callId, names);
      if (!marker?.M) return { held: false, item };
      if (await owns(Key, callId, marker, owner)) return { held: true, item };
      if (round >= TAKE_ROUNDS) throw new Error('the call\'s hold kept changing while it was taken');
    }
  }

  /**
   * A take's condition: the call has no marker there yet, and each capped attribute fits its
   * `max` (`#name <= max`, a missing attribute counting as 0). Conditions have no arithmetic, so
   * the caller subtracts what it adds; a missing attribute passes only if 0 fits. No `max`: no cap.
   */
  function takeCondition(caps: [name: string, placeholder: string, max: number | undefined][]) {
    const conditions = ['attribute_not_exists(#h)'];
    const capValues: Item = {};
    for (const [name, placeholder, max] of caps) {
      if (max === undefined) continue;
      conditions.push(max >= 0 ? `(attribute_not_exists(${name}) OR ${name} <= ${placeholder})` : `${name} <= ${placeholder}`);
      capValues[placeholder] = num(max);
    }
    return { ConditionExpression: conditions.join(' AND '), capValues };
  }

  type Taken = { committed: Nano; day: Nano } | { refused: Nano; period?: 'day' };

  /**
   * committed += amount (and the day's committed) and the call's marker (held by try `owner`), only
   * if the call has no marker there yet and, on a limited row, each total + amount <= its limit. A
   * refused condition is told apart by reading the row (see `sendTake`).
   */
  async function take(r: Reservation, { scope, amount, limit, dayLimit }: Hold, owner: string): Promise<Taken> {
    const Key = usageKey(r.month, scope);
    const { ConditionExpression, capValues } = takeCondition([
      ['#c', ':max', limit === undefined ? undefined : limit - amount],
      ['#d', ':dmax', dayLimit === undefined ? undefined : dayLimit - amount],
    ]);
    const dayName = dayCommittedName(r.day);
    const { held, item } = await sendTake(
      Key,
      r.callId,
      owner,
      new UpdateItemCommand({
        TableName,
        Key,
        UpdateExpression: 'ADD #c :amount, #d :amount SET #h = :hold REMOVE #al',
        ConditionExpression,
        ExpressionAttributeNames: { '#c': 'committed', '#d': dayName, '#h': holdName(r.callId), '#al': ALERT_CARRIER },
        ExpressionAttributeValues: { ':amount': num(amount), ':hold': holdValue(amount, r.expiresAt, r.day, owner), ...capValues },
        ReturnValues: 'UPDATED_NEW',
      }),
      ['committed', dayName],
    );
    const committed = Number(item.committed?.N ?? 0);
    const day = Number(item[dayName]?.N ?? 0);
    if (held) return { committed, day };
    // Another call may have given budget back since: the month is named unless only the day is over.
    const monthOver = limit !== undefined && committed > limit - amount;
    const dayOver = dayLimit !== undefined && day > dayLimit - amount;
    return (dayOver && !monthOver) || limit === undefined ? { refused: day, period: 'day' } : { refused: committed };
  }

  /**
   * Gives one hold back (on a usage row or a rate window), once: the one try `owner` holds (an undo
   * inside reserve: an earlier try's undo landing late cannot touch what a later try owns), or
   * whichever try holds it (a release, the call's last word). An unsure call's marker ends as a
   * tombstone, and where it has no hold a tombstone goes in its place, so a take still on its way
   * is refused when it lands; if one landed in between, that one is given back.
   */
  async function giveBack(
    Key: Item, callId: string, adds: Record<string, number>, owner: string | undefined, opts: { remove?: readonly string[]; ttl?: number } = {},
  ): Promise<void> {
    const tombstone = tombstoneFor(callId);
    const end = (who: string | undefined) =>
      applied(
        client.send(
          new UpdateItemCommand({ TableName, Key, ...whileHeld(addExpression(adds, { hold: holdName(callId), tombstone, remove: opts.remove }), who) }),
        ),
      );
    if ((await end(owner)) || !tombstone) return;
    if (await putTombstone(Key, callId, tombstone, opts.ttl)) return;
    const { marker } = await readHeld(Key, callId, []);
    if (marker?.M) await end(marker.M.t?.S);
  }

  const untake = (r: Reservation, { scope, amount }: Hold, owner?: string) =>
    giveBack(usageKey(r.month, scope), r.callId, { committed: -amount, [dayCommittedName(r.day)]: -amount }, owner, { remove: [ALERT_CARRIER] });

  const rateTtl = (window: number) => Math.ceil(window / 1000) + RATE_TTL_SECONDS;

  const untakeRate = (r: Reservation, { scope, tokens }: RateHold, owner?: string) =>
    giveBack(rateKey(scope, r.window ?? 0), r.callId, { requests: -1, tokens: -tokens }, owner, { ttl: rateTtl(r.window ?? 0) });

  /** A tombstone where the call has no marker at all; false when one is there (a hold, or a tombstone). */
  function putTombstone(Key: Item, callId: string, tombstone: Item[string], ttl?: number): Promise<boolean> {
    return applied(
      client.send(
        new UpdateItemCommand({
          TableName,
          Key,
          UpdateExpression: ttl === undefined ? 'SET #h = :tomb' : 'SET #h = :tomb, #ttl = if_not_exists(#ttl, :ttl)',
          ConditionExpression: 'attribute_not_exists(#h)',
          ExpressionAttributeNames: { '#h': holdName(callId), ...(ttl === undefined ? {} : { '#ttl': TTL_ATTRIBUTE }) },
          ExpressionAttributeValues: { ':tomb': tombstone, ...(ttl === undefined ? {} : { ':ttl': num(ttl) }) },
        }),
      ),
    );
  }

  const useOf = (item: Item | undefined): RateUse => ({ requests: Number(item?.requests?.N ?? 0), tokens: Number(item?.tokens?.N ?? 0) });

  /**
   * One request and the hold's tokens in the scope's window, with the call's marker (held by try
   * `owner`), only if the call has no marker there yet and both fit their limits (see `sendTake`).
   */
  async function takeRate(r: Reservation, { scope, tokens, rpm, tpm }: RateHold, owner: string): Promise<{ use: RateUse } | { refused: RateUse }> {
    const window = r.window ?? 0;
    const Key = rateKey(scope, window);
    const { ConditionExpression, capValues } = takeCondition([
      ['#r', ':rmax', rpm === undefined ? undefined : rpm - 1],
      ['#t', ':tmax', tpm === undefined ? undefined : tpm - tokens],
    ]);
    const { held, item } = await sendTake(
      Key,
      r.callId,
      owner,
      new UpdateItemCommand({
        TableName,
        Key,
        UpdateExpression: 'ADD #r :one, #t :tokens SET #h = :hold, #ttl = :ttl',
        ConditionExpression,
        ExpressionAttributeNames: { '#r': 'requests', '#t': 'tokens', '#h': holdName(r.callId), '#ttl': TTL_ATTRIBUTE },
        ExpressionAttributeValues: { ':one': num(1), ':tokens': num(tokens), ':hold': rateHoldValue(tokens, owner), ':ttl': num(rateTtl(window)), ...capValues },
        ReturnValues: 'UPDATED_NEW',
      }),
      ['requests', 'tokens'],
    );
    return held ? { use: useOf(item) } : { refused: useOf(item) };
  }

  /** Settles a rate hold's tokens to the actual (whichever try holds it) and ends the marker, once. */
  async function settleRate(callId: string, window: number, scope: Scope, tokens: number): Promise<void> {
    // Without a live marker it was settled or given back already (or its window is gone).
    const tombstone = tombstoneFor(callId);
    await applied(
      client.send(new UpdateItemCommand({ TableName, Key: rateKey(scope, window), ...whileHeld(addExpression({ tokens }, { hold: holdName(callId), tombstone })) })),
    );
  }

  /** The mark attributes of every threshold a settled row watches. */
  const marksWatched = (s: Settlement, row: SettledRow): string[] =>
    (row.watch ?? []).flatMap((w) => w.thresholds.map((t) => markName(w.period, s.day, t)));

  /** A watched row's spend (month and the settlement's day) and marks, read strongly consistent. */
  async function watchedState(s: Settlement, scope: Scope, marks: string[]): Promise<Item> {
    const names = ['spent', daySpentName(s.day), ...marks];
    const out = await client.send(
      new GetItemCommand({
        TableName,
        Key: usageKey(s.month, scope),
        ConsistentRead: true,
        ProjectionExpression: names.map((_, i) => `#p${i}`).join(', '),
        ExpressionAttributeNames: Object.fromEntries(names.map((n, i) => [`#p${i}`, n])),
      }),
    );
    return out.Item ?? {};
  }

  /**
   * Marks each threshold the row's settled spend has reached that no call has marked against this
   * limit yet: one conditional write each, so of all the calls that see it reached only one marks
   * it. A mark this call made before (a retried settlement) is answered again, as its own.
   */
  async function markReached(s: Settlement, row: SettledRow, state: Item): Promise<BudgetAlert[]> {
    const made: BudgetAlert[] = [];
    for (const watch of row.watch ?? []) {
      const spent = Number(state[watch.period === 'month' ? 'spent' : daySpentName(s.day)]?.N ?? 0);
      for (const threshold of reached(watch, spent)) {
        const name = markName(watch.period, s.day, threshold);
        const current = state[name]?.S;
        if (current?.startsWith(ownPrefix(watch.limit, s.callId))) {
          made.push(markFrom(s.month, row.scope, name, current)!);
          continue;
        }
        const seen = `${s.month}|${usageKey(s.month, row.scope).sk.S}|${name}|${watch.limit}`;
        if (current?.startsWith(markPrefix(watch.limit)) || knownMarks.has(seen)) continue;
        const alert: BudgetAlert = {
          scope: row.scope, period: watch.period, month: s.month, ...(watch.period === 'day' ? { day: s.day } : {}),
          threshold, limit: watch.limit, spent, at: Date.now(), callId: s.callId,
        };
        const mine = await putMark(s, row.scope, name, alert);
        // Marked now (by this call or another): this instance need not try it again.
        if (knownMarks.size > 10_000) knownMarks.clear();
        knownMarks.add(seen);
        if (mine) made.push(alert);
      }
    }
    return made;
  }

  /** One conditional write: the mark and the stream carrier, unless a mark against this limit is there. */
  async function putMark(s: Settlement, scope: Scope, name: string, alert: BudgetAlert): Promise<boolean> {
    const value = markValue(alert);
    try {
      await client.send(
        new UpdateItemCommand({
          TableName,
          Key: usageKey(s.month, scope),
          UpdateExpression: 'SET #m = :m, #al = :al',
          ConditionExpression: 'attribute_exists(pk) AND (attribute_not_exists(#m) OR NOT begins_with(#m, :lp))',
          ExpressionAttributeNames: { '#m': name, '#al': ALERT_CARRIER },
          ExpressionAttributeValues: { ':m': { S: value }, ':lp': { S: markPrefix(alert.limit) }, ':al': alertCarrier(alert) },
        }),
      );
      return true;
    } catch (error) {
      if (!isRefusal(error)) throw error;
      // Refused: another call marked it, or this write landed before and its reply was lost.
      const state = await watchedState(s, scope, [name]);
      return state[name]?.S?.startsWith(ownPrefix(alert.limit, alert.callId)) ?? false;
    }
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

  /** Removes a tombstone whose time is up, unless it changed since the item was read. */
  function pruneTombstone(item: Item, name: string, value: Item[string]): Promise<unknown> {
    return client.send(
      new UpdateItemCommand({
        TableName,
        Key: { pk: item.pk, sk: item.sk },
        UpdateExpression: 'REMOVE #h',
        ConditionExpression: '#h = :v',
        ExpressionAttributeNames: { '#h': name },
        ExpressionAttributeValues: { ':v': value },
      }),
    );
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
        ...limitsOf(scopes.map((scope) => get(limitKey(scope)))),
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
      // All holds, USD and rate, at once (one round trip); then give back the ones taken if any refused.
      const rateHolds = r.rates ?? [];
      const owner = newTry();
      const [results, rateResults] = await Promise.all([
        Promise.allSettled(r.holds.map((hold) => take(r, hold, owner))),
        Promise.allSettled(rateHolds.map((hold) => takeRate(r, hold, owner))),
      ]);
      const failure = [...results, ...rateResults].find((x) => x.status === 'rejected');
      if (failure) throw (failure as PromiseRejectedResult).reason; // the core retries, then releases
      const taken = results.map((x) => (x as PromiseFulfilledResult<Taken>).value);
      const rates = rateResults.map((x) => (x as PromiseFulfilledResult<{ use: RateUse } | { refused: RateUse }>).value);
      const index = taken.findIndex((t) => 'refused' in t);
      const rate = rates.findIndex((t) => 'refused' in t);
      if (index < 0 && rate < 0) {
        const committed = taken.map((t) => (t as { committed: Nano }).committed);
        const days = r.holds.some((h) => h.dayLimit !== undefined) ? { days: taken.map((t) => (t as { day: Nano }).day) } : {};
        const uses = rateHolds.length ? { rates: rates.map((t) => (t as { use: RateUse }).use) } : {};
        return { ok: true, committed, ...days, ...uses };
      }
      // Answer only once every undo is done: a retry started while one is still on its way would count
      // that row's hold as taken (the marker is still there), and the late undo would then remove it.
      // An unsure call's refused rows get a tombstone too: an earlier try's hold there may still land.
      const doubt = unsure.has(r.callId);
      const undone = await Promise.allSettled([
        ...r.holds.map((hold, i) => ('committed' in taken[i] || doubt ? untake(r, hold, owner) : null)),
        ...rateHolds.map((hold, i) => ('use' in rates[i] || doubt ? untakeRate(r, hold, owner) : null)),
      ]);
      const undoFailure = undone.find((x) => x.status === 'rejected');
      if (undoFailure) throw (undoFailure as PromiseRejectedResult).reason; // the core retries, then releases
      if (index >= 0) {
        const refused = taken[index] as { refused: Nano; period?: 'day' };
        return { ok: false, index, committed: refused.refused, ...(refused.period ? { period: refused.period } : {}) };
      }
      return { ok: false, rate, use: (rates[rate] as { refused: RateUse }).refused };
    },

    async release(r) {
      await Promise.all([
        ...r.holds.map((hold) => untake(r, hold)),
        ...(r.rates ?? []).map((hold) => untakeRate(r, hold)),
      ]);
      unsure.delete(r.callId);
    },

    async settle(s) {
      const counts = Object.fromEntries(COUNTERS.map((c) => [c, s.delta[c]]));
      const daily = Object.fromEntries(COUNTERS.map((c) => [dailyName(s.day, c), s.delta[c]]));
      const alerts: BudgetAlert[] = [];
      const tombstone = tombstoneFor(s.callId);
      const writes: Promise<unknown>[] = s.rows.map(async (row) => {
        const marks = marksWatched(s, row);
        let attributes: Item | undefined;
        try {
          const out = await client.send(
            new UpdateItemCommand({
              TableName,
              Key: usageKey(s.month, row.scope),
              // Without a live marker the row was settled (or charged as expired) already.
              ...whileHeld(addExpression(
                {
                  ...counts,
                  ...(row.daily ? daily : {}),
                  committed: row.committed,
                  ...(row.committed !== 0 ? { [dayCommittedName(s.day)]: row.committed } : {}),
                  ...(s.delta.spent !== 0 ? { [daySpentName(s.day)]: s.delta.spent } : {}),
                },
                { priceVersion: s.priceVersion, hold: holdName(s.callId), tombstone, remove: [ALERT_CARRIER] },
              )),
              // A watched row's new spend comes back with the write itself: no read.
              ...(marks.length ? { ReturnValues: 'UPDATED_NEW' as const } : {}),
            }),
          );
          attributes = out.Attributes;
        } catch (error) {
          if (!isRefusal(error)) throw error;
        }
        if (!marks.length) return;
        // Refused (an earlier try landed and its reply was lost): the row as it is now decides,
        // marks included (a mark this call made then is answered again).
        attributes ??= await watchedState(s, row.scope, marks);
        alerts.push(...(await markReached(s, row, attributes)));
      });
      for (const rate of s.rates ?? []) writes.push(settleRate(s.callId, s.window ?? 0, rate.scope, rate.tokens));
      const mark = markMonth(s.month, s.day);
      if (mark) writes.push(mark);
      // Answer only once every write is done, so a retry never overlaps a try still marking.
      const failure = (await Promise.allSettled(writes)).find((x) => x.status === 'rejected');
      if (failure) throw (failure as PromiseRejectedResult).reason;
      unsure.delete(s.callId);
      return alerts;
    },

    async recordHit(month, day, scope, saved) {
      const counts = { cacheHits: 1, saved, [dailyName(day, 'cacheHits')]: 1, [dailyName(day, 'saved')]: saved };
      await Promise.all([
        // Counted at most once: a hit whose reply was lost goes uncounted rather than counted twice.
        client.send(new UpdateItemCommand({ TableName, Key: usageKey(month, scope), ...addExpression(counts, { remove: [ALERT_CARRIER] }) }), ONE_TRY),
        markMonth(month, day),
      ]);
    },

    async expired(month, now) {
      const expired: ExpiredHold[] = [];
      const pruned: Promise<unknown>[] = [];
      for (const item of await queryPartition(usagePk(month), USAGE_PREFIX)) {
        for (const { name, value } of staleTombstones(item, now)) pruned.push(pruneTombstone(item, name, value));
        const { month: m, project, user, model } = toUsage(item);
        for (const hold of holdsOf(item)) {
          if (hold.expiresAt < now) {
            expired.push({ callId: hold.callId, month: m, day: hold.day, amount: hold.amount, scope: { project, user, model } });
          }
        }
      }
      // A tombstone that stays (its removal failed) only costs bytes: the next sweep tries again.
      await Promise.allSettled(pruned);
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

    async setLimit(scope, limit, kind = 'month', alerts) {
      const withAlerts = alerts !== undefined && (kind === 'month' || kind === 'day');
      await client.send(
        new UpdateItemCommand({
          TableName,
          Key: limitKey(scope),
          UpdateExpression: withAlerts ? 'SET #l = :l, #a = :a' : 'SET #l = :l',
          ExpressionAttributeNames: { '#l': LIMIT_ATTRIBUTES[kind], ...(withAlerts ? { '#a': ALERT_ATTRIBUTES[kind] } : {}) },
          ExpressionAttributeValues: { ':l': num(limit), ...(withAlerts ? { ':a': { S: formatAlerts(alerts) } } : {}) },
        }),
      );
    },
    async removeLimit(scope, kind) {
      if (!kind) {
        const out = await client.send(new DeleteItemCommand({ TableName, Key: limitKey(scope), ReturnValues: 'ALL_OLD' }));
        return out.Attributes !== undefined;
      }
      let left;
      try {
        const out = await client.send(
          new UpdateItemCommand({
            TableName,
            Key: limitKey(scope),
            // A limit's alert thresholds go with it.
            UpdateExpression: kind === 'month' || kind === 'day' ? 'REMOVE #l, #a' : 'REMOVE #l',
            ConditionExpression: 'attribute_exists(#l)',
            ExpressionAttributeNames: { '#l': LIMIT_ATTRIBUTES[kind], ...(kind === 'month' || kind === 'day' ? { '#a': ALERT_ATTRIBUTES[kind] } : {}) },
            ReturnValues: 'ALL_NEW',
          }),
        );
        left = out.Attributes;
      } catch (error) {
        if (isRefusal(error)) return false;
        throw error;
      }
      // The last limit of the scope went: the item goes too, unless a limit was set meanwhile.
      if (left && !hasLimit(toLimit(left))) {
        const names = Object.values(LIMIT_ATTRIBUTES);
        await client
          .send(
            new DeleteItemCommand({
              TableName,
              Key: limitKey(scope),
              ConditionExpression: names.map((_, i) => `attribute_not_exists(#n${i})`).join(' AND '),
              ExpressionAttributeNames: Object.fromEntries(names.map((n, i) => [`#n${i}`, n])),
            }),
          )
          .catch((error) => {
            if (!isRefusal(error)) throw error;
          });
      }
      return true;
    },
    async listLimits() {
      return sortLimits((await queryPartition(LIMIT_PK)).map(toLimit).filter(hasLimit));
    },
    async alerts(month) {
      return sortAlerts((await queryPartition(usagePk(month), USAGE_PREFIX)).flatMap(marksOf));
    },
    // Queries of one key each: the admin function may Query the table but not read items by key.
    async limitUse(scopes, month, day, window) {
      const one = async (k: { pk: { S: string }; sk: { S: string } }) =>
        (await queryAll({
          KeyConditionExpression: 'pk = :pk AND sk = :sk',
          ExpressionAttributeValues: { ':pk': k.pk, ':sk': k.sk },
        }))[0];
      return Promise.all(
        scopes.map(async (scope) => {
          const [usage, rate] = await Promise.all([one(usageKey(month, scope)), one(rateKey(scope, window))]);
          return { day: Number(usage?.[dayCommittedName(day)]?.N ?? 0), ...useOf(rate) };
        }),
      );
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

/** A limit item per scope (or none) into the limits `read` answers, by kind. */
function limitsOf(items: (Item | undefined)[]) {
  const rows = items.map((item) => item && toLimit(item));
  return {
    limits: rows.map((row) => row?.limit),
    dayLimits: rows.map((row) => row?.dayLimit),
    alerts: rows.map((row) => row?.alerts),
    dayAlerts: rows.map((row) => row?.dayAlerts),
    rateLimits: rows.map((row) =>
      row && (row.rpm !== undefined || row.tpm !== undefined)
        ? { ...(row.rpm !== undefined ? { rpm: row.rpm } : {}), ...(row.tpm !== undefined ? { tpm: row.tpm } : {}) }
        : undefined,
    ),
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
