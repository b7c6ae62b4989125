// Limits, price overrides and the project's members for a call, read in one ledger round trip. A
// warm instance reuses what it read for a few seconds (OPENAI_WRAPI_POLICY_CACHE_MS); admin writes
// in the same process clear it at once, other instances see them when their copy expires.
import type { Ledger, Nano, PriceOverride, RateLimits, Scope } from './ports.ts';

export interface Policy {
  /** USD per month, per day, requests and tokens per minute, aligned with the scopes asked for. */
  limits: (Nano | undefined)[];
  dayLimits?: (Nano | undefined)[];
  rateLimits?: (RateLimits | undefined)[];
  /** Alert thresholds of the monthly and daily limits (undefined: the defaults). */
  alerts?: (number[] | undefined)[];
  dayAlerts?: (number[] | undefined)[];
  prices: (PriceOverride | undefined)[];
  /** Members of the call's project, when it has any (see membership.ts). */
  members: ReadonlyMap<string, readonly string[]>;
  /** The remembered size of the response the call continues, when it continues one. */
  history?: number;
  /** The remembered output of the responses whose reasoning items the call sends back by id. */
  reasoning?: (number | undefined)[];
}

export interface PolicyReader {
  read(scopes: Scope[], models: string[], previousResponseId?: string, reasoningIds?: string[]): Promise<Policy>;
  clear(): void;
}

export function createPolicyReader(ledger: Ledger, ttlMs: number, now: () => number): PolicyReader {
  const cache = new Map<string, { policy: Policy; expires: number }>();
  return {
    async read(scopes, models, previousResponseId, reasoningIds = []) {
      // Remembered responses are looked up in the same round trip; that read is not cached.
      if (previousResponseId !== undefined || reasoningIds.length) {
        const ids = previousResponseId === undefined ? reasoningIds : [previousResponseId, ...reasoningIds];
        const { responses, ...policy } = await ledger.read(scopes, models, ids);
        const found = responses ?? [];
        return previousResponseId === undefined
          ? { ...policy, reasoning: found }
          : { ...policy, history: found[0], reasoning: found.slice(1) };
      }
      if (ttlMs <= 0) return ledger.read(scopes, models);
      const key = JSON.stringify([scopes, models]);
      const hit = cache.get(key);
      if (hit && hit.expires > now()) return hit.policy;
      const policy = await ledger.read(scopes, models);
      if (cache.size > 10_000) cache.clear();
      cache.set(key, { policy, expires: now() + ttlMs });
      return policy;
    },
    clear: () => cache.clear(),
  };
}
