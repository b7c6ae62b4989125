// The request path (DESIGN.md "Request path"): route → cache → limits and reservation → forward
// (streamed without buffering) → settle after the response is complete.
import { afterResponse, Bill, errorName, recordHit, type CountTokens } from './bill.ts';
import { cacheKey } from './cache-key.ts';
import type { ProxyConfig } from './config.ts';
import {
  WrapiError, badRequest, forbidden, notFound, overBudget, toErrorResponse, tooLarge, unavailable,
} from './errors.ts';
import { clientResponseHeaders, forward, gatewayError, interruptedError, mayHaveReached, timeoutMs } from './forward.ts';
import {
  callScopes, dayOf, effectiveLimits, holdsFor, monthOf, noLimitMessage, overBudgetMessage, worstCaseCost,
} from './limits.ts';
import { createPolicyReader, type PolicyReader } from './policy.ts';
import type { CachedResponse, Ledger, Logger, ResponseCache, ReserveResult, Upstream } from './ports.ts';
import { modelCandidates, resolvePrice, nanoToUsd } from './pricing.ts';
import * as P from './protocol.ts';
import { parseJsonBody, requestFacts, withUsageRequested, type RequestFacts } from './request-facts.ts';
import { matchRoute, type Route } from './routes.ts';
import { StreamMeter } from './stream-meter.ts';
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
}

export type ProxyHandler = (req: Request, ctx: CallContext) => Promise<Response>;

const PROJECT_PATTERN = /^[^#\s\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}][^#\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]{0,127}$/u; // admin.ts NAME: no controls

export function createProxy(deps: ProxyDeps): ProxyHandler {
  const { config, ledger, cache, log } = deps;
  const now = deps.now ?? Date.now;
  const policy = deps.policy ?? createPolicyReader(ledger, config.policyCacheMs, now);

  return async (req, ctx) => {
    try {
      return await serve(req, ctx);
    } catch (err) {
      if (!(err instanceof WrapiError)) log.error('proxy error', { error: errorName(err) });
      return toErrorResponse(err);
    }
  };

  async function serve(req: Request, ctx: CallContext): Promise<Response> {
    const url = new URL(req.url);
    const route = matchRoute(req.method, url.pathname);
    if (!route) {
      throw notFound(`Invalid URL (${req.method} ${url.pathname}): this proxy only forwards metered OpenAI endpoints.`);
    }
    const project = req.headers.get(P.HEADER_PROJECT)?.trim() || P.DEFAULT_PROJECT;
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
    const policyRead = policy.read(scopes, modelCandidates(facts.model));
    policyRead.catch(() => undefined);
    const hit = key ? await cacheGet(key) : undefined;
    if (hit) {
      const month = monthOf(now());
      ctx.waitUntil(
        recordHit(ledger, scopes, month, dayOf(now()), hit.cost).catch((err) =>
          log.error('recording a cache hit failed', { error: errorName(err) }),
        ),
      );
      log.info('call', { stage: config.stage, route: route.kind, project, user: ctx.caller.user, model: facts.model, cache: 'hit' });
      const headers = new Headers(hit.headers);
      headers.set(P.HEADER_CACHE, 'hit');
      headers.set(P.HEADER_COST, '0');
      return new Response(hit.body as BodyInit, { status: hit.status, headers });
    }

    const read = await ledgerCall(() => policyRead);
    const price = resolvePrice(facts.model, read?.prices);
    if (!price) {
      throw badRequest(
        `Model "${facts.model}" has no price in stage ${config.stage}, so calls to it are refused (unpriced calls would escape the limits). ` +
          `An admin can add one: openai-wrapi prices set --stage ${config.stage} --model "${facts.model}" --input <usd per 1M> --output <usd per 1M>`,
        'model_not_priced',
        'model',
      );
    }
    const month = monthOf(now());
    let holds: ReturnType<typeof holdsFor> = [];
    let reservation: (ReserveResult & { ok: true }) | undefined;
    if (read) {
      const limits = effectiveLimits(read.limits, config.defaultProjectLimit);
      if (limits.every((l) => l === undefined)) throw forbidden(noLimitMessage(config.stage, project), 'project_not_allowed');
      const amount = worstCaseCost(price, promptEstimate(facts), route.kind === 'embeddings' ? 0 : facts.maxOutputTokens ?? config.defaultMaxOutputTokens);
      holds = holdsFor(scopes, limits, amount);
      const result = await ledgerCall(() => ledger.reserve(month, holds));
      if (result && !result.ok) throw overBudget(overBudgetMessage(config.stage, holds[result.index], result.committed));
      reservation = result;
      if (!result) holds = [];
    }

    const bill = new Bill({
      ledger, log, scopes, holds, reservation, price, month, now, countTokens: deps.countTokens,
      prompt: { text: facts.promptText, attachments: facts.attachments },
      tags: { stage: config.stage, route: route.kind, project, user: ctx.caller.user, model: facts.model },
    });
    const abort = new AbortController();
    const signal = AbortSignal.any([abort.signal, AbortSignal.timeout(timeoutMs(config, req.headers))]);
    const upstreamBody = JSON.stringify(withUsageRequested(route, body, facts));
    let res: Response;
    try {
      res = await forward(deps.upstream, config, {
        method: req.method, path: route.path, search: url.search, clientHeaders: req.headers, body: upstreamBody, signal,
      });
    } catch (err) {
      // A timeout may have reached OpenAI and been billed: estimate the prompt rather than lose it.
      ctx.waitUntil(bill.settle(undefined, mayHaveReached(err) ? '' : undefined, 0));
      throw gatewayError(err);
    }

    const headers = clientResponseHeaders(res.headers);
    headers.set(P.HEADER_CACHE, caching ? 'miss' : 'bypass');
    const isStream = facts.stream && res.ok && (res.headers.get('content-type') ?? '').includes('text/event-stream');
    if (isStream && res.body) {
      setBudgetHeaders(headers, bill, undefined);
      const meter = new StreamMeter(route.kind, facts.stream && !facts.clientWantsUsage);
      const body = meteredStream(res.body, meter, route, abort, (outcome, transcript) => {
        const done = bill.settle(meter.outcome.usage, meter.outcome.outputText, res.status);
        ctx.waitUntil(done);
        if (key && outcome === 'complete' && meter.outcome.succeeded && transcript) {
          ctx.waitUntil(done.then((s) => cacheSet(key, { status: res.status, headers: replayable(headers), body: transcript, cost: s.cost })));
        }
      }, key !== undefined);
      return new Response(body, { status: res.status, headers });
    }

    let payload: Uint8Array;
    try {
      payload = new Uint8Array(await res.arrayBuffer());
    } catch (err) {
      // The answer broke off: OpenAI did the work, so bill the prompt by estimate.
      ctx.waitUntil(bill.settle(undefined, '', res.status));
      throw interruptedError(err);
    }
    let usage;
    if (res.ok) {
      try {
        usage = usageOfBody(route.kind, JSON.parse(new TextDecoder().decode(payload)));
      } catch {
        usage = undefined;
      }
    }
    // A success without a usage block is still billed, by estimate; errors cost nothing at OpenAI.
    const settling = bill.settle(usage, res.ok && !usage ? new TextDecoder().decode(payload) : undefined, res.status);
    ctx.waitUntil(settling);
    // With a usage block the cost is known at once; an estimate needs the tokenizer first.
    const cost = bill.cost ?? (await settling).cost;
    headers.set(P.HEADER_COST, nanoToUsd(cost).toFixed(9));
    setBudgetHeaders(headers, bill, cost);
    if (key && res.ok) {
      ctx.waitUntil(cacheSet(key, { status: res.status, headers: replayable(headers), body: payload, cost }));
    }
    return new Response(payload as BodyInit, { status: res.status, headers });
  }

  /** Free, read-only endpoints (models, moderations): forwarded with the stage's key, not metered. */
  async function forwardUnmetered(route: Route, req: Request, url: URL, bytes: Uint8Array): Promise<Response> {
    const signal = AbortSignal.timeout(timeoutMs(config, req.headers));
    let res: Response;
    try {
      res = await forward(deps.upstream, config, {
        method: req.method, path: route.path, search: url.search, clientHeaders: req.headers,
        body: req.method === 'GET' ? undefined : bytes, signal,
      });
    } catch (err) {
      throw gatewayError(err);
    }
    return new Response(res.body, { status: res.status, headers: clientResponseHeaders(res.headers) });
  }

  /** Ledger trouble: refuse with 503, or go on unmetered when the stack chose to fail open. */
  async function ledgerCall<T>(call: () => Promise<T>): Promise<T | undefined> {
    try {
      return await call();
    } catch (err) {
      log.error('ledger unreachable', { error: errorName(err), failOpen: config.failOpen });
      if (config.failOpen) return undefined;
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
      await afterResponse();
      await cache.set(key, value, config.cacheTtlSeconds);
    } catch {
      // A cache that cannot store is only a missed saving.
    }
  }
}

/** Reservation basis: a generous token count from characters (no tokenizer on the hot path). */
function promptEstimate(facts: RequestFacts): number {
  return Math.ceil(facts.promptText.length / 2) + facts.attachments * 1_000 + 16;
}

async function readBody(req: Request, max: number): Promise<Uint8Array> {
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

function setBudgetHeaders(headers: Headers, bill: Bill, cost: number | undefined): void {
  const tightest = bill.remaining(cost);
  if (!tightest) return;
  const { scope, limit } = tightest.hold;
  headers.set(P.HEADER_BUDGET_REMAINING, nanoToUsd(Math.max(0, tightest.remaining)).toFixed(6));
  headers.set(P.HEADER_BUDGET_LIMIT, nanoToUsd(limit).toFixed(6));
  headers.set(P.HEADER_BUDGET_SCOPE, `project=${encodeURIComponent(scope.project)} user=${encodeURIComponent(scope.user)} model=${encodeURIComponent(scope.model)}`);
}

/** Headers a cache hit replays: the upstream's, not our per-call ones (set afresh on a hit). */
function replayable(headers: Headers): [string, string][] {
  return [...headers].filter(([name]) => !name.startsWith('openai-proxy-'));
}
