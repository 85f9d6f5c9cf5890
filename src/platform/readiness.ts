// GET /ready: whether this instance can serve. The database answers, its schema is the one this build migrates to,
// and the signing key is loaded; each check is named in the answer, so a failing probe says what failed.
import type { Database } from './db/Database.js';
import { migrationSource } from './db/migrations/index.js';

export type CheckName = 'database' | 'migrations' | 'signing_key';

export interface Readiness {
  ready: boolean;
  /** The checks that failed (a check that could not run, its prerequisite having failed, is not listed). */
  failed: CheckName[];
  /** `ok`, or why not (an error code or a short reason, never an error's message, which may quote values). */
  checks: Record<CheckName, string>;
}

export interface ReadinessSources {
  db: Database;
  /** True while the outage tracker counts an outage (requests that need the database answer 503 meanwhile). */
  outage: () => boolean;
  signingKeyLoaded: () => boolean;
  /** How long the database may take to answer (a probe's own timeout is usually a few seconds). */
  timeoutMs?: number;
}

const TIMEOUT_MS = 2000;

/**
 * Runs the checks; concurrent calls share one run, so probes arriving together cost one query. One query does for
 * both database checks: reading which migrations were applied is the ping.
 */
export function readinessCheck(s: ReadinessSources): () => Promise<Readiness> {
  let running: Promise<Readiness> | undefined;
  const run = async (): Promise<Readiness> => {
    const checks: Record<CheckName, string> = { database: 'ok', migrations: 'ok', signing_key: 'ok' };
    const failed: CheckName[] = [];
    const fail = (check: CheckName, why: string) => {
      checks[check] = why;
      failed.push(check);
    };
    try {
      const applied = await appliedMigrations(s.db, s.timeoutMs ?? TIMEOUT_MS);
      // Reads may go on while writes fail (SQLite with another process holding the write lock): the tracker knows.
      if (s.outage()) fail('database', 'unavailable: requests that need it are answered 503');
      const missing = (await migrationSource.getMigrations([])).filter((name) => !applied.has(name));
      if (missing.length > 0) fail('migrations', `not applied: ${missing.join(', ')}`);
    } catch (err) {
      fail('database', `unavailable: ${codeOf(err)}`);
      checks.migrations = 'not checked: the database did not answer';
    }
    if (!s.signingKeyLoaded()) fail('signing_key', 'not loaded');
    return { ready: failed.length === 0, failed, checks };
  };
  return () => {
    running ??= run().finally(() => {
      running = undefined;
    });
    return running;
  };
}

async function appliedMigrations(db: Database, timeoutMs: number): Promise<Set<string>> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error('timeout'), { code: `no answer within ${timeoutMs} ms` })), timeoutMs);
  });
  try {
    const rows = (await Promise.race([db.knex('knex_migrations').select('name'), late])) as { name: string }[];
    return new Set(rows.map((r) => r.name));
  } finally {
    clearTimeout(timer);
  }
}

function codeOf(err: unknown): string {
  for (let e = err as { code?: unknown; name?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 4; depth++) {
    if (typeof e.code === 'string') return e.code;
    if (e.name === 'KnexTimeoutError') return 'no connection within database.acquireTimeoutMs';
    e = e.cause as typeof e;
  }
  return err instanceof Error ? err.name : 'error';
}
