// The embedded ledger of the local stack: one SQLite file, synchronous better-sqlite3 calls wrapped
// in promises so it fits the same port as DynamoDB. Every multi-row change is one transaction.
import Database from 'better-sqlite3';
import type {
  DailyRow,
  LimitKind,
  ExpiredHold,
  Ledger,
  LimitRow,
  MemberRow,
  Nano,
  PriceOverride,
  RateLimits,
  RateUse,
  Reservation,
  ReserveResult,
  Scope,
  Settlement,
  SettledRow,
  UsageRow,
} from '../core/ports.ts';
import { formatAlerts, reached, storedAlerts, type BudgetAlert } from '../core/alerts.ts';
import { COUNTERS, isListed, sortAlerts, sortDaily, sortLimits, sortMembers, sortNames, sortUsage } from './ledger-common.ts';

const COUNTER_COLUMNS = COUNTERS.map((c) => `${c} INTEGER NOT NULL DEFAULT 0`).join(', ');

const SCHEMA = `
CREATE TABLE IF NOT EXISTS usage (
  month TEXT NOT NULL, project TEXT NOT NULL, user TEXT NOT NULL, model TEXT NOT NULL,
  ${COUNTER_COLUMNS}, committed INTEGER NOT NULL DEFAULT 0, priceVersion TEXT,
  PRIMARY KEY (month, project, user, model)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS daily (
  day TEXT NOT NULL, project TEXT NOT NULL, user TEXT NOT NULL, model TEXT NOT NULL,
  ${COUNTER_COLUMNS},
  PRIMARY KEY (day, project, user, model)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS calls (
  callId TEXT PRIMARY KEY NOT NULL, month TEXT NOT NULL, day TEXT NOT NULL, expiresAt INTEGER NOT NULL,
  pending TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS responses (
  id TEXT PRIMARY KEY NOT NULL, tokens INTEGER NOT NULL, expiresAt INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS limits (
  project TEXT NOT NULL, user TEXT NOT NULL, model TEXT NOT NULL, nano INTEGER NOT NULL,
  PRIMARY KEY (project, user, model)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS scope_limits (
  project TEXT NOT NULL, user TEXT NOT NULL, model TEXT NOT NULL, kind TEXT NOT NULL, value INTEGER NOT NULL,
  PRIMARY KEY (project, user, model, kind)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS day_committed (
  day TEXT NOT NULL, project TEXT NOT NULL, user TEXT NOT NULL, model TEXT NOT NULL, committed INTEGER NOT NULL,
  PRIMARY KEY (day, project, user, model)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rate_windows (
  project TEXT NOT NULL, user TEXT NOT NULL, model TEXT NOT NULL, window INTEGER NOT NULL,
  requests INTEGER NOT NULL, tokens INTEGER NOT NULL,
  PRIMARY KEY (project, user, model, window)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rate_windows_by_window ON rate_windows (window);
CREATE TABLE IF NOT EXISTS rate_holds (
  callId TEXT NOT NULL, project TEXT NOT NULL, user TEXT NOT NULL, model TEXT NOT NULL, window INTEGER NOT NULL,
  tokens INTEGER NOT NULL,
  PRIMARY KEY (callId, project, user, model)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rate_holds_by_window ON rate_holds (window);
CREATE TABLE IF NOT EXISTS limit_alerts (
  project TEXT NOT NULL, user TEXT NOT NULL, model TEXT NOT NULL, kind TEXT NOT NULL, alerts TEXT NOT NULL,
  PRIMARY KEY (project, user, model, kind)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alert_marks (
  month TEXT NOT NULL, day TEXT NOT NULL, project TEXT NOT NULL, user TEXT NOT NULL, model TEXT NOT NULL,
  threshold INTEGER NOT NULL, limitNano INTEGER NOT NULL, spent INTEGER NOT NULL, at INTEGER NOT NULL, callId TEXT NOT NULL,
  PRIMARY KEY (month, day, project, user, model, threshold)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS members (
  project TEXT NOT NULL, member TEXT NOT NULL,
  PRIMARY KEY (project, member)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS prices (
  model TEXT PRIMARY KEY NOT NULL, input REAL NOT NULL, cachedInput REAL, output REAL NOT NULL,
  updatedAt TEXT NOT NULL
);`;

/**
 * Price-override rates beyond input/cached/output, added after the first release: files made
 * before them get the columns on open (idempotent). NULL = not set by the override.
 */
const PRICE_RATE_COLUMNS = {
  cacheWrite: 'REAL', lcThreshold: 'INTEGER', lcInput: 'REAL', lcCachedInput: 'REAL', lcOutput: 'REAL',
  audioInput: 'REAL', audioCachedInput: 'REAL', audioOutput: 'REAL',
} as const;

const SCOPE_WHERE = 'project = @project AND user = @user AND model = @model';
const ADDS = COUNTERS.map((c) => `${c} = ${c} + excluded.${c}`).join(', ');
const NAMED = COUNTERS.map((c) => `@${c}`).join(', ');

type Counted = Record<(typeof COUNTERS)[number], number>;
/** A call's holds not yet settled or released, as stored in `calls.pending`. */
type Pending = { scope: Scope; amount: Nano }[];
const ZERO_COUNTS = Object.fromEntries(COUNTERS.map((c) => [c, 0])) as Counted;
type UsageRecord = Omit<UsageRow, 'priceVersion'> & { priceVersion: string | null };
type PriceRecord = Pick<PriceOverride, 'model' | 'input' | 'cachedInput' | 'output' | 'updatedAt'> &
  Record<keyof typeof PRICE_RATE_COLUMNS, number | null>;

/** Files written before a counter existed get its column (every counter defaults to 0). */
function migrate(db: Database.Database): void {
  for (const table of ['usage', 'daily']) {
    const columns = new Set(db.prepare<[], { name: string }>(`SELECT name FROM pragma_table_info('${table}')`).all().map((c) => c.name));
    for (const counter of COUNTERS) {
      if (!columns.has(counter)) db.exec(`ALTER TABLE ${table} ADD COLUMN ${counter} INTEGER NOT NULL DEFAULT 0`);
    }
  }
}

/** Day totals made before alerts get their settled spend (0: alerts of that day count from now). */
function migrateDays(db: Database.Database): void {
  const columns = new Set(db.prepare<[], { name: string }>("SELECT name FROM pragma_table_info('day_committed')").all().map((c) => c.name));
  if (!columns.has('spent')) db.exec('ALTER TABLE day_committed ADD COLUMN spent INTEGER NOT NULL DEFAULT 0');
}

function migratePrices(db: Database.Database): void {
  const columns = new Set(db.prepare<[], { name: string }>("SELECT name FROM pragma_table_info('prices')").all().map((c) => c.name));
  for (const [column, type] of Object.entries(PRICE_RATE_COLUMNS)) {
    if (!columns.has(column)) db.exec(`ALTER TABLE prices ADD COLUMN ${column} ${type}`);
  }
}

/** Old rate windows (and their holds) go once they are this far behind the newest one taken. */
const WINDOW_KEEP_MS = 2 * 60_000;
/** Old days' committed totals go once they are this many days behind the newest day reserved. */
const DAY_KEEP_MS = 3 * 86_400_000;

/** Thrown out of a reservation so its savepoint (groupCommit) rolls back the holds already taken. */
class Refused {
  constructor(readonly result: ReserveResult) {}
}

export function openSqliteLedger(file: string): Ledger {
  const db = openExclusive(file);
  db.exec(SCHEMA);
  migrate(db);
  migrateDays(db);
  migratePrices(db);

  const getLimit = db.prepare<Scope, { nano: Nano }>(`SELECT nano FROM limits WHERE ${SCOPE_WHERE}`);
  const getScopeLimits = db.prepare<Scope, { kind: LimitKind; value: number }>(`SELECT kind, value FROM scope_limits WHERE ${SCOPE_WHERE}`);
  const putScopeLimit = db.prepare<Scope & { kind: LimitKind; value: number }>(
    `INSERT INTO scope_limits (project, user, model, kind, value) VALUES (@project, @user, @model, @kind, @value)
     ON CONFLICT DO UPDATE SET value = excluded.value`,
  );
  const deleteScopeLimit = db.prepare<Scope & { kind: LimitKind }>(`DELETE FROM scope_limits WHERE ${SCOPE_WHERE} AND kind = @kind`);
  const deleteScopeLimits = db.prepare<Scope>(`DELETE FROM scope_limits WHERE ${SCOPE_WHERE}`);
  const allScopeLimits = db.prepare<[], Scope & { kind: LimitKind; value: number }>('SELECT * FROM scope_limits');
  const addDayCommitted = db.prepare<Scope & { day: string; amount: Nano }, { committed: Nano }>(
    `INSERT INTO day_committed (day, project, user, model, committed) VALUES (@day, @project, @user, @model, @amount)
     ON CONFLICT DO UPDATE SET committed = committed + excluded.committed RETURNING committed`,
  );
  const getDayCommitted = db.prepare<Scope & { day: string }, { committed: Nano }>(
    `SELECT committed FROM day_committed WHERE day = @day AND ${SCOPE_WHERE}`,
  );
  const dropOldDays = db.prepare<[string]>('DELETE FROM day_committed WHERE day < ?');
  // A settlement's change to the day's committed total and its spend, in one statement.
  const addDaySettled = db.prepare<Scope & { day: string; committed: Nano; spent: Nano }, { spent: Nano }>(
    `INSERT INTO day_committed (day, project, user, model, committed, spent) VALUES (@day, @project, @user, @model, @committed, @spent)
     ON CONFLICT DO UPDATE SET committed = committed + excluded.committed, spent = spent + excluded.spent RETURNING spent`,
  );
  const getSpent = db.prepare<Scope & { month: string; day: string }, { month: Nano; day: Nano }>(
    `SELECT coalesce((SELECT spent FROM usage WHERE month = @month AND ${SCOPE_WHERE}), 0) AS month,
            coalesce((SELECT spent FROM day_committed WHERE day = @day AND ${SCOPE_WHERE}), 0) AS day`,
  );
  type MarkRecord = Scope & { month: string; day: string; threshold: number; limitNano: Nano; spent: Nano; at: number; callId: string };
  const getMark = db.prepare<Scope & { month: string; day: string; threshold: number }, MarkRecord>(
    `SELECT * FROM alert_marks WHERE month = @month AND day = @day AND threshold = @threshold AND ${SCOPE_WHERE}`,
  );
  const putMark = db.prepare<MarkRecord>(
    `INSERT INTO alert_marks (month, day, project, user, model, threshold, limitNano, spent, at, callId)
     VALUES (@month, @day, @project, @user, @model, @threshold, @limitNano, @spent, @at, @callId)
     ON CONFLICT DO UPDATE SET limitNano = excluded.limitNano, spent = excluded.spent, at = excluded.at, callId = excluded.callId`,
  );
  const monthMarks = db.prepare<[string], MarkRecord>('SELECT * FROM alert_marks WHERE month = ?');
  const getAlerts = db.prepare<Scope, { kind: 'month' | 'day'; alerts: string }>(`SELECT kind, alerts FROM limit_alerts WHERE ${SCOPE_WHERE}`);
  const putAlerts = db.prepare<Scope & { kind: string; alerts: string }>(
    `INSERT INTO limit_alerts (project, user, model, kind, alerts) VALUES (@project, @user, @model, @kind, @alerts)
     ON CONFLICT DO UPDATE SET alerts = excluded.alerts`,
  );
  const deleteAlerts = db.prepare<Scope & { kind: string }>(`DELETE FROM limit_alerts WHERE ${SCOPE_WHERE} AND kind = @kind`);
  const deleteAllAlerts = db.prepare<Scope>(`DELETE FROM limit_alerts WHERE ${SCOPE_WHERE}`);
  const allAlerts = db.prepare<[], Scope & { kind: 'month' | 'day'; alerts: string }>('SELECT * FROM limit_alerts');
  const addRate = db.prepare<Scope & { window: number; requests: number; tokens: number }, RateUse>(
    `INSERT INTO rate_windows (project, user, model, window, requests, tokens) VALUES (@project, @user, @model, @window, @requests, @tokens)
     ON CONFLICT DO UPDATE SET requests = requests + excluded.requests, tokens = tokens + excluded.tokens RETURNING requests, tokens`,
  );
  const getRate = db.prepare<Scope & { window: number }, RateUse>(
    `SELECT requests, tokens FROM rate_windows WHERE window = @window AND ${SCOPE_WHERE}`,
  );
  const putRateHold = db.prepare<Scope & { callId: string; window: number; tokens: number }>(
    'INSERT OR IGNORE INTO rate_holds (callId, project, user, model, window, tokens) VALUES (@callId, @project, @user, @model, @window, @tokens)',
  );
  const takeRateHold = db.prepare<Scope & { callId: string }, { window: number; tokens: number }>(
    `DELETE FROM rate_holds WHERE callId = @callId AND ${SCOPE_WHERE} RETURNING window, tokens`,
  );
  const dropOldWindows = db.prepare<[number]>('DELETE FROM rate_windows WHERE window < ?');
  const dropOldRateHolds = db.prepare<[number]>('DELETE FROM rate_holds WHERE window < ?');
  let newestWindow = 0;
  let newestDay = '';
  const getPrice = db.prepare<[string], PriceRecord>('SELECT * FROM prices WHERE model = ?');
  const getCommitted = db.prepare<Scope & { month: string }, { committed: Nano }>(
    `SELECT committed FROM usage WHERE month = @month AND ${SCOPE_WHERE}`,
  );
  const addCommitted = db.prepare<Scope & { month: string; amount: Nano }, { committed: Nano }>(
    `INSERT INTO usage (month, project, user, model, committed) VALUES (@month, @project, @user, @model, @amount)
     ON CONFLICT DO UPDATE SET committed = committed + excluded.committed RETURNING committed`,
  );
  const addUsage = db.prepare<Scope & Counted & { month: string; committed: Nano; priceVersion: string | null }>(
    `INSERT INTO usage (month, project, user, model, ${COUNTERS.join(', ')}, committed, priceVersion)
     VALUES (@month, @project, @user, @model, ${NAMED}, @committed, @priceVersion)
     ON CONFLICT DO UPDATE SET ${ADDS}, committed = committed + excluded.committed,
       priceVersion = coalesce(excluded.priceVersion, priceVersion)`,
  );
  // The same upsert answering the row's new spend: a watched row's alert thresholds need it.
  const addUsageSpent = db.prepare<Scope & Counted & { month: string; committed: Nano; priceVersion: string | null }, { spent: Nano }>(
    `INSERT INTO usage (month, project, user, model, ${COUNTERS.join(', ')}, committed, priceVersion)
     VALUES (@month, @project, @user, @model, ${NAMED}, @committed, @priceVersion)
     ON CONFLICT DO UPDATE SET ${ADDS}, committed = committed + excluded.committed,
       priceVersion = coalesce(excluded.priceVersion, priceVersion) RETURNING spent`,
  );
  const addDaily = db.prepare<Scope & Counted & { day: string }>(
    `INSERT INTO daily (day, project, user, model, ${COUNTERS.join(', ')})
     VALUES (@day, @project, @user, @model, ${NAMED}) ON CONFLICT DO UPDATE SET ${ADDS}`,
  );
  // One row per call in flight, listing the holds it still has: a transaction checks and updates it
  // together with the usage rows, so every write of a call applies once (see the port).
  const putCall = db.prepare<{ callId: string; month: string; day: string; expiresAt: number; pending: string }>(
    `INSERT OR IGNORE INTO calls (callId, month, day, expiresAt, pending) VALUES (@callId, @month, @day, @expiresAt, @pending)`,
  );
  type CallRow = { callId: string; month: string; day: string; expiresAt: number; pending: string };
  const takeCall = db.prepare<[string], CallRow>('DELETE FROM calls WHERE callId = ? RETURNING *');
  const expiredCalls = db.prepare<[string, number], { callId: string; month: string; day: string; pending: string }>(
    'SELECT callId, month, day, pending FROM calls WHERE month = ? AND expiresAt < ?',
  );
  const getResponse = db.prepare<[string, number], { tokens: number }>('SELECT tokens FROM responses WHERE id = ? AND expiresAt >= ?');
  const putResponse = db.prepare<[string, number, number]>(
    'INSERT INTO responses (id, tokens, expiresAt) VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET tokens = excluded.tokens, expiresAt = excluded.expiresAt',
  );
  const dropOldResponses = db.prepare<[number]>('DELETE FROM responses WHERE expiresAt < ?');
  let remembered = 0;
  const listUsage = db.prepare<[string], UsageRecord>('SELECT * FROM usage WHERE month = ?');
  // Days of a month sort between `YYYY-MM-` and `YYYY-MM.` ('.' follows '-'): an index range scan.
  const listDaily = db.prepare<[string, string], DailyRow>('SELECT * FROM daily WHERE day > ? AND day < ?');
  // Reservations alone create rows too; a month "has usage" once something was settled in it.
  const listMonths = db.prepare<[], { month: string }>(
    'SELECT DISTINCT month FROM usage WHERE requests > 0 OR errors > 0 OR cacheHits > 0 ORDER BY month DESC',
  );
  const putLimit = db.prepare<Scope & { nano: Nano }>(
    'INSERT INTO limits (project, user, model, nano) VALUES (@project, @user, @model, @nano) ON CONFLICT DO UPDATE SET nano = excluded.nano',
  );
  const deleteLimit = db.prepare<Scope>(`DELETE FROM limits WHERE ${SCOPE_WHERE}`);
  const allLimits = db.prepare<[], Scope & { nano: Nano }>('SELECT * FROM limits');
  const PRICE_FIELDS = ['input', 'cachedInput', 'output', 'updatedAt', ...Object.keys(PRICE_RATE_COLUMNS)];
  const putPrice = db.prepare<PriceRecord>(
    `INSERT INTO prices (model, ${PRICE_FIELDS.join(', ')}) VALUES (@model, ${PRICE_FIELDS.map((f) => `@${f}`).join(', ')})
     ON CONFLICT DO UPDATE SET ${PRICE_FIELDS.map((f) => `${f} = excluded.${f}`).join(', ')}`,
  );
  const deletePrice = db.prepare<[string]>('DELETE FROM prices WHERE model = ?');
  const getMembers = db.prepare<[string], { member: string }>('SELECT member FROM members WHERE project = ?');
  const putMember = db.prepare<[string, string]>('INSERT OR IGNORE INTO members (project, member) VALUES (?, ?)');
  const deleteMember = db.prepare<[string, string]>('DELETE FROM members WHERE project = ? AND member = ?');
  const allMembers = db.prepare<[], { project: string; member: string }>('SELECT project, member FROM members ORDER BY project');
  const allPrices = db.prepare<[], PriceRecord>('SELECT * FROM prices ORDER BY model');

  const scopeParams = ({ project, user, model }: Scope): Scope => ({ project, user, model });

  const sameScope = (a: Scope, b: Scope) => a.project === b.project && a.user === b.user && a.model === b.model;

  /** Lazily, when a newer window or day comes: rate windows and day totals nobody reads any more. */
  function dropOld(r: Reservation): void {
    if (r.window !== undefined && r.window > newestWindow) {
      newestWindow = r.window;
      dropOldWindows.run(r.window - WINDOW_KEEP_MS);
      dropOldRateHolds.run(r.window - WINDOW_KEEP_MS);
    }
    if (r.day > newestDay) {
      newestDay = r.day;
      dropOldDays.run(new Date(Date.parse(r.day) - DAY_KEEP_MS).toISOString().slice(0, 10));
    }
  }

  const rateParams = (r: Reservation, scope: Scope) => ({ ...scopeParams(scope), window: r.window ?? 0 });

  /** Takes every hold, all or none: run by groupCommit, in a savepoint of its own. */
  const reserveAll = (r: Reservation): ReserveResult => {
    const rates = r.rates ?? [];
    const pending: Pending = r.holds.map(({ scope, amount }) => ({ scope: scopeParams(scope), amount }));
    // This call is on the ledger already: its reservation landed before and the reply was lost.
    const landed =
      r.holds.length > 0
        ? putCall.run({ callId: r.callId, month: r.month, day: r.day, expiresAt: r.expiresAt, pending: JSON.stringify(pending) }).changes === 0
        : rates.length > 0 && putRateHold.run({ callId: r.callId, ...rateParams(r, rates[0].scope), tokens: rates[0].tokens }).changes === 0;
    const withDays = r.holds.some((h) => h.dayLimit !== undefined);
    if (landed) {
      return {
        ok: true,
        committed: r.holds.map((h) => getCommitted.get({ month: r.month, ...scopeParams(h.scope) })?.committed ?? 0),
        ...(withDays ? { days: r.holds.map((h) => getDayCommitted.get({ day: r.day, ...scopeParams(h.scope) })?.committed ?? 0) } : {}),
        ...(rates.length ? { rates: rates.map((h) => getRate.get(rateParams(r, h.scope)) ?? { requests: 0, tokens: 0 }) } : {}),
      };
    }
    const committed: Nano[] = [];
    const days: Nano[] = [];
    r.holds.forEach((hold, index) => {
      const scope = scopeParams(hold.scope);
      const after = addCommitted.get({ month: r.month, ...scope, amount: hold.amount })!.committed;
      // Over the limit: the rollback takes this hold, the ones before it and the call row back.
      if (hold.limit !== undefined && after > hold.limit) throw new Refused({ ok: false, index, committed: after - hold.amount });
      const today = addDayCommitted.get({ day: r.day, ...scope, amount: hold.amount })!.committed;
      if (hold.dayLimit !== undefined && today > hold.dayLimit) {
        throw new Refused({ ok: false, index, committed: today - hold.amount, period: 'day' });
      }
      committed.push(after);
      days.push(today);
    });
    const uses: RateUse[] = rates.map((hold, rate) => {
      const params = rateParams(r, hold.scope);
      // The first marker was put above when the call has no USD holds.
      if (r.holds.length > 0 || rate > 0) putRateHold.run({ callId: r.callId, ...params, tokens: hold.tokens });
      const after = addRate.get({ ...params, requests: 1, tokens: hold.tokens })!;
      const before = { requests: after.requests - 1, tokens: after.tokens - hold.tokens };
      if ((hold.rpm !== undefined && after.requests > hold.rpm) || (hold.tpm !== undefined && after.tokens > hold.tpm)) {
        throw new Refused({ ok: false, rate, use: before });
      }
      return after;
    });
    dropOld(r);
    return { ok: true, committed, ...(withDays ? { days } : {}), ...(rates.length ? { rates: uses } : {}) };
  };

  /** Gives back (release) or settles (tokens: actual minus reserved) the rate holds a call still has. */
  function applyRates(callId: string, scopes: Scope[], change: (hold: { tokens: number }, i: number) => RateUse): void {
    scopes.forEach((scope, i) => {
      const hold = takeRateHold.get({ callId, ...scopeParams(scope) });
      if (hold) addRate.get({ ...scopeParams(scope), window: hold.window, ...change(hold, i) });
    });
  }

  /** Takes the holds of `scopes` off a call's pending list; returns those it still had. */
  function takePending(callId: string, scopes: Scope[]): Pending {
    // Taken whole (the usual case: a settlement of every row); what is left goes back in.
    const row = takeCall.get(callId);
    if (!row) return [];
    const pending: Pending = JSON.parse(row.pending);
    const taken = pending.filter((p) => scopes.some((s) => sameScope(s, p.scope)));
    const left = pending.filter((p) => !taken.includes(p));
    if (left.length > 0) putCall.run({ ...row, pending: JSON.stringify(left) });
    return taken;
  }

  const releaseAll = db.transaction((r: Reservation) => {
    for (const { scope, amount } of takePending(r.callId, r.holds.map((h) => h.scope))) {
      addCommitted.get({ month: r.month, ...scope, amount: -amount });
      addDayCommitted.get({ day: r.day, ...scope, amount: -amount });
    }
    applyRates(r.callId, (r.rates ?? []).map((h) => h.scope), (hold) => ({ requests: -1, tokens: -hold.tokens }));
  });

  /** Run by groupCommit, in a savepoint of its own. */
  const settleAll = (s: Settlement): BudgetAlert[] => {
    const counts = Object.fromEntries(COUNTERS.map((c) => [c, s.delta[c]])) as Counted;
    const priceVersion = s.priceVersion ?? null;
    // Rows no longer pending were settled (or charged as expired) already.
    const taken = takePending(s.callId, s.rows.map((row) => row.scope));
    const spentNow = new Map<SettledRow, { month: Nano; day: Nano }>();
    for (const row of s.rows) {
      if (!taken.some((p) => sameScope(p.scope, row.scope))) continue;
      const params = { month: s.month, ...scopeParams(row.scope), ...counts, committed: row.committed, priceVersion };
      const month = row.watch?.length ? addUsageSpent.get(params)!.spent : (addUsage.run(params), 0);
      const settled = row.committed !== 0 || s.delta.spent !== 0
        ? addDaySettled.get({ day: s.day, ...scopeParams(row.scope), committed: row.committed, spent: s.delta.spent })!.spent
        : undefined;
      const day = s.delta.spent !== 0 ? settled : undefined;
      if (row.daily) addDaily.run({ day: s.day, ...scopeParams(row.scope), ...counts });
      if (row.watch?.length && day !== undefined) spentNow.set(row, { month, day });
    }
    const rates = s.rates ?? [];
    applyRates(s.callId, rates.map((r) => r.scope), (_, i) => ({ requests: 0, tokens: rates[i].tokens }));
    // Applied now or by an earlier try: the rows as they are decide which thresholds are reached.
    return s.rows.flatMap((row) => markReached(s, row, spentNow.get(row)));
  };

  /**
   * Marks each threshold a watched row's settled spend has reached that is not marked against this
   * limit yet. Inside the settlement's transaction, so concurrent settlements mark it once; a mark
   * this call made before (a retry after a lost reply) is answered again.
   */
  function markReached(s: Settlement, row: SettledRow, known?: { month: Nano; day: Nano }): BudgetAlert[] {
    if (!row.watch?.length) return [];
    const scope = scopeParams(row.scope);
    const spent = known ?? getSpent.get({ month: s.month, day: s.day, ...scope })!;
    return row.watch.flatMap((watch) =>
      reached(watch, watch.period === 'month' ? spent.month : spent.day).flatMap((threshold) => {
        const day = watch.period === 'day' ? s.day : '';
        const mark = getMark.get({ month: s.month, day, threshold, ...scope });
        if (mark && mark.limitNano === watch.limit && mark.callId !== s.callId) return [];
        const record = mark && mark.limitNano === watch.limit
          ? mark
          : { month: s.month, day, ...scope, threshold, limitNano: watch.limit, spent: watch.period === 'month' ? spent.month : spent.day, at: Date.now(), callId: s.callId };
        if (record !== mark) putMark.run(record);
        return [toAlert(record)];
      }),
    );
  }
  const setLimitAll = db.transaction((scope: Scope, limit: number, kind: LimitKind, alerts: readonly number[] | undefined) => {
    const params = scopeParams(scope);
    if (kind === 'month') putLimit.run({ ...params, nano: limit });
    else putScopeLimit.run({ ...params, kind, value: limit });
    if (alerts !== undefined && (kind === 'month' || kind === 'day')) putAlerts.run({ ...params, kind, alerts: formatAlerts(alerts) });
  });

  /** A limit's alert thresholds go with it. */
  const removeLimitAll = db.transaction((scope: Scope, kind: LimitKind | undefined): boolean => {
    const params = scopeParams(scope);
    if (kind === 'month' || kind === 'day') deleteAlerts.run({ ...params, kind });
    if (kind === 'month') return deleteLimit.run(params).changes > 0;
    if (kind) return deleteScopeLimit.run({ ...params, kind }).changes > 0;
    deleteAllAlerts.run(params);
    return deleteLimit.run(params).changes + deleteScopeLimits.run(params).changes > 0;
  });

  /** Run by groupCommit, in a savepoint of its own. */
  const hitAll = (month: string, day: string, scope: Scope, saved: Nano) => {
    const counts = { ...ZERO_COUNTS, cacheHits: 1, saved };
    addUsage.run({ month, ...scopeParams(scope), ...counts, committed: 0, priceVersion: null });
    addDaily.run({ day, ...scopeParams(scope), ...counts });
  };

  const commits = groupCommit(db);

  return {
    async read(scopes, models, responses) {
      const now = Date.now();
      const others = scopes.map((scope) => new Map(getScopeLimits.all(scopeParams(scope)).map((l) => [l.kind, l.value])));
      const thresholds = scopes.map((scope) => new Map(getAlerts.all(scopeParams(scope)).map((a) => [a.kind, storedAlerts(a.alerts)])));
      return {
        alerts: thresholds.map((t) => t.get('month')),
        dayAlerts: thresholds.map((t) => t.get('day')),
        limits: scopes.map((scope) => getLimit.get(scopeParams(scope))?.nano),
        dayLimits: others.map((l) => l.get('day')),
        rateLimits: others.map((l): RateLimits | undefined =>
          l.has('rpm') || l.has('tpm') ? { ...(l.has('rpm') ? { rpm: l.get('rpm') } : {}), ...(l.has('tpm') ? { tpm: l.get('tpm') } : {}) } : undefined,
        ),
        prices: models.map((model) => {
          const row = getPrice.get(model);
          return row && toPrice(row);
        }),
        members: new Map(
          [...new Set(scopes.map((s) => s.project))]
            .map((project) => [project, sortNames(getMembers.all(project).map((r) => r.member))] as const)
            .filter(([, members]) => members.length > 0),
        ),
        ...(responses ? { responses: responses.map((id) => getResponse.get(id, now)?.tokens) } : {}),
      };
    },
    async rememberResponse(id, tokens, expiresAt) {
      putResponse.run(id, tokens, expiresAt);
      // Expired ones go lazily, now and then, without a scan on every call.
      if (++remembered % 500 === 1) dropOldResponses.run(Date.now());
    },
    reserve: (reservation) =>
      commits.add(() => reserveAll(reservation)).catch((error: unknown) => {
        // A refusal took back its own holds; it is an answer, not a failure.
        if (error instanceof Refused) return error.result;
        throw error;
      }),
    async release(reservation) {
      releaseAll(reservation);
    },
    settle: (settlement) => commits.add(() => settleAll(settlement)),
    recordHit: (month, day, scope, saved) => commits.add(() => hitAll(month, day, scope, saved)),
    async expired(month, now) {
      return expiredCalls.all(month, now).flatMap(({ callId, month, day, pending }) =>
        (JSON.parse(pending) as Pending).map(({ scope, amount }): ExpiredHold => ({ callId, month, day, amount, scope })),
      );
    },
    async usage(month) {
      return sortUsage(listUsage.all(month).map(toUsage).filter(isListed));
    },
    async daily(month) {
      return sortDaily(listDaily.all(`${month}-`, `${month}.`));
    },
    async months() {
      return listMonths.all().map((r) => r.month);
    },
    async setLimit(scope, limit, kind = 'month', alerts) {
      setLimitAll(scope, limit, kind, alerts);
    },
    async removeLimit(scope, kind) {
      return removeLimitAll(scope, kind);
    },
    async listLimits(): Promise<LimitRow[]> {
      const rows = new Map<string, LimitRow>();
      const rowOf = (scope: Scope) => {
        const id = `${scope.project}#${scope.user}#${scope.model}`;
        if (!rows.has(id)) rows.set(id, { scope: scopeParams(scope) });
        return rows.get(id)!;
      };
      for (const { nano, ...scope } of allLimits.all()) rowOf(scope).limit = nano;
      for (const { kind, value, ...scope } of allScopeLimits.all()) {
        const row = rowOf(scope);
        if (kind === 'day') row.dayLimit = value;
        else if (kind === 'rpm' || kind === 'tpm') row[kind] = value;
      }
      for (const { kind, alerts, ...scope } of allAlerts.all()) {
        const row = rows.get(`${scope.project}#${scope.user}#${scope.model}`);
        const parsed = storedAlerts(alerts);
        if (!row || !parsed) continue;
        if (kind === 'month' && row.limit !== undefined) row.alerts = parsed;
        if (kind === 'day' && row.dayLimit !== undefined) row.dayAlerts = parsed;
      }
      return sortLimits([...rows.values()]);
    },
    async alerts(month) {
      return sortAlerts(monthMarks.all(month).map(toAlert));
    },
    async limitUse(scopes, _month, day, window) {
      return scopes.map((scope) => {
        const params = scopeParams(scope);
        const rate = getRate.get({ ...params, window }) ?? { requests: 0, tokens: 0 };
        return { day: getDayCommitted.get({ ...params, day })?.committed ?? 0, ...rate };
      });
    },
    async setPrice(price) {
      putPrice.run(toPriceRecord(price));
    },
    async removePrice(model) {
      return deletePrice.run(model).changes > 0;
    },
    async listPrices() {
      return allPrices.all().map(toPrice);
    },
    async addMember(project, member) {
      return putMember.run(project, member).changes > 0;
    },
    async removeMember(project, member) {
      return deleteMember.run(project, member).changes > 0;
    },
    async listMembers(): Promise<MemberRow[]> {
      const rows: MemberRow[] = [];
      for (const { project, member } of allMembers.all()) {
        if (rows.at(-1)?.project !== project) rows.push({ project, members: [] });
        rows.at(-1)!.members.push(member);
      }
      return sortMembers(rows);
    },
    async close() {
      commits.flush();
      db.close();
    },
  };
}

/**
 * One process owns the file while it is open: no file locks taken and dropped around every
 * transaction (12 fcntl calls per proxied call), and the WAL index lives in memory, not in a shared
 * -shm file. The lock is taken here, so a second stack on the same folder is refused at once with
 * a message that says why, not on its first call.
 */
function openExclusive(file: string): Database.Database {
  const db = new Database(file, { timeout: 0 });
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    db.pragma('journal_mode = WAL');
    // WAL + NORMAL: a crash of the process never loses a commit; only an OS crash may lose the last few.
    db.pragma('synchronous = NORMAL');
    db.exec('BEGIN EXCLUSIVE; COMMIT');
    return db;
  } catch (error) {
    db.close();
    if ((error as { code?: string }).code?.startsWith('SQLITE_BUSY')) {
      throw new Error(`The ledger ${file} is in use by another process (another local stack on the same folder?). Stop it, or start this one with its own folder.`);
    }
    throw error;
  }
}

/**
 * Ledger writes of one event-loop turn share one commit: a commit's WAL writes cost more than a
 * write's statements. Each write runs in its own savepoint when the turn's work is done, so one that
 * throws takes only its own changes back, and answers once the commit is on disk (in the WAL): a
 * reservation still answers before its call goes upstream, a moment later than alone. A failed commit
 * fails every write in it; each is retried as the port allows (every ledger write applies once).
 */
function groupCommit(db: Database.Database): { add<R>(apply: () => R): Promise<R>; flush(): void } {
  type Queued = { apply: () => unknown; resolve: (result: unknown) => void; reject: (error: unknown) => void; outcome?: { result: unknown } | { error: unknown } };
  let queue: Queued[] = [];
  // Nested in applyAll's transaction, better-sqlite3 runs this one as a savepoint.
  const inSavepoint = db.transaction((apply: () => unknown) => apply());
  const applyAll = db.transaction((items: Queued[]) => {
    for (const item of items) {
      try {
        item.outcome = { result: inSavepoint(item.apply) };
      } catch (error) {
        item.outcome = { error };
      }
    }
  });
  const flush = () => {
    const items = queue;
    if (items.length === 0) return;
    queue = [];
    try {
      applyAll(items);
    } catch (error) {
      for (const item of items) item.reject(error);
      return;
    }
    for (const { outcome, resolve, reject } of items) {
      if (outcome && 'result' in outcome) resolve(outcome.result);
      else reject(outcome?.error);
    }
  };
  return {
    add: <R>(apply: () => R) =>
      new Promise<R>((resolve, reject) => {
        // `resolve` gets what `apply` returned: R.
        if (queue.push({ apply, resolve: resolve as (result: unknown) => void, reject }) === 1) setImmediate(flush);
      }),
    flush,
  };
}

function toAlert(r: Scope & { month: string; day: string; threshold: number; limitNano: Nano; spent: Nano; at: number; callId: string }): BudgetAlert {
  return {
    scope: { project: r.project, user: r.user, model: r.model },
    period: r.day ? 'day' : 'month',
    month: r.month,
    ...(r.day ? { day: r.day } : {}),
    threshold: r.threshold,
    limit: r.limitNano,
    spent: r.spent,
    at: r.at,
    callId: r.callId,
  };
}

function toUsage({ priceVersion, ...row }: UsageRecord): UsageRow {
  return priceVersion === null ? row : { ...row, priceVersion };
}

function toPrice(r: PriceRecord): PriceOverride {
  const price: PriceOverride = { model: r.model, input: r.input, cachedInput: r.cachedInput ?? null, output: r.output, updatedAt: r.updatedAt };
  if (r.cacheWrite !== null) price.cacheWrite = r.cacheWrite;
  if (r.lcThreshold !== null) {
    price.longContext = { thresholdInputTokens: r.lcThreshold, input: r.lcInput!, cachedInput: r.lcCachedInput, output: r.lcOutput! };
  }
  const audio = Object.entries({ input: r.audioInput, cachedInput: r.audioCachedInput, output: r.audioOutput }).filter(([, v]) => v !== null);
  if (audio.length) price.audio = Object.fromEntries(audio);
  return price;
}

function toPriceRecord(p: PriceOverride): PriceRecord {
  const lc = p.longContext;
  return {
    model: p.model, input: p.input, cachedInput: p.cachedInput, output: p.output, updatedAt: p.updatedAt,
    cacheWrite: p.cacheWrite ?? null, lcThreshold: lc?.thresholdInputTokens ?? null, lcInput: lc?.input ?? null,
    lcCachedInput: lc?.cachedInput ?? null, lcOutput: lc?.output ?? null,
    audioInput: p.audio?.input ?? null, audioCachedInput: p.audio?.cachedInput ?? null, audioOutput: p.audio?.output ?? null,
  };
}
