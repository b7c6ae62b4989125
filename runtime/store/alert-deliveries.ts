// The notifier's bookkeeping in the ledger table: one delivery record per alert and channel, so that
// a stream record delivered twice (Streams deliver at least once, retries and bisection replay
// records, two instances may hold the same one) sends once. And the alert's period usage, for its
// top users and models.
//
//   deliveries pk `A#<alert id>`   sk `<channel>`   state (sending | sent), lease (epoch ms), owner,
//                                                   tries, error?, sentAt?, ttl (epoch s)
//
// A sender claims the record with a conditional write (absent, or not sent and its lease over), sends,
// then marks it sent. A failed send releases the claim (lease 0) and the record is retried. A sender
// that dies mid-send leaves a claim whose lease runs out: the next try takes it over. Another sender
// holding a live lease is waited for, up to a deadline.
import { createHash, randomUUID } from 'node:crypto';
import { GetItemCommand, QueryCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import type { BudgetAlert, SpendRow } from '../core/alerts.ts';
import { ALERT_STREAM } from '../core/contract.ts';
import { num, toDaily, toUsage, TTL_ATTRIBUTE, usagePk, USAGE_PREFIX, type Item } from './dynamo-codec.ts';
import type { LedgerClient } from './dynamo-ledger.ts';

/** How long a delivery record stays (DynamoDB's TTL deletes it): past any replay of the stream. */
export const DELIVERY_TTL_DAYS = 40;
/** DynamoDB keys stop at 2048 bytes (partition) and 1024 (sort): a longer alert id is hashed. */
const MAX_ID_BYTES = 1000;

export const deliveryKey = (alertId: string, channel: string) => {
  const id = Buffer.byteLength(alertId) > MAX_ID_BYTES ? `sha256:${createHash('sha256').update(alertId).digest('hex')}` : alertId;
  return { pk: { S: `${ALERT_STREAM.deliveryPartitionPrefix}${id}` }, sk: { S: channel } };
};

const NAMES = { '#st': 'state', '#ls': 'lease', '#ow': 'owner' };
const SENT = { S: 'sent' };

/** The claim: taken if the record is new, or not sent and its lease is over. */
export function claimUpdate(table: string, alertId: string, channel: string, owner: string, now: number, leaseMs: number) {
  return {
    TableName: table,
    Key: deliveryKey(alertId, channel),
    UpdateExpression: 'SET #st = :sending, #ls = :until, #ow = :me, #ttl = :ttl ADD #tr :one',
    ConditionExpression: 'attribute_not_exists(#st) OR (#st <> :sent AND #ls < :now)',
    ExpressionAttributeNames: { ...NAMES, '#ttl': TTL_ATTRIBUTE, '#tr': 'tries' },
    ExpressionAttributeValues: {
      ':sending': { S: 'sending' }, ':sent': SENT, ':until': num(now + leaseMs), ':me': { S: owner }, ':now': num(now),
      ':ttl': num(Math.floor(now / 1000) + DELIVERY_TTL_DAYS * 86_400), ':one': num(1),
    },
  };
}

/** Sent: final. Unconditional: once the message is out, nothing may send it again. */
export function sentUpdate(table: string, alertId: string, channel: string, now: number) {
  return {
    TableName: table,
    Key: deliveryKey(alertId, channel),
    UpdateExpression: 'SET #st = :sent, #at = :now REMOVE #ls, #er',
    ExpressionAttributeNames: { '#st': 'state', '#ls': 'lease', '#at': 'sentAt', '#er': 'error' },
    ExpressionAttributeValues: { ':sent': SENT, ':now': num(now) },
  };
}

/** A failed send gives its claim back (if still its own), naming the error for whoever looks. */
export function releaseUpdate(table: string, alertId: string, channel: string, owner: string, error: string) {
  return {
    TableName: table,
    Key: deliveryKey(alertId, channel),
    UpdateExpression: 'SET #ls = :zero, #er = :error',
    ConditionExpression: '#ow = :me AND #st <> :sent',
    ExpressionAttributeNames: { ...NAMES, '#er': 'error' },
    ExpressionAttributeValues: { ':zero': num(0), ':error': { S: error.slice(0, 200) }, ':me': { S: owner }, ':sent': SENT },
  };
}

export type DeliveryOutcome = 'sent' | 'already-sent';

export interface DeliveryLog {
  /**
   * Runs `send` unless the channel already has this alert; waits (until `deadline`, epoch ms) for
   * another sender's live claim. Throws `send`'s error (the claim released), or DeliveryBusyError.
   */
  once(alertId: string, channel: string, deadline: number, send: () => Promise<void>): Promise<DeliveryOutcome>;
}

/** Another sender held the claim past the deadline: the record is retried later. */
export class DeliveryBusyError extends Error {
  override name = 'DeliveryBusyError';
}

export interface DeliveryLogOptions {
  client: LedgerClient;
  tableName: string;
  /** How long a claim holds against other senders: longer than a send's worst case. */
  leaseMs?: number;
  /** Between two looks at another sender's claim. */
  pollMs?: number;
  now?: () => number;
}

const isRefusal = (error: unknown) => (error as { name?: string } | null)?.name === 'ConditionalCheckFailedException';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function createDeliveryLog(o: DeliveryLogOptions): DeliveryLog {
  const { client, tableName } = o;
  const leaseMs = o.leaseMs ?? 30_000;
  const pollMs = o.pollMs ?? 500;
  const now = o.now ?? Date.now;

  async function current(alertId: string, channel: string): Promise<Item | undefined> {
    const out = await client.send(new GetItemCommand({ TableName: tableName, Key: deliveryKey(alertId, channel), ConsistentRead: true }));
    return (out as { Item?: Item }).Item;
  }

  return {
    async once(alertId, channel, deadline, send) {
      const owner = randomUUID();
      for (;;) {
        try {
          await client.send(new UpdateItemCommand(claimUpdate(tableName, alertId, channel, owner, now(), leaseMs)));
        } catch (error) {
          if (!isRefusal(error)) throw error;
          const item = await current(alertId, channel);
          if (item?.state?.S === 'sent') return 'already-sent';
          const lease = Number(item?.lease?.N ?? 0);
          if (now() >= deadline) throw new DeliveryBusyError(`${channel}: another delivery holds this alert`);
          // Its lease is over: claim again at once; else look again soon.
          if (lease >= now()) await sleep(Math.max(1, Math.min(pollMs, lease - now() + 1, deadline - now())));
          continue;
        }
        try {
          await send();
        } catch (error) {
          const name = error instanceof Error ? error.name : 'Error';
          await client.send(new UpdateItemCommand(releaseUpdate(tableName, alertId, channel, owner, name))).catch((e) => {
            if (!isRefusal(e)) throw e;
          });
          throw error;
        }
        await client.send(new UpdateItemCommand(sentUpdate(tableName, alertId, channel, now())));
        return 'sent';
      }
    },
  };
}

/**
 * The detail usage of the alert's period inside its project: the month's rows for a monthly limit,
 * the day's for a daily one. One Query of the month's partition, under the project's prefix, paged.
 */
export async function periodRows(client: LedgerClient, tableName: string, alert: BudgetAlert): Promise<SpendRow[]> {
  const items: Item[] = [];
  let start: Item | undefined;
  do {
    const out = (await client.send(
      new QueryCommand({
        TableName: tableName,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
        ExpressionAttributeValues: { ':pk': { S: usagePk(alert.month) }, ':prefix': { S: `${USAGE_PREFIX}${alert.scope.project}#` } },
        ...(start ? { ExclusiveStartKey: start } : {}),
      }),
    )) as { Items?: Item[]; LastEvaluatedKey?: Item };
    items.push(...(out.Items ?? []));
    start = out.LastEvaluatedKey;
  } while (start);
  if (alert.period === 'day') return items.flatMap(toDaily).filter((r) => r.day === alert.day);
  return items.map(toUsage);
}
