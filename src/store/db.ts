// Opens the database named by the config: SQLite (embedded default) or MySQL/MariaDB.
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import knexFactory, { type Knex } from 'knex';
import { migrationSource } from './migrations/index.js';

export type Dialect = 'sqlite' | 'mysql';

export interface DatabaseOptions {
  /** `mysql://user:pass@host:3306/db`, `mariadb://...`, `sqlite:/path/file.db`, or a plain file path. */
  url: string;
  /** SQLite `synchronous` pragma: FULL survives power loss; NORMAL (WAL) may lose the last commits on power loss. */
  sqliteSynchronous?: 'full' | 'normal';
  /** MySQL connection pool size. */
  poolMax?: number;
  /** How long an ephemeral-key validity answer may be reused, ms (capped at 1000; 0 = never). */
  keyValidityCacheMs?: number;
}

export function dialectOf(url: string): Dialect {
  return /^(mysql|mariadb):\/\//i.test(url) ? 'mysql' : 'sqlite';
}

export function openDatabase(opts: DatabaseOptions): { knex: Knex; dialect: Dialect } {
  if (dialectOf(opts.url) === 'mysql') {
    const u = new URL(opts.url);
    const knex = knexFactory({
      client: 'mysql2',
      connection: {
        host: u.hostname,
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
      acquireConnectionTimeout: 10_000,
    });
    return { knex, dialect: 'mysql' };
  }
  const filename = resolve(opts.url.replace(/^sqlite:(\/\/)?/i, ''));
  mkdirSync(dirname(filename), { recursive: true });
  const synchronous = (opts.sqliteSynchronous ?? 'full').toUpperCase();
  const knex = knexFactory({
    client: 'better-sqlite3',
    connection: { filename },
    useNullAsDefault: true,
    compileSqlOnError: false,
    pool: {
      min: 1,
      max: 1,
      afterCreate: (conn: SqliteConnection, done: (err: Error | null, conn: unknown) => void) => {
        try {
          cachePreparedStatements(conn);
          conn.pragma('journal_mode = WAL');
          conn.pragma(`synchronous = ${synchronous}`);
          conn.pragma('foreign_keys = ON');
          conn.pragma('busy_timeout = 5000');
          done(null, conn);
        } catch (err) {
          done(err as Error, conn);
        }
      },
    },
  });
  return { knex, dialect: 'sqlite' };
}

interface SqliteConnection {
  pragma(s: string): unknown;
  prepare(sql: string): unknown;
}

/** Distinct SQL texts kept prepared per SQLite connection (a `whereIn` of each length is its own text). */
export const STATEMENT_CACHE_MAX = 500;

/**
 * knex's better-sqlite3 client prepares every statement anew (6% of a store-invite's CPU in the issue 6
 * profile), although the same few SQL texts run all the time. The connection's `prepare` is wrapped with a
 * bounded cache: better-sqlite3 statements are reusable, knex only ever runs them to completion (`all`/`run`,
 * never an open iterator), and SQLite re-prepares a statement by itself when a migration changes the schema.
 */
function cachePreparedStatements(conn: SqliteConnection): void {
  const prepare = conn.prepare.bind(conn);
  const cache = new Map<string, unknown>();
  conn.prepare = (sql: string) => {
    let statement = cache.get(sql);
    if (statement === undefined) {
      statement = prepare(sql);
      if (cache.size >= STATEMENT_CACHE_MAX) cache.delete(cache.keys().next().value!);
      cache.set(sql, statement);
    }
    return statement;
  };
}

export async function migrateLatest(knex: Knex): Promise<string[]> {
  const [, applied] = (await knex.migrate.latest({ migrationSource })) as [number, string[]];
  return applied;
}

export async function migrateDown(knex: Knex): Promise<void> {
  await knex.migrate.rollback({ migrationSource }, true);
}
