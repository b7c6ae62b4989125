// What the Pulumi program (index.ts), the runtime and the SDK must spell the same way: the functions'
// environment variables, the names of the functions and the table, the table's keys, and the
// budget-scope header's format. Plain data and tiny pure functions with no imports on purpose: the
// program loads this without loading runtime code, and the SDK without pulling in the runtime.

/** The variables the program writes into a function's environment (and nothing else does on AWS). */
export const DEPLOYED_ENV = {
  /** `dev`, `prod`, …: the stage the function serves. */
  stage: 'OPENAI_WRAPI_STAGE',
  /** The ledger's DynamoDB table name. */
  table: 'OPENAI_WRAPI_TABLE',
  /** `host:port,…` of the memcached nodes; absent: a per-instance memory cache. */
  memcached: 'OPENAI_WRAPI_MEMCACHED',
  /** Secrets Manager secret holding `{ openaiApiKey, openaiOrgId }` (the proxy only). */
  secretArn: 'OPENAI_WRAPI_SECRET_ARN',
  /**
   * The secret's version deployed with this configuration (the proxy only). A rotated key is a new
   * version, so a new value here: Lambda updates the function and no warm instance keeps the old key.
   */
  secretVersion: 'OPENAI_WRAPI_SECRET_VERSION',
  /** The longest upstream call, in ms. */
  timeoutMs: 'OPENAI_WRAPI_TIMEOUT_MS',
  /** `1`/`true`: forward calls unmetered when the ledger is unreachable. */
  failOpen: 'OPENAI_WRAPI_FAIL_OPEN',
  /** USD per month for projects without a limit of their own. */
  defaultProjectLimit: 'OPENAI_WRAPI_DEFAULT_PROJECT_LIMIT',
  /** An OpenAI-compatible base URL including `/v1`. */
  upstreamUrl: 'OPENAI_WRAPI_UPSTREAM_URL',
  /** Roles whose session name is the user, comma-separated. */
  sessionNamedRoles: 'OPENAI_WRAPI_SESSION_NAMED_ROLES',
  /** The stage's SNS alert topic (the notifier; the admin function when the daily digest is on). */
  alertTopicArn: 'OPENAI_WRAPI_ALERT_TOPIC_ARN',
  /** Secrets Manager secret holding `{ "url": "https://…" }`, the budget alerts' webhook (the notifier only). */
  alertWebhookSecretArn: 'OPENAI_WRAPI_ALERT_WEBHOOK_SECRET_ARN',
  /**
   * The project every call of the public (unsigned, browser) URL is billed to. Set only on the public
   * function, and the only thing that makes a function serve callers without a verified identity.
   */
  publicProject: 'OPENAI_WRAPI_PUBLIC_PROJECT',
  /** Origins (`https://app.example.com`, comma-separated) whose pages may call the public URL. */
  publicOrigins: 'OPENAI_WRAPI_PUBLIC_ORIGINS',
  /** Requests per minute per client (source IP, or IPv6 /64) of the public URL. */
  publicRpm: 'OPENAI_WRAPI_PUBLIC_RPM',
  /** Tokens per minute per client of the public URL. */
  publicTpm: 'OPENAI_WRAPI_PUBLIC_TPM',
  /** `1`: the public URL also serves embeddings (chat completions and responses always). */
  publicEmbeddings: 'OPENAI_WRAPI_PUBLIC_EMBEDDINGS',
} as const;

/**
 * What only the notifier reads of DEPLOYED_ENV (it exists only when an alert channel is configured).
 * The admin function gets the topic's ARN too, only when the daily digest is on.
 */
export const NOTIFIER_ONLY_ENV: readonly string[] = [DEPLOYED_ENV.alertTopicArn, DEPLOYED_ENV.alertWebhookSecretArn];

/** What only the public proxy function reads (it exists only when `publicAccess` is configured). */
export const PUBLIC_ONLY_ENV: readonly string[] = [
  DEPLOYED_ENV.publicProject, DEPLOYED_ENV.publicOrigins, DEPLOYED_ENV.publicRpm, DEPLOYED_ENV.publicTpm, DEPLOYED_ENV.publicEmbeddings,
];

/**
 * Variables the runtime reads that the program never writes: the OpenAI credentials (on AWS they come
 * from the secret, merged in at cold start; locally from the environment), knobs whose defaults
 * suit AWS, and the DynamoDB endpoint of tests and the local stack.
 */
export const UNDEPLOYED_ENV = {
  apiKey: 'OPENAI_API_KEY',
  orgId: 'OPENAI_ORG_ID',
  maxBodyBytes: 'OPENAI_WRAPI_MAX_BODY_BYTES',
  cacheTtlSeconds: 'OPENAI_WRAPI_CACHE_TTL',
  policyCacheMs: 'OPENAI_WRAPI_POLICY_CACHE_MS',
  dynamodbEndpoint: 'OPENAI_WRAPI_DYNAMODB_ENDPOINT',
  /** The SDKs' standard endpoint override for SNS: tests point the notifier's and the digest's Publish at a local server. */
  snsEndpoint: 'AWS_ENDPOINT_URL_SNS',
} as const;

/** What Lambda itself puts in every function's environment (the region, the role's credentials). */
export const LAMBDA_PROVIDED_ENV = ['AWS_REGION', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN'] as const;

/** Every variable a function may read, by what it means. */
export const ENV = { ...DEPLOYED_ENV, ...UNDEPLOYED_ENV } as const;

/** The local stack's own variables (no Lambda has them). */
export const LOCAL_ENV = {
  /** Data folder: credentials, ledgers, outputs.json. */
  home: 'OPENAI_WRAPI_HOME',
  region: 'OPENAI_WRAPI_REGION',
  /** With a DynamoDB endpoint: tables are `<prefix>-<stage>`. */
  tablePrefix: 'OPENAI_WRAPI_TABLE_PREFIX',
  port: 'PORT',
  /** `1`: demo mode, every stage answered by the simulated OpenAI (same as `--demo`). */
  demo: 'OPENAI_WRAPI_DEMO',
  /** A URL each budget alert is POSTed to as JSON (see runtime/local/alert-webhook.ts). */
  alertWebhook: 'OPENAI_WRAPI_ALERT_WEBHOOK',
  /**
   * Milliseconds each request to a DynamoDB endpoint may take (default: the Lambdas' 400). A local
   * DynamoDB-compatible server on a busy machine can need more; the Lambdas keep theirs.
   */
  dynamodbTimeoutMs: 'OPENAI_WRAPI_DYNAMODB_TIMEOUT_MS',
} as const;

/**
 * A per-stage override of `name` (`OPENAI_API_KEY_DEV` for `OPENAI_API_KEY`): the local stack serves
 * every stage from one environment.
 */
export const stageEnvName = (name: string, stage: string): string => `${name}_${stage.toUpperCase()}`;

/** The name of a stage's metering proxy function. */
export const proxyFunctionName = (stage: string): string => `openai-proxy-${stage}`;
/** The name of a stage's public (browser) proxy function, deployed only with `publicAccess`. */
export const publicFunctionName = (stage: string): string => `openai-public-${stage}`;
/** The name of a stage's admin function, on AWS and in the local stack. */
export const adminFunctionName = (stage: string): string => `openai-admin-${stage}`;
/** The name of a stage's budget-alert notifier function (deployed only with an alert channel). */
export const notifierFunctionName = (stage: string): string => `openai-notifier-${stage}`;
/**
 * What EventBridge Scheduler hands the admin function every day when the stack's `dailyDigest` is on
 * (the schedule's input): the admin's `sendDigest` request, marked as the schedule's so that a
 * failure fails the invocation (Lambda retries it, and the admin's error alarm sees it).
 */
export const DIGEST_SCHEDULE_EVENT = { action: 'sendDigest', trigger: 'schedule' } as const;

/** The name of a stage's ledger table. */
export const ledgerTableName = (stage: string, prefix = 'openai-wrapi'): string => `${prefix}-${stage}`;

/** The table the program creates: exactly the keys the ledger uses, no indexes. */
export const LEDGER_TABLE = {
  hashKey: 'pk',
  rangeKey: 'sk',
  attributes: [
    { name: 'pk', type: 'S' },
    { name: 'sk', type: 'S' },
  ],
  /** Epoch seconds after which DynamoDB's TTL deletes an item (remembered response sizes). */
  ttlAttribute: 'ttl',
} as const;

/** A limited scope as the budget-scope response header names it; `*` is "any". */
export interface BudgetScope {
  project: string;
  user: string;
  model: string;
}

/**
 * The budget-scope header's value: `project=research user=* model=gpt-4o`, each part URI-encoded,
 * and ` period=day` when the tightest limit is the scope's daily one (readers skip unknown parts).
 */
export const formatBudgetScope = (scope: BudgetScope, period?: 'day'): string =>
  `project=${encodeURIComponent(scope.project)} user=${encodeURIComponent(scope.user)} model=${encodeURIComponent(scope.model)}` +
  (period ? ` period=${period}` : '');

/** Which limit a budget-scope header's value is about: the monthly one unless it says `period=day`. */
export const budgetPeriod = (value: string | null | undefined): 'month' | 'day' =>
  value?.split(' ').includes('period=day') ? 'day' : 'month';

/**
 * Reads a budget-scope header's value. Undefined without a project; a missing user or model is `*`.
 * Unknown parts are skipped and a part that is not valid URI encoding is taken as it is, so a newer
 * proxy's header still reads.
 */
export function parseBudgetScope(value: string | null | undefined): BudgetScope | undefined {
  if (!value) return undefined;
  const parts = new Map<string, string>();
  for (const piece of value.split(' ')) {
    const eq = piece.indexOf('=');
    if (eq < 0) continue;
    const raw = piece.slice(eq + 1);
    try {
      parts.set(piece.slice(0, eq), decodeURIComponent(raw));
    } catch {
      parts.set(piece.slice(0, eq), raw);
    }
  }
  const project = parts.get('project');
  return project === undefined ? undefined : { project, user: parts.get('user') ?? '*', model: parts.get('model') ?? '*' };
}

// ----------------------------------------------------------------------------------------- metrics
//
// The proxy's CloudWatch metrics (runtime/lambda/call-metrics.ts writes them, the program's alarms
// and dashboard read them). Dimensions stay few and low-cardinality: each combination is a billed
// metric. Project, user and model are properties of the log line (Logs Insights), never dimensions.

/** How a call through the proxy ended: the `outcome` dimension of `Requests`. */
export const CALL_OUTCOMES = [
  'served', // answered: by OpenAI with its usage, by the cache, or an unmetered route
  'estimated', // answered or cut off without OpenAI's usage: billed by a conservative estimate
  'upstream_error', // OpenAI answered with an error, or could not be reached
  'refused_budget', // over a budget limit, or a project without one
  'refused_rate', // over a per-minute limit (the client may retry)
  'refused_membership', // not a member of the project, or not a verified caller
  'invalid_request', // the proxy refused what it was sent (route, body, model without a price, …)
  'proxy_error', // the proxy itself failed (ledger unreachable, cold start, a bug)
] as const;
export type CallOutcome = (typeof CALL_OUTCOMES)[number];

export const METRICS = {
  namespace: 'openai-wrapi',
  /** Dimensions of `Requests`; every other metric has `stage` only. */
  requestDimensions: ['stage', 'route', 'outcome'],
  names: {
    /** Count, per stage, route and outcome: traffic, and refusals by reason. */
    requests: 'Requests',
    /** USD billed (exact or estimated). */
    spendUsd: 'SpendUsd',
    /** USD a cache hit saved (what the call cost when it was cached). */
    savedUsd: 'SavedUsd',
    cacheHits: 'CacheHits',
    /** Cacheable calls the cache could not answer (calls with caching off count in neither). */
    cacheMisses: 'CacheMisses',
    /** Calls billed by estimate because OpenAI's usage never arrived. */
    estimatedCalls: 'EstimatedCalls',
    /** Calls whose settlement never reached the ledger: their holds are charged in full at the deadline. */
    unsettledCalls: 'UnsettledCalls',
    /** Failed ledger reads and writes (each one logged with its error name). */
    ledgerErrors: 'LedgerErrors',
    /** Milliseconds from the invocation's start to the request leaving for OpenAI: the proxy's own work. */
    addedLatency: 'AddedLatency',
    /** Milliseconds from the invocation's start to the first body byte sent to the caller. */
    timeToFirstByte: 'TimeToFirstByte',
  },
} as const;

// ----------------------------------------------------------------------------------- budget alerts

/**
 * How a budget alert leaves the ledger table on AWS. The write that marks a threshold reached also
 * sets `carrier` (a map describing the alert) on the usage item, and every other write to a usage
 * item removes it: so a DynamoDB Streams record whose new image has it is exactly one new alert, and
 * the event filter below lets only those reach the notifier function.
 */
export const ALERT_STREAM = {
  carrier: 'alert',
  filterPattern: JSON.stringify({
    eventName: ['MODIFY'],
    dynamodb: { NewImage: { alert: { M: { threshold: { N: [{ exists: true }] } } } } },
  }),
  /**
   * Partition-key prefixes the notifier touches, for its IAM conditions (`dynamodb:LeadingKeys`): it
   * reads usage partitions (`M#<month>`) and writes only its delivery records (`A#<alert id>`).
   */
  usagePartitionPrefix: 'M#',
  deliveryPartitionPrefix: 'A#',
} as const;
