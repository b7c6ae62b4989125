// The admin API: limits, usage, prices and the cache of a stage, through its admin function
// (`openai-admin-<stage>`) with @aws-sdk/client-lambda — on AWS, or at the local stack's Lambda
// endpoint when the outputs name one. Refusals are typed errors carrying the server's message.
import type { LambdaClient } from '@aws-sdk/client-lambda';
import type {
  AdminRequest, AlertDto, AlertsReport, AudioPriceDto, DailyDigest, DigestReport, LimitDto, LimitKind, LimitStatus, LimitsReport, LongContextDto, MembersReport,
  PriceDto, ProjectMembersDto, UsageDto, UsageReport, UsageTotals,
} from '../runtime/core/protocol.ts';
import { isUsdAmount, MAX_USD, MIN_USD } from '../runtime/core/protocol.ts';
import { credentialsProvider, type CredentialOptions } from './credentials.ts';
import { WrapiAccessDeniedError, WrapiAdminError, WrapiConfigError, WrapiConnectionError } from './errors.ts';
import { checkProject, getSettings } from './settings.ts';
import { resolveTarget, type StageTarget } from './target.ts';

export type {
  AlertDto, AlertsReport, AudioPriceDto, DailyDigest, DigestReport, LimitDto, LimitKind, LimitStatus, LimitsReport, LongContextDto, MembersReport, PriceDto, ProjectMembersDto, UsageDto, UsageReport, UsageTotals,
};

/** Where and as whom to call the admin function. */
export interface AdminOptions extends CredentialOptions {
  /** The stage. Default: `setStaging`, else `OPENAI_DEFAULT_STAGING`, else `dev`. */
  staging?: string;
  proxyUrl?: string;
  region?: string;
  /** Lambda API endpoint (default: the outputs' `lambdaEndpoint`, else AWS's). */
  lambdaEndpoint?: string;
}

export interface PricesReport {
  stage: string;
  /** The shipped price table: its date, source and unit. */
  table?: { asOf: string; source: string; unit: string };
  prices: PriceDto[];
}

export interface LimitScope {
  /** Default: the current project (`setProject`). */
  project?: string;
  /** Optional: limit one user within the project. */
  user?: string;
  /** Optional: limit one model within the project (or user). */
  model?: string;
}

/** What {@link setLimits} sets: any of a USD limit (per `period`), requests and tokens per minute. */
export interface LimitValues {
  /** USD per `period`. */
  limit?: number;
  /** `month` (default, calendar month in UTC) or `day` (UTC). Both may be set, each with its own call. */
  period?: 'month' | 'day';
  /** Requests per minute (cache hits count). */
  rpm?: number;
  /** Tokens per minute: input plus worst-case output while a call runs, its actual use after. */
  tpm?: number;
  /**
   * Alert thresholds of the USD `limit` given with them (of its `period`), percent of it: whole
   * numbers 1-100 (`[50, 80, 100]`, or `'50,80,100'`), or `'none'`. Left out, the limit keeps its
   * thresholds (80 and 100 by default). Each fires once per period when settled spend reaches it.
   */
  alerts?: number[] | string;
}

/**
 * Sets limits of a scope: per project, or per project and user and/or model — the original's
 * `set_limits(limit, staging, project, user, model)`, plus per-day USD and per-minute rates, and
 * the USD limit's alert thresholds. Limits not given are kept.
 *
 * @example await setLimits({ limit: 10, staging: 'dev', project: 'my-project', user: 'me', model: 'gpt-4o' });
 * @example await setLimits({ staging: 'dev', project: 'my-project', limit: 2, period: 'day', rpm: 60, tpm: 100_000 });
 * @example await setLimits({ staging: 'prod', project: 'research', limit: 500, alerts: [50, 80, 95, 100] });
 */
export async function setLimits(options: LimitScope & AdminOptions & LimitValues): Promise<LimitDto> {
  const { limit, period, rpm, tpm, alerts } = options;
  if (limit === undefined && rpm === undefined && tpm === undefined) {
    throw new WrapiConfigError('Give at least one of limit (USD), rpm or tpm.');
  }
  if (alerts !== undefined && limit === undefined) {
    throw new WrapiConfigError('alerts go with limit: they are percents of the USD limit set in the same call.');
  }
  const out = await invokeAdmin(
    {
      action: 'setLimit', ...scope(options),
      ...(limit !== undefined ? { limit: usdArg(limit, 'limit') } : {}),
      ...(period !== undefined ? { period } : {}),
      ...(rpm !== undefined ? { rpm: rateArg(rpm, 'rpm') } : {}),
      ...(tpm !== undefined ? { tpm: rateArg(tpm, 'tpm') } : {}),
      ...(alerts !== undefined ? { alerts: alertsArg(alerts) } : {}),
    },
    options,
  );
  return out.limit as LimitDto;
}

/**
 * Removes one kind of limit of a scope (the scope must match exactly), or every limit of it when
 * `kind` is left out. Throws `WrapiAdminError` (`limit_not_found`) if there is none.
 */
export async function removeLimit(options: LimitScope & AdminOptions & { kind?: LimitKind }): Promise<void> {
  await invokeAdmin({ action: 'removeLimit', ...scope(options), ...(options.kind ? { kind: options.kind } : {}) }, options);
}

/** The limits of a stage (optionally of one project) with their use this month, today and this minute. */
export async function getLimits(options: AdminOptions & { project?: string } = {}): Promise<LimitsReport> {
  const out = await invokeAdmin({ action: 'listLimits', ...(options.project ? { project: options.project } : {}) }, options);
  return { stage: out.stage, month: out.month as string, day: out.day as string, limits: out.limits as LimitStatus[] };
}

/**
 * The budget alerts of a month (default: this one, UTC), newest first: each time settled spend
 * reached an alert threshold of a USD limit (monthly or daily), with the limit and the spend then.
 *
 * @example const { alerts } = await listAlerts({ staging: 'prod' });
 */
export async function listAlerts(options: AdminOptions & { month?: string } = {}): Promise<AlertsReport> {
  const out = await invokeAdmin({ action: 'listAlerts', ...(options.month ? { month: options.month } : {}) }, options);
  return { stage: out.stage, month: out.month as string, alerts: out.alerts as AlertDto[] };
}

/**
 * The stage's daily digest as of now: the month so far, the day before, the top projects, users and
 * models, the limits near or over. With `send`, also published to the stage's alert topic (the
 * stack's `dailyDigest` must be on); otherwise only shown.
 *
 * @example const { text } = await getDigest({ staging: 'prod' });
 */
export async function getDigest(options: AdminOptions & { send?: boolean } = {}): Promise<DigestReport> {
  const out = await invokeAdmin({ action: 'sendDigest', dryRun: options.send !== true }, options);
  return {
    stage: out.stage, digest: out.digest as DailyDigest, subject: out.subject as string, text: out.text as string, published: out.published === true,
    ...(typeof out.messageId === 'string' ? { messageId: out.messageId } : {}),
    ...(out.alreadySent === true ? { alreadySent: true } : {}),
  };
}

/** Usage of a month (default: this one, UTC) by user, project or model, with cache hits and savings. */
export async function getUsage(
  options: AdminOptions & { month?: string; by?: 'user' | 'project' | 'model'; daily?: boolean } = {},
): Promise<UsageReport> {
  const { month, by, daily } = options;
  const out = await invokeAdmin({ action: 'usage', ...(month ? { month } : {}), ...(by ? { by } : {}), ...(daily ? { daily } : {}) }, options);
  return out as unknown as UsageReport;
}

/**
 * Sets (overrides) a model's price in USD per 1M tokens, effective without a redeploy, for the model
 * and every id that resolves to it (`gpt-4o` also prices `gpt-4o-2031-01-01`; a dated id the table
 * lists is raised by a family override, never lowered). Cache-write, long-context and audio rates left
 * out come from the shipped table, cache-write and long-context ones raised as far as the text rates are.
 */
export async function setPrice(
  options: AdminOptions & {
    model: string;
    input: number;
    output: number;
    cachedInput?: number | null;
    cacheWrite?: number;
    longContext?: LongContextDto;
    audio?: { input?: number; cachedInput?: number; output?: number };
  },
): Promise<PriceDto> {
  const { model, input, output, cachedInput, cacheWrite, longContext, audio } = options;
  const out = await invokeAdmin(
    {
      action: 'setPrice', model, input: usdArg(input, 'input'), output: usdArg(output, 'output'),
      ...(cachedInput != null ? { cachedInput: usdArg(cachedInput, 'cachedInput') } : {}),
      ...(cacheWrite != null ? { cacheWrite: usdArg(cacheWrite, 'cacheWrite') } : {}),
      ...(longContext ? { longContext: { ...longContext, ...usdRates(longContext, 'longContext') } } : {}),
      ...(audio ? { audio: usdRates(audio, 'audio') } : {}),
    },
    options,
  );
  return out.price as PriceDto;
}

/** Removes a price override; the shipped table's price (if any) applies again. */
export async function removePrice(options: AdminOptions & { model: string }): Promise<void> {
  await invokeAdmin({ action: 'removePrice', model: options.model }, options);
}

/** All prices of a stage (table and overrides), or the one that applies to `model`. */
export async function getPrices(options: AdminOptions & { model?: string } = {}): Promise<PricesReport> {
  const out = await invokeAdmin({ action: 'listPrices', ...(options.model ? { model: options.model } : {}) }, options);
  return { stage: out.stage, ...(out.table ? { table: out.table as PricesReport['table'] } : {}), prices: out.prices as PriceDto[] };
}

/** Empties the stage's response cache. */
export async function flushCache(options: AdminOptions = {}): Promise<void> {
  await invokeAdmin({ action: 'flushCache' }, options);
}

/** Who a membership change is about: exactly one of `user` or `role`. */
export interface MemberScope {
  /** Default: the current project (`setProject`). */
  project?: string;
  /** A caller as the proxy names it: `alice`, `AWSReservedSSO_Dev_0a1b/alice`. */
  user?: string;
  /** An IAM role: everyone who comes through it (stored as `role/*`). */
  role?: string;
}

/**
 * Adds a member to a project. A project with members refuses every other caller (403,
 * `project_access_denied`); one without members is open to every signed caller.
 * `added` is false when it was a member already.
 *
 * @example await grantMember({ staging: 'prod', project: 'research', role: 'data-science' });
 */
export async function grantMember(options: MemberScope & AdminOptions): Promise<{ project: string; member: string; added: boolean }> {
  const out = await invokeAdmin({ action: 'grantMember', ...memberScope(options) }, options);
  return { project: out.project as string, member: out.member as string, added: out.added as boolean };
}

/**
 * Removes a member; the project is open again once it has none. Throws `WrapiAdminError`
 * (`member_not_found`) if it was not one. Running proxy instances see it within the policy cache
 * (`OPENAI_WRAPI_POLICY_CACHE_MS`, 5 s by default).
 */
export async function revokeMember(options: MemberScope & AdminOptions): Promise<{ project: string; member: string }> {
  const out = await invokeAdmin({ action: 'revokeMember', ...memberScope(options) }, options);
  return { project: out.project as string, member: out.member as string };
}

/** The projects that have members (optionally only `project`); projects not listed are open. */
export async function getMembers(options: AdminOptions & { project?: string } = {}): Promise<MembersReport> {
  const out = await invokeAdmin({ action: 'listMembers', ...(options.project ? { project: options.project } : {}) }, options);
  return { stage: out.stage, projects: out.projects as ProjectMembersDto[] };
}

function memberScope(options: MemberScope): { project: string; user?: string; role?: string } {
  if ((options.user === undefined) === (options.role === undefined)) {
    throw new WrapiConfigError('Give exactly one of user (a caller, e.g. alice) or role (everyone who comes through an IAM role).');
  }
  return {
    project: checkProject(options.project ?? getSettings().project, 'project'),
    ...(options.user !== undefined ? { user: selector(options.user, 'user') } : { role: selector(options.role, 'role') }),
  };
}

function scope(options: LimitScope): { project: string; user?: string; model?: string } {
  return {
    project: checkProject(options.project ?? getSettings().project, 'project'),
    ...(options.user !== undefined ? { user: selector(options.user, 'user') } : {}),
    ...(options.model !== undefined ? { model: selector(options.model, 'model') } : {}),
  };
}

/**
 * A user or model given must name one: an empty or blank one (a script's unset variable) would
 * otherwise mean "the whole project" and replace or remove the project's own limit.
 */
function selector(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.trim() === '') {
    throw new WrapiConfigError(`${field} must be a non-empty name, or left out for the whole project (got ${JSON.stringify(value)}).`);
  }
  return value;
}

/**
 * Amounts are numbers, as typed. A string ('10') is refused rather than guessed at (the CLI reads
 * decimal strings; here one is a caller's mistake), and NaN is named: JSON would send it as null.
 */
function usdArg(value: unknown, field: string): number {
  if (isUsdAmount(value)) return value;
  const got = typeof value === 'string' ? `the string ${JSON.stringify(value)}` : typeof value === 'number' ? String(value) : typeof value;
  throw new WrapiConfigError(`${field} must be a number of USD, 0 or from ${MIN_USD} to ${MAX_USD} (got ${got}).`);
}

/** Alert thresholds as given: an array of numbers or a string; the admin function checks the values. */
function alertsArg(value: unknown): number[] | string {
  if (typeof value === 'string' || (Array.isArray(value) && value.every((v) => typeof v === 'number'))) return value;
  throw new WrapiConfigError(`alerts must be an array of whole percents, a string such as '50,80,100', or 'none' (got ${typeof value}).`);
}

/** Requests or tokens per minute: a whole number from 0. */
function rateArg(value: unknown, field: string): number {
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 1_000_000_000) return value;
  throw new WrapiConfigError(`${field} must be a whole number from 0 to 1000000000 (got ${typeof value === 'number' ? value : typeof value}).`);
}

/** The rates given (input, cachedInput, output), each checked as {@link usdArg}. */
function usdRates<T extends { input?: unknown; cachedInput?: unknown; output?: unknown }>(rates: T, field: string): T {
  const out = { ...rates };
  for (const k of ['input', 'cachedInput', 'output'] as const) {
    if (rates[k] != null) (out as Record<string, unknown>)[k] = usdArg(rates[k], `${field}.${k}`);
  }
  return out;
}

/** The stage an admin call goes to, and how it is reached. */
export function adminTarget(options: AdminOptions = {}): StageTarget {
  const target = resolveTarget(options.staging ?? getSettings().staging, options);
  return options.lambdaEndpoint ? { ...target, lambdaEndpoint: options.lambdaEndpoint } : target;
}

const clients = new Map<string, LambdaClient>();

async function lambdaFor(target: StageTarget, options: CredentialOptions): Promise<LambdaClient> {
  const key = `${target.region}\u0000${target.lambdaEndpoint ?? ''}\u0000${options.profile ?? process.env.AWS_PROFILE ?? ''}\u0000${target.credentialsFile ?? ''}`;
  const cached = options.credentials ? undefined : clients.get(key);
  if (cached) return cached;
  const { LambdaClient } = await import('@aws-sdk/client-lambda');
  const client = new LambdaClient({
    region: target.region,
    ...(target.lambdaEndpoint ? { endpoint: target.lambdaEndpoint } : {}),
    credentials: credentialsProvider({ ...options, credentialsFile: target.credentialsFile }),
    maxAttempts: 2,
  });
  if (!options.credentials) clients.set(key, client);
  return client;
}

/**
 * Sends one request to a stage's admin function and returns its answer. Throws
 * `WrapiAdminError` (refused), `WrapiAccessDeniedError` (not an admin), `WrapiConnectionError`
 * (unreachable) or `WrapiConfigError` (stage or credentials not configured).
 */
export async function invokeAdmin(request: AdminRequest, options: AdminOptions = {}): Promise<{ ok: true; stage: string } & Record<string, unknown>> {
  const target = adminTarget(options);
  const lambda = await lambdaFor(target, options);
  const { InvokeCommand } = await import('@aws-sdk/client-lambda');
  let out;
  try {
    out = await lambda.send(new InvokeCommand({ FunctionName: target.adminFunctionName, Payload: JSON.stringify(request) }));
  } catch (err) {
    throw translate(err, target);
  }
  const text = out.Payload ? Buffer.from(out.Payload).toString('utf8') : '';
  let result: Record<string, unknown>;
  try {
    result = JSON.parse(text);
  } catch {
    throw new WrapiAdminError(`The admin function of stage ${target.stage} answered with something that is not JSON.`, { stage: target.stage, code: 'bad_answer', type: 'server_error' });
  }
  if (out.FunctionError) {
    const message = typeof result.errorMessage === 'string' ? result.errorMessage : out.FunctionError;
    throw new WrapiAdminError(`The admin function of stage ${target.stage} failed: ${message}`, { stage: target.stage, code: 'function_error', type: 'server_error' });
  }
  if (result.ok !== true) {
    const error = (result.error ?? {}) as { message?: string; type?: string; code?: string | null; param?: string | null };
    throw new WrapiAdminError(error.message ?? `The admin function of stage ${target.stage} refused the request.`, {
      stage: target.stage, code: error.code, type: error.type, param: error.param,
    });
  }
  return result as { ok: true; stage: string } & Record<string, unknown>;
}

function translate(err: unknown, target: StageTarget): Error {
  if (err instanceof WrapiConfigError) return err;
  const e = err as { name?: string; message?: string; code?: string; $metadata?: { httpStatusCode?: number } };
  const where = `${target.adminFunctionName}${target.lambdaEndpoint ? ` at ${target.lambdaEndpoint}` : ` in ${target.region}`}`;
  const status = e.$metadata?.httpStatusCode;
  const name = e.name ?? '';
  if (name === 'AccessDeniedException' || name === 'AccessDeniedError' || status === 403 || /UnrecognizedClient|InvalidSignature/.test(name)) {
    return new WrapiAccessDeniedError(
      `Not allowed to invoke ${where} (stage ${target.stage}): ${e.message}. Admins need lambda:InvokeFunction on it ` +
        '(the stack\'s admin policy; on the local stack: openai-wrapi local users add NAME --admin).',
      { stage: target.stage, code: 'access_denied', type: 'permission_denied', cause: err },
    );
  }
  if (name === 'ResourceNotFoundException') {
    return new WrapiAdminError(`There is no admin function ${where}: is stage "${target.stage}" deployed?`, {
      stage: target.stage, code: 'function_not_found', type: 'not_found', cause: err,
    });
  }
  const code = e.code ?? (err as { cause?: { code?: string } }).cause?.code;
  if (code && /^(ECONNREFUSED|ENOTFOUND|ECONNRESET|EHOSTUNREACH|ETIMEDOUT|EAI_AGAIN)$/.test(code)) {
    return new WrapiConnectionError(
      `Could not reach the admin function ${where} (${code})${target.lambdaEndpoint ? ': is the local stack running (openai-wrapi local)?' : '.'}`,
      { cause: err },
    );
  }
  return new WrapiAdminError(`Calling ${where} failed: ${e.message ?? String(err)}`, { stage: target.stage, code: name || 'invoke_failed', type: 'server_error', cause: err });
}
