// Opens the database named by the config: SQLite (embedded default) or MySQL/MariaDB.
import { closeSync, fdatasync, mkdirSync, openSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import knexFactory, { type Knex } from 'knex';
import { migrationSource } from './migrations/index.js';
import type { Logger } from '../logger.js';

export type Dialect = 'sqlite' | 'mysql';

export interface DatabaseOptions {
  /** `mysql://user:pass@host:3306/db`, `mariadb://...`, `sqlite:/path/file.db`, or a plain file path. */
  url: string;
  /**
   * SQLite durability. `full`: a write is acknowledged only once it is on disk (it survives power loss), and
   * the disk flush runs off the event loop (see durableCommits). `normal`: no flush per commit; the last commits
   * may be lost on power loss (never on a process crash), and the database is never corrupted.
   */
  sqliteSynchronous?: 'full' | 'normal';
  /**
   * SQLite page cache, MiB (default 4; SQLite's own default is 2). It counts in RSS, and a larger cache fills up
   * under store-invite load while buying little CPU even with a million stored invitations (docs/performance.md).
   */
  sqliteCacheMb?: number;
  /**
   * WAL pages after which a COMMIT also checkpoints (SQLite's wal_autocheckpoint; its default is 1,000).
   * Default 2,000 (~8 MiB of WAL file): see SQLITE_WAL_AUTOCHECKPOINT.
   */
  sqliteWalAutocheckpoint?: number;
  /** How `full` flushes the SQLite WAL file (tests replace it to observe when commits resolve). */
  walFlush?: WalFlush;
  /** MySQL connection pool size. */
  poolMax?: number;
  /**
   * How long a query waits for a pooled connection (on MySQL/MariaDB this includes connecting) before it fails with
   * a KnexTimeoutError, which the request answers as 503 (default 10 s). SQLite's one connection is held by each
   * statement and its WAL flush, so a stalled disk shows up here too.
   */
  acquireTimeoutMs?: number;
  /**
   * SQLite's busy_timeout: how long a write waits for the lock another process holds (a backup, the sqlite3 shell)
   * before it fails with SQLITE_BUSY (default 5 s). better-sqlite3 waits on the event loop, so nothing else runs
   * meanwhile.
   */
  sqliteBusyTimeoutMs?: number;
  /**
   * MySQL/MariaDB: store-invite group commits in flight at once (SQLite: always 1, it has one writer).
   * Default 4: see Database.open.
   */
  commitConcurrency?: number;
  /** Where knex's own messages go (see knexLog); without it, knex prints them to stdout. */
  log?: Logger;
}

/** Defaults of DatabaseOptions.acquireTimeoutMs and sqliteBusyTimeoutMs. */
export const ACQUIRE_TIMEOUT_MS = 10_000;
export const SQLITE_BUSY_TIMEOUT_MS = 5_000;

export function dialectOf(url: string): Dialect {
  return /^(mysql|mariadb):\/\//i.test(url) ? 'mysql' : 'sqlite';
}

export function openDatabase(opts: DatabaseOptions): { knex: Knex; dialect: Dialect } {
  if (dialectOf(opts.url) === 'mysql') {
    const u = new URL(opts.url);
    const knex = knexFactory({
      client: 'mysql2',
      connection: {
        // An IPv6 literal comes bracketed from URL ([::1]); the socket wants it bare.
        host: u.hostname.replace(/^\[(.*)\]$/, '$1'),
        port: u.port ? Number(u.port) : 3306,
        user: decodeURIComponent(u.username),
        password: decodeURIComponent(u.password),
        database: decodeURIComponent(u.pathname.replace(/^\//, '')),
        charset: 'utf8mb4',
        supportBigNumbers: true,
        timezone: 'Z',
      },
      pool: { min: 0, max: opts.poolMax ?? 8 },
      // Error messages must not embed bound values: they hold tokens, keys and addresses.
      compileSqlOnError: false,
      acquireConnectionTimeout: opts.acquireTimeoutMs ?? ACQUIRE_TIMEOUT_MS,
      log: opts.log && knexLog(opts.log),
    });
    return { knex, dialect: 'mysql' };
  }
  const filename = resolve(opts.url.replace(/^sqlite:(\/\/)?/i, ''));
  mkdirSync(dirname(filename), { recursive: true });
  // Both modes run SQLite with synchronous=NORMAL; `full` adds the off-thread WAL flush before a commit resolves
  // (see durableCommits).
  const durable = (opts.sqliteSynchronous ?? 'full') === 'full';
  const walPath = `${filename}-wal`;
  const knex = knexFactory({
    client: 'better-sqlite3',
    connection: { filename },
    useNullAsDefault: true,
    compileSqlOnError: false,
    // knex's default is a minute: a request would wait that long behind a statement that does not end.
    acquireConnectionTimeout: opts.acquireTimeoutMs ?? ACQUIRE_TIMEOUT_MS,
    log: opts.log && knexLog(opts.log),
    pool: {
      min: 1,
      max: 1,
      afterCreate: (conn: SqliteConnection, done: (err: Error | null, conn: unknown) => void) => {
        try {
          let flush: (() => Promise<void>) | undefined;
          if (durable && opts.walFlush) {
            const replaced = opts.walFlush;
            flush = () => replaced(walPath);
          } else if (durable) {
            const wal = new WalFile(walPath);
            flush = () => wal.flush();
            const close = conn.close.bind(conn);
            conn.close = () => {
              wal.close();
              return close();
            };
          }
          cachePreparedStatements(conn, flush);
          conn.pragma('journal_mode = WAL');
          conn.pragma('synchronous = NORMAL');
          const walPages = Math.round(opts.sqliteWalAutocheckpoint ?? SQLITE_WAL_AUTOCHECKPOINT);
          conn.pragma(`wal_autocheckpoint = ${walPages}`);
          // The WAL file is reused, not shrunk, after a checkpoint; one grown past its usual size by a big
          // transaction (a migration's CREATE INDEX) or a long reader (a backup) is cut back to twice that.
          conn.pragma(`journal_size_limit = ${walPages * 2 * 4096}`);
          conn.pragma(`cache_size = -${Math.round((opts.sqliteCacheMb ?? 4) * 1024)}`);
          conn.pragma('foreign_keys = ON');
          conn.pragma(`busy_timeout = ${Math.round(opts.sqliteBusyTimeoutMs ?? SQLITE_BUSY_TIMEOUT_MS)}`);
          // SQLite's scratch space in memory, not in files under /var/tmp. Every multi-row INSERT inside a
          // transaction into a table with a UNIQUE index keeps a statement journal (to undo just that statement),
          // which would otherwise be a file created, written and unlinked on the event loop for each group commit.
          // What runs against the database at run time is bounded batches, so that memory is small; migrations,
          // whose CREATE INDEX sorts a whole table, run with scratch files (migrateLatest).
          conn.pragma(`temp_store = ${RUNTIME_TEMP_STORE}`);
          done(null, conn);
        } catch (err) {
          done(err as Error, conn);
        }
      },
    },
  });
  return { knex, dialect: 'sqlite' };
}

/** knex's messages about connections that failed or died: one per attempt while the database is gone. */
const CONNECTION_NOISE = /^(Acquire connection error|Connection Error): /;

/**
 * knex's own messages, which it would print to stdout, with a stack for every failed connection attempt (one per
 * request while the database is down). They go into Tessera's log, first line only: failed connections at debug
 * (the outage tracker reports the outage, once), anything else as a warning. knex's debug output (queries with their
 * bound values) is never logged.
 */
function knexLog(log: Logger): Knex.Config['log'] {
  const firstLine = (message: unknown) => String(message).split('\n', 1)[0]!;
  return {
    debug: () => {},
    warn: (message: unknown) => {
      const line = firstLine(message);
      if (CONNECTION_NOISE.test(line)) log.debug(`knex: ${line}`);
      else log.warn(`knex: ${line}`);
    },
    error: (message: unknown) => log.error(`knex: ${firstLine(message)}`),
    deprecate: (method: string, alternative: string) => log.warn(`knex: ${method} is deprecated; use ${alternative}`),
  };
}

interface SqliteConnection {
  pragma(s: string): unknown;
  prepare(sql: string): unknown;
  close(): unknown;
  /** better-sqlite3: a transaction is open on this connection. */
  readonly inTransaction: boolean;
}

interface SqliteStatement {
  /** better-sqlite3: the statement writes nothing (true for BEGIN/COMMIT/ROLLBACK too, per SQLite). */
  readonly readonly: boolean;
  run(...args: unknown[]): unknown;
  all(...args: unknown[]): unknown;
}

/**
 * Durable commits without blocking the event loop. With SQLite's own synchronous=FULL, every COMMIT fsyncs
 * the WAL on the calling thread: better-sqlite3 is synchronous, so the event loop would stand still for the
 * whole flush, the largest single item of a store-invite. Instead SQLite runs with synchronous=NORMAL (a commit writes its WAL frames but does not flush them), and
 * the committing statement's promise resolves only after an fdatasync of the WAL file, done in libuv's
 * thread pool. Everything knex reports as committed is therefore on disk, as with FULL: a caller (and so an
 * HTTP client) never hears of a write before it would survive power loss. The one connection stays held
 * until the flush is done (knex releases it after the statement), so the next statement never runs before
 * it, exactly as with FULL; but HTTP parsing, validation, key generation and mail go on meanwhile, and the
 * group committer's next batch grows. SQLite's own syncs around checkpoints (NORMAL keeps them) keep the
 * WAL-to-database copy safe.
 */
export type WalFlush = (path: string) => Promise<void>;

/**
 * fdatasync of one connection's WAL in libuv's thread pool, on a descriptor opened at the first flush (the
 * file exists from the first commit until the database closes) and closed with the connection. Opening it
 * per flush cost two more thread-pool round trips while the connection waits.
 */
class WalFile {
  private fd?: number;

  constructor(readonly path: string) {}

  flush(): Promise<void> {
    if (this.fd === undefined) {
      try {
        this.fd = openSync(this.path, 'r+');
      } catch (err) {
        // No WAL file: nothing was written that a flush could make durable.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return Promise.resolve();
        throw err;
      }
    }
    const fd = this.fd;
    return new Promise((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/** Distinct SQL texts kept prepared per SQLite connection (a `whereIn` of each length is its own text). */
export const STATEMENT_CACHE_MAX = 500;

/**
 * knex's better-sqlite3 client prepares every statement anew, a visible share of a store-invite's CPU,
 * although the same few SQL texts run all the time. The connection's `prepare` is wrapped with a
 * bounded cache: better-sqlite3 statements are reusable, knex only ever runs them to completion (`all`/`run`,
 * never an open iterator), and SQLite re-prepares a statement by itself when a migration changes the schema.
 */
function cachePreparedStatements(conn: SqliteConnection, flush: (() => Promise<void>) | undefined): void {
  const prepare = conn.prepare.bind(conn);
  const cache = new Map<string, unknown>();
  conn.prepare = (sql: string) => {
    let statement = cache.get(sql);
    if (statement === undefined) {
      statement = prepare(sql);
      if (flush) durableCommits(statement as SqliteStatement, sql, conn, flush);
      if (cache.size >= STATEMENT_CACHE_MAX) cache.delete(cache.keys().next().value!);
      cache.set(sql, statement);
    }
    return statement;
  };
}

const COMMIT = /^\s*(COMMIT|END)\b/i;

/**
 * A statement that leaves data committed (COMMIT, or a write outside a transaction) returns, through knex's
 * `await`, only after the WAL flush. Writes inside a transaction return at once; their COMMIT waits.
 */
function durableCommits(statement: SqliteStatement, sql: string, conn: SqliteConnection, flush: () => Promise<void>): void {
  if (statement.readonly && !COMMIT.test(sql)) return;
  for (const method of ['run', 'all'] as const) {
    const execute = statement[method].bind(statement);
    statement[method] = (...args: unknown[]) => {
      const result = execute(...args);
      return conn.inTransaction ? result : flush().then(() => result);
    };
  }
}

/**
 * SQLite checkpoints the WAL inside the COMMIT that takes it past this many pages, on the event loop. A
 * checkpoint copies every page the WAL holds back into the database file and syncs both, so its cost is
 * mostly per distinct page and per fsync, not per commit: the index pages that store-invite keeps
 * rewriting (the tails of the tables and of the time indexes, the interior nodes, the outbox's status
 * index) are copied once per checkpoint, however many commits changed them: fewer, larger checkpoints cost
 * less in all. But the event loop stands still for the whole checkpoint, and with a large database the pages
 * it copies lie all over the file, so very long intervals hurt tail latency (docs/performance.md). 2,000 is
 * twice SQLite's default: a WAL file of ~8 MiB in normal running, reused from its start after each checkpoint.
 */
export const SQLITE_WAL_AUTOCHECKPOINT = 2_000;

/** The connection's `temp_store` outside migrations (see openDatabase). */
const RUNTIME_TEMP_STORE = 'MEMORY';

export async function migrateLatest(knex: Knex): Promise<string[]> {
  // With temp_store=MEMORY SQLite's sorter never spills, so a CREATE INDEX on a large table would sort it all
  // in RAM.
  const sqlite = knex.client.config.client === 'better-sqlite3';
  if (sqlite) await knex.raw('PRAGMA temp_store = FILE');
  try {
    const [, applied] = (await knex.migrate.latest({ migrationSource })) as [number, string[]];
    return applied;
  } finally {
    if (sqlite) await knex.raw(`PRAGMA temp_store = ${RUNTIME_TEMP_STORE}`);
  }
}

export async function migrateDown(knex: Knex): Promise<void> {
  await knex.migrate.rollback({ migrationSource }, true);
}
