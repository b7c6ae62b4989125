// One call's account: the reservation it holds and, once, its settlement. Every call that may have
// reached OpenAI is settled exactly once: at OpenAI's usage, or by a conservative estimate when the
// usage can never be known, or as free when OpenAI answered with an error.
import type { AlertWatch, BudgetAlert } from './alerts.ts';
import { isDetail, watchOf } from './limits.ts';
import type { ExpiredHold, Ledger, Logger, Nano, Reservation, ReserveResult, Scope, Settlement, UsageDelta } from './ports.ts';
import { tightestRateHeaders, WINDOW_MS } from './rates.ts';
import { costOf, type Price, type TokenUsage } from './pricing.ts';
import type { RequestFacts } from './request-facts.ts';
import { countsLikeEstimates, inputBound, type WorstCase } from './reservation.ts';
import { utf8Length } from './utf8.ts';
import type { RouteKind } from './routes.ts';

export type CountTokens = (text: string) => Promise<number>;

/** How a call ended, as far as money goes. */
export type Outcome =
  /** OpenAI's usage block arrived. `responseId`: a stored Responses answer a later call may continue. */
  | { kind: 'exact'; usage: TokenUsage; responseId?: string; reasoningIds?: string[] }
  /**
   * OpenAI may have billed it but its usage will never be known: billed conservatively. `relayed`
   * is the output text seen (a stream); undefined when nothing of the answer was seen.
   */
  | { kind: 'estimate'; relayed?: string }
  /** OpenAI answered with an error, or the call never reached it: nothing billed. */
  | { kind: 'free' };

const WRITE_ATTEMPTS = 3;
/** OpenAI keeps stored responses 30 days; a continued one is remembered a day longer. */
const RESPONSE_MEMORY_MS = 31 * 24 * 3600 * 1000;
/** Visible output is counted with a margin for what was generated but not yet relayed. */
const RELAYED_MARGIN = 1.1;
const RELAYED_EXTRA_TOKENS = 16;

export interface BillInit {
  ledger: Ledger;
  log: Logger;
  reservation: Reservation;
  /** The reservation's holds are on the ledger; false when the stack failed open without them. */
  held: boolean;
  /** The ledger's answer to the reservation, for budget headers. */
  reserved?: ReserveResult & { ok: true };
  price: Price;
  kind: RouteKind;
  worst: WorstCase;
  /** Hidden reasoning is billed as output: estimates then take the reserved output. */
  reasoning: boolean;
  facts: Pick<RequestFacts, 'model' | 'inputText' | 'tokenIds' | 'images' | 'opaqueInput' | 'contexts'>;
  countTokens: CountTokens;
  /** For the one log line per call. Never prompts or keys. */
  tags: Record<string, unknown>;
  /** Receives the budget alerts the settlement made (see ProxyDeps.onAlerts). */
  onAlerts?: (alerts: BudgetAlert[]) => Promise<void> | void;
  /** How long the settlement waits after the response (see ProxyDeps.writeDelayMs). */
  writeDelayMs?: number;
}

export interface Settled {
  cost: Nano;
  estimated: boolean;
}

export class Bill {
  private settled?: Settled;
  private settling?: Promise<Settled>;

  constructor(private readonly init: BillInit) {}

  settle(outcome: Outcome, status: number): Promise<Settled> {
    this.settling ??= this.finish(outcome, status);
    return this.settling;
  }

  /** What the call cost, once known (for response headers). */
  get cost(): Nano | undefined {
    return this.settled?.cost;
  }

  /**
   * Remaining USD (nano) under the tightest limit (per month or per day), counting this call at
   * `cost`. Before the cost is known (a stream's headers) the call counts as nothing: its hold is a
   * worst case, not spend, and a caller warned on it would be warned falsely (and then not when the
   * real crossing comes).
   */
  remaining(cost: Nano | undefined): { scope: Scope; limit: Nano; remaining: Nano; period?: 'day' } | undefined {
    const { reservation, reserved } = this.init;
    if (!reserved) return undefined;
    let best: { scope: Scope; limit: Nano; remaining: Nano; period?: 'day' } | undefined;
    const consider = (scope: Scope, limit: Nano, total: Nano, amount: Nano, period?: 'day') => {
      const remaining = limit - (total - amount + (cost ?? 0));
      if (!best || remaining < best.remaining) best = { scope, limit, remaining, ...(period ? { period } : {}) };
    };
    reservation.holds.forEach((hold, index) => {
      if (hold.limit !== undefined) consider(hold.scope, hold.limit, reserved.committed[index], hold.amount);
      if (hold.dayLimit !== undefined && reserved.days) consider(hold.scope, hold.dayLimit, reserved.days[index], hold.amount, 'day');
    });
    return best;
  }

  /** The `x-ratelimit-*` headers of the tightest rate limits, as this call left their windows. */
  rateHeaders(now: number): Record<string, string> {
    const { reservation, reserved } = this.init;
    if (!reserved?.rates || !reservation.rates?.length) return {};
    return tightestRateHeaders(reservation.rates, reserved.rates, (reservation.window ?? now) + WINDOW_MS - now);
  }

  private async finish(outcome: Outcome, status: number): Promise<Settled> {
    const tokens = outcome.kind === 'exact' ? outcome.usage : outcome.kind === 'estimate' ? await this.estimate(outcome.relayed) : undefined;
    const cost = tokens ? costOf(this.init.price, tokens) : 0;
    this.settled = { cost, estimated: outcome.kind === 'estimate' };
    this.init.log.info('call', { cache: 'miss', ...this.init.tags, status, cost, outcome: outcome.kind });
    await afterResponse(this.init.writeDelayMs);
    await Promise.all([
      this.write(settlementOf(this.init.reservation, deltaOf(tokens, cost, outcome.kind === 'estimate'), this.init.price.version)),
      outcome.kind === 'exact' && outcome.responseId ? this.remember(outcome.responseId, outcome.usage.input + outcome.usage.output) : undefined,
      // A reasoning item sent back later is part of this response's output: at most all of it.
      ...(outcome.kind === 'exact' ? (outcome.reasoningIds ?? []).map((id) => this.remember(id, outcome.usage.output)) : []),
    ]);
    return this.settled;
  }

  /**
   * Tokens a later call may carry forward by naming this answer: a response id its input (with its own
   * history) and output, a reasoning item id at most the output. Only a smaller reservation rides on
   * it, so failing to write it costs no money.
   */
  private async remember(id: string, tokens: number): Promise<void> {
    const expiresAt = this.init.reservation.expiresAt + RESPONSE_MEMORY_MS;
    const landed = await retried(() => this.init.ledger.rememberResponse(id, tokens, expiresAt));
    if (landed !== true) this.init.log.error('remembering a response failed', { ...this.init.tags, error: errorName(landed.error) });
  }

  /** Never below what OpenAI could have billed: the worst case wherever the proxy could not see. */
  private async estimate(relayed: string | undefined): Promise<TokenUsage> {
    const { facts, worst, reasoning, kind } = this.init;
    // A model with another encoding is counted by bytes, which no tokenizer exceeds.
    const countTokens = countsLikeEstimates(facts.model) ? this.init.countTokens : async (text: string) => utf8Length(text);
    const input = facts.opaqueInput || worst.loadedTokens > 0
      ? worst.inputTokens
      : Math.min(worst.inputTokens, inputBound(kind, facts, await countTokens(facts.inputText)));
    const reservedOutput = worst.outputTokens * worst.choices;
    // The text seen is all of the output only for one visible, written answer: hidden reasoning,
    // several choices (best_of's unsent candidates; choices cut at different points) and spoken
    // audio (its data is not text) may each be more than it shows.
    const unseen = relayed === undefined || reasoning || worst.choices > 1 || worst.audio.output;
    const output = unseen
      ? reservedOutput
      : Math.min(
          reservedOutput,
          // A predicted output's rejected tokens are billed as completion tokens, shown or not.
          Math.ceil((await countTokens(relayed)) * RELAYED_MARGIN) + RELAYED_EXTRA_TOKENS + worst.predictedTokens,
        );
    // Audio the call may have sent or received is priced as audio, the dearer rate; input as writes
    // to the prompt cache where those cost more.
    return {
      input, cached: 0, output, audioInput: worst.audio.input ? input : 0, audioOutput: worst.audio.output ? output : 0,
      ...(this.init.price.cacheWrite !== undefined ? { cacheWrite: input } : {}),
    };
  }

  private async write(settlement: Settlement): Promise<void> {
    const { ledger, log, reservation } = this.init;
    let held = this.init.held;
    // The call may have reached OpenAI, so its cost must land. Every write is idempotent (the call's
    // marker), so retrying after a failure or a lost reply applies it once.
    let alerts: BudgetAlert[] = [];
    const landed = await retried(async () => {
      // Failed open without holds: take unlimited ones now, so the settlement has rows to land on;
      // once only, or a retry would put back the markers a partly landed settlement removed.
      if (!held) {
        await ledger.reserve({
          ...reservation,
          holds: reservation.holds.map(({ scope, amount }) => ({ scope, amount })),
          rates: reservation.rates?.map(({ scope, tokens }) => ({ scope, tokens })),
        });
        held = true;
      }
      alerts = (await ledger.settle(settlement)) ?? [];
    });
    // The holds stay and are charged in full at their deadline; the line lets an operator see why.
    if (landed !== true) log.error('settle failed', { ...this.init.tags, spent: settlement.delta.spent, error: errorName(landed.error) });
    if (alerts.length) await this.alert(alerts);
  }

  /** Hands the alerts on; a failing receiver is logged, never the call's problem. */
  private async alert(alerts: BudgetAlert[]): Promise<void> {
    for (const a of alerts) {
      this.init.log.info('budget alert', { project: a.scope.project, user: a.scope.user, model: a.scope.model, period: a.period, threshold: a.threshold, limit: a.limit, spent: a.spent });
    }
    try {
      await this.init.onAlerts?.(alerts);
    } catch (error) {
      this.init.log.error('budget alert delivery failed', { error: errorName(error) });
    }
  }
}

/** Ledger writes after the response: tried 3 times, 0, 100 and 400 ms apart (a Lambda may still run). */
export async function retried(write: () => Promise<void>): Promise<true | { error: unknown }> {
  for (let attempt = 1; ; attempt++) {
    try {
      await write();
      return true;
    } catch (error) {
      if (attempt >= WRITE_ATTEMPTS) return { error };
      await new Promise((r) => setTimeout(r, 100 * 4 ** (attempt - 1)));
    }
  }
}

const ZERO: UsageDelta = {
  requests: 0, errors: 0, inputTokens: 0, cachedTokens: 0, outputTokens: 0, spent: 0, cacheHits: 0, saved: 0, estimated: 0,
};

function deltaOf(tokens: TokenUsage | undefined, cost: Nano, estimated: boolean): UsageDelta {
  if (!tokens) return { ...ZERO, errors: 1 };
  return {
    ...ZERO,
    requests: 1,
    inputTokens: tokens.input,
    cachedTokens: tokens.cached,
    outputTokens: tokens.output,
    spent: cost,
    estimated: estimated ? 1 : 0,
  };
}

/**
 * Every row the call holds gets the delta; committed moves from the hold to the cost, and each rate
 * window's tokens from the reserved to the used (none when OpenAI answered with an error).
 */
export function settlementOf(reservation: Reservation, delta: UsageDelta, priceVersion?: string): Settlement {
  const { callId, month, day, holds, rates } = reservation;
  const used = delta.inputTokens + delta.outputTokens;
  return {
    callId,
    month,
    day,
    rows: holds.map((hold) => {
      const watch = delta.spent > 0 ? watchOf(hold) : [];
      return { scope: hold.scope, committed: delta.spent - hold.amount, daily: isDetail(hold.scope), ...(watch.length ? { watch } : {}) };
    }),
    delta,
    ...(priceVersion ? { priceVersion } : {}),
    ...(rates?.length ? { window: reservation.window, rates: rates.map((r) => ({ scope: r.scope, tokens: used - r.tokens })) } : {}),
  };
}

/**
 * Holds whose call never settled by its deadline (the instance died, or the ledger stayed down
 * through every settlement try) are charged in full, flagged estimated: the call may have reached
 * OpenAI, and the hold is the most it could have cost. Committed does not move; the hold turns spent.
 * The charge may pass alert thresholds too: the limits the rows have now are watched, and the alerts
 * made go to `onAlerts` (the stream carries them on AWS).
 */
export async function chargeExpired(
  ledger: Ledger, month: string, now: number, onAlerts?: (alerts: BudgetAlert[]) => Promise<void> | void,
): Promise<number> {
  const expired = await ledger.expired(month, now);
  if (expired.length === 0) return 0;
  const keyOf = (s: Scope) => `${s.project}\u0000${s.user}\u0000${s.model}`;
  const scopes = [...new Map(expired.map((h) => [keyOf(h.scope), h.scope])).values()];
  const read = await ledger.read(scopes, []);
  const watches = new Map(
    scopes.map((scope, i) => [
      keyOf(scope),
      watchOf({
        scope, amount: 0, limit: read.limits[i], dayLimit: read.dayLimits?.[i], alerts: read.alerts?.[i], dayAlerts: read.dayAlerts?.[i],
      }),
    ]),
  );
  const made = await Promise.all(expired.map((hold) => ledger.settle(expiredSettlement(hold, watches.get(keyOf(hold.scope))!))));
  const alerts = made.flatMap((m) => m ?? []);
  if (alerts.length) await onAlerts?.(alerts);
  return expired.length;
}

function expiredSettlement({ callId, month, day, scope, amount }: ExpiredHold, watch: AlertWatch[]): Settlement {
  return {
    callId,
    month,
    day,
    rows: [{ scope, committed: 0, daily: isDetail(scope), ...(watch.length && amount > 0 ? { watch } : {}) }],
    delta: { ...ZERO, requests: 1, spent: amount, estimated: 1 },
  };
}

/**
 * Resolves on a later timer turn (`delayMs` after this one). Writes wait for it so that no store
 * write runs before the response's first byte is on its way: adapters start writing within the
 * same turn.
 */
export const afterResponse = (delayMs = 0): Promise<void> => new Promise((resolve) => setTimeout(resolve, delayMs));

export const errorName = (err: unknown): string =>
  err instanceof Error ? `${err.name}${(err as { code?: string }).code ? `:${(err as { code?: string }).code}` : ''}` : 'unknown';
