// Requests and tokens per minute: pure arithmetic shared by both ledgers' callers. A rate window is
// one UTC minute; a call takes one request and its worst-case tokens in it, settled to the actual.
import { WrapiError } from './errors.ts';
import { describeScope } from './limits.ts';
import type { RateHold, RateLimits, RateUse, Scope } from './ports.ts';
import { ANY, PUBLIC_USER_PREFIX } from './protocol.ts';

export const WINDOW_MS = 60_000;

/** The start (epoch ms) of the minute `ms` falls in. */
export const windowOf = (ms: number): number => ms - (((ms % WINDOW_MS) + WINDOW_MS) % WINDOW_MS);

/** A rate hold on each scope that has a rate limit; none elsewhere (so nothing more is written). */
export function rateHoldsFor(scopes: Scope[], limits: (RateLimits | undefined)[] | undefined, tokens: number): RateHold[] {
  const holds: RateHold[] = [];
  scopes.forEach((scope, i) => {
    const limit = limits?.[i];
    if (limit) holds.push({ scope, tokens, ...limit });
  });
  return holds;
}

/** A cache hit is a request but spends no tokens: it is held only where requests are limited. */
export const hitRateHolds = (holds: RateHold[]): RateHold[] =>
  holds.filter((h) => h.rpm !== undefined).map(({ scope, rpm }) => ({ scope, tokens: 0, rpm }));

/** Go-style duration, as OpenAI's `x-ratelimit-reset-*` headers write it: `120ms`, `1s`, `59.873s`. */
export function formatReset(ms: number): string {
  const whole = Math.max(0, Math.ceil(ms));
  return whole < 1000 ? `${whole}ms` : `${Number((whole / 1000).toFixed(3))}s`;
}

type RateHeaders = Record<string, string>;

/** OpenAI's rate-limit headers for one window's use against its limits (the kinds that are set). */
export function rateHeaders(hold: Pick<RateHold, 'rpm' | 'tpm'>, use: RateUse, resetMs: number): RateHeaders {
  const headers: RateHeaders = {};
  if (hold.rpm !== undefined) {
    headers['x-ratelimit-limit-requests'] = String(hold.rpm);
    headers['x-ratelimit-remaining-requests'] = String(Math.max(0, hold.rpm - use.requests));
    headers['x-ratelimit-reset-requests'] = formatReset(resetMs);
  }
  if (hold.tpm !== undefined) {
    headers['x-ratelimit-limit-tokens'] = String(hold.tpm);
    headers['x-ratelimit-remaining-tokens'] = String(Math.max(0, hold.tpm - use.tokens));
    headers['x-ratelimit-reset-tokens'] = formatReset(resetMs);
  }
  return headers;
}

/**
 * The headers of a served call: requests and tokens each from the tightest window (least left).
 * `uses[i]` is rate hold i's window after this call took its share.
 */
export function tightestRateHeaders(holds: RateHold[], uses: RateUse[], resetMs: number): RateHeaders {
  let requests: { rpm: number; use: RateUse } | undefined;
  let tokens: { tpm: number; use: RateUse } | undefined;
  holds.forEach((hold, i) => {
    const use = uses[i];
    if (!use) return;
    if (hold.rpm !== undefined && (!requests || hold.rpm - use.requests < requests.rpm - requests.use.requests)) requests = { rpm: hold.rpm, use };
    if (hold.tpm !== undefined && (!tokens || hold.tpm - use.tokens < tokens.tpm - tokens.use.tokens)) tokens = { tpm: hold.tpm, use };
  });
  return {
    ...(requests ? rateHeaders({ rpm: requests.rpm }, requests.use, resetMs) : {}),
    ...(tokens ? rateHeaders({ tpm: tokens.tpm }, tokens.use, resetMs) : {}),
  };
}

/** How an admin raises a rate limit of this scope: a CLI line, or for a public client the stack setting. */
function rateCommand(stage: string, s: Scope, flag: '--rpm' | '--tpm'): string {
  if (s.user.startsWith(PUBLIC_USER_PREFIX) && s.model === ANY) {
    return `the stage's publicAccess.${flag === '--rpm' ? 'rpmPerClient' : 'tpmPerClient'} setting (a limit per public client)`;
  }
  let cmd = `openai-wrapi limits set --stage ${stage} --project "${s.project}"`;
  if (s.user !== ANY) cmd += ` --user "${s.user}"`;
  if (s.model !== ANY) cmd += ` --model "${s.model}"`;
  return `${cmd} ${flag} <n>`;
}

/**
 * OpenAI's own rate-limit refusal: 429, `rate_limit_exceeded`, `retry-after` and the
 * `x-ratelimit-*` headers, so the official client waits for the window and retries. A call that
 * asks for more tokens than the limit allows in any minute can never pass: that one says so and
 * is not retried.
 */
export function rateLimited(stage: string, hold: RateHold, use: RateUse, resetMs: number): WrapiError {
  const overRequests = hold.rpm !== undefined && use.requests + 1 > hold.rpm;
  const what = overRequests ? 'requests per min (RPM)' : 'tokens per min (TPM)';
  const limit = overRequests ? hold.rpm! : hold.tpm!;
  const used = overRequests ? use.requests : use.tokens;
  const requested = overRequests ? 1 : hold.tokens;
  const never = !overRequests && hold.tokens > limit;
  const wait = `${Math.max(1, Math.ceil(resetMs / 1000))}`;
  const message =
    `Rate limit reached for ${describeScope(hold.scope)} in stage ${stage} on ${what}: Limit ${limit}, Used ${used}, Requested ${requested}. ` +
    (never
      ? 'This call alone may use more tokens than the limit allows in a minute: lower its output cap (max_tokens and the like). '
      : `Please try again in ${formatReset(resetMs)}. `) +
    `An admin can raise the limit: ${rateCommand(stage, hold.scope, overRequests ? '--rpm' : '--tpm')}`;
  const headers: Record<string, string> = { ...rateHeaders(hold, use, resetMs), 'retry-after': wait };
  if (never) headers['x-should-retry'] = 'false';
  return new WrapiError(429, message, overRequests ? 'requests' : 'tokens', 'rate_limit_exceeded', null, headers);
}
