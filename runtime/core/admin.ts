// The admin function: limits, usage reports, price overrides and the cache, as JSON in and out.
// On AWS only principals allowed to invoke `openai-admin-<stage>` get here; locally, admin users.
import { DIGEST_SCHEDULE_EVENT } from './contract.ts';
import { badRequest, WrapiError } from './errors.ts';
import { DEFAULT_ALERTS, parseAlerts, type BudgetAlert } from './alerts.ts';
import { chargeExpired, errorName } from './bill.ts';
import { dailyDigest, digestSubject, digestText } from './digest.ts';
import { dayOf, modelFamily, monthOf } from './limits.ts';
import { windowOf } from './rates.ts';
import { roleMember } from './membership.ts';
import { FEDERATED_USER } from './caller.ts';
import type { Ledger, LimitKind, LimitRow, LimitUse, Logger, PriceOverride, ResponseCache, Scope, UsageRow } from './ports.ts';
import { modelCandidates, nanoToUsd, resolvePrice, tablePrices, usdToNano, priceTableInfo, type Price } from './pricing.ts';
import { MODEL_ID, MODEL_ID_RULE } from './request-facts.ts';
import { groupUsage, reportedRows, sumUsage, usageDto } from './usage-report.ts';
import {
  ANY, isUsdAmount, MAX_USD, MIN_USD, type AdminRequest, type AlertDto, type DailyDigest, type ErrorBody, type LimitDto, type LimitStatus, type PriceDto, type ProjectMembersDto,
} from './protocol.ts';

export interface AdminDeps {
  stage: string;
  ledger: Ledger;
  cache: ResponseCache;
  now?: () => number;
  /** Called after limits or prices change (clears the proxy's policy cache in the same process). */
  onChange?: () => void;
  /** Where an unexpected failure is told, with the request id its caller is given. */
  log: Logger;
  /** Budget alerts that charging expired holds made (the local stack delivers them; see ProxyDeps). */
  onAlerts?: (alerts: BudgetAlert[]) => Promise<void> | void;
  /**
   * Sends the daily digest to the people on the stage's alert topic (on AWS when the stack's
   * `dailyDigest` is on); absent: `sendDigest` only shows it (`dryRun`).
   */
  publishDigest?: (digest: DailyDigest, how: { scheduled: boolean }) => Promise<DigestSent>;
}

/**
 * A published digest's message id; or `alreadySent`: the schedule's digest of that day went out
 * before (the scheduler's invocations arrive at least once, and a retry may follow one that sent).
 */
export type DigestSent = { messageId: string } | { alreadySent: true };

export type AdminResult = ({ ok: true } & Record<string, unknown>) | ({ ok: false } & ErrorBody);

/** Per invocation: the platform's request id (Lambda's, the local Invoke API's), else a new one. */
export interface AdminInvocation {
  requestId?: string;
}

export type AdminHandler = (request: unknown, invocation?: AdminInvocation) => Promise<AdminResult>;

/**
 * Project and user names: no `#` (it joins scope keys), no control, invisible formatting or bidi
 * characters (a name is printed in terminals and logs), no leading space. Same rule as the
 * proxy's project header. Models follow the request's rule (MODEL_ID), so a limit or a price can
 * only name an id a call can carry, and old bad data cannot be written back.
 */
// No space at either end: HTTP trims header values, so a call could never reach a project named so.
const NAME = /^[^#\s\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}][^#\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]{0,127}(?<!\s)$/u;
const NAME_RULE = 'at most 128 characters, without "#", control or invisible formatting characters, no space at either end';
const MONTH = /^\d{4}-(0[1-9]|1[0-2])$/;
/** A caller's name (an SSO role and its user's e-mail can pass 128 characters): no space, no `#`. */
const MEMBER = /^[^#\s\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]{1,256}$/u;
/** IAM role names: 1-64 of letters, digits and + = , . @ _ - (so no `/`, and never `*`). */
const ROLE = /^[\w+=,.@-]{1,64}$/;
const WHOLE_ROLE = /^[^/*]+\/\*$/;
/** How the proxy names every federated caller (`federated:*`, caller.ts). */
const FEDERATED_PREFIX = FEDERATED_USER.slice(0, -1);
const DAY_MS = 86_400_000;

export function createAdmin(deps: AdminDeps): AdminHandler {
  const { ledger, stage } = deps;
  const now = deps.now ?? Date.now;
  const changed = () => deps.onChange?.();

  const actions: Record<AdminRequest['action'], (req: Record<string, unknown>) => Promise<Record<string, unknown>>> = {
    async setLimit(req) {
      const scope = scopeOf(req);
      const period = periodOf(req.period);
      const set: [LimitKind, number][] = [];
      if (req.limit !== undefined) set.push([period, usdToNano(usdAmount(req.limit, 'limit'))]);
      else if (req.period !== undefined) throw badRequest('"period" goes with "limit" (USD).', 'invalid_limit', 'period');
      if (req.rpm !== undefined) set.push(['rpm', rateAmount(req.rpm, 'rpm')]);
      if (req.tpm !== undefined) set.push(['tpm', rateAmount(req.tpm, 'tpm')]);
      // Thresholds are percents of a USD limit: of the one set in this request.
      if (req.alerts !== undefined && req.limit === undefined) {
        throw badRequest('"alerts" goes with "limit": thresholds are percents of the USD limit set in the same request (per "period").', 'invalid_alerts', 'alerts');
      }
      const alerts = req.alerts === undefined ? undefined : alertsOf(req.alerts);
      if (set.length === 0) throw badRequest('Give at least one of "limit" (USD, with "period" month or day), "rpm" or "tpm".', 'invalid_limit');
      // Checked all before writing any: a bad value changes nothing.
      for (const [kind, value] of set) await ledger.setLimit(scope, value, kind, kind === period ? alerts : undefined);
      changed();
      const dto: LimitDto = { ...scope };
      for (const [kind, value] of set) {
        if (kind === 'month') dto.limit = nanoToUsd(value);
        else if (kind === 'day') dto.dailyLimit = nanoToUsd(value);
        else dto[kind] = value;
      }
      if (alerts !== undefined) dto[period === 'day' ? 'dailyAlerts' : 'alerts'] = alerts;
      return { limit: dto };
    },
    async removeLimit(req) {
      const scope = scopeOf(req);
      const kind = req.kind === undefined || req.kind === null ? undefined : limitKindOf(req.kind);
      const removed = await ledger.removeLimit(scope, kind);
      if (!removed) throw badRequest(`There is no ${kind ? `${KIND_LABEL[kind]} ` : ''}limit for ${label(scope)} in stage ${stage}.`, 'limit_not_found');
      changed();
      return { removed: { ...scope, ...(kind ? { kind } : {}) } };
    },
    async listLimits(req) {
      const project = optionalName(req.project, 'project');
      const at = now();
      const month = monthOf(at);
      await chargeExpired(ledger, month, at, deps.onAlerts);
      const [all, usage] = await Promise.all([ledger.listLimits(), ledger.usage(month)]);
      const limits = all.filter((l) => !project || l.scope.project === project);
      const use = await ledger.limitUse(limits.map((l) => l.scope), month, dayOf(at), windowOf(at));
      const committed = new Map(usage.map((r) => [key(r), r]));
      return {
        month,
        day: dayOf(at),
        limits: limits.map((l, i) => limitStatus(l, committed.get(key(l.scope)), use[i])),
      };
    },
    async usage(req) {
      const month = req.month === undefined ? monthOf(now()) : String(req.month);
      if (!MONTH.test(month)) throw badRequest(`"month" must look like 2026-11 (got "${month}").`, 'invalid_month', 'month');
      const by = req.by ?? 'user';
      if (by !== 'user' && by !== 'project' && by !== 'model') {
        throw badRequest('"by" must be one of user, project, model.', 'invalid_group', 'by');
      }
      await chargeExpired(ledger, month, now(), deps.onAlerts);
      const [rows, days] = await Promise.all([ledger.usage(month), req.daily ? ledger.daily(month) : undefined]);
      const detail = reportedRows(rows, month);
      return {
        month,
        by,
        rows: detail,
        groups: groupUsage(detail, by),
        totals: sumUsage(detail),
        ...(days ? { days: days.map((d) => usageDto(d, month)) } : {}),
      };
    },
    async listAlerts(req) {
      const month = req.month === undefined || req.month === null ? monthOf(now()) : String(req.month);
      if (!MONTH.test(month)) throw badRequest(`"month" must look like 2026-11 (got "${month}").`, 'invalid_month', 'month');
      // The ledger answers oldest first; a reader wants the latest on top.
      const alerts = (await ledger.alerts(month)).map(alertDto).reverse();
      return { month, alerts };
    },
    async sendDigest(req) {
      if (req.dryRun !== undefined && typeof req.dryRun !== 'boolean') {
        throw badRequest('"dryRun" must be true (only show the digest) or false.', 'invalid_request', 'dryRun');
      }
      const publish = req.dryRun === true ? undefined : deps.publishDigest;
      if (!publish && req.dryRun !== true) {
        throw badRequest(
          `Stage ${stage} sends no daily digest: the stack setting dailyDigest turns it on (README, Settings). ` +
            'Send "dryRun": true to see it without sending it.',
          'digest_not_configured',
        );
      }
      const at = now();
      const month = monthOf(at);
      // The day before (UTC): the last whole day, which daily limits are judged by. On the 1st it is
      // in the month before.
      const before = at - DAY_MS;
      await chargeExpired(ledger, month, at, deps.onAlerts);
      const [usage, previousDay, limits] = await Promise.all([ledger.usage(month), ledger.daily(monthOf(before)), ledger.listLimits()]);
      const use = limits.length ? await ledger.limitUse(limits.map((l) => l.scope), monthOf(before), dayOf(before), windowOf(at)) : [];
      const digest = dailyDigest({ stage, at, usage, previousDay, limits, previousDayCommitted: use.map((u) => u.day) });
      const sent = publish ? await publish(digest, { scheduled: req.trigger === DIGEST_SCHEDULE_EVENT.trigger }) : undefined;
      return {
        digest,
        subject: digestSubject(digest),
        text: digestText(digest),
        published: sent !== undefined && 'messageId' in sent,
        ...(sent && 'messageId' in sent ? { messageId: sent.messageId } : {}),
        ...(sent && 'alreadySent' in sent ? { alreadySent: true } : {}),
      };
    },
    async months() {
      // `current` too: reports default to the current month in UTC, whatever the caller's clock says.
      return { current: monthOf(now()), months: await ledger.months() };
    },
    async setPrice(req) {
      const model = name(req.model, 'model');
      const price: PriceOverride = {
        model,
        input: usdAmount(req.input, 'input'),
        cachedInput: req.cachedInput == null ? null : usdAmount(req.cachedInput, 'cachedInput'),
        output: usdAmount(req.output, 'output'),
        updatedAt: new Date(now()).toISOString(),
      };
      if (req.cacheWrite != null) price.cacheWrite = usdAmount(req.cacheWrite, 'cacheWrite');
      if (req.longContext != null) price.longContext = longContextOf(req.longContext);
      if (req.audio != null) price.audio = audioRatesOf(req.audio);
      await ledger.setPrice(price);
      changed();
      return { price: { ...price, source: 'override' } };
    },
    async removePrice(req) {
      const model = name(req.model, 'model');
      if (!(await ledger.removePrice(model))) throw badRequest(`There is no price override for "${model}".`, 'price_not_found');
      changed();
      return { removed: model };
    },
    async listPrices(req) {
      const overrides = new Map((await ledger.listPrices()).map((o) => [o.model, o]));
      // The price each id is billed at, resolved exactly as the proxy does (a family override
      // shows on the dated ids it binds).
      const priceOf = (model: string): PriceDto | undefined => {
        const found = modelCandidates(model).map((c) => overrides.get(c));
        const price = resolvePrice(model, found);
        return price && priceDto(price, found.find((o) => o !== undefined)?.model);
      };
      if (req.model !== undefined) {
        const model = name(req.model, 'model');
        const price = priceOf(model);
        if (!price) throw badRequest(`Model "${model}" has no price.`, 'model_not_priced', 'model');
        return { prices: [price] };
      }
      const ids = new Set([...tablePrices().map((p) => p.model), ...overrides.keys()]);
      return { table: priceTableInfo, prices: [...ids].sort((a, b) => a.localeCompare(b)).map((id) => priceOf(id)!) };
    },
    async grantMember(req) {
      const project = name(req.project, 'project');
      const member = memberOf(req, true);
      const added = await ledger.addMember(project, member);
      changed();
      return { project, member, added };
    },
    async revokeMember(req) {
      const project = name(req.project, 'project');
      const member = memberOf(req);
      if (!(await ledger.removeMember(project, member))) {
        throw badRequest(`"${member}" is not a member of project "${project}" in stage ${stage}.`, 'member_not_found');
      }
      changed();
      return { project, member };
    },
    async listMembers(req) {
      const project = optionalName(req.project, 'project');
      const rows = await ledger.listMembers();
      return { projects: rows.filter((r) => !project || r.project === project) satisfies ProjectMembersDto[] };
    },
    async flushCache() {
      await deps.cache.flush();
      return { flushed: true };
    },
  };

  return async (request, invocation) => {
    try {
      if (!request || typeof request !== 'object') throw badRequest('The admin request must be a JSON object with an "action".');
      const req = request as Record<string, unknown>;
      const action = actions[req.action as AdminRequest['action']];
      if (typeof req.action !== 'string' || !action) {
        throw badRequest(`Unknown action "${String(req.action)}". Known: ${Object.keys(actions).join(', ')}.`, 'unknown_action');
      }
      return { ok: true, stage, ...(await action(req)) };
    } catch (err) {
      if (err instanceof WrapiError) return { ok: false, ...err.body() };
      // The same id in the log line and in the answer, and nothing else of the error: its text may
      // hold a path, a key or a table name.
      const id = invocation?.requestId ?? crypto.randomUUID();
      const action = (request as { action?: unknown } | null)?.action;
      deps.log.error('admin error', { stage, action: typeof action === 'string' ? action : undefined, requestId: id, error: errorName(err) });
      return {
        ok: false,
        error: { message: `The admin function failed (request ${id}); its logs say why.`, type: 'server_error', param: null, code: 'admin_error' },
      };
    }
  };
}

/** Refusals do not echo the value: a bad name is exactly what must not be printed. */
function name(value: unknown, field: string): string {
  const [pattern, rule] = field === 'model' ? [MODEL_ID, `model ids: ${MODEL_ID_RULE}`] : [NAME, NAME_RULE];
  if (typeof value !== 'string' || !pattern.test(value)) {
    throw badRequest(`"${field}" must be a non-empty name (${rule}).`, 'invalid_name', field);
  }
  return value;
}

function optionalName(value: unknown, field: string): string | undefined {
  return value === undefined || value === null || value === ANY ? undefined : name(value, field);
}

/** A limit's scope. Calls count under their model's family, so a limit on a snapshot is one on its family. */
function scopeOf(req: Record<string, unknown>): Scope {
  const model = optionalName(req.model, 'model');
  return {
    project: name(req.project, 'project'),
    user: optionalName(req.user, 'user') ?? ANY,
    model: model === undefined ? ANY : modelFamily(model),
  };
}

/**
 * Exactly one of `user` (a caller as the proxy names it; `Role/*` is the whole role) or `role`
 * (stored as `Role/*`). `*` alone would be everyone: a project open to all simply has no members.
 */
/** `granting`: a new member must be able to admit someone; a revoke may name any stored one. */
function memberOf(req: Record<string, unknown>, granting = false): string {
  const user = req.user ?? undefined;
  const role = req.role ?? undefined;
  if ((user === undefined) === (role === undefined)) {
    throw badRequest('Give exactly one of "user" (a caller as the proxy names it, e.g. alice) or "role" (everyone who comes through an IAM role).', 'invalid_member');
  }
  if (role !== undefined) {
    if (typeof role !== 'string' || !ROLE.test(role)) {
      throw badRequest('"role" must be an IAM role name (1-64 letters, digits or + = , . @ _ -).', 'invalid_member', 'role');
    }
    return roleMember(role);
  }
  if (granting && typeof user === 'string' && user.toLowerCase().startsWith(FEDERATED_PREFIX)) {
    // Every federated caller is the one user `federated:*` (caller.ts): `federated:bob` would admit
    // nobody, and `federated:*` everyone allowed to call GetFederationToken.
    throw badRequest(
      'Federated users (sts:GetFederationToken) choose their own names, so the proxy cannot tell them apart and ' +
        'none can be made a member. Grant their IAM user, or a role, instead.',
      'invalid_member',
      'user',
    );
  }
  // `*` only as a whole role's `Role/*`.
  if (typeof user !== 'string' || !MEMBER.test(user) || (user.includes('*') && !WHOLE_ROLE.test(user))) {
    throw badRequest(
      '"user" must be a caller as the proxy names it (alice, Role/session, or Role/* for a whole role): ' +
        'at most 256 characters, without spaces, "#" or control characters.',
      'invalid_member',
      'user',
    );
  }
  return user;
}

const KIND_LABEL: Record<LimitKind, string> = { month: 'monthly', day: 'daily', rpm: 'requests-per-minute', tpm: 'tokens-per-minute' };

function periodOf(value: unknown): 'month' | 'day' {
  if (value === undefined || value === null || value === 'month') return 'month';
  if (value === 'day') return 'day';
  throw badRequest(`"period" must be month or day (got ${JSON.stringify(String(value))}).`, 'invalid_period', 'period');
}

function limitKindOf(value: unknown): LimitKind {
  if (value === 'month' || value === 'day' || value === 'rpm' || value === 'tpm') return value;
  throw badRequest(`"kind" must be one of month, day, rpm, tpm (got ${JSON.stringify(String(value))}).`, 'invalid_limit', 'kind');
}

/** Requests or tokens per minute: a whole number, 0 (refuse all) up to a billion. */
function rateAmount(value: unknown, field: string): number {
  const n = typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 1_000_000_000) {
    throw badRequest(`"${field}" must be a whole number from 0 to 1000000000 (got ${JSON.stringify(String(value))}).`, 'invalid_amount', field);
  }
  return n;
}

/** A scope's limits with what it used: this month, today (UTC), this minute. */
function limitStatus(l: LimitRow, month: UsageRow | undefined, use: LimitUse): LimitStatus {
  return {
    ...l.scope,
    ...(l.limit !== undefined ? { limit: nanoToUsd(l.limit) } : {}),
    ...(l.dayLimit !== undefined ? { dailyLimit: nanoToUsd(l.dayLimit) } : {}),
    ...(l.rpm !== undefined ? { rpm: l.rpm } : {}),
    ...(l.tpm !== undefined ? { tpm: l.tpm } : {}),
    // What will fire: the stored thresholds, else the defaults.
    ...(l.limit !== undefined ? { alerts: [...(l.alerts ?? DEFAULT_ALERTS)] } : {}),
    ...(l.dayLimit !== undefined ? { dailyAlerts: [...(l.dayAlerts ?? DEFAULT_ALERTS)] } : {}),
    spend: nanoToUsd(month?.spent ?? 0),
    committed: nanoToUsd(month?.committed ?? 0),
    today: nanoToUsd(use.day),
    minuteRequests: use.requests,
    minuteTokens: use.tokens,
  };
}

/** `alerts`: whole percents as an array (`[]`: none), or as text (`"50,80,100"`, `"none"`). */
function alertsOf(value: unknown): number[] {
  if (Array.isArray(value) && value.length === 0) return [];
  const text = Array.isArray(value) && value.every((v) => typeof v === 'number') ? value.join(',') : value;
  // A blank value is more likely a script's unset variable than "no alerts": that is spelt "none".
  const parsed = typeof text === 'string' && text.trim() !== '' ? parseAlerts(text) : undefined;
  if (Array.isArray(parsed)) return parsed;
  // parseAlerts says "alerts must be ..." or "at most 10 alert thresholds ...".
  const problem = parsed?.error.replace(/^alerts /, '') ??
    `must be "none" or whole percents from 1 to 100, as an array or comma separated (got ${String(JSON.stringify(value)).slice(0, 80)})`;
  throw badRequest(`"alerts" ${problem.startsWith('at most') ? `takes ${problem}` : problem}.`, 'invalid_alerts', 'alerts');
}

function alertDto(a: BudgetAlert): AlertDto {
  return {
    ...a.scope,
    period: a.period,
    month: a.month,
    ...(a.day ? { day: a.day } : {}),
    threshold: a.threshold,
    limit: nanoToUsd(a.limit),
    spend: nanoToUsd(a.spent),
    at: new Date(a.at).toISOString(),
    callId: a.callId,
  };
}

function usdAmount(value: unknown, field: string): number {
  // Decimal strings only: Number() would also read "0x10" as 16.
  const n = typeof value === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(value) ? Number(value) : value;
  if (!isUsdAmount(n)) {
    throw badRequest(
      `"${field}" must be 0 or a number of USD between ${MIN_USD} and ${MAX_USD} (got ${JSON.stringify(String(value))}).`,
      'invalid_amount',
      field,
    );
  }
  return n;
}

const key = (s: Scope) => `${s.project}#${s.user}#${s.model}`;
const label = (s: Scope) => `project "${s.project}" user "${s.user}" model "${s.model}"`;

function priceDto(p: Price, overrideModel: string | undefined): PriceDto {
  return {
    model: p.model,
    input: p.input,
    cachedInput: p.cachedInput,
    output: p.output,
    ...(p.cacheWrite !== undefined ? { cacheWrite: p.cacheWrite } : {}),
    ...(p.longContext ? { longContext: p.longContext } : {}),
    ...(p.audio ? { audio: p.audio } : {}),
    source: overrideModel ? 'override' : 'table',
    ...(overrideModel && overrideModel !== p.model ? { overrideModel } : {}),
  };
}

/** The long-context tier of an override: all of it or none (a threshold alone prices nothing). */
function longContextOf(value: unknown): NonNullable<PriceOverride['longContext']> {
  const lc = rateObject(value, 'longContext', ['thresholdInputTokens', 'input', 'cachedInput', 'output']);
  const threshold = lc.thresholdInputTokens;
  if (typeof threshold !== 'number' || !Number.isInteger(threshold) || threshold < 1 || threshold > 100_000_000) {
    throw badRequest(
      `"longContext.thresholdInputTokens" must be a whole number of input tokens between 1 and 100000000 (got ${JSON.stringify(threshold)}).`,
      'invalid_amount',
      'longContext.thresholdInputTokens',
    );
  }
  return {
    thresholdInputTokens: threshold,
    input: usdAmount(lc.input, 'longContext.input'),
    cachedInput: lc.cachedInput == null ? null : usdAmount(lc.cachedInput, 'longContext.cachedInput'),
    output: usdAmount(lc.output, 'longContext.output'),
  };
}

/** Audio-token rates of an override: any of the three; the ones left out keep the table's. */
function audioRatesOf(value: unknown): NonNullable<PriceOverride['audio']> {
  const audio = rateObject(value, 'audio', ['input', 'cachedInput', 'output']);
  const rates = Object.entries(audio)
    .filter(([, v]) => v != null)
    .map(([k, v]) => [k, usdAmount(v, `audio.${k}`)] as const);
  if (rates.length === 0) throw badRequest('"audio" must set at least one of input, cachedInput, output.', 'invalid_price', 'audio');
  return Object.fromEntries(rates);
}

/** An object with only the named keys: a misspelt rate must not be dropped silently. */
function rateObject(value: unknown, field: string, keys: string[]): Record<string, unknown> {
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw badRequest(`"${field}" must be an object with ${keys.join(', ')} (got ${JSON.stringify(value)}).`, 'invalid_price', field);
  }
  const unknown = Object.keys(value).find((k) => !keys.includes(k));
  if (unknown !== undefined) {
    throw badRequest(`"${field}" has no rate "${unknown}"; known: ${keys.join(', ')}.`, 'invalid_price', `${field}.${unknown}`);
  }
  return value as Record<string, unknown>;
}
