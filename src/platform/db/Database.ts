// The shared database handle every store takes: the knex instance, its dialect, transactions, group commits, close.
import type { Knex } from 'knex';
import { migrateLatest, openDatabase, type DatabaseOptions, type Dialect } from './db.js';
import { GroupCommitter } from './groupCommit.js';

export class Database {
  private constructor(
    readonly knex: Knex,
    readonly dialect: Dialect,
    /** Group commits in flight at once: 1 on SQLite (one writer), up to `commitConcurrency` on MySQL/MariaDB. */
    readonly commitConcurrency: number,
  ) {}

  /**
   * Deletes up to `limit` rows of `table` whose `column` is before `value` (`<`, or `<=` with `inclusive`): their
   * keys are read by an indexed range first, since DELETE ... LIMIT is not portable, then deleted by key with the
   * condition repeated, so a row changed in between stays. Returns how many went; the sweeps call it in batches.
   */
  async deleteBefore(table: string, key: string, column: string, value: number, limit: number, inclusive = false): Promise<number> {
    const op = inclusive ? '<=' : '<';
    const keys = ((await this.knex(table).select(key).where(column, op, value).limit(limit)) as Record<string, unknown>[]).map(
      (r) => r[key],
    );
    if (keys.length === 0) return 0;
    return this.knex(table)
      .whereIn(key, keys as string[])
      .andWhere(column, op, value)
      .delete();
  }

  /** Opens the database and brings its schema up to date. */
  static async open(opts: DatabaseOptions): Promise<Database> {
    const { knex, dialect } = openDatabase(opts);
    try {
      await migrateLatest(knex);
    } catch (err) {
      await knex.destroy();
      throw err;
    }
    // MySQL commits several group commits in parallel on its pool, but always leaves one connection for binds,
    // the outboxes and look-ups (a pool of one is shared, turn by turn). One at a time makes bigger batches and
    // prompter email under full load, but answers fewer store-invites a second for about the same CPU
    // (docs/performance.md), hence 4 by default.
    const commits = dialect === 'sqlite' ? 1 : Math.max(1, Math.min(opts.commitConcurrency ?? 4, (opts.poolMax ?? 8) - 1));
    return new Database(knex, dialect, commits);
  }

  get sqlite(): boolean {
    return this.dialect === 'sqlite';
  }

  /**
   * `readCommitted`: on MySQL/MariaDB the transaction runs at READ COMMITTED, where locking reads and updates
   * lock the rows they touch but not the gaps between them (REPEATABLE READ's gap locks made unrelated binds and
   * outbox claims wait for, or deadlock with, one another). SQLite has one writer and ignores it.
   */
  transaction<T>(work: (trx: Knex.Transaction) => Promise<T>, opts: { readCommitted?: boolean } = {}): Promise<T> {
    return this.knex.transaction(work, opts.readCommitted && this.dialect === 'mysql' ? { isolationLevel: 'read committed' } : undefined);
  }

  /** Items submitted in one event-loop turn are written by `write` in one transaction (groupCommit.ts). */
  groupCommitter<T>(write: (trx: Knex.Transaction, items: T[]) => Promise<void>, maxBatch = 256): GroupCommitter<T> {
    return new GroupCommitter(
      (items) => this.transaction((trx) => write(trx, items)),
      this.commitConcurrency,
      maxBatch,
      isDatabaseUnavailable,
    );
  }

  /**
   * A light check that the database is back, for the outage tracker; rejects while it is not. MySQL/MariaDB:
   * `select 1` on a pooled connection. SQLite: take the write lock and drop it at once, without waiting
   * (busy_timeout 0 for the probe): in WAL mode reads go on while another process holds the lock, so only a write
   * shows that it still does, and a probe that waited would stop the event loop (better-sqlite3 waits on it).
   */
  async probe(): Promise<void> {
    if (this.dialect === 'mysql') {
      await this.knex.raw('select 1');
      return;
    }
    // The raw connection, held for the probe: nothing else can run a statement inside its transaction.
    const client = this.knex.client as {
      acquireConnection(): Promise<SqliteProbeConnection>;
      releaseConnection(conn: SqliteProbeConnection): Promise<void>;
    };
    const conn = await client.acquireConnection();
    try {
      const wait = conn.pragma('busy_timeout', { simple: true }) as number;
      conn.pragma('busy_timeout = 0');
      try {
        conn.exec('BEGIN IMMEDIATE');
        conn.exec('ROLLBACK');
      } finally {
        conn.pragma(`busy_timeout = ${wait}`);
      }
    } finally {
      await client.releaseConnection(conn);
    }
  }

  /** knex's connection pool (tarn) as metrics show it; SQLite's holds its one connection. */
  poolUse(): { used: number; free: number; pendingAcquires: number; max: number } {
    const pool = (this.knex.client as { pool?: TarnPool }).pool;
    if (!pool) return { used: 0, free: 0, pendingAcquires: 0, max: 0 };
    return { used: pool.numUsed(), free: pool.numFree(), pendingAcquires: pool.numPendingAcquires(), max: pool.max };
  }

  close(): Promise<void> {
    return this.knex.destroy();
  }
}

interface TarnPool {
  max: number;
  numUsed(): number;
  numFree(): number;
  numPendingAcquires(): number;
}

/**
 * Errors that say the database is unavailable rather than that something is wrong with the request or the data: it
 * could not be reached or dropped the connection, no pooled connection came free in time, or (SQLite) another process
 * held the write lock past busy_timeout, or the disk failed or filled up. A request failing with one answers 503 and
 * counts towards an outage (OutageTracker). A group commit failing with one is failed whole rather than retried in
 * halves, since no row caused it (and on SQLite each half would wait out busy_timeout again). Errors wrapped as
 * `cause` are looked through.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e = err as ErrorLike | undefined, depth = 0; e && typeof e === 'object' && depth < 4; e = e.cause as ErrorLike, depth++) {
    if (e.name === 'KnexTimeoutError' || e.fatal === true) return true; // pool acquire timeout; mysql2: connection unusable
    // SQLite reports extended codes (SQLITE_IOERR_WRITE, SQLITE_BUSY_SNAPSHOT, ...): matched by their primary code.
    if (typeof e.code === 'string' && (UNAVAILABLE_CODES.has(e.code) || /^SQLITE_(BUSY|CANTOPEN|IOERR|FULL)(_|$)/.test(e.code)))
      return true;
  }
  return false;
}

interface ErrorLike {
  name?: unknown;
  code?: unknown;
  fatal?: unknown;
  cause?: unknown;
}

const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'ER_CON_COUNT_ERROR',
  'ER_SERVER_SHUTDOWN',
  'ER_CONNECTION_KILLED',
]);

interface SqliteProbeConnection {
  pragma(source: string, options?: { simple: boolean }): unknown;
  exec(sql: string): unknown;
}

/**
 * Deletes in batches of `batch` until one comes back short; returns the total. Each batch is its own statement
 * (or transaction), so a sweep of a large backlog never holds the database for long.
 */
export async function deleteInBatches(deleteBatch: (limit: number) => Promise<number>, batch = 1000): Promise<number> {
  let total = 0;
  for (;;) {
    const n = await deleteBatch(batch);
    total += n;
    if (n < batch) return total;
  }
}
