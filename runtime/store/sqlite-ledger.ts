// The embedded ledger of the local stack: one SQLite file, synchronous better-sqlite3 calls wrapped
// in promises so it fits the same port as DynamoDB. Every multi-row change is one transaction.
import Database from 'better-sqlite3';
import type {
  DailyRow,
  Hold,
  Ledger,
  LimitRow,
  Nano,
  PriceOverride,
  ReserveResult,
  Scope,
  Settlement,
  UsageRow,
} from '../core/ports.ts';
import { COUNTERS, detailScope, sortDaily, sortLimits, sortUsage } from './ledger-common.ts';

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
type UsageRecord = Omit<UsageRow, 'priceVersion'> & { priceVersion: string | null };
type PriceRecord = Omit<PriceOverride, 'cachedInput'> & { cachedInput: number | null };

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
  const listUsage = db.prepare<[string], UsageRecord>('SELECT * FROM usage WHERE month = ?');
  // Days of a month sort between `YYYY-MM-` and `YYYY-MM.` ('.' follows '-'): an index range scan.
  const listDaily = db.prepare<[string, string], DailyRow>('SELECT * FROM daily WHERE day > ? AND day < ?');
  // Reservations alone create rows too; a month "has usage" once something was settled in it.
  const listMonths = db.prepare<[], { month: string }>(
    'SELECT DISTINCT month FROM usage WHERE requests > 0 OR cacheHits > 0 ORDER BY month DESC',
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

  const reserveAll = db.transaction((month: string, holds: Hold[]): ReserveResult => {
    const committed: Nano[] = [];
    holds.forEach((hold, index) => {
      const key = { month, ...scopeParams(hold.scope) };
      const before = getCommitted.get(key)?.committed ?? 0;
      if (before + hold.amount > hold.limit) throw new Refused({ ok: false, index, committed: before });
      committed.push(addCommitted.get({ ...key, amount: hold.amount })!.committed);
    });
    return { ok: true, committed };
  });

  const settleAll = db.transaction((s: Settlement) => {
    const counts = Object.fromEntries(COUNTERS.map((c) => [c, s.delta[c]])) as Counted;
    const priceVersion = s.priceVersion ?? null;
    for (const { scope, release } of s.scopes) {
      const committed = s.delta.spent - release;
      addUsage.run({ month: s.month, ...scopeParams(scope), ...counts, committed, priceVersion });
    }
    const detail = detailScope(s.scopes);
    if (detail) addDaily.run({ day: s.day, ...scopeParams(detail), ...counts });
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
    async reserve(month, holds) {
      try {
        return reserveAll(month, holds);
      } catch (error) {
        if (error instanceof Refused) return error.result;
        throw error;
      }
    },
    async settle(settlement) {
      settleAll(settlement);
    },
    async usage(month) {
      return sortUsage(listUsage.all(month).map(toUsage));
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
