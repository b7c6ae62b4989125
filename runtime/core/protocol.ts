// The wire contract between clients (SDK, CLI, dashboard) and the runtime. Zero imports on purpose:
// the SDK may import this file without pulling in any runtime code.

/** Request header: the project a call is billed to. Defaults to {@link DEFAULT_PROJECT}. */
export const HEADER_PROJECT = 'openai-proxy-project';
/** Request header: `1` (default) allows the response cache, `0` bypasses it. */
export const HEADER_CACHING = 'openai-proxy-caching';
/** Response header: `hit`, `miss` or `bypass`. */
export const HEADER_CACHE = 'openai-proxy-cache';
/** Response header (non-streamed calls): what this call cost, in USD. */
export const HEADER_COST = 'openai-proxy-cost';
/** Response header: USD left in the tightest limited scope after this call's reservation. */
export const HEADER_BUDGET_REMAINING = 'openai-proxy-budget-remaining';
/** Response header: the limit (USD) of that tightest scope. */
export const HEADER_BUDGET_LIMIT = 'openai-proxy-budget-limit';
/** Response header: which scope that is, e.g. `project=research user=* model=*` (contract.ts: formatBudgetScope). */
export const HEADER_BUDGET_SCOPE = 'openai-proxy-budget-scope';
export const DEFAULT_PROJECT = 'N/A';
/**
 * Users of the public URL are `public:<client>` (an IPv4 address or an IPv6 /64). No IAM name
 * contains `:`, so none can collide with one.
 */
export const PUBLIC_USER_PREFIX = 'public:';
/** Wildcard used in limit and usage scopes: "any user" / "any model". */
export const ANY = '*';
export const STAGES = ['dev', 'prod'] as const;
export type Stage = (typeof STAGES)[number];

/** The smallest non-zero USD amount (limits; prices per 1M tokens): below it, nano-USD rounds it to 0. */
export const MIN_USD = 0.000001;
/** The largest USD amount the admin API takes. */
export const MAX_USD = 1_000_000;
/** An amount the admin API takes: a number, 0 or from {@link MIN_USD} to {@link MAX_USD}. */
export const isUsdAmount = (n: unknown): n is number =>
  typeof n === 'number' && Number.isFinite(n) && (n === 0 || (n >= MIN_USD && n <= MAX_USD));

/**
 * A scope's limits as the admin API speaks them. `user`/`model` absent (or `*`) means "any". Each
 * limit is optional (a scope has at least one); every one that is set is enforced.
 */
export interface LimitDto {
  project: string;
  user: string;
  model: string;
  /** USD per calendar month (UTC). */
  limit?: number;
  /** USD per day (UTC). */
  dailyLimit?: number;
  /** Requests per minute (cache hits count). */
  rpm?: number;
  /** Tokens per minute: input plus the worst-case output while a call runs, its actual use after. */
  tpm?: number;
  /**
   * Alert thresholds of `limit`, percent, lowest first (empty: no alerts). Listings show the
   * defaults (80 and 100) when none were set.
   */
  alerts?: number[];
  /** Alert thresholds of `dailyLimit`, as `alerts`. */
  dailyAlerts?: number[];
}

/** Which limit of a scope: USD per month or per day, requests or tokens per minute. */
export type LimitKind = 'month' | 'day' | 'rpm' | 'tpm';

/** One usage row of a month (or day) report. Money in USD. */
export interface UsageDto {
  month: string;
  day?: string;
  project: string;
  user: string;
  model: string;
  /** Calls OpenAI answered (and billed). */
  requests: number;
  /** Calls that ended in an error (OpenAI's or on the way): counted apart, they cost nothing. */
  errors: number;
  inputTokens: number;
  cachedTokens: number;
  outputTokens: number;
  spend: number;
  cacheHits: number;
  saved: number;
  /** Requests whose cost was estimated (usage missing: client gone, upstream cut off). */
  estimated: number;
  priceVersion?: string;
}

/** The counters of a usage row, summed. */
export type UsageTotals = Omit<UsageDto, 'month' | 'day' | 'project' | 'user' | 'model' | 'priceVersion'>;

export type UsageGroupBy = 'user' | 'project' | 'model';

/** The admin `usage` answer. */
export interface UsageReport {
  stage: string;
  month: string;
  by: UsageGroupBy;
  /** One row per project, user and model. */
  rows: UsageDto[];
  /** Rows summed by `by`, biggest spend first. */
  groups: (UsageTotals & { key: string })[];
  totals: UsageTotals;
  /** Per day, when asked for with `daily`. */
  days?: UsageDto[];
}

/** A scope's limits with its current use. USD. */
export interface LimitStatus extends LimitDto {
  /** Spent this month. */
  spend: number;
  /** Spent plus reserved by calls in flight, this month. */
  committed: number;
  /** Spent plus reserved today (UTC). */
  today: number;
  /** Requests and tokens taken in this minute's window. */
  minuteRequests: number;
  minuteTokens: number;
}

/** The admin `listLimits` answer. */
export interface LimitsReport {
  stage: string;
  month: string;
  /** Today (UTC), `YYYY-MM-DD`. */
  day: string;
  limits: LimitStatus[];
}

/**
 * A budget alert: settled spend reached `threshold` percent of a USD limit. Made once per scope,
 * period, threshold and limit value (raising the limit arms its thresholds again). Money in USD.
 */
export interface AlertDto {
  project: string;
  user: string;
  model: string;
  /** Which limit: the monthly one or the daily (UTC) one. */
  period: 'month' | 'day';
  /** `YYYY-MM`. */
  month: string;
  /** `YYYY-MM-DD`, for a daily limit's alert. */
  day?: string;
  /** Percent of the limit. */
  threshold: number;
  /** The limit when it was reached. */
  limit: number;
  /** Settled spend of the period when the crossing was seen. */
  spend: number;
  /** ISO time the crossing was seen. */
  at: string;
  /** The call whose settlement crossed it. */
  callId: string;
}

/** The admin `listAlerts` answer. */
export interface AlertsReport {
  stage: string;
  month: string;
  /** Newest first. */
  alerts: AlertDto[];
}

/** One project's, user's or model's share of a period's spend. */
export interface Spender {
  name: string;
  spentUsd: number;
}

/** A limit whose settled spend reached one of its alert thresholds, or the limit itself. */
export interface DigestLimit {
  scope: { project: string; user: string; model: string };
  period: 'month' | 'day';
  /** The month (`YYYY-MM`) or the day (`YYYY-MM-DD`) it is judged on. */
  when: string;
  limitUsd: number;
  spentUsd: number;
  /** Whole percent of the limit, rounded down. */
  percent: number;
  /** The highest of its alert thresholds reached; absent when it has none below the limit it reached. */
  threshold?: number;
}

/** The daily digest of a stage: its month so far, the day before, and the limits near or over. */
export interface DailyDigest {
  type: 'daily_digest';
  stage: string;
  /** The digest's day (UTC), `YYYY-MM-DD`. */
  day: string;
  month: string;
  /** The UTC day before `day`: the last whole day. */
  previousDay: string;
  monthToDate: UsageTotals;
  previousDayTotals: UsageTotals;
  topProjects: Spender[];
  topUsers: Spender[];
  topModels: Spender[];
  /** Highest percent first, at most ten of them. */
  limits: DigestLimit[];
  /** Limits near or over that did not fit in `limits`. */
  moreLimits: number;
  /** The CLI line that shows the whole report. */
  reportCommand: string;
}

/** The admin `sendDigest` answer. */
export interface DigestReport {
  stage: string;
  digest: DailyDigest;
  /** The email's subject and text. */
  subject: string;
  text: string;
  /** Sent to the stage's alert topic by this request. */
  published: boolean;
  messageId?: string;
  /** The schedule's digest of that day had gone out already. */
  alreadySent?: boolean;
}

/** Price of a model in USD per 1M tokens. `cachedInput` null: cached tokens bill at the input rate. */
export interface PriceDto {
  model: string;
  input: number;
  cachedInput?: number | null;
  output: number;
  /** Input written to the prompt cache; absent: such writes bill as input. */
  cacheWrite?: number;
  longContext?: LongContextDto;
  audio?: AudioPriceDto;
  /** `table` (shipped price list) or `override` (set by an admin). */
  source?: 'table' | 'override';
  /** The id whose override applies, when it is not `model` itself (its family or fine-tune base). */
  overrideModel?: string;
}

/** Above `thresholdInputTokens` input tokens the whole request bills at these rates. */
export interface LongContextDto {
  thresholdInputTokens: number;
  input: number;
  cachedInput?: number | null;
  output: number;
}

/**
 * Audio-token rates. In a listing null means "not priced" (calls sending or asking for audio are
 * refused); in `setPrice` a rate left out keeps the table's.
 */
export interface AudioPriceDto {
  input?: number | null;
  cachedInput?: number | null;
  output?: number | null;
}

/**
 * A project open only to its members. A member is a caller as the proxy names it (`alice`,
 * `AWSReservedSSO_Dev_0a1b/alice`) or a whole IAM role (`data-science/*`).
 */
export interface ProjectMembersDto {
  project: string;
  members: string[];
}

/** The admin `listMembers` answer: only projects that have members (the others are open). */
export interface MembersReport {
  stage: string;
  projects: ProjectMembersDto[];
}

/** Requests the admin function accepts (the Lambda payload, JSON). */
export type AdminRequest =
  /**
   * At least one of `limit` (USD, per `period`, month by default), `rpm`, `tpm`; the others are
   * kept. `alerts` (only with `limit`) sets that limit's thresholds: whole percents 1-100 as an array
   * or a comma string (`"50,80,100"`), or `"none"`; left out, the thresholds stay as they were.
   */
  | {
      action: 'setLimit';
      project: string;
      user?: string;
      model?: string;
      limit?: number;
      period?: 'month' | 'day';
      rpm?: number;
      tpm?: number;
      alerts?: number[] | string;
    }
  /** Removes one `kind` of limit, or without it every limit of the scope. */
  | { action: 'removeLimit'; project: string; user?: string; model?: string; kind?: LimitKind }
  | { action: 'listLimits'; project?: string }
  /** The budget alerts of a month (default: the current one, UTC), newest first. */
  | { action: 'listAlerts'; month?: string }
  | { action: 'usage'; month?: string; by?: 'user' | 'project' | 'model'; daily?: boolean }
  /** The months with usage (newest first) and the current month (UTC). */
  | { action: 'months' }
  /**
   * The daily digest of the month so far (spend, top projects, users and models, limits near or over
   * their alert thresholds, calls billed by estimate), published to the stage's alert topic. The
   * answer carries it as `digest`, `subject` and `text`, and `published`. `dryRun`: only answer it.
   * `trigger: 'schedule'` is the schedule's own request (DIGEST_SCHEDULE_EVENT): that digest goes out
   * once a day however often it arrives, and answers `alreadySent` after the first.
   */
  | { action: 'sendDigest'; dryRun?: boolean; trigger?: 'schedule' }
  | {
      action: 'setPrice';
      model: string;
      input: number;
      cachedInput?: number | null;
      output: number;
      cacheWrite?: number;
      longContext?: LongContextDto;
      audio?: { input?: number; cachedInput?: number; output?: number };
    }
  | { action: 'removePrice'; model: string }
  | { action: 'listPrices'; model?: string }
  | { action: 'flushCache' }
  /** Restrict a project to its members: give exactly one of `user` or `role`. */
  | { action: 'grantMember'; project: string; user?: string; role?: string }
  | { action: 'revokeMember'; project: string; user?: string; role?: string }
  | { action: 'listMembers'; project?: string };

/** The OpenAI error envelope, used for every refusal so clients get typed errors. */
export interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}
