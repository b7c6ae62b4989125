// Pure budget arithmetic shared by every ledger: which scopes a call touches, what to reserve,
// and how refusals read.
import { ANY } from './protocol.ts';
import type { Hold, Nano, Scope } from './ports.ts';
import { DEFAULT_ALERTS, type AlertWatch } from './alerts.ts';
import { modelCandidates, nanoToUsd } from './pricing.ts';

/** UTC calendar month, `YYYY-MM`. */
export const monthOf = (ms: number): string => new Date(ms).toISOString().slice(0, 7);
/** UTC day, `YYYY-MM-DD`. */
export const dayOf = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

/**
 * The model a call counts under: the undated family its id resolves to (`gpt-4o-2024-08-06` →
 * `gpt-4o`, `ft:gpt-4o-mini-2024-07-18:org::id` → `ft:gpt-4o-mini`), so a limit on a model binds
 * every snapshot of it.
 */
export const modelFamily = (model: string): string => modelCandidates(model).at(-1)!;

/**
 * The four scopes a call counts into, in the order limits are checked: project, project+model,
 * user+project, user+project+model. The last one is the detail row reports group by.
 */
export function callScopes(project: string, user: string, modelId: string): Scope[] {
  const model = modelFamily(modelId);
  return [
    { project, user: ANY, model: ANY },
    { project, user: ANY, model },
    { project, user, model: ANY },
    { project, user, model },
  ];
}

export const isDetail = (s: Scope): boolean => s.user !== ANY && s.model !== ANY;

/**
 * The project of the scope that pools, per user, the projects the stack's default limit covers
 * (those without a monthly limit of their own). Project names cannot start with a space, so no
 * real project can be it. Without the pool a caller could spend the default again and again by
 * naming new projects.
 */
export const UNLISTED_PROJECTS = ' unlisted';

/** A user's scope across every project the default limit covers. */
export const unlistedScope = (user: string): Scope => ({ project: UNLISTED_PROJECTS, user, model: ANY });

/**
 * The hold on the caller's pool of the projects the default limit covers, when it covers this call's
 * (`projectLimit`, the project's own, is unset): the default then also binds the user's spend in all
 * such projects together. No alerts: no admin set that limit.
 */
export function defaultPoolHolds(scopes: Scope[], projectLimit: Nano | undefined, defaultLimit: Nano | undefined, amount: Nano): Hold[] {
  if (projectLimit !== undefined || defaultLimit === undefined) return [];
  return [{ scope: unlistedScope(scopes[USER_SCOPE].user), amount, limit: defaultLimit, alerts: [] }];
}

/** Index of the caller's own scope (project + user, any model) in {@link callScopes}. */
export const USER_SCOPE = 2;

/**
 * The limits in force for a call's scopes. A project without its own limit gets the stack's
 * default, or undefined when there is none (the call is then refused).
 */
export function effectiveLimits(limits: (Nano | undefined)[], defaultProjectLimit: Nano | undefined): (Nano | undefined)[] {
  return limits.map((limit, i) => (i === 0 && limit === undefined ? defaultProjectLimit : limit));
}

/** Each scope's alert thresholds of its monthly and daily limits, as the ledger read them. */
export interface AlertThresholds {
  alerts?: (readonly number[] | undefined)[];
  dayAlerts?: (readonly number[] | undefined)[];
}

/**
 * A hold on every scope the call counts into, limited where a limit (per month, per day) is in
 * force, with that limit's alert thresholds when they are not the defaults.
 */
export function holdsFor(
  scopes: Scope[], limits: (Nano | undefined)[], amount: Nano, dayLimits: (Nano | undefined)[] = [], thresholds: AlertThresholds = {},
): Hold[] {
  return scopes.map((scope, i) => {
    const hold: Hold = limits[i] === undefined ? { scope, amount } : { scope, amount, limit: limits[i] };
    if (dayLimits[i] !== undefined) hold.dayLimit = dayLimits[i];
    const alerts = thresholds.alerts?.[i];
    const dayAlerts = thresholds.dayAlerts?.[i];
    if (alerts && hold.limit !== undefined) hold.alerts = alerts;
    if (dayAlerts && hold.dayLimit !== undefined) hold.dayAlerts = dayAlerts;
    return hold;
  });
}

/** The limits of a hold whose alert thresholds its settlement may reach (none: nothing to watch). */
export function watchOf(hold: Hold): AlertWatch[] {
  const watch: AlertWatch[] = [];
  const add = (period: AlertWatch['period'], limit: Nano | undefined, thresholds: readonly number[] = DEFAULT_ALERTS) => {
    if (limit !== undefined && limit > 0 && thresholds.length) watch.push({ period, limit, thresholds });
  };
  add('month', hold.limit, hold.alerts);
  add('day', hold.dayLimit, hold.dayAlerts);
  return watch;
}

export function describeScope(s: Scope): string {
  if (s.project === UNLISTED_PROJECTS) return `user "${s.user}" across the projects without a limit of their own`;
  const parts = [`project "${s.project}"`];
  if (s.user !== ANY) parts.push(`user "${s.user}"`);
  if (s.model !== ANY) parts.push(`model "${s.model}"`);
  return parts.join(', ');
}

/** The CLI line an admin would run to set this scope's limit. */
export function limitCommand(stage: string, s: Scope, usd: number | string, period?: 'day'): string {
  let cmd = `openai-wrapi limits set --stage ${stage} --project "${s.project}"`;
  if (s.user !== ANY) cmd += ` --user "${s.user}"`;
  if (s.model !== ANY) cmd += ` --model "${s.model}"`;
  return `${cmd} --limit ${usd}${period ? ` --period ${period}` : ''}`;
}

export const usd = (nano: Nano): string => `$${nanoToUsd(nano).toFixed(nano < 1e7 && nano > 0 ? 6 : 2)}`;

/** What a refused call could have asked for instead: output tokens per choice that fit, and the parameter. */
export interface Fit {
  tokens: number;
  parameter: string;
}

/** `period` day: the hold's daily limit refused, `committed` being the day's total. */
export function overBudgetMessage(stage: string, hold: Hold, committed: Nano, fit?: Fit, period?: 'day', project?: string): string {
  let advice = '';
  if (fit && fit.tokens > 0) advice = `At most ${fit.tokens} output tokens would fit: set ${fit.parameter} to ${fit.tokens} or less. `;
  else if (fit) advice = 'Even its input alone may cost more than what is left. ';
  const [kind, limit, when] = period === 'day' ? ['Daily', hold.dayLimit, 'today (UTC)'] : ['Monthly', hold.limit, 'this month'];
  const raise = hold.scope.project === UNLISTED_PROJECTS
    ? `The stack's default limit covers each user's spend in all projects without their own limit together; ` +
      `an admin can give the project a limit of its own: ${limitCommand(stage, { project: project ?? '<project>', user: ANY, model: ANY }, '<usd>')}`
    : `An admin can raise the limit: ${limitCommand(stage, hold.scope, '<usd>', period)}`;
  return (
    `${kind} limit of ${usd(limit ?? 0)} for ${describeScope(hold.scope)} in stage ${stage} would be exceeded: ` +
    `${usd(committed)} is spent or reserved ${when} and this call may cost up to ${usd(hold.amount)}. ${advice}${raise}`
  );
}

export function noLimitMessage(stage: string, project: string): string {
  return (
    `Project "${project}" has no spending limit in stage ${stage}, so its calls are refused. ` +
    `An admin can set one: ${limitCommand(stage, { project, user: ANY, model: ANY }, '<usd>')}`
  );
}
