// The narrow ports the core talks through. Stores only store and count: which scopes apply, how much
// to reserve and what a call cost is decided by pure core code (limits.ts, pricing.ts).

/** Money inside the runtime is an integer count of nano-USD (1e-9 USD): exact sums, no float drift. */
export type Nano = number;

/** A ledger scope. `user` and `model` may be `*` (ANY), meaning the aggregate over all of them. */
export interface Scope {
  project: string;
  user: string;
  model: string;
}

/** A reservation to take on one limited scope: add `amount` to its committed total if that stays <= `limit`. */
export interface Hold {
  scope: Scope;
  amount: Nano;
  limit: Nano;
}

export type ReserveResult =
  /** `committed[i]` is hold i's committed total (spent + reserved) after this reservation. */
  | { ok: true; committed: Nano[] }
  /** Hold `index` refused; `committed` is its total before this call. Holds already taken were undone. */
  | { ok: false; index: number; committed: Nano };

/** Counters added to a usage row. */
export interface UsageDelta {
  requests: number;
  inputTokens: number;
  cachedTokens: number;
  outputTokens: number;
  spent: Nano;
  cacheHits: number;
  saved: Nano;
  /** 1 when the cost was estimated because the usage block never arrived. */
  estimated: number;
}

export interface Settlement {
  month: string;
  /** `YYYY-MM-DD`: the detail scope's delta is also added to this day's row. */
  day: string;
  /**
   * Every scope row the call counts into (detail row plus its aggregates), each with the
   * reservation it held (0 if none). A row's committed total changes by `delta.spent - release`.
   */
  scopes: { scope: Scope; release: Nano }[];
  delta: UsageDelta;
  /** Which price list priced the call (stored on the rows). */
  priceVersion?: string;
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

export interface LimitRow {
  scope: Scope;
  limit: Nano;
}

/** An admin's price for a model, USD per 1M tokens. Beats the shipped table at once. */
export interface PriceOverride {
  model: string;
  input: number;
  cachedInput: number | null;
  output: number;
  /** ISO time it was set; part of the price version recorded with usage. */
  updatedAt: string;
}

/**
 * The budget ledger: limits, usage, reservations and price overrides. Implementations (SQLite,
 * DynamoDB) must pass the same conformance suite. Any method may throw when the store is
 * unreachable; the core turns that into a 503 (or fails open when configured to).
 */
export interface Ledger {
  /** One round trip: the limit of each scope (undefined = none) and any price override per model. */
  read(
    scopes: Scope[],
    models: string[],
  ): Promise<{ limits: (Nano | undefined)[]; prices: (PriceOverride | undefined)[] }>;
  /** Atomically reserve on every hold (in parallel where the store allows), all or none. */
  reserve(month: string, holds: Hold[]): Promise<ReserveResult>;
  /** Record a finished call (or cache hit) and release its reservations. Uses atomic adds only. */
  settle(settlement: Settlement): Promise<void>;
  /** Every row of a month, detail rows and aggregates alike. */
  usage(month: string): Promise<UsageRow[]>;
  /** Detail rows per day of a month. */
  daily(month: string): Promise<DailyRow[]>;
  /** The months (`YYYY-MM`) in which a call or a cache hit was settled, newest first. */
  months(): Promise<string[]>;
  setLimit(scope: Scope, limit: Nano): Promise<void>;
  /** False when there was no such limit. */
  removeLimit(scope: Scope): Promise<boolean>;
  listLimits(): Promise<LimitRow[]>;
  setPrice(price: PriceOverride): Promise<void>;
  removePrice(model: string): Promise<boolean>;
  listPrices(): Promise<PriceOverride[]>;
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
