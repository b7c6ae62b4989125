// Budget signals in-band: the proxy reports a call's cost and the tightest limit's remaining budget
// in response headers. `budgetOf` reads them; every response through the SDK is also watched, and a
// scope past 80% of its limit is warned about once per process on stderr.
import {
  HEADER_BUDGET_LIMIT, HEADER_BUDGET_REMAINING, HEADER_BUDGET_SCOPE, HEADER_CACHE, HEADER_COST,
} from '../runtime/core/protocol.ts';
import { budgetPeriod, parseBudgetScope } from '../runtime/core/contract.ts';

/** What the proxy said about a call's money. Amounts in USD. */
export interface Budget {
  /** What this call cost (non-streamed calls; 0 for a cache hit). */
  cost?: number;
  /** USD left under the tightest limit (this month's, or today's), after this call. */
  remaining?: number;
  /** That limit: the scope's monthly one, or its daily one when `period` is `day`. */
  limit?: number;
  /** `month` or `day` (UTC): which limit `limit` and `remaining` are about. */
  period?: 'month' | 'day';
  /** That scope: the project, and the user and model it is limited to (`*` = any). */
  scope?: { project: string; user: string; model: string };
  /** Share of the limit used, 0..1. */
  used?: number;
  /** `hit`, `miss` or `bypass`. */
  cache?: string;
}

/** The fraction of a limit past which the SDK warns. */
export const WARN_AT = 0.8;

/**
 * Reads the budget headers of a response, e.g. the raw response of
 * `client.chat.completions.create(...).withResponse()`. Undefined when the proxy sent none.
 */
export function budgetOf(response: Response | Headers | { headers: Headers }): Budget | undefined {
  const headers = response instanceof Headers ? response : response.headers;
  const num = (name: string) => {
    const v = headers.get(name);
    return v === null || v === '' || !Number.isFinite(Number(v)) ? undefined : Number(v);
  };
  const budget: Budget = {};
  const cost = num(HEADER_COST);
  const remaining = num(HEADER_BUDGET_REMAINING);
  const limit = num(HEADER_BUDGET_LIMIT);
  const scope = parseBudgetScope(headers.get(HEADER_BUDGET_SCOPE));
  const cache = headers.get(HEADER_CACHE);
  if (cost !== undefined) budget.cost = cost;
  if (remaining !== undefined) budget.remaining = remaining;
  if (limit !== undefined) budget.limit = limit;
  if (scope) budget.scope = scope;
  if (limit !== undefined) budget.period = budgetPeriod(headers.get(HEADER_BUDGET_SCOPE));
  if (limit !== undefined && remaining !== undefined && limit > 0) budget.used = Math.min(1, Math.max(0, (limit - remaining) / limit));
  if (cache) budget.cache = cache;
  return Object.keys(budget).length ? budget : undefined;
}

const KEY = Symbol.for('openai-wrapi.budget-warned');
const warned: Set<string> = ((globalThis as Record<symbol, unknown>)[KEY] as Set<string>) ??
  ((globalThis as Record<symbol, unknown>)[KEY] = new Set<string>());

/** Watches a response: warns once per stage and scope per process when past {@link WARN_AT}. */
export function watchBudget(response: Response, stage: string): void {
  const budget = budgetOf(response);
  if (!budget?.scope || budget.used === undefined || budget.used < WARN_AT || budget.limit === undefined) return;
  const { project, user, model } = budget.scope;
  const key = `${stage}\u0000${project}\u0000${user}\u0000${model}\u0000${budget.period}`;
  if (warned.has(key)) return;
  warned.add(key);
  const who = [`project "${project}"`, user !== '*' ? `user "${user}"` : '', model !== '*' ? `model "${model}"` : ''].filter(Boolean).join(', ');
  const message =
    `${who} (stage ${stage}) has used ${Math.floor(budget.used * 100)}% of its ${usd(budget.limit)} ${budget.period === 'day' ? 'daily' : 'monthly'} limit; ` +
    `${usd(budget.remaining ?? 0)} left. Calls are refused once it is spent.`;
  if (typeof process !== 'undefined' && typeof process.emitWarning === 'function') {
    process.emitWarning(message, { type: 'OpenAIWrapiBudgetWarning', code: 'OPENAI_WRAPI_BUDGET' });
  } else {
    console.warn(`openai-wrapi: ${message}`);
  }
}

const usd = (n: number) => `$${n.toFixed(n !== 0 && Math.abs(n) < 0.01 ? 4 : 2)}`;
