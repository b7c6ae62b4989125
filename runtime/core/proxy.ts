// The request path (DESIGN.md "Request path"): route → membership → cache → limits and reservation
// → forward (streamed without buffering) → settle after the response is complete.
import { afterResponse, Bill, errorName, retried, type CountTokens, type Outcome } from './bill.ts';
import { assertBillable } from './billable.ts';
import { cacheKey } from './cache-key.ts';
import type { ProxyConfig } from './config.ts';
import { formatBudgetScope } from './contract.ts';
import {
  WrapiError, badRequest, forbidden, notFound, overBudget, stageKeyRejected, toErrorResponse, tooLarge, unavailable,
} from './errors.ts';
import { callDeadline, clientResponseHeaders, forward, gatewayError, interruptedError, mayHaveReached, type CallDeadline } from './forward.ts';
import {
  callScopes, dayOf, defaultPoolHolds, effectiveLimits, holdsFor, monthOf, noLimitMessage, overBudgetMessage, USER_SCOPE,
} from './limits.ts';
import { isMember, notMemberMessage } from './membership.ts';
import { createPolicyReader, type Policy, type PolicyReader } from './policy.ts';
import type { BudgetAlert } from './alerts.ts';
import type { CachedResponse, Ledger, Logger, RateLimits, Reservation, ReserveResult, ResponseCache, Scope, Upstream } from './ports.ts';
import { hitRateHolds, rateHoldsFor, rateLimited, tightestRateHeaders, WINDOW_MS, windowOf } from './rates.ts';
import { modelCandidates, olderThanListed, resolvePrice, nanoToUsd } from './pricing.ts';
import * as P from './protocol.ts';
import { parseJsonBody, requestFacts, upstreamBody, type JsonObject, type RequestFacts } from './request-facts.ts';
import { isReasoning, outputTokensThatFit, worstCase } from './reservation.ts';
import { matchRoute, type Route } from './routes.ts';
import { reasoningIdsOf, StreamMeter } from './stream-meter.ts';
import { concat, meteredStream } from './metered-stream.ts';
import { usageOfBody } from './usage.ts';

/** The verified caller. On Lambda from the function URL's IAM authorizer; locally from SigV4. */
export interface Caller {
  /** Short name used in scopes: the IAM user name, or `role/session` for assumed roles. */
  user: string;
  arn: string;
}

export interface CallContext {
  caller: Caller;
  /** Work that must finish before the platform may freeze or stop (settlement, cache writes). */
  waitUntil(promise: Promise<unknown>): void;
  /**
   * The request body, when the adapter already holds it (it had to, to check the signature):
   * saves streaming it through the Request again. Otherwise the core reads `req.body`.
   */
  body?: Uint8Array;
  /**
   * A caller of the public URL (public-access.ts): billed to this project whatever its headers say,
   * and held to these rate limits on its own user scope, beside any the ledger has for it.
   */
  publicClient?: { project: string; limits: RateLimits };
}

export interface ProxyDeps {
  config: ProxyConfig;
  ledger: Ledger;
  cache: ResponseCache;
  upstream: Upstream;
  countTokens: CountTokens;
  log: Logger;
  now?: () => number;
  /** Shared with the admin handler in one process, so admin writes apply at once. */
  policy?: PolicyReader;
  /** Ids that mark a call's ledger writes; random unless a test fixes them. */
  newCallId?: () => string;
  /** OpenAI refused the stage's key (401): the Lambda re-reads its secret, in case it was rotated. */
  onKeyRejected?: () => void;
  /**
   * Budget alerts a settlement made (each exactly once, however many calls crossed it). The local
   * stack delivers them; on AWS the ledger table's stream does, so the Lambda only logs them.
   */
  onAlerts?: (alerts: BudgetAlert[]) => Promise<void> | void;
  /**
   * How long the writes that follow a response (its settlement, a cache store, a hit's count) wait
   * after it, in ms. 0 on Lambda, where an instance serves one request at a time and any wait is
   * billed duration. The local stack serves many requests on one event loop: a short wait lets a
   * request that is already arriving start first, instead of queueing behind the last one's writes.
   * The holds stand meanwhile, so the wait never frees budget early.
   */
  writeDelayMs?: number;
}

/**
 * What the proxy reads of a request. A web Request has all of it; the adapters pass plain objects,
 * since constructing a Request (with the AbortSignal every Request carries) costs about 15 µs a call.
 */
export type ProxyRequest = Pick<Request, 'url' | 'method' | 'headers' | 'body'>;

export type ProxyHandler = (req: ProxyRequest, ctx: CallContext) => Promise<Response>;

const PROJECT_PATTERN = /^[^#\s\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}][^#\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]{0,127}$/u; // admin.ts NAME: no controls

/** A hold outlives its call's deadline by this much (settlement tries) before it may be charged as expired. */
const SETTLE_GRACE_MS = 60_000;

/** The parameter that caps output tokens, per API: what a refusal tells the caller to set. */
const OUTPUT_CAP_PARAMETER: Partial<Record<Route['kind'], string>> = {
  chat: 'max_completion_tokens',
  completions: 'max_tokens',
  responses: 'max_output_tokens',
};

/** A priced call that passed the request checks: what every later step needs to know. */
interface Admitted {
  route: Route;
  url: URL;
  req: ProxyRequest;
  project: string;
  body: JsonObject;
  facts: RequestFacts;
  scopes: Scope[];
  /** Cache key, when the call may be answered from the cache. */
  key?: string;
  /** Limits and price overrides, asked for while the cache is looked up. */
  policy: Promise<Policy>;
}

export function createProxy(deps: ProxyDeps): ProxyHandler {
  const { config, ledger, cache, log } = deps;
  const now = deps.now ?? Date.now;
  const newCallId = deps.newCallId ?? (() => crypto.randomUUID());
  const policy = deps.policy ?? createPolicyReader(ledger, config.policyCacheMs, now);

  return async (req, ctx) => {
    try {
      return await serve(req, ctx);
    } catch (err) {
      if (err instanceof WrapiError) {
        // The refusal's code, for metrics by reason; the message (which may quote the request) stays out.
        log.info('error response', { stage: config.stage, user: ctx.caller.user, status: err.status, code: err.code });
      } else log.error('proxy error', { error: errorName(err) });
      return toErrorResponse(err);
    }
  };

  async function serve(req: ProxyRequest, ctx: CallContext): Promise<Response> {
    const call = await admit(req, ctx);
    if (call instanceof Response) return call;
    const hit = call.key ? await replayHit(call, call.key, ctx) : undefined;
    if (hit) return hit;
    const bill = await reserve(call, ctx);
    return respond(call, bill, ctx);
  }

  /** Route, project and body checks; unpriced routes are forwarded from here. */
  async function admit(req: ProxyRequest, ctx: CallContext): Promise<Admitted | Response> {
    const url = new URL(req.url);
    const route = matchRoute(req.method, url.pathname);
    if (!route) {
      throw notFound(`Invalid URL (${req.method} ${url.pathname}): this proxy only forwards metered OpenAI endpoints.`);
    }
    const project = ctx.publicClient?.project ?? (req.headers.get(P.HEADER_PROJECT)?.trim() || P.DEFAULT_PROJECT);
    if (!PROJECT_PATTERN.test(project)) throw badRequest(`Invalid project name "${project.slice(0, 64)}".`, 'invalid_project');
    if (!config.apiKey && config.upstreamUrl.startsWith('https://api.openai.com')) {
      throw unavailable(`Stage ${config.stage} has no OpenAI API key configured (set OPENAI_API_KEY).`, 'missing_api_key');
    }
    const bytes = ctx.body ?? (await readBody(req, config.maxBodyBytes));
    if (bytes.byteLength > config.maxBodyBytes) throw tooLarge(config.maxBodyBytes);
    if (!route.priced) return forwardUnmetered(route, req, url, bytes);

    const body = parseJsonBody(bytes);
    const facts = requestFacts(route, body);
    const scopes = callScopes(project, ctx.caller.user, facts.model);
    const caching = route.cacheable && req.headers.get(P.HEADER_CACHING) !== '0';
    const key = caching
      ? await cacheKey({ stage: config.stage, project, method: req.method, path: route.path, body })
      : undefined;
    // The cache and the ledger are asked at the same time: a miss then costs one round trip, not two.
    const stored = policy.read(scopes, modelCandidates(facts.model), facts.previousResponseId, facts.storedReasoningIds);
    const limits = ctx.publicClient?.limits;
    const read = limits ? stored.then((p) => withUserRateLimits(p, limits)) : stored;
    read.catch(() => undefined);
    return { route, url, req, project, body, facts, scopes, key, policy: read };
  }

  /**
   * A cached answer: replayed as it was, free, counted with the cost it saved. Only to a caller
   * the project admits: the policy was asked for alongside the cache, so this adds no round trip.
   */
  async function replayHit(call: Admitted, key: string, ctx: CallContext): Promise<Response | undefined> {
    const hit = await cacheGet(key);
    if (!hit) return undefined;
    const read = await ledgerCall(() => call.policy);
    assertMember(read, call, ctx);
    const at = now();
    const rateHeaders = await takeHitRequest(call, read, at, ctx);
    ctx.waitUntil(
      afterResponse(deps.writeDelayMs)
        .then(() => ledger.recordHit(monthOf(at), dayOf(at), call.scopes[3], hit.cost))
        .catch((err) => log.error('recording a cache hit failed', { error: errorName(err) })),
    );
    log.info('call', { ...tagsOf(call, ctx), cache: 'hit', saved: hit.cost });
    const headers = new Headers(hit.headers);
    for (const [name, value] of Object.entries(rateHeaders)) headers.set(name, value);
    headers.set(P.HEADER_CACHE, 'hit');
    headers.set(P.HEADER_COST, '0');
    return new Response(hit.body as BodyInit, { status: hit.status, headers });
  }

  /**
   * A cache hit is a request: where requests per minute are limited it takes one (no tokens, no
   * USD), and is refused like any call when the window is full. Elsewhere it writes nothing first.
   */
  async function takeHitRequest(call: Admitted, read: Policy | undefined, at: number, ctx: CallContext): Promise<Record<string, string>> {
    const rates = hitRateHolds(rateHoldsFor(call.scopes, read?.rateLimits, 0));
    if (rates.length === 0) return {};
    const window = windowOf(at);
    const reservation: Reservation = {
      callId: newCallId(), month: monthOf(at), day: dayOf(at), expiresAt: at + config.maxTimeoutMs + SETTLE_GRACE_MS, holds: [], window, rates,
    };
    const result = await ledgerCall(() => reserveOnce(reservation), () => ctx.waitUntil(releaseQuietly(reservation)));
    if (!result) return {};
    if (!result.ok) {
      if ('rate' in result) throw rateLimited(config.stage, rates[result.rate], result.use, window + WINDOW_MS - at);
      throw new Error('a reservation without USD holds refused one');
    }
    return tightestRateHeaders(rates, result.rates ?? [], window + WINDOW_MS - at);
  }

  /** Price the call, check its limits and hold its worst case on every scope it counts into. */
  async function reserve(call: Admitted, ctx: CallContext): Promise<Bill> {
    const { facts, route } = call;
    const read = await ledgerCall(() => call.policy);
    assertMember(read, call, ctx);
    const price = resolvePrice(facts.model, read?.prices);
    if (!price) {
      throw badRequest(
        `Model "${facts.model}" has no price in stage ${config.stage}, so calls to it are refused (unpriced calls would escape the limits). ` +
          (olderThanListed(facts.model)
            ? 'It is an older snapshot than the price table lists, and OpenAI bills older snapshots at their own prices, not the family\'s. '
            : '') +
          `An admin can add one: openai-wrapi prices set --stage ${config.stage} --model "${facts.model}" --input <usd per 1M> --output <usd per 1M>`,
        'model_not_priced',
        'model',
      );
    }
    const audio = assertBillable(route, call.body, price, facts.tools);
    const worst = worstCase(route.kind, facts, price, audio, read?.history, read?.reasoning);
    // Every count is bounded before this; a worst case that still is not a finite amount is never held.
    if (!Number.isFinite(worst.cost) || !Number.isFinite(worst.inputTokens + worst.outputTokens * worst.choices)) {
      throw badRequest('The most this call could cost cannot be bounded, so it is refused: lower n, max_tool_calls or the output cap.', 'unbounded_call');
    }
    const limits = read ? effectiveLimits(read.limits, config.defaultProjectLimit) : [];
    const dayLimits = read?.dayLimits ?? [];
    if (read && limits.every((l) => l === undefined) && dayLimits.every((l) => l === undefined)) {
      throw forbidden(noLimitMessage(config.stage, call.project), 'project_not_allowed');
    }
    const at = now();
    // Input plus the worst-case output: what a tokens-per-minute limit holds until the call settles.
    const tokens = worst.inputTokens + worst.outputTokens * worst.choices;
    const rates = rateHoldsFor(call.scopes, read?.rateLimits, tokens);
    const reservation: Reservation = {
      callId: newCallId(),
      month: monthOf(at),
      day: dayOf(at),
      expiresAt: at + config.maxTimeoutMs + SETTLE_GRACE_MS,
      holds: [
        ...holdsFor(call.scopes, limits, worst.cost, dayLimits, read ?? {}),
        // A new project name must not be a new budget: the default binds each user's such projects together.
        ...(read ? defaultPoolHolds(call.scopes, read.limits[0], config.defaultProjectLimit, worst.cost) : []),
      ],
      ...(rates.length ? { window: windowOf(at), rates } : {}),
    };
    let reserved: (ReserveResult & { ok: true }) | undefined;
    if (read) {
      const result = await ledgerCall(() => reserveOnce(reservation), () => ctx.waitUntil(releaseQuietly(reservation)));
      if (result && !result.ok) {
        if ('rate' in result) {
          throw rateLimited(config.stage, rates[result.rate], result.use, reservation.window! + WINDOW_MS - at);
        }
        const hold = reservation.holds[result.index];
        const limit = result.period === 'day' ? hold.dayLimit! : hold.limit!;
        const parameter = OUTPUT_CAP_PARAMETER[route.kind];
        const fit = parameter ? { parameter, tokens: outputTokensThatFit(worst, price, limit - result.committed) } : undefined;
        throw overBudget(overBudgetMessage(config.stage, hold, result.committed, fit, result.period, call.project));
      }
      reserved = result;
    }
    return new Bill({
      ledger, log, reservation, held: reserved !== undefined, reserved, price, kind: route.kind, worst,
      reasoning: isReasoning(facts.model, facts), facts, countTokens: deps.countTokens, tags: tagsOf(call, ctx),
      onAlerts: deps.onAlerts, writeDelayMs: deps.writeDelayMs,
    });
  }

  /**
   * A project with members refuses everyone else (unread when the ledger is down and the stack fails
   * open). Not a public client: the stage's public-URL setting, which names the project, is its grant.
   */
  function assertMember(read: Policy | undefined, call: Admitted, ctx: CallContext): void {
    if (ctx.publicClient) return;
    const members = read?.members.get(call.project);
    if (members?.length && !isMember(ctx.caller.user, members)) {
      throw forbidden(notMemberMessage(config.stage, call.project, ctx.caller.user), 'project_access_denied');
    }
  }

  /** Reservations are idempotent: one failure (or lost reply) is simply asked again. */
  async function reserveOnce(reservation: Reservation): Promise<ReserveResult> {
    try {
      return await ledger.reserve(reservation);
    } catch {
      return ledger.reserve(reservation);
    }
  }

  /** Gives back the holds of a call that never went out; tried like a settlement (it is as idempotent). */
  async function releaseQuietly(reservation: Reservation): Promise<void> {
    const released = await retried(() => ledger.release(reservation));
    // Left for the deadline: the holds are then charged as expired, the safe side for a budget.
    if (released !== true) log.error('releasing a reservation failed', { error: errorName(released.error) });
  }

  async function respond(call: Admitted, bill: Bill, ctx: CallContext): Promise<Response> {
    const { route, facts, req, url, body } = call;
    // The proxy's own deadline, not the client's: a client that gives up does not stop OpenAI from
    // finishing and billing the call, so the proxy stays to learn what it cost.
    // Cleared wherever the call ends, next to its settlement.
    const deadline = callDeadline(config.maxTimeoutMs);
    let res: Response;
    try {
      res = await forward(deps.upstream, config, {
        method: req.method, path: route.path, search: url.search, clientHeaders: req.headers,
        body: JSON.stringify(upstreamBody(route, body, facts)), signal: deadline.signal,
      });
    } catch (err) {
      deadline.clear();
      ctx.waitUntil(bill.settle(mayHaveReached(err) ? { kind: 'estimate' } : { kind: 'free' }, 0));
      throw gatewayError(err);
    }
    if (res.status === 401) {
      deadline.clear();
      ctx.waitUntil(bill.settle({ kind: 'free' }, res.status));
      throw keyRejected(res);
    }
    const headers = clientResponseHeaders(res.headers);
    headers.set(P.HEADER_CACHE, call.key ? 'miss' : 'bypass');
    const isStream = facts.stream && res.ok && (res.headers.get('content-type') ?? '').includes('text/event-stream');
    return isStream && res.body
      ? respondStreamed(call, bill, res, headers, ctx, deadline)
      : respondBuffered(call, bill, res, headers, ctx, deadline);
  }

  /**
   * Passes the stream through as it arrives. If the client leaves, the rest is still read (not
   * sent) until OpenAI's usage arrives or the deadline passes: hidden reasoning is billed either way.
   */
  function respondStreamed(call: Admitted, bill: Bill, res: Response, headers: Headers, ctx: CallContext, deadline: CallDeadline): Response {
    const { route, facts, key } = call;
    setBudgetHeaders(headers, bill, undefined, now());
    const meter = new StreamMeter(route.kind, facts.stream && !facts.clientWantsUsage);
    const stream = meteredStream(res.body!, meter, route, {
      keepTranscript: key !== undefined,
      waitUntil: ctx.waitUntil,
      onEnd: (end, transcript) => {
        deadline.clear();
        const { usage, responseId, reasoningIds } = meter.outcome;
        const relayed = meter.outcome.unreadable ? undefined : meter.outcome.outputText;
        const done = bill.settle(usage ? { kind: 'exact', usage, responseId, reasoningIds } : { kind: 'estimate', relayed }, res.status);
        ctx.waitUntil(done);
        if (key && end === 'complete' && meter.outcome.succeeded && transcript) {
          ctx.waitUntil(done.then((s) => cacheSet(key, { status: res.status, headers: replayable(headers), body: transcript, cost: s.cost })));
        }
      },
    });
    return new Response(stream, { status: res.status, headers });
  }

  async function respondBuffered(call: Admitted, bill: Bill, res: Response, headers: Headers, ctx: CallContext, deadline: CallDeadline): Promise<Response> {
    let payload: Uint8Array;
    try {
      payload = new Uint8Array(await res.arrayBuffer());
    } catch (err) {
      deadline.clear();
      // The answer broke off: OpenAI did the work, and none of it was seen.
      ctx.waitUntil(bill.settle({ kind: 'estimate' }, res.status));
      throw interruptedError(err);
    }
    deadline.clear();
    const outcome = res.ok ? outcomeOfBody(call.route, payload) : ({ kind: 'free' } as const);
    const settling = bill.settle(outcome, res.status);
    ctx.waitUntil(settling);
    // With a usage block the cost is known at once; an estimate needs the tokenizer first.
    const cost = bill.cost ?? (await settling).cost;
    headers.set(P.HEADER_COST, nanoToUsd(cost).toFixed(9));
    setBudgetHeaders(headers, bill, cost, now());
    if (call.key && res.ok) {
      ctx.waitUntil(cacheSet(call.key, { status: res.status, headers: replayable(headers), body: payload, cost }));
    }
    return new Response(payload as BodyInit, { status: res.status, headers });
  }

  /** Free, read-only endpoints (models, moderations): forwarded with the stage's key, not metered. */
  async function forwardUnmetered(route: Route, req: ProxyRequest, url: URL, bytes: Uint8Array): Promise<Response> {
    let res: Response;
    try {
      res = await forward(deps.upstream, config, {
        method: req.method, path: route.path, search: url.search, clientHeaders: req.headers,
        body: req.method === 'GET' ? undefined : bytes, signal: AbortSignal.timeout(config.maxTimeoutMs),
      });
    } catch (err) {
      throw gatewayError(err);
    }
    if (res.status === 401) throw keyRejected(res);
    return new Response(res.body, { status: res.status, headers: clientResponseHeaders(res.headers) });
  }

  /**
   * OpenAI's 401 is about the stage's key, not the caller: its body (which names the key's tail) is
   * dropped, the admin is told in the log, the caller gets an error that says who can fix it.
   */
  function keyRejected(res: Response): WrapiError {
    res.body?.cancel().catch(() => undefined);
    log.error('OpenAI rejected the stage API key', { stage: config.stage, status: res.status });
    deps.onKeyRejected?.();
    return stageKeyRejected(config.stage);
  }

  /**
   * Ledger trouble: refuse with 503, or go on unmetered when the stack chose to fail open, but only
   * for an outage: a request the ledger itself refused is not one, and failing open on it would let
   * a caller skip limits and membership at will.
   */
  async function ledgerCall<T>(call: () => Promise<T>, onRefuse?: () => void): Promise<T | undefined> {
    try {
      return await call();
    } catch (err) {
      const open = config.failOpen && !refusedByLedger(err);
      log.error('ledger unreachable', { error: errorName(err), failOpen: open });
      if (open) return undefined;
      onRefuse?.();
      throw unavailable('The budget ledger is unreachable, so the call was refused. Try again shortly.', 'ledger_unavailable');
    }
  }

  async function cacheGet(key: string): Promise<CachedResponse | undefined> {
    try {
      return await cache.get(key);
    } catch {
      return undefined;
    }
  }

  async function cacheSet(key: string, value: CachedResponse): Promise<void> {
    try {
      await afterResponse(deps.writeDelayMs);
      await cache.set(key, value, config.cacheTtlSeconds);
    } catch {
      // A cache that cannot store is only a missed saving.
    }
  }

  function tagsOf(call: Admitted, ctx: CallContext): Record<string, unknown> {
    return {
      stage: config.stage, route: call.route.kind, project: call.project, user: ctx.caller.user, model: call.facts.model,
      cache: call.key ? 'miss' : 'bypass',
    };
  }
}

/**
 * An error the ledger answered because of what the request put in it (a key DynamoDB finds invalid,
 * a value too big for SQLite), not because it was out of reach, overloaded or misconfigured.
 */
function refusedByLedger(err: unknown): boolean {
  const e = err as { name?: unknown; code?: unknown } | null;
  return !!e && typeof e === 'object' &&
    (e.name === 'ValidationException' || e.code === 'SQLITE_TOOBIG' || (typeof e.code === 'string' && e.code.startsWith('SQLITE_CONSTRAINT')));
}


/** The policy with `limits` on the caller's user scope too: the tighter of each, where both are set. */
function withUserRateLimits(policy: Policy, limits: RateLimits): Policy {
  const rateLimits = [...(policy.rateLimits ?? policy.limits.map(() => undefined))];
  const stored = rateLimits[USER_SCOPE] ?? {};
  const tighter = (a: number | undefined, b: number | undefined) => (a === undefined ? b : b === undefined ? a : Math.min(a, b));
  const rpm = tighter(stored.rpm, limits.rpm);
  const tpm = tighter(stored.tpm, limits.tpm);
  rateLimits[USER_SCOPE] = { ...(rpm !== undefined ? { rpm } : {}), ...(tpm !== undefined ? { tpm } : {}) };
  return { ...policy, rateLimits };
}

/** A complete answer: exact with its usage block; without one, still billed, by estimate. */
function outcomeOfBody(route: Route, payload: Uint8Array): Outcome {
  const text = new TextDecoder().decode(payload);
  try {
    const body = JSON.parse(text);
    const usage = usageOfBody(route.kind, body);
    const responses = route.kind === 'responses';
    const responseId = responses && typeof body.id === 'string' ? body.id : undefined;
    if (usage) return { kind: 'exact', usage, responseId, ...(responses ? { reasoningIds: reasoningIdsOf(body.output) } : {}) };
  } catch {
    // not JSON: estimated below
  }
  return { kind: 'estimate', relayed: text };
}

async function readBody(req: ProxyRequest, max: number): Promise<Uint8Array> {
  if (Number(req.headers.get('content-length') ?? 0) > max) throw tooLarge(max);
  if (!req.body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of req.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > max) throw tooLarge(max);
    chunks.push(chunk);
  }
  return concat(chunks, size);
}

function setBudgetHeaders(headers: Headers, bill: Bill, cost: number | undefined, now: number): void {
  // Ours replace OpenAI's organisation-wide ones where the caller's scope is rate limited.
  for (const [name, value] of Object.entries(bill.rateHeaders(now))) headers.set(name, value);
  const tightest = bill.remaining(cost);
  if (!tightest) return;
  const { scope, limit } = tightest;
  headers.set(P.HEADER_BUDGET_REMAINING, nanoToUsd(Math.max(0, tightest.remaining)).toFixed(6));
  headers.set(P.HEADER_BUDGET_LIMIT, nanoToUsd(limit).toFixed(6));
  headers.set(P.HEADER_BUDGET_SCOPE, formatBudgetScope(scope, tightest.period));
}

/**
 * Headers a cache hit replays: the upstream's, not our per-call ones (set afresh on a hit), and no
 * rate-limit window: that was the original call's, and a hit takes no tokens (its requests headers
 * are set afresh where an RPM applies).
 */
function replayable(headers: Headers): [string, string][] {
  return [...headers].filter(([name]) => !name.startsWith('openai-proxy-') && !name.startsWith('x-ratelimit-'));
}
