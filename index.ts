// openai-wrapi on AWS: one Pulumi program, one stack per stage (dev, prod). Per stack it deploys the
// metering proxy (a streaming Lambda behind a function URL with AWS_IAM auth), the admin function,
// the DynamoDB ledger, the stage's OpenAI key in Secrets Manager, optionally memcached on ElastiCache
// (and then the VPC it needs), IAM policies to attach to users and to admins, a permissions boundary
// and an SCP against direct invokes of the proxy, and an alarm for them. With `publicAccess`, a second
// proxy function serves web pages of a few origins through a function URL without auth.
//
// Stacks differ only by their config values (Pulumi.<stack>.yaml); nothing here looks at the stack
// name. The Lambda code is bundled from runtime/lambda/*.ts by esbuild during the program run.
//
// Sections: config · lambda code · ledger · network · cache · secret · alert topic · IAM for the
// functions · functions · public URL · policies for people · alerts, alarms and dashboard (with the
// budget alerts' notifier, the daily digest and the guard against direct invokes) · outputs. Every
// named export of this module is a stack output.
import { createHash } from 'node:crypto';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';
import * as esbuild from 'esbuild';
// Names shared with the runtime (environment variables, function and table names, the table's keys),
// so the two cannot drift apart: plain data with no imports.
import {
  adminFunctionName as adminFunctionNameOf,
  DEPLOYED_ENV as ENV,
  LEDGER_TABLE,
  ledgerTableName,
  ALERT_STREAM,
  DIGEST_SCHEDULE_EVENT,
  METRICS,
  notifierFunctionName as notifierFunctionNameOf,
  proxyFunctionName as proxyFunctionNameOf,
  publicFunctionName as publicFunctionNameOf,
} from './runtime/core/contract.ts';
// The public URL's settings as the public function reads them (pure core, no I/O): the program checks
// `publicAccess` with the runtime's own reader, so it never deploys what the function would refuse.
import { PUBLIC_CORS, readPublicAccess } from './runtime/core/public-access.ts';

// ------------------------------------------------------------------------------------------ config

/** CloudWatch Logs accepts only these retention periods (days). */
const LOG_RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];

interface Settings {
  /** `dev`, `prod`, …: names the functions (`openai-proxy-<stage>`, `openai-admin-<stage>`) and the table. */
  stage: string;
  numAzs: number;
  useElastiCache: boolean;
  cacheNodeType: string;
  proxyTimeoutSeconds: number;
  proxyMemoryMb: number;
  logRetentionDays: number;
  /** USD per month for projects without a limit of their own; undefined = such projects are refused. */
  defaultProjectLimitUsd?: number;
  failOpen: boolean;
  tableDeletionProtection: boolean;
  /** OpenAI-compatible base URL including `/v1`; undefined = https://api.openai.com/v1. */
  upstreamUrl?: string;
  /** Roles whose session name is the user (their trust policy forces it); see the README. */
  sessionNamedRoles: string[];
  /** Concurrency reserved for the admin function, so a saturated proxy cannot lock admins out; undefined = none. */
  adminReservedConcurrency?: number;
  /** The most proxy instances at once (Lambda's reserved concurrency: also reserved); undefined = the account's pool. */
  proxyMaxConcurrency?: number;
  openaiApiKey: pulumi.Output<string>;
  openaiOrgId?: pulumi.Output<string>;
  /** Subscribed by email to the stage's alert topic; each address must confirm. */
  alertEmails: string[];
  /** A Slack channel (workspace authorised once for Amazon Q Developer in chat applications) subscribed to the topic. */
  slack?: { workspaceId: string; channelId: string };
  /** Where budget alerts are also POSTed as JSON; kept in Secrets Manager (it may carry a token). */
  alertWebhookUrl?: pulumi.Output<string>;
  /** The public (browser) URL; undefined = none. */
  publicAccess?: PublicAccessSettings;
  /** When the daily digest goes to the alert topic; undefined = no digest. */
  dailyDigest?: DailyDigestSettings;
  alarms: AlarmThresholds;
}

/** `dailyDigest`, checked: a time of day in a time zone (EventBridge Scheduler's cron and timezone). */
interface DailyDigestSettings {
  hour: number;
  minute: number;
  /** An IANA time zone name, e.g. Europe/London; the schedule follows its daylight saving time. */
  timezone: string;
}

/** `publicAccess`, checked: what the public function adds to the proxy's environment, and its URL's origins. */
interface PublicAccessSettings {
  /** The DEPLOYED_ENV.public* variables, written from what the runtime's reader made of the config. */
  environment: Record<string, string>;
  /** Exact origins, as browsers send them in `Origin`: the function URL's CORS allowOrigins. */
  origins: string[];
  /** The most public instances at once (reserved concurrency); undefined = the account's pool. */
  maxConcurrency?: number;
}

/** When the alarms fire: counts are per 5 minutes, the duration is a share of the proxy's timeout. */
interface AlarmThresholds {
  /** 5xx answers of the proxy's function URL (and of the public one). */
  url5xx: number;
  /** Invocations that failed (each function but the notifier). */
  functionErrors: number;
  /** Invocations Lambda refused for lack of concurrency (each function but the notifier). */
  functionThrottles: number;
  /** The proxy's longest invocation, in percent of its timeout. */
  durationPercent: number;
  /** DynamoDB requests throttled, over every operation the functions use. */
  ledgerThrottles: number;
  /** DynamoDB server-side errors, likewise. */
  ledgerSystemErrors: number;
  /** Calls billed by estimate plus calls whose settlement never landed. */
  estimatedCalls: number;
}

/** Reads and checks the stack's config once; every problem is reported at once. */
function readSettings(): Settings {
  const config = new pulumi.Config();
  const problems: string[] = [];
  const integer = (key: string, fallback: number, min: number, max: number): number => {
    const value = config.getNumber(key) ?? fallback;
    if (!Number.isInteger(value) || value < min || value > max) problems.push(`${key} must be an integer from ${min} to ${max} (got ${value})`);
    return value;
  };
  const optionalInteger = (key: string, min: number, max: number): number | undefined =>
    config.getNumber(key) === undefined ? undefined : integer(key, 0, min, max);

  const settings: Settings = {
    // Lowercase words joined by single dashes, at most 20 characters: valid in every name it ends up in
    // (ElastiCache ids forbid `--` and a trailing dash; IAM role names stop at 64 characters).
    stage: config.require('stage', { pattern: /^(?=.{1,20}$)[a-z][a-z0-9]*(-[a-z0-9]+)*$/ }),
    numAzs: integer('numAzs', 3, 1, 6),
    useElastiCache: config.getBoolean('useElastiCache') ?? true,
    cacheNodeType: config.get('cacheNodeType', { pattern: /^cache\.[a-z0-9]+\.[a-z0-9]+$/ }) ?? 'cache.t4g.micro',
    // Lambda allows up to 900 s; long reasoning calls and big streams take minutes.
    proxyTimeoutSeconds: integer('proxyTimeoutSeconds', 600, 30, 900),
    proxyMemoryMb: integer('proxyMemoryMb', 512, 128, 10_240),
    logRetentionDays: integer('logRetentionDays', 30, 1, 3653),
    defaultProjectLimitUsd: config.getNumber('defaultProjectLimitUsd', { min: 0 }),
    failOpen: config.getBoolean('failOpen') ?? false,
    tableDeletionProtection: config.getBoolean('tableDeletionProtection') ?? true,
    upstreamUrl: config.get('upstreamUrl'),
    sessionNamedRoles: config.getObject<string[]>('sessionNamedRoles') ?? [],
    // Lambda keeps 100 of the account's concurrency unreserved, and new accounts may have a quota of
    // 10: both are off unless set, and Lambda refuses a reservation the quota cannot cover.
    adminReservedConcurrency: optionalInteger('adminReservedConcurrency', 1, 1000),
    proxyMaxConcurrency: optionalInteger('proxyMaxConcurrency', 1, 100_000),
    openaiApiKey: config.requireSecret('openaiApiKey'),
    openaiOrgId: config.getSecret('openaiOrgId'),
    alertEmails: config.getObject<string[]>('alertEmails') ?? [],
    alertWebhookUrl: config.getSecret('alertWebhookUrl'),
    publicAccess: readPublicAccessSetting(config.getObject<unknown>('publicAccess'), problems),
    dailyDigest: readDailyDigestSetting(config.get('dailyDigest'), problems),
    alarms: {
      url5xx: integer('alarmUrl5xx', 5, 1, 100_000),
      functionErrors: integer('alarmFunctionErrors', 1, 1, 100_000),
      functionThrottles: integer('alarmFunctionThrottles', 1, 1, 100_000),
      durationPercent: integer('alarmDurationPercent', 90, 10, 100),
      ledgerThrottles: integer('alarmLedgerThrottles', 10, 1, 100_000),
      ledgerSystemErrors: integer('alarmLedgerSystemErrors', 1, 1, 100_000),
      estimatedCalls: integer('alarmEstimatedCalls', 1, 1, 100_000),
    },
  };
  if (!LOG_RETENTION_DAYS.includes(settings.logRetentionDays)) {
    problems.push(`logRetentionDays must be one of ${LOG_RETENTION_DAYS.join(', ')} (got ${settings.logRetentionDays})`);
  }
  const roleNames = settings.sessionNamedRoles;
  if (!Array.isArray(roleNames) || !roleNames.every((r) => typeof r === 'string' && /^[\w+=,.@-]{1,64}$/.test(r))) {
    problems.push(`sessionNamedRoles must be a list of IAM role names (got ${JSON.stringify(roleNames)})`);
  }
  const emails = settings.alertEmails;
  if (!Array.isArray(emails) || !emails.every((e) => typeof e === 'string' && /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(e))) {
    problems.push(`alertEmails must be a list of email addresses (got ${JSON.stringify(emails)})`);
  }
  const [workspaceId, channelId] = [config.get('slackWorkspaceId'), config.get('slackChannelId')];
  if (workspaceId !== undefined || channelId !== undefined) {
    if (workspaceId === undefined || channelId === undefined) {
      problems.push(`slackWorkspaceId and slackChannelId go together: set both (got only ${workspaceId === undefined ? 'slackChannelId' : 'slackWorkspaceId'})`);
    } else {
      // Slack's ids: the workspace (team) starts with T, a channel with C (public) or G (private).
      if (!/^T[A-Z0-9]{2,20}$/.test(workspaceId)) problems.push(`slackWorkspaceId must be a Slack workspace id like T07EA123LEP (got "${workspaceId}")`);
      if (!/^[CG][A-Z0-9]{2,20}$/.test(channelId)) problems.push(`slackChannelId must be a Slack channel id like C07EZ1ABC23 (got "${channelId}")`);
      settings.slack = { workspaceId, channelId };
    }
  }
  // The digest goes to the alert topic only (the webhook takes budget alerts): without an address or
  // a Slack channel on the topic nobody would read it.
  if (settings.dailyDigest && settings.alertEmails.length === 0 && !settings.slack) {
    problems.push(
      'dailyDigest is sent to the alert topic, which nobody receives: set alertEmails (`pulumi config set --path \'alertEmails[0]\' ops@example.com`) ' +
        'or slackWorkspaceId and slackChannelId too, or turn dailyDigest off',
    );
  }
  const webhookUrl = config.get('alertWebhookUrl');
  if (webhookUrl !== undefined) {
    const url = URL.canParse(webhookUrl) ? new URL(webhookUrl) : undefined;
    // Only the protocol is named: the rest may be a token.
    if (url?.protocol !== 'https:') problems.push(`alertWebhookUrl must be an https:// URL (got one starting "${webhookUrl.slice(0, 8)}")`);
  }
  if (settings.upstreamUrl !== undefined) {
    // The stage's key travels with every call: https on the standard port only (the functions'
    // security group lets nothing else out to the internet).
    const url = URL.canParse(settings.upstreamUrl) ? new URL(settings.upstreamUrl) : undefined;
    if (url?.protocol !== 'https:' || url.port !== '') problems.push(`upstreamUrl must be an https:// URL on port 443 (got "${settings.upstreamUrl}")`);
  }
  for (const key of ['openaiApiKey', 'openaiOrgId', 'alertWebhookUrl']) {
    if (!setAsSecret(key)) problems.push(`${key} is stored in plain text: set it with \`pulumi config set --secret ${key} …\``);
  }
  if (problems.length) throw new pulumi.RunError(`Invalid stack configuration:\n  - ${problems.join('\n  - ')}`);
  return settings;
}

/**
 * Project names as the admin API accepts them (runtime/core/admin.ts, NAME): a project the public URL
 * bills must be one an admin can give a limit.
 */
const PROJECT_NAME = /^[^#\s\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}][^#\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]{0,127}(?<!\s)$/u;
const PROJECT_NAME_RULE = 'at most 128 characters, without "#", control or invisible formatting characters, no space at either end';

/** The fields of `publicAccess`, and the variable of the public function each one becomes. */
const PUBLIC_ACCESS_FIELDS = {
  project: ENV.publicProject,
  allowedOrigins: ENV.publicOrigins,
  rpmPerClient: ENV.publicRpm,
  tpmPerClient: ENV.publicTpm,
  embeddings: ENV.publicEmbeddings,
  maxConcurrency: undefined, // the function's reserved concurrency, not a variable
} as const;
/** A function URL's CORS configuration takes at most 100 origins of at most 253 characters each. */
const MAX_CORS_ORIGINS = 100;
const MAX_CORS_ORIGIN_LENGTH = 253;

/**
 * Checks `publicAccess` (undefined: not set) and adds its problems to `problems`. The values become
 * the public function's variables and are read back by the runtime's own reader (readPublicAccess),
 * whose problems are reported under the setting's names: what the program accepts, the function
 * accepts, with the same meaning. Checked here only: what the reader does not (the project's name,
 * the types, Lambda's CORS limits, the reserved concurrency).
 */
function readPublicAccessSetting(value: unknown, problems: string[]): PublicAccessSettings | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    problems.push(`publicAccess must be an object with project, allowedOrigins and rpmPerClient and/or tpmPerClient (got ${JSON.stringify(value)})`);
    return undefined;
  }
  const problemsBefore = problems.length;
  const fields = value as Record<string, unknown>;
  const unknownFields = Object.keys(fields).filter((k) => !(k in PUBLIC_ACCESS_FIELDS));
  if (unknownFields.length) {
    problems.push(`publicAccess has no field ${unknownFields.join(', ')} (it takes ${Object.keys(PUBLIC_ACCESS_FIELDS).join(', ')})`);
  }
  const { project, allowedOrigins, rpmPerClient, tpmPerClient, embeddings, maxConcurrency } = fields;
  /** Fields already refused here: the reader's problems about them would only repeat it. */
  const refused = new Set<string>();
  const refuse = (field: keyof typeof PUBLIC_ACCESS_FIELDS, problem: string) => {
    refused.add(field);
    problems.push(`publicAccess.${field} ${problem}`);
  };

  const projectOk = typeof project === 'string' && PROJECT_NAME.test(project);
  if (!projectOk) refuse('project', `must be a project name, ${PROJECT_NAME_RULE} (got ${JSON.stringify(project)})`);
  const origins = Array.isArray(allowedOrigins) && allowedOrigins.every((o) => typeof o === 'string') ? (allowedOrigins as string[]) : undefined;
  if (allowedOrigins !== undefined && !origins) {
    refuse('allowedOrigins', `must be a list of origins like ["https://app.example.com"] (got ${JSON.stringify(allowedOrigins)})`);
  } else if (origins) {
    // Besides what the reader checks in each one (below).
    const field = 'publicAccess.allowedOrigins';
    if (origins.length > MAX_CORS_ORIGINS) problems.push(`${field} lists ${origins.length} origins: a function URL's CORS configuration takes at most ${MAX_CORS_ORIGINS}`);
    // The variable is comma-separated: one origin per item.
    for (const o of origins.filter((o) => o.includes(','))) problems.push(`${field} lists "${o}": one origin per item`);
    for (const o of origins.filter((o) => o.length > MAX_CORS_ORIGIN_LENGTH)) problems.push(`${field} lists an origin of ${o.length} characters (at most ${MAX_CORS_ORIGIN_LENGTH})`);
  }
  if (embeddings !== undefined && typeof embeddings !== 'boolean') refuse('embeddings', `must be true or false (got ${JSON.stringify(embeddings)})`);
  if (maxConcurrency !== undefined && !(Number.isInteger(maxConcurrency) && (maxConcurrency as number) >= 1 && (maxConcurrency as number) <= 100_000)) {
    refuse('maxConcurrency', `must be an integer from 1 to 100000 (got ${JSON.stringify(maxConcurrency)})`);
  }

  // What the reader sees. A refused project stands in as "-" so the other values are still checked;
  // numbers go as written (the reader refuses what is not a whole number >= 1).
  const text = (v: unknown) => (v === undefined ? undefined : typeof v === 'string' ? v : JSON.stringify(v));
  const env: Record<string, string | undefined> = {
    [ENV.publicProject]: projectOk ? project : '-',
    [ENV.publicOrigins]: origins?.join(','),
    [ENV.publicRpm]: text(rpmPerClient),
    [ENV.publicTpm]: text(tpmPerClient),
    [ENV.publicEmbeddings]: embeddings === true ? '1' : undefined,
  };
  let access: ReturnType<typeof readPublicAccess>;
  try {
    access = readPublicAccess(env);
  } catch (error) {
    const reported = (error as { problems?: unknown }).problems;
    if (!(error instanceof Error && error.name === 'ConfigError' && Array.isArray(reported))) throw error;
    const byVariable = Object.entries(PUBLIC_ACCESS_FIELDS).flatMap(([field, variable]) => (variable ? [[field, variable] as const] : []));
    for (const problem of reported as string[]) {
      if (byVariable.some(([field, variable]) => refused.has(field) && problem.includes(variable))) continue;
      problems.push(byVariable.reduce((p, [field, variable]) => p.replaceAll(variable, `publicAccess.${field}`), problem));
    }
    return undefined;
  }
  if (!access || problems.length > problemsBefore) return undefined;
  const { perClient } = access;
  const allowed = [...new Set(access.origins)];
  return {
    environment: {
      [ENV.publicProject]: access.project,
      [ENV.publicOrigins]: allowed.join(','),
      ...(perClient.rpm !== undefined ? { [ENV.publicRpm]: String(perClient.rpm) } : {}),
      ...(perClient.tpm !== undefined ? { [ENV.publicTpm]: String(perClient.tpm) } : {}),
      ...(access.routes.includes('embeddings') ? { [ENV.publicEmbeddings]: '1' } : {}),
    },
    origins: allowed,
    ...(maxConcurrency !== undefined ? { maxConcurrency: maxConcurrency as number } : {}),
  };
}

const DIGEST_DEFAULTS = { time: '08:00', timezone: 'UTC' } as const;
const DIGEST_FIELDS = Object.keys(DIGEST_DEFAULTS);

/**
 * Checks `dailyDigest` (undefined: not set) and adds its problems to `problems`: `true` (every day at
 * 08:00 UTC), `false`, or an object with `time` (HH:MM, 24-hour) and/or `timezone` (an IANA name).
 * Read as text, so a value that is not JSON gets this message rather than a parse error.
 */
function readDailyDigestSetting(text: string | undefined, problems: string[]): DailyDigestSettings | undefined {
  if (text === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = text;
  }
  if (value === false) return undefined;
  const fields = value === true ? {} : value;
  const shape = 'dailyDigest must be true, false, or an object with time ("HH:MM", 24-hour) and/or timezone (like "Europe/London")';
  if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) {
    problems.push(`${shape} (got ${JSON.stringify(value)})`);
    return undefined;
  }
  const { time = DIGEST_DEFAULTS.time, timezone = DIGEST_DEFAULTS.timezone, ...others } = fields as Record<string, unknown>;
  const before = problems.length;
  if (Object.keys(others).length) problems.push(`dailyDigest has no field ${Object.keys(others).join(', ')} (it takes ${DIGEST_FIELDS.join(', ')})`);
  const hhmm = typeof time === 'string' ? /^([01]\d|2[0-3]):([0-5]\d)$/.exec(time) : null;
  if (!hhmm) problems.push(`dailyDigest.time must be a time of day as HH:MM, 24-hour, like "08:00" (got ${JSON.stringify(time)})`);
  if (typeof timezone !== 'string' || !isTimeZone(timezone)) {
    problems.push(`dailyDigest.timezone must be an IANA time zone name like "Europe/London" or "UTC" (got ${JSON.stringify(timezone)})`);
  }
  if (problems.length > before || !hhmm) return undefined;
  return { hour: Number(hhmm[1]), minute: Number(hhmm[2]), timezone: timezone as string };
}

/** A time zone name the IANA database knows (what EventBridge Scheduler takes). */
function isTimeZone(name: string): boolean {
  if (!/^[A-Za-z][A-Za-z0-9_+\-/]*$/.test(name)) return false;
  let resolved: string;
  try {
    resolved = new Intl.DateTimeFormat('en', { timeZone: name }).resolvedOptions().timeZone;
  } catch {
    return false;
  }
  // Intl ignores case, the scheduler need not: "utc" must be written "UTC" (an alias may resolve to another name).
  return resolved === name || resolved.toLowerCase() !== name.toLowerCase();
}

/**
 * False when `key` is set but not with `--secret` (it then sits in plain text in Pulumi.<stack>.yaml,
 * likely in git). @pulumi/pulumi keeps this lookup internal (`runtime.isConfigSecret`); where it is
 * missing the check is skipped rather than guessed.
 */
function setAsSecret(key: string): boolean {
  const fullKey = `${pulumi.getProject()}:${key}`;
  if (pulumi.runtime.getConfig(fullKey) === undefined) return true;
  const isConfigSecret = (pulumi.runtime as { isConfigSecret?: (k: string) => boolean }).isConfigSecret;
  return isConfigSecret?.(fullKey) ?? true;
}

const settings = readSettings();
const { stage } = settings;
const prefix = `openai-wrapi-${stage}`;
const tags = { project: 'openai-wrapi', stage };
const named = (name: string) => ({ ...tags, Name: name });

const PROXY_NAME = proxyFunctionNameOf(stage);
const ADMIN_NAME = adminFunctionNameOf(stage);
const NOTIFIER_NAME = notifierFunctionNameOf(stage);
const PUBLIC_NAME = publicFunctionNameOf(stage);
/**
 * Budget alerts leave the ledger through its DynamoDB Stream and the notifier function, which exist
 * only when some channel would receive them (the topic and the alarms exist anyway).
 */
const ALERT_CHANNELS = settings.alertEmails.length > 0 || settings.slack !== undefined || settings.alertWebhookUrl !== undefined;
const TABLE_NAME = ledgerTableName(stage);
const MEMCACHED_PORT = 11211;

const [{ region }, { accountId }, { partition }] = await Promise.all([aws.getRegion(), aws.getCallerIdentity(), aws.getPartition()]);

interface Statement {
  Sid: string;
  Effect: 'Allow' | 'Deny';
  Principal?: '*' | { Service: string };
  Action: string | string[];
  Resource?: pulumi.Input<string> | pulumi.Input<string>[];
  Condition?: Record<string, Record<string, pulumi.Input<string>>>;
}
const policyDocument = (statements: Statement[]) => pulumi.jsonStringify({ Version: '2012-10-17', Statement: statements });

// ------------------------------------------------------------------------------------- lambda code

const ROOT = dirname(fileURLToPath(import.meta.url));

/** esbuild entry points, relative to the project root. */
const LAMBDA_ENTRY_POINTS = { proxy: 'runtime/lambda/proxy.ts', admin: 'runtime/lambda/admin.ts', notifier: 'runtime/lambda/notifier.ts' } as const;
type LambdaName = keyof typeof LAMBDA_ENTRY_POINTS;

/**
 * An ES module has no `require`, but CommonJS code bundled into it (parts of the AWS SDK, memjs) calls
 * `require('node:…')` at run time, and esbuild's stand-in then throws "Dynamic require of … is not
 * supported". This banner gives the bundle a real one.
 */
const CREATE_REQUIRE_BANNER =
  "import { createRequire as __wrapiCreateRequire } from 'node:module'; const require = __wrapiCreateRequire(import.meta.url);";

/**
 * Where code an entry point loads with `import()` goes inside its archive. The tokenizer's table
 * (2.7 MB, only needed to estimate a call whose usage never arrived) is one such chunk: a cold
 * start parses the entry and the chunks it imports statically, not the table.
 */
const CHUNK_NAMES = 'chunks/[name]-[hash]';

/** A function's deployment package: path inside the archive → file text, in path order. */
type LambdaFiles = Record<string, string>;

/**
 * Bundles each Lambda entry point into an ES module (`<name>.mjs`) plus the chunks it loads lazily,
 * the AWS SDK included: the SDK we test is the SDK we run, not whichever one the managed runtime
 * carries. Each function is built on its own, so one function's code never changes the other's files.
 *
 * Deterministic: paths are relative to the project root, chunk names are content hashes and nothing
 * depends on time or machine, so an unchanged runtime gives identical files, an unchanged archive
 * hash and no diff in `pulumi preview`. Any esbuild error or warning stops the program: code that
 * did not build cleanly is never deployed.
 */
async function bundleLambdaCode(): Promise<Record<LambdaName, LambdaFiles>> {
  const names = Object.keys(LAMBDA_ENTRY_POINTS) as LambdaName[];
  const built = await Promise.all(names.map(bundleLambda));
  return Object.fromEntries(names.map((name, i) => [name, built[i]])) as Record<LambdaName, LambdaFiles>;
}

async function bundleLambda(name: LambdaName): Promise<LambdaFiles> {
  const outdir = 'lambda-bundle'; // names the outputs only: nothing is written
  let result: esbuild.BuildResult<{ write: false; metafile: true }>;
  try {
    result = await esbuild.build({
      absWorkingDir: ROOT,
      entryPoints: { [name]: LAMBDA_ENTRY_POINTS[name] },
      outdir,
      write: false,
      bundle: true,
      splitting: true, // every import() becomes a chunk loaded when first called
      chunkNames: CHUNK_NAMES,
      platform: 'node',
      format: 'esm',
      target: 'node22', // the nodejs22.x runtime below
      outExtension: { '.js': '.mjs' },
      mainFields: ['module', 'main'], // prefer ESM builds: better tree shaking of the AWS SDK
      banner: { js: CREATE_REQUIRE_BANNER }, // on every chunk: each is a module of its own
      minify: true,
      keepNames: true, // error and class names survive minification (the runtime logs them)
      legalComments: 'none',
      logLevel: 'silent', // reported below, once, as the program's error
      metafile: true, // which chunk imports which (reachableOutputs)
    });
  } catch (error) {
    throw new pulumi.RunError(`esbuild could not bundle the Lambda code:\n${(error as Error).message}`);
  }
  if (result.warnings.length) {
    const text = await esbuild.formatMessages(result.warnings, { kind: 'warning' });
    throw new pulumi.RunError(`esbuild warned while bundling the Lambda code (fix it rather than deploy it):\n${text.join('\n')}`);
  }
  // Output files carry absolute paths; the metafile names them relative to ROOT, with forward slashes.
  const text = new Map(result.outputFiles.map((f) => [f.path.slice(ROOT.length + 1).replaceAll('\\', '/'), f.text]));
  const files = reachableOutputs(result.metafile, `${outdir}/${name}.mjs`)
    .map((path) => [path.slice(outdir.length + 1), text.get(path)!] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return Object.fromEntries(files);
}

/**
 * The outputs `entry` can ever load, through static and dynamic imports. esbuild writes a chunk for
 * every import() it meets, even one inside code it then drops (the AWS SDK's unused credential
 * providers): nothing can load such a chunk, so it stays out of the archive.
 */
function reachableOutputs(metafile: esbuild.Metafile, entry: string): string[] {
  const reached = new Set<string>();
  const visit = (path: string) => {
    const output = metafile.outputs[path];
    if (!output || reached.has(path)) return;
    reached.add(path);
    for (const imported of output.imports) if (!imported.external) visit(imported.path);
  };
  visit(entry);
  return [...reached];
}

/**
 * The inline deployment package of one function: its entry as `<name>.mjs` (handler
 * `<name>.handler`) and its chunks under `chunks/`, which the entry imports relative to itself.
 */
function lambdaArchive(name: LambdaName, files: LambdaFiles): pulumi.asset.AssetArchive {
  if (!(`${name}.mjs` in files)) throw new pulumi.RunError(`esbuild produced no ${name}.mjs`);
  return new pulumi.asset.AssetArchive(Object.fromEntries(Object.entries(files).map(([path, text]) => [path, new pulumi.asset.StringAsset(text)])));
}

const lambdaCode = await bundleLambdaCode();

// ------------------------------------------------------------------------------------------ ledger

// Limits, usage, reservations and price overrides in one on-demand table, with exactly the keys the
// runtime uses (LEDGER_TABLE: pk/sk strings, no indexes).
const table = new aws.dynamodb.Table(
  `${prefix}-ledger`,
  {
    name: TABLE_NAME,
    billingMode: 'PAY_PER_REQUEST',
    hashKey: LEDGER_TABLE.hashKey,
    rangeKey: LEDGER_TABLE.rangeKey,
    attributes: LEDGER_TABLE.attributes.map(({ name, type }) => ({ name, type })),
    pointInTimeRecovery: { enabled: true },
    // Remembered response sizes expire by themselves (no scan): DynamoDB deletes items past `ttl`.
    ttl: { attributeName: LEDGER_TABLE.ttlAttribute, enabled: true },
    // The notifier's feed: each budget alert mark is a MODIFY whose new image carries the alert.
    ...(ALERT_CHANNELS ? { streamEnabled: true, streamViewType: 'NEW_AND_OLD_IMAGES' } : {}),
    // The AWS-managed KMS key (aws/dynamodb) rather than the default AWS-owned one: key use shows in
    // CloudTrail. DynamoDB uses it on the caller's behalf, so the functions need no kms:* permission.
    serverSideEncryption: { enabled: true },
    deletionProtectionEnabled: settings.tableDeletionProtection,
    tags,
  },
  // The same setting makes `pulumi destroy` refuse up front rather than half way through.
  { protect: settings.tableDeletionProtection },
);

/** What each function does to the ledger (runtime/store/dynamo-ledger.ts), and nothing more. */
const PROXY_TABLE_ACTIONS = [
  'dynamodb:BatchGetItem', // limits, price overrides and continued responses' sizes, one round trip
  'dynamodb:UpdateItem', // reserve, settle and release (atomic ADDs under conditions)
  'dynamodb:GetItem', // a row's state after a refused condition (refusal, or a retry that landed)
  'dynamodb:PutItem', // remember a response's size for calls that continue it
];
const ADMIN_TABLE_ACTIONS = [
  'dynamodb:Query', // usage reports, list limits and prices, holds past their deadline
  'dynamodb:UpdateItem', // charge holds past their deadline, before a report; claim the day's digest
  'dynamodb:GetItem', // a row's state after a refused condition; whether the day's digest went out
  'dynamodb:PutItem', // set a limit or a price
  'dynamodb:DeleteItem', // remove a limit or a price
];

// --------------------------------------------------------------------------------- execution roles
//
// Created before the network. Lambda deletes a function's network interfaces some time after the
// function is gone, with the function's execution role; so the role and its VPC permissions are
// deleted after the subnets and the security group (which depend on them), never before.

function executionRole(kind: FunctionRole, functionName: string): aws.iam.Role {
  return new aws.iam.Role(`${prefix}-${kind}-role`, {
    description: `Execution role of ${functionName}`,
    assumeRolePolicy: policyDocument([
      { Sid: 'LambdaAssumesRole', Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' },
    ]),
    tags,
  });
}

const proxyExecutionRole = executionRole('proxy', PROXY_NAME);
const adminExecutionRole = executionRole('admin', ADMIN_NAME);
// A role of its own, like every function: it can be passed, denied and read about on its own.
const publicExecutionRole = settings.publicAccess ? executionRole('public', PUBLIC_NAME) : undefined;

// ----------------------------------------------------------------------------------------- network
//
// The network exists only for the cache: ElastiCache lives in a VPC, so the functions must join it,
// and from its private subnets they reach OpenAI and Secrets Manager through a NAT gateway, DynamoDB
// through a (free) gateway endpoint. Without ElastiCache: no VPC, no NAT gateways, no Elastic IPs;
// the functions run in Lambda's own network, which reaches all of these directly.
//
// Built from @pulumi/aws resources rather than awsx.ec2.Vpc: the private subnets and the functions'
// security group must depend on the VPC-access policies (safe teardown, see vpcAccessPolicy), which
// are scoped to the VPC; awsx.ec2.Vpc makes the VPC and its subnets together, so its subnets cannot
// wait for a policy that names its VPC. The layout is a handful of resources per
// AZ, each one visible in `pulumi preview` and asserted in the unit tests (awsx's Vpc is a remote
// component, one opaque resource under test mocks).

interface Network {
  /** The functions' permission to manage their network interfaces, one policy per execution role. */
  vpcAccess: aws.iam.RolePolicy[];
  privateSubnets: aws.ec2.Subnet[];
  /** Attached to the functions in the VPC; the only source the cache accepts. */
  functionsSecurityGroup: aws.ec2.SecurityGroup;
  cacheSecurityGroup: aws.ec2.SecurityGroup;
}

const VPC_CIDR = '10.0.0.0/16';
/**
 * Marks the subnets and the security group the functions' network interfaces may use. The VPC-access
 * policy names them by this tag (and the VPC), not by ARN: they depend on it, so it cannot refer to them.
 */
const FUNCTIONS_PLACE_TAG = 'openai-wrapi-functions';
const FUNCTIONS_PLACE = { [FUNCTIONS_PLACE_TAG]: prefix };
/** Private subnets get a /20 each (function ENIs, cache nodes), public ones a /24 (a NAT gateway). */
const privateCidr = (az: number) => `10.0.${az * 16}.0/20`;
const publicCidr = (az: number) => `10.0.${128 + az}.0/24`;

async function createNetwork(numAzs: number): Promise<Network> {
  const { names: zones } = await aws.getAvailabilityZones({
    state: 'available',
    // Regular AZs only: Local and Wavelength Zones have neither NAT gateways nor ElastiCache.
    filters: [{ name: 'opt-in-status', values: ['opt-in-not-required'] }],
  });
  if (zones.length < numAzs) throw new pulumi.RunError(`numAzs is ${numAzs} but ${region} has ${zones.length} availability zones`);

  const vpc = new aws.ec2.Vpc(`${prefix}-vpc`, {
    cidrBlock: VPC_CIDR,
    enableDnsSupport: true,
    enableDnsHostnames: true,
    tags: named(`${prefix}-vpc`),
  });
  const vpcAccess = [
    vpcAccessPolicy('proxy', proxyExecutionRole, vpc),
    vpcAccessPolicy('admin', adminExecutionRole, vpc),
    ...(publicExecutionRole ? [vpcAccessPolicy('public', publicExecutionRole, vpc)] : []),
  ];
  const internetGateway = new aws.ec2.InternetGateway(`${prefix}-igw`, { vpcId: vpc.id, tags: named(`${prefix}-igw`) });
  const publicRouteTable = new aws.ec2.RouteTable(`${prefix}-public`, { vpcId: vpc.id, tags: named(`${prefix}-public`) });
  new aws.ec2.Route(`${prefix}-public-internet`, {
    routeTableId: publicRouteTable.id,
    destinationCidrBlock: '0.0.0.0/0',
    gatewayId: internetGateway.id,
  });

  const privateSubnets: aws.ec2.Subnet[] = [];
  const privateRouteTables: aws.ec2.RouteTable[] = [];
  for (let i = 0; i < numAzs; i++) {
    const az = `${i + 1}`;
    const publicSubnet = new aws.ec2.Subnet(`${prefix}-public-${az}`, {
      vpcId: vpc.id,
      availabilityZone: zones[i],
      cidrBlock: publicCidr(i),
      mapPublicIpOnLaunch: false, // only the NAT gateway lives here, with its own Elastic IP
      tags: named(`${prefix}-public-${az}`),
    });
    new aws.ec2.RouteTableAssociation(`${prefix}-public-${az}`, { subnetId: publicSubnet.id, routeTableId: publicRouteTable.id });

    // A NAT gateway per AZ: losing one AZ does not cut the others off from OpenAI, and no traffic
    // crosses AZs on its way out. They are the stack's main fixed cost (README, Deploy).
    const eip = new aws.ec2.Eip(`${prefix}-nat-${az}`, { domain: 'vpc', tags: named(`${prefix}-nat-${az}`) });
    const nat = new aws.ec2.NatGateway(
      `${prefix}-nat-${az}`,
      { allocationId: eip.id, subnetId: publicSubnet.id, tags: named(`${prefix}-nat-${az}`) },
      { dependsOn: [internetGateway] },
    );

    // Holds the functions' network interfaces: deleted before the permission to delete them.
    const privateSubnet = new aws.ec2.Subnet(
      `${prefix}-private-${az}`,
      {
        vpcId: vpc.id,
        availabilityZone: zones[i],
        cidrBlock: privateCidr(i),
        mapPublicIpOnLaunch: false,
        tags: { ...named(`${prefix}-private-${az}`), ...FUNCTIONS_PLACE },
      },
      { dependsOn: vpcAccess },
    );
    const privateRouteTable = new aws.ec2.RouteTable(`${prefix}-private-${az}`, { vpcId: vpc.id, tags: named(`${prefix}-private-${az}`) });
    new aws.ec2.Route(`${prefix}-private-${az}-nat`, {
      routeTableId: privateRouteTable.id,
      destinationCidrBlock: '0.0.0.0/0',
      natGatewayId: nat.id,
    });
    new aws.ec2.RouteTableAssociation(`${prefix}-private-${az}`, { subnetId: privateSubnet.id, routeTableId: privateRouteTable.id });
    privateSubnets.push(privateSubnet);
    privateRouteTables.push(privateRouteTable);
  }

  // Every request touches DynamoDB: keep that traffic off the NAT gateways (no per-GB charge, one hop
  // less). The endpoint admits only this stack's table.
  new aws.ec2.VpcEndpoint(`${prefix}-dynamodb`, {
    vpcId: vpc.id,
    serviceName: `com.amazonaws.${region}.dynamodb`,
    vpcEndpointType: 'Gateway',
    routeTableIds: privateRouteTables.map((t) => t.id),
    policy: policyDocument([
      {
        Sid: 'ThisStacksLedgerOnly',
        Effect: 'Allow',
        Principal: '*',
        Action: [...new Set([...PROXY_TABLE_ACTIONS, ...ADMIN_TABLE_ACTIONS])].sort(),
        Resource: table.arn,
      },
    ]),
    tags: named(`${prefix}-dynamodb`),
  });

  // Rules are separate resources: the two groups refer to each other.
  const functionsSecurityGroup = new aws.ec2.SecurityGroup(
    `${prefix}-functions`,
    {
      vpcId: vpc.id,
      description: 'openai-wrapi functions: nothing in; out to HTTPS and to the cache',
      tags: { ...named(`${prefix}-functions`), ...FUNCTIONS_PLACE },
    },
    { dependsOn: vpcAccess }, // in use by the network interfaces, like the private subnets
  );
  const cacheSecurityGroup = new aws.ec2.SecurityGroup(`${prefix}-cache`, {
    vpcId: vpc.id,
    description: 'openai-wrapi memcached: in from the functions only',
    tags: named(`${prefix}-cache`),
  });
  new aws.vpc.SecurityGroupEgressRule(`${prefix}-functions-https`, {
    securityGroupId: functionsSecurityGroup.id,
    description: 'OpenAI, Secrets Manager and DynamoDB over HTTPS',
    ipProtocol: 'tcp',
    fromPort: 443,
    toPort: 443,
    cidrIpv4: '0.0.0.0/0',
  });
  new aws.vpc.SecurityGroupEgressRule(`${prefix}-functions-memcached`, {
    securityGroupId: functionsSecurityGroup.id,
    description: 'memcached',
    ipProtocol: 'tcp',
    fromPort: MEMCACHED_PORT,
    toPort: MEMCACHED_PORT,
    referencedSecurityGroupId: cacheSecurityGroup.id,
  });
  new aws.vpc.SecurityGroupIngressRule(`${prefix}-cache-from-functions`, {
    securityGroupId: cacheSecurityGroup.id,
    description: 'memcached from the openai-wrapi functions',
    ipProtocol: 'tcp',
    fromPort: MEMCACHED_PORT,
    toPort: MEMCACHED_PORT,
    referencedSecurityGroupId: functionsSecurityGroup.id,
  });

  return { vpcAccess, privateSubnets, functionsSecurityGroup, cacheSecurityGroup };
}

/**
 * Lambda creates and deletes the functions' network interfaces with their execution role. The two
 * Describe actions support no resource-level permissions (they need "*"); the others are limited to
 * this VPC (ec2:Vpc) and, for a new interface, to the private subnets and the security group tagged
 * for the functions; CreateNetworkInterface has no VPC key for the interface itself (this account's,
 * in this region). Only the VPC is referenced, so the subnets and the security group can depend on
 * this policy. Its own resource, not part of the role's main policy:
 * https://docs.aws.amazon.com/lambda/latest/dg/configuration-vpc.html#configuration-vpc-permissions
 */
function vpcAccessPolicy(kind: FunctionRole, role: aws.iam.Role, vpc: aws.ec2.Vpc): aws.iam.RolePolicy {
  const scope = (type: string) => `arn:${partition}:ec2:${region}:${accountId}:${type}/*`;
  const inThisVpc = { ArnEquals: { 'ec2:Vpc': vpc.arn } };
  const ourPlace = { ...inThisVpc, StringEquals: { [`aws:ResourceTag/${FUNCTIONS_PLACE_TAG}`]: prefix } };
  return new aws.iam.RolePolicy(`${prefix}-${kind}-vpc-access`, {
    role: role.id,
    policy: policyDocument([
      { Sid: 'DescribeNetworkInterfaces', Effect: 'Allow', Action: ['ec2:DescribeNetworkInterfaces', 'ec2:DescribeSubnets'], Resource: '*' },
      { Sid: 'CreateNetworkInterfaces', Effect: 'Allow', Action: 'ec2:CreateNetworkInterface', Resource: scope('network-interface') },
      {
        Sid: 'InOurPrivateSubnetsWithOurSecurityGroup',
        Effect: 'Allow',
        Action: 'ec2:CreateNetworkInterface',
        Resource: [scope('subnet'), scope('security-group')],
        Condition: ourPlace,
      },
      {
        Sid: 'ManageNetworkInterfacesInThisVpc',
        Effect: 'Allow',
        Action: ['ec2:DeleteNetworkInterface', 'ec2:AssignPrivateIpAddresses', 'ec2:UnassignPrivateIpAddresses'],
        Resource: scope('network-interface'),
        Condition: inThisVpc,
      },
    ]),
  });
}

const network = settings.useElastiCache ? await createNetwork(settings.numAzs) : undefined;

// ------------------------------------------------------------------------------------------- cache

// Memcached because the runtime speaks memcached (memjs). One node, because it is a cache: losing it
// means misses, not errors (the runtime gives up on it within ~50 ms and carries on). memjs has no
// TLS, so the cache relies on the private subnets and its security group.
const cache = network
  ? new aws.elasticache.Cluster(`${prefix}-cache`, {
      clusterId: `${prefix}-cache`,
      engine: 'memcached',
      nodeType: settings.cacheNodeType,
      numCacheNodes: 1,
      port: MEMCACHED_PORT,
      subnetGroupName: new aws.elasticache.SubnetGroup(`${prefix}-cache`, {
        description: 'openai-wrapi memcached: the private subnets',
        subnetIds: network.privateSubnets.map((s) => s.id),
        tags,
      }).name,
      securityGroupIds: [network.cacheSecurityGroup.id],
      applyImmediately: true, // a cache may restart at any time: no need to wait for the maintenance window
      tags,
    })
  : undefined;
/** `host:port,…` of the cache nodes, as the runtime's OPENAI_WRAPI_MEMCACHED wants it. */
const memcachedServers = cache?.cacheNodes.apply((nodes) => nodes.map((n) => `${n.address}:${n.port}`).join(','));

// ------------------------------------------------------------------------------------------ secret

// The stage's OpenAI credentials from `pulumi config set --secret`: secret in the Pulumi state,
// encrypted in Secrets Manager, read by the proxy once per cold start (runtime/lambda/secrets.ts).
// Never a Lambda environment variable, which anyone allowed to read the function's configuration sees.
const openaiSecret = new aws.secretsmanager.Secret(`${prefix}-openai`, {
  description: `OpenAI API key and organization id of the openai-wrapi ${stage} stage`,
  tags,
});
const openaiSecretVersion = new aws.secretsmanager.SecretVersion(`${prefix}-openai`, {
  secretId: openaiSecret.id,
  secretString: pulumi.secret(
    pulumi.jsonStringify({
      openaiApiKey: settings.openaiApiKey,
      ...(settings.openaiOrgId ? { openaiOrgId: settings.openaiOrgId } : {}),
    }),
  ),
});

// ------------------------------------------------------------------------------------- alert topic

// The stage's SNS topic: every alarm, the budget alerts and the daily digest go there (subscriptions,
// alarms and the notifier are below). Before the functions: the admin publishes the digest to it.
// Not encrypted: CloudWatch alarms cannot publish to a topic under the AWS-managed key (aws/sns), and
// what it carries is names and amounts, never prompts or keys.
const alertTopic = new aws.sns.Topic(`${prefix}-alerts`, {
  name: `${prefix}-alerts`,
  displayName: `openai-wrapi ${stage}`,
  tags,
});

// ---------------------------------------------------------------------------- IAM for the functions

type FunctionRole = 'proxy' | 'admin' | 'notifier' | 'public';

/** Created before its function, so Lambda does not create it itself (with no retention) on the first log line. */
const logGroupFor = (role: FunctionRole, functionName: string) =>
  new aws.cloudwatch.LogGroup(`${prefix}-${role}-logs`, {
    name: `/aws/lambda/${functionName}`,
    retentionInDays: settings.logRetentionDays,
    tags,
  });
const proxyLogs = logGroupFor('proxy', PROXY_NAME);
const adminLogs = logGroupFor('admin', ADMIN_NAME);

/** The role's inline policy: its own log group and `statements` (VPC access is a policy of its own). */
function roleAccess(kind: FunctionRole, role: aws.iam.Role, logGroup: aws.cloudwatch.LogGroup, statements: Statement[]) {
  const policy = new aws.iam.RolePolicy(`${prefix}-${kind}-policy`, {
    role: role.id,
    policy: policyDocument([
      {
        Sid: 'WriteOwnLogs',
        Effect: 'Allow',
        Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        Resource: pulumi.interpolate`${logGroup.arn}:*`,
      },
      ...statements,
    ]),
  });
  return { role, policy };
}

/** What a proxy does besides its logs: the ledger and the stage's OpenAI key. */
const PROXY_STATEMENTS: Statement[] = [
  { Sid: 'LedgerReadWrite', Effect: 'Allow', Action: PROXY_TABLE_ACTIONS, Resource: table.arn },
  { Sid: 'ReadOpenAICredentials', Effect: 'Allow', Action: 'secretsmanager:GetSecretValue', Resource: openaiSecret.arn },
];
const proxyRole = roleAccess('proxy', proxyExecutionRole, proxyLogs, PROXY_STATEMENTS);
// The public function is the proxy's code with other callers: the same permissions, on its own logs.
const publicLogs = publicExecutionRole ? logGroupFor('public', PUBLIC_NAME) : undefined;
const publicRole = publicExecutionRole && publicLogs ? roleAccess('public', publicExecutionRole, publicLogs, PROXY_STATEMENTS) : undefined;
// The admin flushes the cache over the network (the functions' security group): no IAM for that.
const adminRole = roleAccess('admin', adminExecutionRole, adminLogs, [
  { Sid: 'LedgerAdmin', Effect: 'Allow', Action: ADMIN_TABLE_ACTIONS, Resource: table.arn },
  // The daily digest, when it is on: to the stage's topic and no other.
  ...(settings.dailyDigest ? [{ Sid: 'PublishTheDailyDigest', Effect: 'Allow' as const, Action: 'sns:Publish', Resource: alertTopic.arn }] : []),
]);

// --------------------------------------------------------------------------------------- functions

/** What the functions share. arm64 (Graviton) is ~20% cheaper per GB-second; the bundles are plain JS. */
const functionDefaults = {
  runtime: aws.lambda.Runtime.NodeJS22dX,
  architectures: ['arm64'],
  vpcConfig: network && {
    subnetIds: network.privateSubnets.map((s) => s.id),
    securityGroupIds: [network.functionsSecurityGroup.id],
  },
  tags,
};

/** What the functions read (runtime/lambda/settings.ts), named by the contract: names and knobs, never secrets. */
const commonEnvironment: Record<string, pulumi.Input<string>> = {
  [ENV.stage]: stage,
  [ENV.table]: table.name,
  ...(memcachedServers ? { [ENV.memcached]: memcachedServers } : {}),
};

/** The proxy's variables (the public function has them too). */
const proxyEnvironment: Record<string, pulumi.Input<string>> = {
  ...commonEnvironment,
  [ENV.secretArn]: openaiSecret.arn,
  // A new key is a new version id: the function's configuration changes with it, so Lambda
  // replaces every warm instance, and each new one reads exactly this version.
  [ENV.secretVersion]: openaiSecretVersion.versionId,
  // Give up on the upstream 10 s before Lambda stops the function, so that the proxy still
  // settles the call (an estimate for a cut stream) instead of being killed half way.
  [ENV.timeoutMs]: String((settings.proxyTimeoutSeconds - 10) * 1000),
  [ENV.failOpen]: settings.failOpen ? '1' : '0',
  ...(settings.defaultProjectLimitUsd !== undefined ? { [ENV.defaultProjectLimit]: String(settings.defaultProjectLimitUsd) } : {}),
  ...(settings.upstreamUrl ? { [ENV.upstreamUrl]: settings.upstreamUrl } : {}),
  ...(settings.sessionNamedRoles.length ? { [ENV.sessionNamedRoles]: settings.sessionNamedRoles.join(',') } : {}),
};

const proxy = new aws.lambda.Function(
  `${prefix}-proxy`,
  {
    ...functionDefaults,
    name: PROXY_NAME,
    description: `openai-wrapi ${stage}: metering proxy to OpenAI (streaming function URL)`,
    role: proxyRole.role.arn,
    code: lambdaArchive('proxy', lambdaCode.proxy),
    handler: 'proxy.handler',
    timeout: settings.proxyTimeoutSeconds,
    memorySize: settings.proxyMemoryMb,
    // A streamed call holds an instance for its whole length: this caps how many run at once (a
    // call beyond it gets a 429 from the function URL, which the openai client retries).
    ...(settings.proxyMaxConcurrency !== undefined ? { reservedConcurrentExecutions: settings.proxyMaxConcurrency } : {}),
    loggingConfig: { logFormat: 'Text', logGroup: proxyLogs.name },
    environment: { variables: proxyEnvironment },
  },
  // Lambda checks at creation that the role may create network interfaces: the policy comes first.
  { dependsOn: [proxyRole.policy, ...(network?.vpcAccess ?? [])] },
);

// AWS_IAM: AWS verifies each caller's SigV4 signature and hands the proxy the verified identity
// (requestContext.authorizer.iam), which it bills. RESPONSE_STREAM: tokens reach the caller as OpenAI
// produces them. https://docs.aws.amazon.com/lambda/latest/dg/configuration-response-streaming.html
const proxyFunctionUrl = new aws.lambda.FunctionUrl(`${prefix}-proxy-url`, {
  functionName: proxy.name,
  authorizationType: 'AWS_IAM',
  invokeMode: 'RESPONSE_STREAM',
});

const admin = new aws.lambda.Function(
  `${prefix}-admin`,
  {
    ...functionDefaults,
    name: ADMIN_NAME,
    description: `openai-wrapi ${stage}: limits, prices, usage reports, cache flush (invoked, no URL)`,
    role: adminRole.role.arn,
    code: lambdaArchive('admin', lambdaCode.admin),
    handler: 'admin.handler',
    timeout: 60, // a month's usage report is a few paged Queries
    memorySize: 256,
    ...(settings.adminReservedConcurrency !== undefined ? { reservedConcurrentExecutions: settings.adminReservedConcurrency } : {}),
    loggingConfig: { logFormat: 'Text', logGroup: adminLogs.name },
    environment: { variables: { ...commonEnvironment, ...(settings.dailyDigest ? { [ENV.alertTopicArn]: alertTopic.arn } : {}) } },
  },
  { dependsOn: [adminRole.policy, ...(network?.vpcAccess ?? [])] },
);

// ------------------------------------------------------------------------------------- public URL
//
// With `publicAccess`: the proxy's code and handler again, as a function of its own whose URL needs
// no signature, for web pages of the allowed origins. OPENAI_WRAPI_PUBLIC_PROJECT in its environment
// (and only in its) makes the handler serve unverified callers: each call billed to that project as
// `public:<source address>`, held to the per-client limits, refused without an allowed Origin
// (runtime/core/public-access.ts). The signed proxy and its AWS_IAM URL do not change.

function createPublicFunction(access: PublicAccessSettings, role: NonNullable<typeof publicRole>, logs: aws.cloudwatch.LogGroup) {
  const fn = new aws.lambda.Function(
    `${prefix}-public`,
    {
      ...functionDefaults,
      name: PUBLIC_NAME,
      description: `openai-wrapi ${stage}: public proxy to OpenAI for web pages of allowed origins (function URL without auth)`,
      role: role.role.arn,
      code: lambdaArchive('proxy', lambdaCode.proxy),
      handler: 'proxy.handler',
      timeout: settings.proxyTimeoutSeconds,
      memorySize: settings.proxyMemoryMb,
      // Anyone can start calls here: this caps how many run at once, so they cannot take the whole
      // unreserved pool the signed proxy draws on (the cap is also set aside from it); beyond it, a 429.
      ...(access.maxConcurrency !== undefined ? { reservedConcurrentExecutions: access.maxConcurrency } : {}),
      loggingConfig: { logFormat: 'Text', logGroup: logs.name },
      environment: { variables: { ...proxyEnvironment, ...access.environment } },
    },
    // Like the proxy: the role's policy and its network permission first.
    { dependsOn: [role.policy, ...(network?.vpcAccess ?? [])] },
  );

  // NONE: AWS verifies nobody; the function reads the caller's address (requestContext.http.sourceIp,
  // which AWS writes for a URL request) and Origin. The URL's own CORS configuration answers the
  // browsers' preflights and adds the CORS headers to each answer (the handler adds none on AWS). No
  // credentials: nothing here reads cookies, so no page needs to send them.
  const url = new aws.lambda.FunctionUrl(`${prefix}-public-url`, {
    functionName: fn.name,
    authorizationType: 'NONE',
    invokeMode: 'RESPONSE_STREAM',
    cors: {
      allowOrigins: access.origins,
      allowMethods: [...PUBLIC_CORS.allowMethods],
      allowHeaders: [...PUBLIC_CORS.allowHeaders],
      exposeHeaders: [...PUBLIC_CORS.exposeHeaders],
      maxAge: PUBLIC_CORS.maxAgeSeconds,
      allowCredentials: false,
    },
  });

  // A URL without auth still needs a resource policy that lets anyone call it: both actions, as AWS
  // checks both for a function URL created since October 2025. The second holds only for Invokes that
  // come through the URL (lambda:InvokedViaFunctionUrl): a direct Invoke writes the whole event,
  // sourceIp included, and could spread calls over made-up clients to pass the per-client limits. So
  // nobody outside the account may invoke the function directly, and inside it the boundary and the
  // SCP deny it like the proxy's (guard against direct invokes, below).
  const invokeUrl = new aws.lambda.Permission(`${prefix}-public-invoke-url`, {
    function: fn.name,
    statementId: 'AllowPublicUrl',
    action: 'lambda:InvokeFunctionUrl',
    principal: '*',
    functionUrlAuthType: 'NONE',
  });
  const invokeThroughUrl = new aws.lambda.Permission(`${prefix}-public-invoke-through-url`, {
    function: fn.name,
    statementId: 'AllowInvokeThroughPublicUrlOnly',
    action: 'lambda:InvokeFunction',
    principal: '*',
    invokedViaFunctionUrl: true,
  });
  return { fn, role, url, permissions: [invokeUrl, invokeThroughUrl] };
}

const publicProxy =
  settings.publicAccess && publicRole && publicLogs ? createPublicFunction(settings.publicAccess, publicRole, publicLogs) : undefined;

// ------------------------------------------------------------------------------ policies for people
//
// Callers in the same account need only these identity policies; the proxy and the admin carry no
// resource policy (so no other account can call them; the public function's lets anyone call it
// through its URL only). https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html

const userPolicy = new aws.iam.Policy(`${prefix}-users`, {
  description: `openai-wrapi ${stage}: call OpenAI through the metering proxy (attach to users and roles)`,
  policy: policyDocument([
    {
      Sid: 'InvokeProxyUrl',
      Effect: 'Allow',
      Action: 'lambda:InvokeFunctionUrl',
      Resource: proxy.arn,
      Condition: { StringEquals: { 'lambda:FunctionUrlAuthType': 'AWS_IAM' } },
    },
    // Since October 2025 new function URLs also require lambda:InvokeFunction. Through the URL only: a
    // direct Invoke would let the caller write requestContext.authorizer.iam itself, and spend as anyone.
    {
      Sid: 'InvokeProxyThroughUrlOnly',
      Effect: 'Allow',
      Action: 'lambda:InvokeFunction',
      Resource: proxy.arn,
      Condition: { Bool: { 'lambda:InvokedViaFunctionUrl': 'true' } },
    },
  ]),
  tags,
});

const adminPolicy = new aws.iam.Policy(`${prefix}-admins`, {
  description: `openai-wrapi ${stage}: set limits and prices, read usage, flush the cache (attach to admins)`,
  policy: policyDocument([{ Sid: 'InvokeAdminFunction', Effect: 'Allow', Action: 'lambda:InvokeFunction', Resource: admin.arn }]),
  tags,
});

// ------------------------------------------------------------------- alerts, alarms and dashboard
//
// Always on: the stage's topic (created with the functions, above) that every alarm (and the budget
// alerts and the digest) notify, CloudWatch alarms on the functions, the ledger and the proxy's own
// metrics, and a dashboard. The proxy's metrics (namespace METRICS.namespace) come from its Embedded
// Metric Format log lines (runtime/lambda/call-metrics.ts); CloudWatch creates them on the first call.

// Named by the address, not its place in the list: reordering the list re-subscribes no one (each new
// subscription must be confirmed from its mailbox).
for (const email of new Set(settings.alertEmails)) {
  const id = createHash('sha256').update(email).digest('hex').slice(0, 12);
  new aws.sns.TopicSubscription(`${prefix}-alerts-email-${id}`, { topic: alertTopic.arn, protocol: 'email', endpoint: email });
}

// ----------------------------------------------------------------------------------- budget alerts
//
// The ledger marks each alert threshold once, in the settling write, and that write carries the alert
// (ALERT_STREAM). The table's stream feeds the notifier through a filter that passes only those
// records; it publishes each alert to the topic (email text, and an Amazon Q card for Slack) and POSTs
// it to the webhook, once per channel (delivery records in the table). A record that still fails
// after the retries leaves its batch's coordinates in an encrypted dead-letter queue, which alarms.

/** Where the webhook URL lives: it may carry a token, so not in the function's environment. */
const alertWebhookSecret = settings.alertWebhookUrl
  ? new aws.secretsmanager.Secret(`${prefix}-alert-webhook`, { description: `Budget alert webhook URL of the openai-wrapi ${stage} stage`, tags })
  : undefined;
if (alertWebhookSecret && settings.alertWebhookUrl) {
  new aws.secretsmanager.SecretVersion(`${prefix}-alert-webhook`, {
    secretId: alertWebhookSecret.id,
    secretString: pulumi.secret(pulumi.jsonStringify({ url: settings.alertWebhookUrl })),
  });
}

/** What the notifier may do to the ledger, each by the partition keys it touches (dynamodb:LeadingKeys). */
const NOTIFIER_TABLE_ACTIONS = {
  usage: ['dynamodb:Query'], // the alert's period usage: its top users and models
  deliveries: ['dynamodb:GetItem', 'dynamodb:UpdateItem'], // claim, mark sent, release
};

function createNotifier() {
  const deadLetters = new aws.sqs.Queue(`${prefix}-alert-dlq`, {
    name: `${prefix}-alert-dlq`,
    sqsManagedSseEnabled: true,
    messageRetentionSeconds: 14 * 86_400, // the longest SQS keeps: time to fix the channel and replay
    tags,
  });
  const logs = logGroupFor('notifier', NOTIFIER_NAME);
  const leadingKeys = (keyPrefix: string) => ({ 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': `${keyPrefix}*` } });
  const role = roleAccess('notifier', executionRole('notifier', NOTIFIER_NAME), logs, [
    {
      Sid: 'ReadTheLedgerStream',
      Effect: 'Allow',
      Action: ['dynamodb:DescribeStream', 'dynamodb:GetRecords', 'dynamodb:GetShardIterator'],
      Resource: table.streamArn,
    },
    // Lambda checks it when it creates the event source mapping; it has no resource-level permission.
    { Sid: 'ListStreams', Effect: 'Allow', Action: 'dynamodb:ListStreams', Resource: '*' },
    {
      Sid: 'ReadUsagePartitions',
      Effect: 'Allow',
      Action: NOTIFIER_TABLE_ACTIONS.usage,
      Resource: table.arn,
      Condition: leadingKeys(ALERT_STREAM.usagePartitionPrefix),
    },
    {
      Sid: 'KeepDeliveryRecords',
      Effect: 'Allow',
      Action: NOTIFIER_TABLE_ACTIONS.deliveries,
      Resource: table.arn,
      Condition: leadingKeys(ALERT_STREAM.deliveryPartitionPrefix),
    },
    { Sid: 'PublishAlerts', Effect: 'Allow', Action: 'sns:Publish', Resource: alertTopic.arn },
    ...(alertWebhookSecret
      ? [{ Sid: 'ReadTheWebhookUrl', Effect: 'Allow' as const, Action: 'secretsmanager:GetSecretValue', Resource: alertWebhookSecret.arn }]
      : []),
    { Sid: 'DeadLetters', Effect: 'Allow', Action: 'sqs:SendMessage', Resource: deadLetters.arn },
  ]);
  // Outside any VPC: it needs no cache, and reaches DynamoDB, SNS, Secrets Manager and the webhook directly.
  const { vpcConfig: _inVpc, ...outsideVpc } = functionDefaults;
  const fn = new aws.lambda.Function(
    `${prefix}-notifier`,
    {
      ...outsideVpc,
      name: NOTIFIER_NAME,
      description: `openai-wrapi ${stage}: budget alerts from the ledger's stream to the alert topic and the webhook`,
      role: role.role.arn,
      code: lambdaArchive('notifier', lambdaCode.notifier),
      handler: 'notifier.handler',
      // A delivery claim holds 30 s (runtime/store/alert-deliveries.ts): room to wait one out and send.
      timeout: 120,
      memorySize: 256,
      loggingConfig: { logFormat: 'Text', logGroup: logs.name },
      environment: {
        variables: {
          [ENV.stage]: stage,
          [ENV.table]: table.name,
          [ENV.alertTopicArn]: alertTopic.arn,
          ...(alertWebhookSecret ? { [ENV.alertWebhookSecretArn]: alertWebhookSecret.arn } : {}),
        },
      },
    },
    { dependsOn: [role.policy] },
  );
  const mapping = new aws.lambda.EventSourceMapping(
    `${prefix}-notifier-stream`,
    {
      eventSourceArn: table.streamArn,
      functionName: fn.arn,
      startingPosition: 'LATEST',
      batchSize: 10,
      filterCriteria: { filters: [{ pattern: ALERT_STREAM.filterPattern }] },
      // Failed records by sequence number: the records before them are not sent again.
      functionResponseTypes: ['ReportBatchItemFailures'],
      bisectBatchOnFunctionError: true,
      // Bounded, so a dead channel cannot hold the shard (and the alerts behind it) for a day.
      maximumRetryAttempts: 8,
      maximumRecordAgeInSeconds: 6 * 3600,
      destinationConfig: { onFailure: { destinationArn: deadLetters.arn } },
    },
    { dependsOn: [role.policy] },
  );
  return { fn, role, deadLetters, mapping };
}

const notifier = ALERT_CHANNELS ? createNotifier() : undefined;

// Amazon Q Developer in chat applications (formerly AWS Chatbot) posts the topic's messages in the
// channel. Its role has no permissions, and the guardrail caps whatever a channel member might run
// through it to a look at the topic: the channel only receives.
if (settings.slack) {
  const chatRole = new aws.iam.Role(`${prefix}-chat-role`, {
    description: `Role of the openai-wrapi ${stage} Slack channel configuration (notifications only)`,
    assumeRolePolicy: policyDocument([
      { Sid: 'AmazonQAssumesRole', Effect: 'Allow', Principal: { Service: 'chatbot.amazonaws.com' }, Action: 'sts:AssumeRole' },
    ]),
    tags,
  });
  const guardrail = new aws.iam.Policy(`${prefix}-chat-guardrail`, {
    description: `openai-wrapi ${stage}: the most the Slack channel may do through Amazon Q (look at its topic)`,
    policy: policyDocument([{ Sid: 'LookAtTheAlertTopic', Effect: 'Allow', Action: 'sns:GetTopicAttributes', Resource: alertTopic.arn }]),
    tags,
  });
  new aws.chatbot.SlackChannelConfiguration(`${prefix}-slack`, {
    configurationName: `${prefix}-alerts`,
    iamRoleArn: chatRole.arn,
    slackTeamId: settings.slack.workspaceId,
    slackChannelId: settings.slack.channelId,
    snsTopicArns: [alertTopic.arn],
    guardrailPolicyArns: [guardrail.arn],
    loggingLevel: 'ERROR',
    tags,
  });
}

// ------------------------------------------------------------------------------------ daily digest
//
// With `dailyDigest`: EventBridge Scheduler invokes the admin function once a day with the digest
// request (DIGEST_SCHEDULE_EVENT); the admin reads the month's usage and limits and publishes a short
// summary to the topic (runtime/core/digest.ts). The schedule lives in a group of its own, and its
// role trusts only schedules of that group (aws:SourceArn must be the group, not the schedule:
// https://docs.aws.amazon.com/scheduler/latest/UserGuide/cross-service-confused-deputy-prevention.html)
// and may only invoke the admin function.

function createDigestSchedule(at: DailyDigestSettings) {
  const group = new aws.scheduler.ScheduleGroup(`${prefix}-schedules`, { name: prefix, tags });
  const role = new aws.iam.Role(`${prefix}-digest-schedule-role`, {
    description: `Role EventBridge Scheduler takes to start the openai-wrapi ${stage} daily digest`,
    assumeRolePolicy: policyDocument([
      {
        Sid: 'TheStagesSchedulesOnly',
        Effect: 'Allow',
        Principal: { Service: 'scheduler.amazonaws.com' },
        Action: 'sts:AssumeRole',
        Condition: { StringEquals: { 'aws:SourceAccount': accountId, 'aws:SourceArn': group.arn } },
      },
    ]),
    tags,
  });
  const policy = new aws.iam.RolePolicy(`${prefix}-digest-schedule-policy`, {
    role: role.id,
    // The function itself, no version or alias: the schedule's target is the unqualified ARN.
    policy: policyDocument([{ Sid: 'InvokeTheAdminFunction', Effect: 'Allow', Action: 'lambda:InvokeFunction', Resource: admin.arn }]),
  });
  const schedule = new aws.scheduler.Schedule(
    `${prefix}-daily-digest`,
    {
      name: 'daily-digest',
      groupName: group.name,
      description: `openai-wrapi ${stage}: the daily digest of spend and limits, to the alert topic`,
      scheduleExpression: `cron(${at.minute} ${at.hour} * * ? *)`,
      scheduleExpressionTimezone: at.timezone,
      flexibleTimeWindow: { mode: 'OFF' },
      state: 'ENABLED',
      target: {
        arn: admin.arn,
        roleArn: role.arn,
        input: JSON.stringify(DIGEST_SCHEDULE_EVENT),
        // A digest an hour late still says the same; a day late, the next one does.
        retryPolicy: { maximumEventAgeInSeconds: 3600, maximumRetryAttempts: 5 },
      },
    },
    // The first run must be able to invoke the function.
    { dependsOn: [policy] },
  );
  return { group, role, policy, schedule };
}

const digestSchedule = settings.dailyDigest ? createDigestSchedule(settings.dailyDigest) : undefined;

// ---------------------------------------------------------------------- guard against direct invokes
//
// The proxy bills the identity in requestContext.authorizer.iam. Through the function URL, AWS writes
// it; through a direct Invoke, the caller writes the whole event and can spend as anyone. The public
// function, when there is one, tells its clients apart by requestContext.http.sourceIp, which a direct
// Invoke forges as easily (a fresh made-up client per call passes every per-client limit): it is
// guarded the same way. The users' policy allows only the URL, but a broad grant elsewhere in the
// account (PowerUserAccess, AWSLambda_FullAccess) allows both, and an identity policy cannot take a
// grant away. What can is a Deny in a permissions boundary (attached per user or role) or in an SCP
// (per account or OU, by an organization admin). Both are built here; the stack attaches neither.
// Behind them, an alarm per function counts invocations that did not come through its URL.

/** A function, and any version or alias of it. */
const arnsOf = (fn: aws.lambda.Function) => [fn.arn, pulumi.interpolate`${fn.arn}:*`];
/** The functions that serve a URL: the proxy, and the public function when there is one. */
const proxyArns = [proxy, ...(publicProxy ? [publicProxy.fn] : [])].flatMap(arnsOf);
const adminArns = arnsOf(admin);

// InvokeWithResponseStream is authorized as lambda:InvokeFunction; InvokeAsync (deprecated) is its own
// action. Only a function URL sets lambda:InvokedViaFunctionUrl: BoolIfExists also denies when the key
// is absent, which is every direct call.
const denyDirectProxyInvoke: Statement = {
  Sid: 'DenyProxyInvokeExceptThroughItsUrl',
  Effect: 'Deny',
  Action: ['lambda:InvokeFunction', 'lambda:InvokeAsync'],
  Resource: proxyArns,
  Condition: { BoolIfExists: { 'lambda:InvokedViaFunctionUrl': 'false' } },
};

/**
 * The same forgery by other routes a broad grant opens, closed for whoever carries the boundary: new
 * code or settings in any function (a URL without auth, the public one's origins, project or resource
 * policy), a new function run as one of their roles (AWSLambda_FullAccess may pass any role to
 * Lambda) or a schedule run as the digest's (it may invoke the admin function), the OpenAI key itself,
 * and ledger writes that would set limits or erase usage without the admin function. Reads of the
 * ledger stay allowed.
 */
const denyRoutesAroundTheFunctions: Statement[] = [
  {
    Sid: 'DenyChangingTheFunctions',
    Effect: 'Deny',
    Action: ['lambda:AddPermission', 'lambda:Create*', 'lambda:Delete*', 'lambda:Publish*', 'lambda:Put*', 'lambda:Update*'],
    Resource: [...proxyArns, ...adminArns, ...(notifier ? arnsOf(notifier.fn) : [])],
  },
  {
    Sid: 'DenyPassingTheFunctionsRoles',
    Effect: 'Deny',
    Action: 'iam:PassRole',
    Resource: [
      proxyRole.role.arn,
      adminRole.role.arn,
      ...[notifier?.role, publicProxy?.role].flatMap((r) => (r ? [r.role.arn] : [])),
      // A schedule run as this role invokes the admin function with an input of its creator's choosing.
      ...(digestSchedule ? [digestSchedule.role.arn] : []),
    ],
  },
  { Sid: 'DenyTheOpenAICredentials', Effect: 'Deny', Action: 'secretsmanager:*', Resource: openaiSecret.arn },
  ...(alertWebhookSecret ? [{ Sid: 'DenyTheAlertWebhook', Effect: 'Deny' as const, Action: 'secretsmanager:*', Resource: alertWebhookSecret.arn }] : []),
  {
    Sid: 'DenyLedgerWritesOutsideTheFunctions',
    Effect: 'Deny',
    Action: [
      'dynamodb:BatchWriteItem', 'dynamodb:DeleteItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem',
      'dynamodb:PartiQLDelete', 'dynamodb:PartiQLInsert', 'dynamodb:PartiQLUpdate',
      'dynamodb:DeleteTable', 'dynamodb:UpdateTable',
    ],
    Resource: table.arn,
  },
];

// A boundary caps what the principal's own policies grant: allow everything, then deny the above. The
// deployer must not carry it (it updates the functions and passes their roles).
const boundaryPolicy = new aws.iam.Policy(`${prefix}-boundary`, {
  description: `openai-wrapi ${stage}: permissions boundary for everyone but the deployer; no direct Invoke of the proxy, no way around it`,
  policy: policyDocument([
    { Sid: 'AllowWhatOtherPoliciesGrant', Effect: 'Allow', Action: '*', Resource: '*' },
    denyDirectProxyInvoke,
    ...denyRoutesAroundTheFunctions,
  ]),
  tags,
});

/**
 * The direct-invoke Deny as a service control policy, for an organization admin to attach to the
 * account: it binds every principal there, roles without the boundary included. Only that statement:
 * the deployer, whom an SCP binds too, updates the functions and passes their roles, but never invokes
 * the proxy directly.
 */
const serviceControlPolicyDocument = policyDocument([denyDirectProxyInvoke]);

const DIRECT_INVOKE_PERIOD_SECONDS = 300;

// Every invocation through the URL is one URL request; an invocation beyond them came some other way.
// Two metrics Lambda publishes anyway: nothing to pay beyond the alarm itself. Blind spots (requests
// the URL refused before invoking offset direct ones in the same period): README, "Direct invokes".
function directInvokeAlarmOn(logicalName: string, fn: aws.lambda.Function, functionName: string, forged: string) {
  const metric = (metricName: string) => ({
    namespace: 'AWS/Lambda',
    metricName,
    // Function URL metrics carry the FunctionName dimension too (all URLs of the function), as does
    // Invocations: https://docs.aws.amazon.com/lambda/latest/dg/urls-monitoring.html
    dimensions: { FunctionName: fn.name },
    period: DIRECT_INVOKE_PERIOD_SECONDS,
    stat: 'Sum',
  });
  return new aws.cloudwatch.MetricAlarm(logicalName, {
    name: `${functionName}-direct-invokes`,
    alarmDescription:
      `${functionName} ran more invocations than its function URL received requests: someone may have invoked it ` +
      `directly with a forged ${forged}. CloudTrail (Lambda Invoke data events) names the caller.`,
    metricQueries: [
      { id: 'invocations', metric: metric('Invocations') },
      { id: 'urlRequests', metric: metric('UrlRequestCount') },
      // Both metrics are absent, not 0, in a period without calls.
      { id: 'notThroughUrl', expression: 'FILL(invocations, 0) - FILL(urlRequests, 0)', label: 'invocations not through the URL', returnData: true },
    ],
    comparisonOperator: 'GreaterThanThreshold',
    threshold: 0,
    evaluationPeriods: 1,
    treatMissingData: 'notBreaching',
    alarmActions: [alertTopic.arn],
    okActions: [alertTopic.arn],
    tags,
  });
}

const directInvokeAlarm = directInvokeAlarmOn(`${prefix}-direct-invokes`, proxy, PROXY_NAME, 'identity');
const publicDirectInvokeAlarm = publicProxy
  ? directInvokeAlarmOn(`${prefix}-public-direct-invokes`, publicProxy.fn, PUBLIC_NAME, 'source address')
  : undefined;

const ALARM_PERIOD_SECONDS = 300;
const thresholds = settings.alarms;

type AlarmMetric = Pick<aws.cloudwatch.MetricAlarmArgs, 'namespace' | 'metricName' | 'dimensions' | 'statistic' | 'metricQueries'>;

/** An alarm (and its recovery) on the topic: `threshold` or more in one 5-minute period. */
const alarmOn = (name: string, description: string, threshold: number, metric: AlarmMetric) =>
  new aws.cloudwatch.MetricAlarm(`${prefix}-${name}`, {
    name: `${prefix}-${name}`,
    alarmDescription: description,
    ...metric,
    ...(metric.metricQueries ? {} : { period: ALARM_PERIOD_SECONDS }),
    comparisonOperator: 'GreaterThanOrEqualToThreshold',
    threshold,
    evaluationPeriods: 1,
    // No traffic publishes no data: that is fine, not an alarm.
    treatMissingData: 'notBreaching',
    alarmActions: [alertTopic.arn],
    okActions: [alertTopic.arn],
    tags,
  });

const lambdaMetric = (fn: aws.lambda.Function, metricName: string, statistic = 'Sum'): AlarmMetric => ({
  namespace: 'AWS/Lambda',
  metricName,
  dimensions: { FunctionName: fn.name },
  statistic,
});

/** One DynamoDB metric summed over every operation the functions use (its dimensions are table and operation). */
const ledgerMetric = (metricName: string, label: string): AlarmMetric => {
  const operations = [...new Set([...PROXY_TABLE_ACTIONS, ...ADMIN_TABLE_ACTIONS])].map((a) => a.replace('dynamodb:', '')).sort();
  return {
    metricQueries: [
      ...operations.map((operation, i) => ({
        id: `op${i}`,
        metric: {
          namespace: 'AWS/DynamoDB',
          metricName,
          dimensions: { TableName: table.name, Operation: operation },
          period: ALARM_PERIOD_SECONDS,
          stat: 'Sum',
        },
        returnData: false,
      })),
      { id: 'total', expression: 'SUM(METRICS())', label, returnData: true },
    ],
  };
};

/** The proxy's own metrics, by stage. */
const proxyMetricQuery = (id: string, metricName: string) => ({
  id,
  metric: { namespace: METRICS.namespace, metricName, dimensions: { stage }, period: ALARM_PERIOD_SECONDS, stat: 'Sum' },
  returnData: false,
});

/** The functions whose errors and throttles alarm: the proxy, the admin, and the public function when there is one. */
const alarmedFunctions: [aws.lambda.Function, FunctionRole, string][] = [
  [proxy, 'proxy', PROXY_NAME],
  [admin, 'admin', ADMIN_NAME],
  ...(publicProxy ? [[publicProxy.fn, 'public', PUBLIC_NAME] as [aws.lambda.Function, FunctionRole, string]] : []),
];

const alarms = [
  alarmOn('proxy-url-5xx', `The ${PROXY_NAME} function URL answered 5xx (proxy failures, ledger unreachable, upstream errors it relays).`, thresholds.url5xx, lambdaMetric(proxy, 'Url5xxCount')),
  ...(publicProxy
    ? [alarmOn('public-url-5xx', `The ${PUBLIC_NAME} function URL answered 5xx (proxy failures, ledger unreachable, upstream errors it relays).`, thresholds.url5xx, lambdaMetric(publicProxy.fn, 'Url5xxCount'))]
    : []),
  ...alarmedFunctions.flatMap(([fn, role, name]) => [
    alarmOn(`${role}-errors`, `${name} invocations failed (see its log group).`, thresholds.functionErrors, lambdaMetric(fn, 'Errors')),
    alarmOn(`${role}-throttles`, `Lambda refused ${name} invocations: concurrency exhausted.`, thresholds.functionThrottles, lambdaMetric(fn, 'Throttles')),
  ]),
  alarmOn(
    'proxy-duration',
    `An invocation of ${PROXY_NAME} ran ${thresholds.durationPercent}% of its ${settings.proxyTimeoutSeconds} s timeout: long calls are being cut (and billed by estimate).`,
    (settings.proxyTimeoutSeconds * 1000 * thresholds.durationPercent) / 100,
    lambdaMetric(proxy, 'Duration', 'Maximum'),
  ),
  alarmOn('ledger-throttles', `DynamoDB throttled requests to ${TABLE_NAME}.`, thresholds.ledgerThrottles, ledgerMetric('ThrottledRequests', 'throttled requests')),
  alarmOn('ledger-system-errors', `DynamoDB failed requests to ${TABLE_NAME} (server errors).`, thresholds.ledgerSystemErrors, ledgerMetric('SystemErrors', 'system errors')),
  alarmOn(
    'estimated-calls',
    `Calls through ${PROXY_NAME} were billed by estimate (OpenAI's usage never arrived) or their settlement never reached the ledger: ` +
      `see the proxy's log lines with outcome "estimated" or message "settle failed".`,
    thresholds.estimatedCalls,
    {
      metricQueries: [
        proxyMetricQuery('estimated', METRICS.names.estimatedCalls),
        proxyMetricQuery('unsettled', METRICS.names.unsettledCalls),
        { id: 'total', expression: 'FILL(estimated, 0) + FILL(unsettled, 0)', label: 'estimated or unsettled calls', returnData: true },
      ],
    },
  ),
  // Scheduler gave up invoking the admin (its role or the function gone, throttled past the retry
  // policy): no digest that day, and nothing in the admin's own metrics says so.
  ...(digestSchedule
    ? [
        alarmOn(
          'digest-dropped',
          `EventBridge Scheduler could not start the daily digest (${ADMIN_NAME} was not invoked after the schedule's retries): ` +
            'check the schedule\'s role and the admin function.',
          1,
          { namespace: 'AWS/Scheduler', metricName: 'InvocationDroppedCount', dimensions: { ScheduleGroup: digestSchedule.group.name }, statistic: 'Sum' },
        ),
      ]
    : []),
  ...(notifier
    ? [
        alarmOn(
          'alert-dlq',
          `Budget alerts could not be delivered (${NOTIFIER_NAME} failed them after its retries): see its log group, fix the channel, ` +
            'and replay the dead letters (README, "Budget alerts on AWS").',
          1,
          { namespace: 'AWS/SQS', metricName: 'ApproximateNumberOfMessagesVisible', dimensions: { QueueName: notifier.deadLetters.name }, statistic: 'Maximum' },
        ),
      ]
    : []),
];

const dashboard = new aws.cloudwatch.Dashboard(`${prefix}-dashboard`, {
  dashboardName: prefix,
  dashboardBody: pulumi.jsonStringify(dashboardBody()),
});

/** The dashboard's widgets: traffic, refusals, spend, latency, cache, estimates, then the functions' health. */
function dashboardBody() {
  const ns = METRICS.namespace;
  const n = METRICS.names;
  const dims = METRICS.requestDimensions.join(',');
  /** Requests with one outcome, summed over routes. */
  const requests = (outcome: string) => ({
    expression: `SUM(SEARCH('{${ns},${dims}} MetricName="${n.requests}" stage="${stage}" outcome="${outcome}"', 'Sum', ${ALARM_PERIOD_SECONDS}))`,
    label: outcome,
    id: outcome.replace(/_/g, ''),
  });
  const byStage = (metricName: string, options: Record<string, unknown>) => [ns, metricName, 'stage', stage, options];
  const widget = (title: string, x: number, y: number, props: Record<string, unknown>) => ({
    type: 'metric',
    x,
    y,
    width: 12,
    height: 6,
    properties: { title, region, view: 'timeSeries', period: ALARM_PERIOD_SECONDS, ...props },
  });
  return {
    widgets: [
      widget('Traffic: calls per 5 minutes, by outcome', 0, 0, {
        stacked: true,
        metrics: ['served', 'estimated', 'upstream_error', 'invalid_request', 'proxy_error'].map((o) => [requests(o)]),
      }),
      widget('Refusals per 5 minutes, by reason', 12, 0, {
        stacked: true,
        metrics: ['refused_budget', 'refused_rate', 'refused_membership'].map((o) => [requests(o)]),
      }),
      widget('Spend per hour (USD)', 0, 6, {
        period: 3600,
        metrics: [
          byStage(n.spendUsd, { stat: 'Sum', period: 3600, label: 'spent' }),
          byStage(n.savedUsd, { stat: 'Sum', period: 3600, label: 'saved by the cache' }),
        ],
      }),
      widget('Latency (ms): added by the proxy, and to the first byte', 12, 6, {
        metrics: [
          byStage(n.addedLatency, { stat: 'p50', label: 'added p50' }),
          byStage(n.addedLatency, { stat: 'p99', label: 'added p99' }),
          byStage(n.timeToFirstByte, { stat: 'p50', label: 'first byte p50' }),
          byStage(n.timeToFirstByte, { stat: 'p99', label: 'first byte p99' }),
        ],
      }),
      widget('Cache hit rate (%) of cacheable calls', 0, 12, {
        yAxis: { left: { min: 0, max: 100 } },
        metrics: [
          byStage(n.cacheHits, { stat: 'Sum', id: 'hits', visible: false }),
          byStage(n.cacheMisses, { stat: 'Sum', id: 'misses', visible: false }),
          [{ expression: '100 * FILL(hits, 0) / (FILL(hits, 0) + FILL(misses, 0))', label: 'hit rate', id: 'rate' }],
        ],
      }),
      widget('Estimated and unsettled calls, ledger errors', 12, 12, {
        metrics: [
          byStage(n.estimatedCalls, { stat: 'Sum', label: 'billed by estimate' }),
          byStage(n.unsettledCalls, { stat: 'Sum', label: 'settlement failed' }),
          byStage(n.ledgerErrors, { stat: 'Sum', label: 'ledger errors' }),
        ],
      }),
      widget('Proxy function', 0, 18, { metrics: functionHealth(proxy) }),
      {
        type: 'alarm',
        x: 12,
        y: 18,
        width: 12,
        height: 6,
        properties: { title: 'Alarms', alarms: [...alarms, directInvokeAlarm, ...(publicDirectInvokeAlarm ? [publicDirectInvokeAlarm] : [])].map((a) => a.arn) },
      },
      ...(publicProxy ? [widget('Public function (browser URL)', 0, 24, { metrics: functionHealth(publicProxy.fn) })] : []),
    ],
  };
}

/** A function's URL 5xx, errors, throttles and concurrency, as dashboard metrics. */
function functionHealth(fn: aws.lambda.Function) {
  return [
    ['AWS/Lambda', 'Url5xxCount', 'FunctionName', fn.name, { stat: 'Sum', label: 'URL 5xx' }],
    ['AWS/Lambda', 'Errors', 'FunctionName', fn.name, { stat: 'Sum', label: 'errors' }],
    ['AWS/Lambda', 'Throttles', 'FunctionName', fn.name, { stat: 'Sum', label: 'throttles' }],
    ['AWS/Lambda', 'ConcurrentExecutions', 'FunctionName', fn.name, { stat: 'Maximum', label: 'concurrent' }],
  ];
}

// ----------------------------------------------------------------------------------------- outputs
//
// `pulumi stack output --json > dev.json` is what the SDK reads, and the local stack writes the same
// names to outputs.json. None is secret, so that file holds no "[secret]" placeholders.

export { region };
export const proxyUrl = proxyFunctionUrl.functionUrl;
export const proxyFunctionName = proxy.name;
export const adminFunctionName = admin.name;
export const tableName = table.name;
/** The memcached configuration endpoint (`host:port`), or null without ElastiCache. */
export const cacheEndpoint = cache ? cache.configurationEndpoint : null;
export const userPolicyArn = userPolicy.arn;
export const adminPolicyArn = adminPolicy.arn;
/** The permissions boundary to attach to everyone who may call the proxy (README, "Direct invokes"). */
export const boundaryPolicyArn = boundaryPolicy.arn;
/** The direct-invoke Deny as a service control policy (JSON), for an organization admin. */
export const serviceControlPolicy = serviceControlPolicyDocument;
export const directInvokeAlarmName = directInvokeAlarm.name;
/** The stage's alert topic: subscribe more endpoints to it (README, "Metrics, alarms and dashboard"). */
export const alertTopicArn = alertTopic.arn;
/** The budget-alert notifier, or null when no alert channel is configured. */
export const notifierFunctionName = notifier ? notifier.fn.name : null;
/** The dead-letter queue of budget alerts that could not be delivered, or null without a notifier. */
export const alertDlqUrl = notifier ? notifier.deadLetters.url : null;
/** The public (browser) URL, or null without `publicAccess`. */
export const publicUrl = publicProxy ? publicProxy.url.functionUrl : null;
/** The public function, or null without `publicAccess`. */
export const publicFunctionName = publicProxy ? publicProxy.fn.name : null;
export const dashboardUrl = pulumi.interpolate`https://${region}.console.aws.amazon.com/cloudwatch/home?region=${region}#dashboards/dashboard/${dashboard.dashboardName}`;
