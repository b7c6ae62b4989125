// Key layout and item <-> row conversion of the DynamoDB ledger table (one table, pk + sk strings):
//   usage   pk `M#2026-11`   sk `U#project#user#model`             counters, committed, priceVersion,
//                                                                  h_<callId> {a, x, d, t} per call in flight
//                                                                  (or a tombstone string, see holdName),
//                                                                  and on detail rows d<DD>_<counter> per day,
//                                                                  cd<DD>: committed on day DD (every row),
//                                                                  sd<DD>: settled spend on day DD (every row),
//                                                                  am<T>, ad<DD>_<T>: alert marks (below)
//   rates   pk `W#project#user#model` sk `<window epoch ms>`       requests, tokens, ttl, h_<callId> {k, t} (tokens
//                                                                  held, or a tombstone string);
//                                                                  only on scopes with a rate limit
//   limits  pk `LIMIT`       sk `project#user#model`               limit?, dayLimit?, rpm?, tpm? (at least one),
//                                                                  alerts?, dayAlerts? (thresholds, `80,100`)
//   prices  pk `PRICE`       sk `model`                            input, cachedInput?, output, updatedAt,
//                                                                  lcThreshold?, lcInput?, lcCachedInput?, lcOutput?,
//                                                                  audioInput?, audioCachedInput?, audioOutput?
//   members pk `MEMBERS`     sk `project`                          members (string set; absent once the last is revoked)
//   months  pk `MONTHS`      sk `2026-11`                          firstDay (a month with settled usage)
//   responses pk `R#resp_…`   sk `R`                                tokens, ttl (epoch s, DynamoDB TTL deletes it)
// A month's usage, days included, is one partition, so reports are one paginated Query;
// the months with usage are one small partition too, so listing them needs no Scan.
// Project and model never contain '#'; the user (an IAM ARN) is whatever lies between them.
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import type { DailyRow, LimitRow, MemberRow, PriceOverride, Scope, UsageDelta, UsageRow } from '../core/ports.ts';
import { COUNTERS } from './ledger-common.ts';
import { ALERT_STREAM, LEDGER_TABLE } from '../core/contract.ts';
import { storedAlerts, type AlertPeriod, type BudgetAlert } from '../core/alerts.ts';

export type Item = Record<string, AttributeValue>;
export type Key = { pk: { S: string }; sk: { S: string } };

const key = (pk: string, sk: string): Key => ({ pk: { S: pk }, sk: { S: sk } });
const scopePart = ({ project, user, model }: Scope) => `${project}#${user}#${model}`;

export const usagePk = (month: string) => `M#${month}`;
export const USAGE_PREFIX = 'U#';
export const LIMIT_PK = 'LIMIT';
export const PRICE_PK = 'PRICE';
export const MONTHS_PK = 'MONTHS';
export const MEMBERS_PK = 'MEMBERS';

export const usageKey = (month: string, scope: Scope) => key(usagePk(month), USAGE_PREFIX + scopePart(scope));
export const limitKey = (scope: Scope) => key(LIMIT_PK, scopePart(scope));
/** A scope's one-minute rate window; `window` is its start, epoch ms. */
export const rateKey = (scope: Scope, window: number) => key(`W#${scopePart(scope)}`, String(window));
/** How long a rate window outlives its minute before DynamoDB's TTL may delete it. */
export const RATE_TTL_SECONDS = 3600;
/** A usage row's committed total (spent + reserved) of one day of its month: `cd26`. */
export const dayCommittedName = (day: string) => `cd${day.slice(8, 10)}`;
/** The limit item's attribute per kind of limit. */
export const LIMIT_ATTRIBUTES = { month: 'limit', day: 'dayLimit', rpm: 'rpm', tpm: 'tpm' } as const;
/** The limit item's alert thresholds (`80,100`, `none`) of its USD limits; absent: the defaults. */
export const ALERT_ATTRIBUTES = { month: 'alerts', day: 'dayAlerts' } as const;
export const priceKey = (model: string) => key(PRICE_PK, model);
export const monthKey = (month: string) => key(MONTHS_PK, month);
export const memberKey = (project: string) => key(MEMBERS_PK, project);
export const responseKey = (id: string) => key(`R#${id}`, 'R');
/** The attribute DynamoDB's TTL reads (the table enables it): epoch seconds. */
export const TTL_ATTRIBUTE = LEDGER_TABLE.ttlAttribute;

export const keyId = (k: Item) => `${k.pk?.S}\u0000${k.sk?.S}`;

/** `project#user#model` (after any prefix) back into a scope; the user may itself hold anything. */
function parseScope(parts: string[]): Scope {
  return { project: parts[0], user: parts.slice(1, -1).join('#'), model: parts[parts.length - 1] };
}

export const num = (n: number): AttributeValue => ({ N: String(n) });
const readNum = (item: Item, name: string) => Number(item[name]?.N ?? 0);

function counters(item: Item): UsageDelta {
  return Object.fromEntries(COUNTERS.map((c) => [c, readNum(item, c)])) as unknown as UsageDelta;
}

export function toUsage(item: Item): UsageRow {
  const scope = parseScope(item.sk.S!.slice(USAGE_PREFIX.length).split('#'));
  const row: UsageRow = { month: item.pk.S!.slice(2), ...scope, ...counters(item), committed: readNum(item, 'committed') };
  if (item.priceVersion?.S !== undefined) row.priceVersion = item.priceVersion.S;
  return row;
}

/**
 * The in-flight marker of one call on an item: a map, on a usage row its amount, deadline (epoch ms)
 * and day, on a rate window its tokens, and on both the reserve try that holds it (`t`, see
 * dynamo-ledger.ts). A call whose reservation may have a write still on its way (a timeout, a
 * retry) is settled or given back by turning the marker into a tombstone, a string, instead of
 * removing it: the late write's `attribute_not_exists` condition then refuses it. Settling and
 * giving back require a map, so a tombstone is never settled again.
 */
export const holdName = (callId: string) => `${HOLD_PREFIX}${callId}`;
const HOLD_PREFIX = 'h_';
export const holdValue = (amount: number, expiresAt: number, day: string, owner: string): AttributeValue => ({
  M: { a: num(amount), x: num(expiresAt), d: { S: day }, t: { S: owner } },
});
export const rateHoldValue = (tokens: number, owner: string): AttributeValue => ({ M: { k: num(tokens), t: { S: owner } } });
/** What `attribute_type` names for a live marker (a map; a tombstone is a string). */
export const LIVE_MARKER: AttributeValue = { S: 'M' };
/** How long a tombstone stays: far past any write a client gave up on (DynamoDB answers in ms). */
export const TOMBSTONE_KEEP_MS = 60 * 60_000;
/** A tombstone holds when it may go (epoch ms): the expiry sweep drops it after that. */
export const tombstoneValue = (now: number): AttributeValue => ({ S: String(now + TOMBSTONE_KEEP_MS) });

/** Tombstones on an item whose time is up (`now` past it). */
export function staleTombstones(item: Item, now: number): { name: string; value: AttributeValue }[] {
  return Object.entries(item)
    .filter(([name, value]) => name.startsWith(HOLD_PREFIX) && value.S !== undefined && Number(value.S) < now)
    .map(([name, value]) => ({ name, value }));
}

/** Every marker on a usage item. */
export function holdsOf(item: Item): { callId: string; amount: number; expiresAt: number; day: string }[] {
  return Object.entries(item)
    .filter(([name, value]) => name.startsWith(HOLD_PREFIX) && value.M)
    .map(([name, value]) => ({
      callId: name.slice(HOLD_PREFIX.length),
      amount: Number(value.M!.a?.N ?? 0),
      expiresAt: Number(value.M!.x?.N ?? 0),
      day: value.M!.d?.S ?? '',
    }));
}

/** A detail row's counter for one day of its month: `d26_spent`. */
export const dailyName = (day: string, counter: string) => `d${day.slice(8, 10)}_${counter}`;
const DAILY_NAME = /^d(\d\d)_(\w+)$/;

/** The per-day counters kept on a detail usage item, one row per day that has any. */
export function toDaily(item: Item): DailyRow[] {
  const month = item.pk.S!.slice(2);
  const scope = parseScope(item.sk.S!.slice(USAGE_PREFIX.length).split('#'));
  const days = new Map<string, Item>();
  for (const [name, value] of Object.entries(item)) {
    const m = DAILY_NAME.exec(name);
    if (!m) continue;
    const day = `${month}-${m[1]}`;
    days.set(day, { ...days.get(day), [m[2]]: value });
  }
  return [...days].map(([day, counts]) => ({ day, ...scope, ...counters(counts) }));
}

/** Marks a month as having usage: idempotent (SET if_not_exists), so retries and races are harmless. */
export function monthMark(day: string) {
  return {
    UpdateExpression: 'SET #f = if_not_exists(#f, :day)',
    ExpressionAttributeNames: { '#f': 'firstDay' },
    ExpressionAttributeValues: { ':day': { S: day } },
  };
}

export function toLimit(item: Item): LimitRow {
  const row: LimitRow = { scope: parseScope(item.sk.S!.split('#')) };
  const set = (field: 'limit' | 'dayLimit' | 'rpm' | 'tpm', name: string) => {
    const value = optNum(item, name);
    if (value !== undefined) row[field] = value;
  };
  set('limit', LIMIT_ATTRIBUTES.month);
  set('dayLimit', LIMIT_ATTRIBUTES.day);
  set('rpm', LIMIT_ATTRIBUTES.rpm);
  set('tpm', LIMIT_ATTRIBUTES.tpm);
  const alerts = storedAlerts(item[ALERT_ATTRIBUTES.month]?.S);
  const dayAlerts = storedAlerts(item[ALERT_ATTRIBUTES.day]?.S);
  if (alerts && row.limit !== undefined) row.alerts = alerts;
  if (dayAlerts && row.dayLimit !== undefined) row.dayAlerts = dayAlerts;
  return row;
}
/** A limit item with none of its limits left is no limit at all. */
export const hasLimit = (row: LimitRow) => [row.limit, row.dayLimit, row.rpm, row.tpm].some((v) => v !== undefined);

/** The set's order is DynamoDB's: callers sort. */
export const toMembers = (item: Item): MemberRow => ({ project: item.sk.S!, members: item.members?.SS ?? [] });

const optNum = (item: Item, name: string): number | undefined => (item[name]?.N === undefined ? undefined : Number(item[name].N));

export function toPrice(item: Item): PriceOverride {
  const price: PriceOverride = {
    model: item.sk.S!,
    input: readNum(item, 'input'),
    cachedInput: optNum(item, 'cachedInput') ?? null,
    output: readNum(item, 'output'),
    updatedAt: item.updatedAt?.S ?? '',
  };
  const cacheWrite = optNum(item, 'cacheWrite');
  if (cacheWrite !== undefined) price.cacheWrite = cacheWrite;
  const threshold = optNum(item, 'lcThreshold');
  if (threshold !== undefined) {
    price.longContext = {
      thresholdInputTokens: threshold,
      input: readNum(item, 'lcInput'),
      cachedInput: optNum(item, 'lcCachedInput') ?? null,
      output: readNum(item, 'lcOutput'),
    };
  }
  const audio = Object.entries({ input: 'audioInput', cachedInput: 'audioCachedInput', output: 'audioOutput' })
    .map(([rate, name]) => [rate, optNum(item, name)] as const)
    .filter(([, v]) => v !== undefined);
  if (audio.length) price.audio = Object.fromEntries(audio);
  return price;
}

/** Rates an override does not set are left out of the item (absent, not zero). */
export function priceItem(p: PriceOverride): Item {
  const item: Item = { ...priceKey(p.model), input: num(p.input), output: num(p.output), updatedAt: { S: p.updatedAt } };
  const optional: Record<string, number | null | undefined> = {
    cachedInput: p.cachedInput,
    cacheWrite: p.cacheWrite,
    lcThreshold: p.longContext?.thresholdInputTokens,
    lcInput: p.longContext?.input,
    lcCachedInput: p.longContext?.cachedInput,
    lcOutput: p.longContext?.output,
    audioInput: p.audio?.input,
    audioCachedInput: p.audio?.cachedInput,
    audioOutput: p.audio?.output,
  };
  for (const [name, value] of Object.entries(optional)) if (value != null) item[name] = num(value);
  return item;
}

/**
 * An UpdateItem that ADDs each given counter (creating the item if missing), optionally SETs the
 * price version, and ends the call's marker `hold`: removed, or replaced by `tombstone` (see
 * holdName). `remove` lists other attributes to drop. Attribute names go through placeholders:
 * several are DynamoDB reserved words.
 */
export function addExpression(
  adds: Record<string, number>,
  opts: { priceVersion?: string; hold?: string; tombstone?: AttributeValue; remove?: readonly string[] } = {},
) {
  const names: Record<string, string> = {};
  const values: Item = {};
  // Adding 0 changes nothing but the request's size and (creating the attribute) the item's, which
  // DynamoDB bills by: zero counters (errors, cache hits, cached tokens…) are left out.
  const terms = Object.entries(adds).filter(([, value]) => value !== 0).map(([name, value], i) => {
    names[`#a${i}`] = name;
    values[`:a${i}`] = num(value);
    return `#a${i} :a${i}`;
  });
  let expression = terms.length ? `ADD ${terms.join(', ')}` : '';
  const sets: string[] = [];
  if (opts.priceVersion !== undefined) {
    names['#pv'] = 'priceVersion';
    values[':pv'] = { S: opts.priceVersion };
    sets.push('#pv = :pv');
  }
  const removes: string[] = [];
  if (opts.hold !== undefined) {
    names['#h'] = opts.hold;
    if (opts.tombstone) {
      values[':tomb'] = opts.tombstone;
      sets.push('#h = :tomb');
    } else {
      removes.push('#h');
    }
  }
  (opts.remove ?? []).forEach((name, i) => {
    names[`#r${i}`] = name;
    removes.push(`#r${i}`);
  });
  if (sets.length) expression += ` SET ${sets.join(', ')}`;
  if (removes.length) expression += ` REMOVE ${removes.join(', ')}`;
  return { UpdateExpression: expression.trim(), ExpressionAttributeNames: names, ExpressionAttributeValues: values };
}

// ------------------------------------------------------------------------------------ alert marks
//
// A threshold reached is marked on the limit's usage item: `am80` (80% of the monthly limit) or
// `ad26_80` (80% of the daily limit on day 26), valued `<limit nano>|<callId>`. The limit in the
// value re-arms the threshold when an admin changes the limit; the month in the key (and the day in
// the name) re-arms it each period. The marking write also sets the stream carrier (contract.ts).

export const ALERT_CARRIER = ALERT_STREAM.carrier;
const MARK_NAME = /^a(m|d(\d\d)_)(\d{1,3})$/;

export const markName = (period: AlertPeriod, day: string, threshold: number) =>
  period === 'month' ? `am${threshold}` : `ad${day.slice(8, 10)}_${threshold}`;
/** The prefix a mark made against `limit` starts with; made by `callId`, it starts with `ownPrefix`. */
export const markPrefix = (limit: number) => `${limit}|`;
export const ownPrefix = (limit: number, callId: string) => `${limit}|${callId}|`;
export const markValue = (a: BudgetAlert) => `${ownPrefix(a.limit, a.callId)}${a.spent}|${a.at}`;
/** Settled spend of one day of the month, on every usage item: `sd26`. */
export const daySpentName = (day: string) => `sd${day.slice(8, 10)}`;

export function alertCarrier(a: BudgetAlert): AttributeValue {
  const m: Item = {
    period: { S: a.period }, month: { S: a.month }, threshold: num(a.threshold), limit: num(a.limit), spent: num(a.spent),
    at: num(a.at), callId: { S: a.callId }, project: { S: a.scope.project }, user: { S: a.scope.user }, model: { S: a.scope.model },
  };
  if (a.day) m.day = { S: a.day };
  return { M: m };
}

/** The alert a stream record's carrier (or a stored one) describes; undefined if it is not one. */
export function fromAlertCarrier(value: AttributeValue | undefined): BudgetAlert | undefined {
  const m = value?.M;
  if (!m || (m.period?.S !== 'month' && m.period?.S !== 'day') || m.threshold?.N === undefined || m.limit?.N === undefined) return undefined;
  return {
    scope: { project: m.project?.S ?? '', user: m.user?.S ?? '', model: m.model?.S ?? '' },
    period: m.period.S,
    month: m.month?.S ?? '',
    ...(m.day?.S ? { day: m.day.S } : {}),
    threshold: Number(m.threshold.N),
    limit: Number(m.limit.N),
    spent: Number(m.spent?.N ?? 0),
    at: Number(m.at?.N ?? 0),
    callId: m.callId?.S ?? '',
  };
}

/** The alert a mark attribute records; undefined for another attribute. */
export function markFrom(month: string, scope: Scope, name: string, text: string | undefined): BudgetAlert | undefined {
  const m = MARK_NAME.exec(name);
  const parts = text?.split('|');
  if (!m || !parts || parts.length !== 4) return undefined;
  return {
    scope,
    period: m[1] === 'm' ? 'month' : 'day',
    month,
    ...(m[2] ? { day: `${month}-${m[2]}` } : {}),
    threshold: Number(m[3]),
    limit: Number(parts[0]),
    callId: parts[1],
    spent: Number(parts[2]),
    at: Number(parts[3]),
  };
}

/** The alerts marked on a usage item (the last one per threshold and period: a re-armed one replaces it). */
export function marksOf(item: Item): BudgetAlert[] {
  const month = item.pk.S!.slice(2);
  const scope = parseScope(item.sk.S!.slice(USAGE_PREFIX.length).split('#'));
  return Object.entries(item).flatMap(([name, value]) => markFrom(month, scope, name, value.S) ?? []);
}
