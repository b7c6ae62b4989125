// The embedded ledger of the local stack: one SQLite file, synchronous better-sqlite3 calls wrapped
// in promises so it fits the same port as DynamoDB. Every multi-row change is one transaction.
import Database from 'better-sqlite3';
import type {
  DailyRow,
  ExpiredHold,
  Ledger,
  LimitRow,
  Nano,
  PriceOverride,
  Reservation,
  ReserveResult,
  Scope,
  Settlement,
  UsageRow,
} from '../core/ports.ts';
import { COUNTERS, isListed, sortDaily, sortLimits, sortUsage } from './ledger-common.ts';

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
CREATE TABLE IF NOT EXISTS holds (
  callId TEXT NOT NULL, month TEXT NOT NULL, project TEXT NOT NULL, user TEXT NOT NULL, model TEXT NOT NULL,
  amount INTEGER NOT NULL, expiresAt INTEGER NOT NULL, day TEXT NOT NULL,
  PRIMARY KEY (callId, month, project, user, model)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS holds_by_deadline ON holds (month, expiresAt);
CREATE TABLE IF NOT EXISTS limits (
  project TEXT NOT NULL, user TEXT NOT NULL, model TEXT NOT NULL, nano INTEGER NOT NULL,
  PRIMARY KEY (project, user, model)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS prices (
  model TEXT PRIMARY KEY NOT NULL, input REAL NOT NULL, cachedInput REAL, output REAL NOT NULL,
  updatedAt TEXT NOT NULL
);`;

const SCOPE_WHERE = 'project = @project AND user = @user AND model = @model';
const ADDS = COUNTERS.map((c) => `${c} = ${c} + excluded.${c}`).join(', ');
const NAMED = COUNTERS.map((c) => `@${c}`).join(', ');

type Counted = Record<(typeof COUNTERS)[number], number>;
type HoldKey = Scope & { callId: string; month: string };
const ZERO_COUNTS = Object.fromEntries(COUNTERS.map((c) => [c, 0])) as Counted;
type UsageRecord = Omit<UsageRow, 'priceVersion'> & { priceVersion: string | null };
type PriceRecord = Omit<PriceOverride, 'cachedInput'> & { cachedInput: number | null };

/** Files written before a counter existed get its column (every counter defaults to 0). */
function migrate(db: Database.Database): void {
  for (const table of ['usage', 'daily']) {
    const columns = new Set(db.prepare<[], { name: string }>(`SELECT name FROM pragma_table_info('${table}')`).all().map((c) => c.name));
    for (const counter of COUNTERS) {
      if (!columns.has(counter)) db.exec(`ALTER TABLE ${table} ADD COLUMN ${counter} INTEGER NOT NULL DEFAULT 0`);
    }
  }
}

/** Thrown out of the reserve transaction so better-sqlite3 rolls back the holds already taken. */
class Refused {
  constructor(readonly result: ReserveResult) {}
}

export function openSqliteLedger(file: string): Ledger {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  // WAL + NORMAL: a crash of the process never loses a commit; only an OS crash may lose the last few.
  db.pragma('synchronous = NORMAL');
  // The CLI or a second process may read the same file while the local stack writes.
  db.pragma('busy_timeout = 5000');
  db.exec(SCHEMA);
  migrate(db);

  const getLimit = db.prepare<Scope, { nano: Nano }>(`SELECT nano FROM limits WHERE ${SCOPE_WHERE}`);
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
  const addDaily = db.prepare<Scope & Counted & { day: string }>(
    `INSERT INTO daily (day, project, user, model, ${COUNTERS.join(', ')})
     VALUES (@day, @project, @user, @model, ${NAMED}) ON CONFLICT DO UPDATE SET ${ADDS}`,
  );
  const HOLD_KEY = `callId = @callId AND month = @month AND ${SCOPE_WHERE}`;
  const getHold = db.prepare<HoldKey, { amount: Nano }>(`SELECT amount FROM holds WHERE ${HOLD_KEY}`);
  const putHold = db.prepare<HoldKey & { amount: Nano; expiresAt: number; day: string }>(
    `INSERT INTO holds (callId, month, project, user, model, amount, expiresAt, day)
     VALUES (@callId, @month, @project, @user, @model, @amount, @expiresAt, @day)`,
  );
  const takeHold = db.prepare<HoldKey, { amount: Nano }>(`DELETE FROM holds WHERE ${HOLD_KEY} RETURNING amount`);
  const expiredHolds = db.prepare<[string, number], ExpiredHold & Scope>(
    'SELECT callId, month, day, project, user, model, amount FROM holds WHERE month = ? AND expiresAt < ?',
  );
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
  const putPrice = db.prepare<PriceRecord>(
    `INSERT INTO prices (model, input, cachedInput, output, updatedAt) VALUES (@model, @input, @cachedInput, @output, @updatedAt)
     ON CONFLICT DO UPDATE SET input = excluded.input, cachedInput = excluded.cachedInput,
       output = excluded.output, updatedAt = excluded.updatedAt`,
  );
  const deletePrice = db.prepare<[string]>('DELETE FROM prices WHERE model = ?');
  const allPrices = db.prepare<[], PriceRecord>('SELECT * FROM prices ORDER BY model');

  const scopeParams = ({ project, user, model }: Scope): Scope => ({ project, user, model });

  const holdKey = (callId: string, month: string, scope: Scope): HoldKey => ({ callId, month, ...scopeParams(scope) });

  const reserveAll = db.transaction((r: Reservation): ReserveResult => {
    const committed: Nano[] = [];
    r.holds.forEach((hold, index) => {
      const key = { month: r.month, ...scopeParams(hold.scope) };
      const before = getCommitted.get(key)?.committed ?? 0;
      // This call holds the row already: its reservation landed before and the reply was lost.
      if (getHold.get(holdKey(r.callId, r.month, hold.scope))) return committed.push(before);
      if (hold.limit !== undefined && before + hold.amount > hold.limit) {
        throw new Refused({ ok: false, index, committed: before });
      }
      putHold.run({ ...holdKey(r.callId, r.month, hold.scope), amount: hold.amount, expiresAt: r.expiresAt, day: r.day });
      committed.push(addCommitted.get({ ...key, amount: hold.amount })!.committed);
    });
    return { ok: true, committed };
  });

  const releaseAll = db.transaction((r: Reservation) => {
    for (const hold of r.holds) {
      const taken = takeHold.get(holdKey(r.callId, r.month, hold.scope));
      if (taken) addCommitted.get({ month: r.month, ...scopeParams(hold.scope), amount: -taken.amount });
    }
  });

  const settleAll = db.transaction((s: Settlement) => {
    const counts = Object.fromEntries(COUNTERS.map((c) => [c, s.delta[c]])) as Counted;
    const priceVersion = s.priceVersion ?? null;
    for (const row of s.rows) {
      // No marker: this row was settled (or charged as expired) already.
      if (!takeHold.get(holdKey(s.callId, s.month, row.scope))) continue;
      addUsage.run({ month: s.month, ...scopeParams(row.scope), ...counts, committed: row.committed, priceVersion });
      if (row.daily) addDaily.run({ day: s.day, ...scopeParams(row.scope), ...counts });
    }
  });

  const hitAll = db.transaction((month: string, day: string, scope: Scope, saved: Nano) => {
    const counts = { ...ZERO_COUNTS, cacheHits: 1, saved };
    addUsage.run({ month, ...scopeParams(scope), ...counts, committed: 0, priceVersion: null });
    addDaily.run({ day, ...scopeParams(scope), ...counts });
  });

  return {
    async read(scopes, models) {
      return {
        limits: scopes.map((scope) => getLimit.get(scopeParams(scope))?.nano),
        prices: models.map((model) => {
          const row = getPrice.get(model);
          return row && toPrice(row);
        }),
      };
    },
    async reserve(reservation) {
      try {
        return reserveAll(reservation);
      } catch (error) {
        if (error instanceof Refused) return error.result;
        throw error;
      }
    },
    async release(reservation) {
      releaseAll(reservation);
    },
    async settle(settlement) {
      settleAll(settlement);
    },
    async recordHit(month, day, scope, saved) {
      hitAll(month, day, scope, saved);
    },
    async expired(month, now) {
      return expiredHolds.all(month, now).map(({ callId, month, day, amount, ...scope }) => ({
        callId, month, day, amount, scope: scopeParams(scope),
      }));
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
    async setLimit(scope, limit) {
      putLimit.run({ ...scopeParams(scope), nano: limit });
    },
    async removeLimit(scope) {
      return deleteLimit.run(scopeParams(scope)).changes > 0;
    },
    async listLimits(): Promise<LimitRow[]> {
      return sortLimits(allLimits.all().map(({ nano, ...scope }) => ({ scope: scopeParams(scope), limit: nano })));
    },
    async setPrice(price) {
      putPrice.run(toPrice(price));
    },
    async removePrice(model) {
      return deletePrice.run(model).changes > 0;
    },
    async listPrices() {
      return allPrices.all().map(toPrice);
    },
    async close() {
      db.close();
    },
  };
}

function toUsage({ priceVersion, ...row }: UsageRecord): UsageRow {
  return priceVersion === null ? row : { ...row, priceVersion };
}

function toPrice({ model, input, cachedInput, output, updatedAt }: PriceRecord): PriceOverride {
  return { model, input, cachedInput: cachedInput ?? null, output, updatedAt };
}
