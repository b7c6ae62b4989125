// One call's account: the reservation it holds and, once, its settlement. Every call that reached
// OpenAI is settled exactly once, with the exact cost or, when usage never came, an estimate.
import { dayOf } from './limits.ts';
import type { Hold, Ledger, Logger, Nano, ReserveResult, Scope, UsageDelta } from './ports.ts';
import { costOf, type Price, type TokenUsage } from './pricing.ts';

export type CountTokens = (text: string) => Promise<number>;

/** Tokens for one image or file in a prompt when estimating (OpenAI's high-detail tile scale). */
const ATTACHMENT_TOKENS = 765;
/** Settlement tries: 0, 100 and 400 ms apart, all within the time a Lambda may still run. */
const SETTLE_ATTEMPTS = 3;
/** Chat adds a few tokens of framing per message; a small fixed allowance keeps estimates honest. */
const FRAMING_TOKENS = 8;

export interface BillInit {
  ledger: Ledger;
  log: Logger;
  scopes: Scope[];
  holds: Hold[];
  reservation?: ReserveResult & { ok: true };
  price: Price;
  month: string;
  now: () => number;
  countTokens: CountTokens;
  prompt: { text: string; attachments: number };
  /** For the one log line per call. Never prompts or keys. */
  tags: Record<string, unknown>;
}

export interface Settled {
  cost: Nano;
  estimated: boolean;
}

export class Bill {
  private settled?: Settled;
  private settling?: Promise<Settled>;

  constructor(private readonly init: BillInit) {}

  /** Settle from the usage block; without one, from a local token count of what was exchanged. */
  settle(usage: TokenUsage | undefined, outputText: string | undefined, status: number): Promise<Settled> {
    this.settling ??= this.finish(usage, outputText, status);
    return this.settling;
  }

  private async finish(usage: TokenUsage | undefined, outputText: string | undefined, status: number): Promise<Settled> {
    const estimated = !usage && outputText !== undefined;
    const tokens = usage ?? (estimated ? await this.estimate(outputText!) : { input: 0, cached: 0, output: 0 });
    const cost = costOf(this.init.price, tokens);
    this.settled = { cost, estimated };
    const delta: UsageDelta = {
      requests: 1,
      inputTokens: tokens.input,
      cachedTokens: tokens.cached,
      outputTokens: tokens.output,
      spent: cost,
      cacheHits: 0,
      saved: 0,
      estimated: estimated ? 1 : 0,
    };
    this.init.log.info('call', { ...this.init.tags, status, cost, estimated, cache: 'miss' });
    await afterResponse();
    await this.write(delta);
    return this.settled;
  }

  /** What the call cost so far, for response headers. */
  get cost(): Nano | undefined {
    return this.settled?.cost;
  }

  /** Remaining USD (nano) in the tightest limited scope, counting this call at `cost`. */
  remaining(cost: Nano | undefined): { hold: Hold; remaining: Nano } | undefined {
    const { holds, reservation } = this.init;
    if (!reservation) return undefined;
    let best: { hold: Hold; remaining: Nano } | undefined;
    holds.forEach((hold, i) => {
      const committed = reservation.committed[i] - (cost === undefined ? 0 : hold.amount - cost);
      const remaining = hold.limit - committed;
      if (!best || remaining < best.remaining) best = { hold, remaining };
    });
    return best;
  }

  private async estimate(outputText: string): Promise<TokenUsage> {
    const { prompt, countTokens } = this.init;
    return {
      input: (await countTokens(prompt.text)) + prompt.attachments * ATTACHMENT_TOKENS + FRAMING_TOKENS,
      cached: 0,
      output: await countTokens(outputText),
    };
  }

  private async write(delta: UsageDelta): Promise<void> {
    const { ledger, scopes, holds, reservation, month, now, price, log } = this.init;
    const held = (scope: Scope) => (reservation ? holds.find((h) => h.scope === scope)?.amount ?? 0 : 0);
    const settlement = {
      month,
      day: dayOf(now()),
      scopes: scopes.map((scope) => ({ scope, release: held(scope) })),
      delta,
      priceVersion: price.version,
    };
    // The call reached OpenAI, so its cost must land. A retry after a partial failure may count a
    // row twice: over-counting is the safe direction for a budget.
    for (let attempt = 1; ; attempt++) {
      try {
        await ledger.settle(settlement);
        return;
      } catch (err) {
        if (attempt < SETTLE_ATTEMPTS) {
          await new Promise((r) => setTimeout(r, 100 * 4 ** (attempt - 1)));
          continue;
        }
        // Nothing to tell the client any more; the line lets an operator reconcile by hand.
        log.error('settle failed', { ...this.init.tags, spent: delta.spent, error: errorName(err) });
        return;
      }
    }
  }
}

/**
 * Resolves on the next timer turn. Writes wait for it so that no store write runs before the
 * response's first byte is on its way: adapters start writing within the same turn.
 */
export const afterResponse = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));

/** Record a cache hit: no spend, the original cost counted as saved. */
export async function recordHit(ledger: Ledger, scopes: Scope[], month: string, day: string, saved: Nano): Promise<void> {
  const delta: UsageDelta = {
    requests: 0, inputTokens: 0, cachedTokens: 0, outputTokens: 0, spent: 0, cacheHits: 1, saved, estimated: 0,
  };
  await afterResponse();
  await ledger.settle({ month, day, scopes: scopes.map((scope) => ({ scope, release: 0 })), delta });
}

export const errorName = (err: unknown): string =>
  err instanceof Error ? `${err.name}${(err as { code?: string }).code ? `:${(err as { code?: string }).code}` : ''}` : 'unknown';

