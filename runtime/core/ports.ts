// The narrow ports the core talks through. Stores only store and count: which scopes apply, how much
// to reserve and what a call cost is decided by pure core code (limits.ts, pricing.ts).

import type { AlertWatch, BudgetAlert } from './alerts.ts';

/** Money inside the runtime is an integer count of nano-USD (1e-9 USD): exact sums, no float drift. */
export type Nano = number;

/** A ledger scope. `user` and `model` may be `*` (ANY), meaning the aggregate over all of them. */
export interface Scope {
  project: string;
  user: string;
  model: string;
}

/**
 * One scope row a call holds budget on while it runs. Every row the call will be settled into gets a
 * hold (so its settlement can be applied exactly once); `limit` is set on the rows a limit guards.
 */
export interface Hold {
  scope: Scope;
  /** The call's worst-case cost, added to the row's committed total while the call runs. */
  amount: Nano;
  /** Refuse the hold unless committed + amount <= limit. Undefined: counted, not limited. */
  limit?: Nano;
  /** USD per day (UTC): refuse unless the row's committed total of the reservation's day + amount <= it. */
  dayLimit?: Nano;
  /** Alert thresholds (percent) of `limit` and of `dayLimit`; absent: the default ones. */
  alerts?: readonly number[];
  dayAlerts?: readonly number[];
}

/**
 * One request and `tokens` taken in a scope's one-minute window. Rate holds exist only on scopes
 * with a rate limit, so a call without one writes nothing more than its USD holds.
 */
export interface RateHold {
  scope: Scope;
  /** Input plus worst-case output: settled to what OpenAI reported (0 for a cache hit). */
  tokens: number;
  /** Refuse unless the window's requests + 1 <= rpm. Undefined: counted, not limited. */
  rpm?: number;
  /** Refuse unless the window's tokens + `tokens` <= tpm. */
  tpm?: number;
}

/** What a rate window holds: requests and tokens taken (tokens reserved, then settled). */
export interface RateUse {
  requests: number;
  tokens: number;
}

/** The limits a scope may have besides USD per month. */
export interface RateLimits {
  rpm?: number;
  tpm?: number;
}

/** Which limit: USD per month, USD per day (UTC), requests or tokens per minute. */
export type LimitKind = 'month' | 'day' | 'rpm' | 'tpm';

/**
 * A call's reservation. `callId` marks every row it touches, so a retried or duplicated write applies
 * once; the marker is removed by the settlement (or the release) in the same single-row update.
 */
export interface Reservation {
  callId: string;
  /** The instant the call was admitted decides both its month and its day. */
  month: string;
  day: string;
  /** After this instant (epoch ms) a hold that was never settled is charged in full (see `expired`). */
  expiresAt: number;
  holds: Hold[];
  /** The start (epoch ms, a whole UTC minute) of the window the rate holds are taken in. */
  window?: number;
  /** Rate holds, on the scopes with a rate limit only (a cache hit has these and no USD holds). */
  rates?: RateHold[];
}

export type ReserveResult =
  /**
   * `committed[i]` is hold i's committed total (spent + reserved) after this reservation; `days[i]`
   * (only when a hold has a daily limit) that of the reservation's day; `rates[i]` (only when the
   * reservation has rate holds) what rate hold i's window holds after it.
   */
  | { ok: true; committed: Nano[]; days?: Nano[]; rates?: RateUse[] }
  /**
   * Hold `index` refused; `committed` is its total before this call (of the day when `period` is
   * `day`). Holds already taken, rate holds too, were undone. A USD refusal is told before a rate one.
   */
  | { ok: false; index: number; committed: Nano; period?: 'day' }
  /** Rate hold `rate` refused; `use` is its window before this call. Every hold taken was undone. */
  | { ok: false; rate: number; use: RateUse };

/** Counters added to a usage row. */
export interface UsageDelta {
  /** Calls OpenAI answered (and billed). */
  requests: number;
  /** Calls OpenAI refused or that failed before an answer: they cost nothing. */
  errors: number;
  inputTokens: number;
  cachedTokens: number;
  outputTokens: number;
  spent: Nano;
  cacheHits: number;
  saved: Nano;
  /** 1 when the cost was estimated because the usage block never arrived. */
  estimated: number;
}

/**
 * A finished call, as the core computed it: which rows change and by how much. The store only
 * applies it, row by row, each row only if it still holds the call's marker.
 */
export interface Settlement {
  callId: string;
  month: string;
  day: string;
  rows: SettledRow[];
  delta: UsageDelta;
  /** Which price list priced the call (stored on the rows). */
  priceVersion?: string;
  /** The reservation's rate window, and each rate hold's change of tokens (actual minus reserved). */
  window?: number;
  rates?: { scope: Scope; tokens: number }[];
}

export interface SettledRow {
  scope: Scope;
  /** Change of the row's committed total: the cost minus what the call held there. */
  committed: Nano;
  /** Also add the delta to this scope's row for `day`. */
  daily: boolean;
  /**
   * Limits on this row whose alert thresholds the settled spend may reach. The ledger reads the
   * row's new spend off this settlement's own write and marks each threshold reached, once.
   */
  watch?: AlertWatch[];
}

/** A hold whose call never settled by its deadline: the core charges it (see `Ledger.expired`). */
export interface ExpiredHold {
  callId: string;
  month: string;
  day: string;
  scope: Scope;
  amount: Nano;
}

export interface UsageRow extends UsageDelta {
  month: string;
  project: string;
  user: string;
  model: string;
  /** spent + reservations not yet settled. */
  committed: Nano;
  priceVersion?: string;
}

export interface DailyRow extends UsageDelta {
  day: string;
  project: string;
  user: string;
  model: string;
}

/** A scope's limits; a row has at least one of them. */
export interface LimitRow {
  scope: Scope;
  /** USD per calendar month. */
  limit?: Nano;
  /** USD per UTC day. */
  dayLimit?: Nano;
  rpm?: number;
  tpm?: number;
  /** Alert thresholds (percent) of `limit` and `dayLimit`; absent: the default ones, empty: none. */
  alerts?: number[];
  dayAlerts?: number[];
}

/** What a scope has used against its limits, for listings. */
export interface LimitUse {
  /** Committed (spent + reserved) on the day asked for. */
  day: Nano;
  /** This minute's window. */
  requests: number;
  tokens: number;
}

/** A project restricted to its members (see membership.ts for what a member name matches). */
export interface MemberRow {
  project: string;
  /** Sorted; never empty (a project whose last member was revoked is open again and not listed). */
  members: string[];
}

/**
 * An admin's price for a model, USD per 1M tokens. Beats the shipped table at once, for this id
 * and every id that resolves to it. Long-context and audio rates it leaves out keep the table's.
 */
export interface PriceOverride {
  model: string;
  input: number;
  cachedInput: number | null;
  output: number;
  /** Writes to the prompt cache; left out, the table's rate for this id (else the input rate). */
  cacheWrite?: number;
  /** Above `thresholdInputTokens` input tokens the whole request bills at these rates. */
  longContext?: { thresholdInputTokens: number; input: number; cachedInput: number | null; output: number };
  /** Audio-token rates; each one left out keeps the table's. */
  audio?: { input?: number; cachedInput?: number; output?: number };
  /** ISO time it was set; part of the price version recorded with usage. */
  updatedAt: string;
}

/**
 * The budget ledger: limits, usage, reservations and price overrides. Implementations (SQLite,
 * DynamoDB) must pass the same conformance suite. Any method may throw when the store is
 * unreachable; the core turns that into a 503 (or fails open when configured to).
 */
export interface Ledger {
  /**
   * One round trip: the limit of each scope (undefined = none), any price override per model, and
   * the members of the projects the scopes name (a project without members is absent: it is open).
   */
  read(
    scopes: Scope[],
    models: string[],
    /** Responses a call continues (`previous_response_id`): their remembered size comes back too. */
    responses?: string[],
  ): Promise<{
    /** USD per month. */
    limits: (Nano | undefined)[];
    /** USD per day; the stores always answer it (optional only for hand-made test ledgers). */
    dayLimits?: (Nano | undefined)[];
    /** Requests and tokens per minute, undefined where the scope has neither. */
    rateLimits?: (RateLimits | undefined)[];
    /** Each scope's alert thresholds of its monthly and daily limits (undefined: the defaults). */
    alerts?: (number[] | undefined)[];
    dayAlerts?: (number[] | undefined)[];
    prices: (PriceOverride | undefined)[];
    members: ReadonlyMap<string, readonly string[]>;
    responses?: (number | undefined)[];
  }>;
  /**
   * Remember how many tokens a settled response carries forward (its input plus output), so a call
   * that continues it is reserved by that instead of the model's whole input window. Idempotent.
   */
  rememberResponse(id: string, tokens: number, expiresAt: number): Promise<void>;
  /**
   * Take every hold of the reservation, all or none; a limited hold refuses when it would pass its
   * limit. Idempotent: holds this call already has count as taken (a retry after a lost reply).
   */
  reserve(reservation: Reservation): Promise<ReserveResult>;
  /** Give back the holds (requests and tokens too) of a call that never went out. Idempotent, like every write below. */
  release(reservation: Reservation): Promise<void>;
  /**
   * Apply a finished call to each row that still holds its marker, removing the marker. Then, on
   * each watched row, mark every alert threshold its settled spend has reached and no call marked
   * yet against that limit value (one conditional write each). Answers the marks this call made,
   * a retry included (hand-made test ledgers may answer nothing).
   */
  settle(settlement: Settlement): Promise<BudgetAlert[] | void>;
  /** A cache hit: counted on the detail row and its day, at most once (no retry). */
  recordHit(month: string, day: string, scope: Scope, saved: Nano): Promise<void>;
  /** Holds of a month past their deadline (`expiresAt` before `now`). */
  expired(month: string, now: number): Promise<ExpiredHold[]>;
  /** Every row of a month, detail rows and aggregates alike. */
  usage(month: string): Promise<UsageRow[]>;
  /** Detail rows per day of a month. */
  daily(month: string): Promise<DailyRow[]>;
  /** The months (`YYYY-MM`) in which a call, an error or a cache hit was settled, newest first. */
  months(): Promise<string[]>;
  /**
   * Sets one kind of limit (USD nano for month and day; a count for rpm and tpm), keeping the others.
   * `alerts` (month and day only) replaces that limit's thresholds; undefined keeps them.
   */
  setLimit(scope: Scope, limit: number, kind?: LimitKind, alerts?: readonly number[]): Promise<void>;
  /** Removes one kind of limit, or every limit of the scope; false when there was none. */
  removeLimit(scope: Scope, kind?: LimitKind): Promise<boolean>;
  listLimits(): Promise<LimitRow[]>;
  /** The alert marks made in a month (its daily limits' too), oldest first. */
  alerts(month: string): Promise<BudgetAlert[]>;
  /** Each scope's use on `day` and in the rate window starting at `window` (absent: zero). */
  limitUse(scopes: Scope[], month: string, day: string, window: number): Promise<LimitUse[]>;
  setPrice(price: PriceOverride): Promise<void>;
  removePrice(model: string): Promise<boolean>;
  listPrices(): Promise<PriceOverride[]>;
  /** Adds a member to a project. False when it was one already. */
  addMember(project: string, member: string): Promise<boolean>;
  /** False when it was not a member. */
  removeMember(project: string, member: string): Promise<boolean>;
  /** Every project that has members, by project name. */
  listMembers(): Promise<MemberRow[]>;
  close?(): Promise<void>;
}

/** A cached upstream answer: enough to replay it byte for byte. */
export interface CachedResponse {
  status: number;
  headers: [string, string][];
  /** The whole body; for streams, the SSE transcript the client saw. */
  body: Uint8Array;
  /** What the original call cost: a hit records it as saved. */
  cost: Nano;
}

/**
 * The response cache. Implementations must never throw from get/set and must time out quickly:
 * a dead cache means "miss", never a failed request.
 */
export interface ResponseCache {
  get(key: string): Promise<CachedResponse | undefined>;
  set(key: string, value: CachedResponse, ttlSeconds: number): Promise<void>;
  /** Drop everything. May throw: an admin asked for it and should hear if it failed. */
  flush(): Promise<void>;
  close?(): Promise<void>;
}

/** The OpenAI upstream: a `fetch`. Injected so tests and benches can count or delay calls. */
export type Upstream = (input: string, init: RequestInit) => Promise<Response>;

/** Where lines that must never carry prompts or keys go. */
export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}
