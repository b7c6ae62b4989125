// Pure budget arithmetic shared by every ledger: which scopes a call touches, what to reserve,
// and how refusals read.
import { ANY } from './protocol.ts';
import type { Hold, Nano, Scope } from './ports.ts';
import { costOf, nanoToUsd, type Price } from './pricing.ts';

/** UTC calendar month, `YYYY-MM`. */
export const monthOf = (ms: number): string => new Date(ms).toISOString().slice(0, 7);
/** UTC day, `YYYY-MM-DD`. */
export const dayOf = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

/**
 * The four scopes a call counts into, in the order limits are checked: project, project+model,
 * user+project, user+project+model. The last one is the detail row reports group by.
 */
export function callScopes(project: string, user: string, model: string): Scope[] {
  return [
    { project, user: ANY, model: ANY },
    { project, user: ANY, model },
    { project, user, model: ANY },
    { project, user, model },
  ];
}

export const isDetail = (s: Scope): boolean => s.user !== ANY && s.model !== ANY;

/**
 * The limits in force for a call's scopes. A project without its own limit gets the stack's
 * default, or undefined when there is none (the call is then refused).
 */
export function effectiveLimits(limits: (Nano | undefined)[], defaultProjectLimit: Nano | undefined): (Nano | undefined)[] {
  return limits.map((limit, i) => (i === 0 && limit === undefined ? defaultProjectLimit : limit));
}

/** One hold per limited scope, each reserving the call's worst case. */
export function holdsFor(scopes: Scope[], limits: (Nano | undefined)[], amount: Nano): Hold[] {
  const holds: Hold[] = [];
  scopes.forEach((scope, i) => {
    const limit = limits[i];
    if (limit !== undefined) holds.push({ scope, limit, amount });
  });
  return holds;
}

/**
 * The most a call can cost: its prompt estimate plus every output token it may produce, all at
 * full (uncached) rates. Settlement replaces it with the exact cost.
 */
export function worstCaseCost(price: Price, promptTokens: number, maxOutputTokens: number): Nano {
  return costOf(price, { input: promptTokens, cached: 0, output: maxOutputTokens });
}

export function describeScope(s: Scope): string {
  const parts = [`project "${s.project}"`];
  if (s.user !== ANY) parts.push(`user "${s.user}"`);
  if (s.model !== ANY) parts.push(`model "${s.model}"`);
  return parts.join(', ');
}

/** The CLI line an admin would run to set this scope's limit. */
export function limitCommand(stage: string, s: Scope, usd: number | string): string {
  let cmd = `openai-wrapi limits set --stage ${stage} --project "${s.project}"`;
  if (s.user !== ANY) cmd += ` --user "${s.user}"`;
  if (s.model !== ANY) cmd += ` --model "${s.model}"`;
  return `${cmd} --limit ${usd}`;
}

export const usd = (nano: Nano): string => `$${nanoToUsd(nano).toFixed(nano < 1e7 && nano > 0 ? 6 : 2)}`;

export function overBudgetMessage(stage: string, hold: Hold, committed: Nano): string {
  return (
    `Monthly limit of ${usd(hold.limit)} for ${describeScope(hold.scope)} in stage ${stage} would be exceeded: ` +
    `${usd(committed)} is spent or reserved this month and this call may cost up to ${usd(hold.amount)}. ` +
    `An admin can raise the limit: ${limitCommand(stage, hold.scope, '<usd>')}`
  );
}

export function noLimitMessage(stage: string, project: string): string {
  return (
    `Project "${project}" has no spending limit in stage ${stage}, so its calls are refused. ` +
    `An admin can set one: ${limitCommand(stage, { project, user: ANY, model: ANY }, '<usd>')}`
  );
}
