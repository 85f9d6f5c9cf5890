// A durable outbox table on Knex: rows queued inside their producer's transaction, claimed under a lease
// (SKIP LOCKED on MySQL/MariaDB, one writer on SQLite), finished with one outcome per row, swept once finished.
// Table-agnostic: each outbox describes its own columns with an OutboxTable.
import type { Knex } from 'knex';
import type { Database } from '../platform/db/Database.js';
import { paddedIds, statementChunks } from '../platform/db/batchedRead.js';

/** What every claimed row carries. */
export interface OutboxJob {
  id: number;
  /** Attempts so far, counting the one this claim starts. */
  attempts: number;
  /** When the row was queued: give-up is measured from here. */
  createdAt: number;
}

/**
 * What became of a claimed row. `done` and `failed` are final; `retry` releases the row until `nextAttemptAt`.
 * `D` is the outbox's own detail (mail: the final payload; onbind: the homeserver's HTTP status).
 */
export type Outcome<D = unknown> = (
  | { id: number; status: 'done'; at: number }
  | { id: number; status: 'failed'; at: number; error: string }
  | { id: number; status: 'retry'; nextAttemptAt: number; error: string }
) &
  D;

/** How one outbox's rows look. Every outbox table has id, status, attempts, next_attempt_at, created_at,
 *  finished_at, last_error, locked_by and locked_until. */
export interface OutboxTable<Job extends OutboxJob, New, D> {
  table: string;
  /** Columns a job is built from, besides id, attempts and created_at. */
  columns: readonly string[];
  toJob(row: Record<string, unknown>, base: OutboxJob): Job;
  /** The outbox's own columns of a new row, and when it was queued (it is due at once). */
  toRow(item: New): { createdAt: number; columns: Record<string, unknown> };
  /** The status of a delivered row (`failed` and `pending` are common to every outbox). */
  doneStatus: string;
  /** Columns an outcome writes besides status, finished_at, next_attempt_at, last_error and the lease. */
  outcomeColumns(outcome: Outcome<D>): Record<string, unknown>;
  /** Runs in the finishing transaction for the rows just marked done. */
  afterDone?(trx: Knex.Transaction, done: { id: number; at: number }[]): Promise<void>;
}

/** The outbox as a worker sees it. */
export interface OutboxQueue<Job extends OutboxJob, D> {
  /**
   * Leases up to `limit` due rows to `worker` until `now + leaseMs` and counts the attempt. The lease end
   * doubles as next_attempt_at, so a claimed row is simply "not due" for everybody else and becomes due again
   * by itself if the worker dies; one index (status, next_attempt_at) serves both.
   */
  claim(worker: string, now: number, leaseMs: number, limit: number): Promise<Job[]>;
  /**
   * Writes the outcomes in one transaction, each only if `worker` still holds the row's lease. Returns the ids
   * whose lease was lost (another worker claimed the row since; nothing was written for those).
   */
  finish(worker: string, outcomes: Outcome<D>[]): Promise<number[]>;
  /**
   * Moves the lease end (and with it next_attempt_at) of the rows `worker` still holds among `ids` to `until`;
   * returns the ids another worker holds now (claimed after this worker's lease ran out). Rows finished
   * meanwhile, by this worker's own outcomes racing the renewal, are neither renewed nor returned.
   */
  renew(worker: string, ids: number[], until: number): Promise<number[]>;
  /** The earliest next_attempt_at of a pending row (leased rows count at their lease end), if any. */
  nextDueAt(): Promise<number | undefined>;
  /** Deletes up to `limit` finished rows that finished before `before`; returns how many went. */
  deleteFinished(before: number, limit: number): Promise<number>;
}

/** Rows per multi-row INSERT when queueing. */
const ROWS_PER_INSERT = 64;

/** Done rows finished per UPDATE statement at most (each brings two bound values per varying column, and its id). */
const FINISH_CHUNK = 128;

/*
 * By id alone: a statement that names a batch of rows by id names them by id alone. Beside `id IN (...)`, a
 * condition on `status` leads SQLite's planner (which has no statistics) to walk the (status, ...) index
 * instead, reading every row in that status: every pending row for a claim, every finished one still kept for
 * a retention sweep, a cost that grows with the backlog. Each such condition is settled beforehand, in the same
 * transaction, or holds for good. What keeps the rows as that read saw them until the write: on MySQL/MariaDB
 * the read's row locks (FOR UPDATE); on SQLite, the transaction itself. It begins deferred, so another
 * connection (a second process on the same file) may commit after our read, but SQLite then refuses our write
 * (SQLITE_BUSY_SNAPSHOT, or SQLITE_BUSY while the other still writes) rather than let a stale read turn into
 * one; the transaction rolls back and the rows are left as the other left them
 * (test/integration/queryPlans.test.ts checks this).
 */
export class KnexOutboxStore<Job extends OutboxJob, New, D> implements OutboxQueue<Job, D> {
  constructor(
    private readonly db: Database,
    private readonly t: OutboxTable<Job, New, D>,
  ) {}

  /** Queues rows inside the caller's transaction (or as one statement per chunk on `trx` = the knex instance). */
  async enqueue(trx: Knex | Knex.Transaction, items: New[]): Promise<void> {
    for (const chunk of statementChunks(items, this.db.sqlite, ROWS_PER_INSERT)) {
      await trx(this.t.table).insert(
        chunk.map((item) => {
          const { createdAt, columns } = this.t.toRow(item);
          return { ...columns, status: 'pending', attempts: 0, next_attempt_at: createdAt, created_at: createdAt };
        }),
      );
    }
  }

  async claim(worker: string, now: number, leaseMs: number, limit: number): Promise<Job[]> {
    try {
      return await this.claimOnce(worker, now, leaseMs, limit);
    } catch (err) {
      // Claimers racing on MySQL can still deadlock now and then; the loser claims nothing this pass.
      if ((err as { code?: string }).code === 'ER_LOCK_DEADLOCK') return [];
      throw err;
    }
  }

  private claimOnce(worker: string, now: number, leaseMs: number, limit: number): Promise<Job[]> {
    const { table, columns } = this.t;
    const until = now + leaseMs;
    // READ COMMITTED on MySQL/MariaDB: the locking read then locks only the rows it returns, not the gaps
    // around them, so producers' inserts into the same index range never wait for a claim, and SKIP LOCKED
    // claimers do not block or deadlock one another.
    return this.db.transaction(
      async (trx) => {
        let due = trx(table)
          .select('id')
          .where('status', 'pending')
          .andWhere('next_attempt_at', '<=', now)
          // A lease is honoured even where next_attempt_at was not moved to its end.
          .andWhere((q) => q.whereNull('locked_until').orWhere('locked_until', '<=', now))
          .orderBy('next_attempt_at')
          .limit(limit);
        // Rows another instance is claiming right now are skipped rather than waited for. On SQLite a claim that
        // interleaves with another connection's fails instead ("By id alone" above).
        if (this.db.dialect === 'mysql') due = due.forUpdate().skipLocked();
        const ids = ((await due) as { id: number }[]).map((r) => r.id);
        if (ids.length === 0) return [];
        const named = paddedIds(ids);
        await trx(table)
          .whereIn('id', named)
          .update({ locked_by: worker, locked_until: until, next_attempt_at: until, attempts: trx.raw('attempts + 1') });
        const rows = (await trx(table)
          .select('id', 'attempts', 'created_at', ...columns)
          .whereIn('id', named)
          .andWhere({ locked_by: worker, locked_until: until })
          .orderBy('id')) as Record<string, unknown>[];
        return rows.map((r) => this.t.toJob(r, { id: Number(r.id), attempts: Number(r.attempts), createdAt: Number(r.created_at) }));
      },
      { readCommitted: true },
    );
  }

  /**
   * One transaction for a set of outcomes rather than one commit (one fsync on SQLite) per row. Which rows this
   * worker still owns is read first (locked, on MySQL/MariaDB); the done ones, nearly all of them, are then
   * finished by one UPDATE per chunk (values that differ per row by CASE), so a batch costs a few statements,
   * not one round trip per row; failures and retries, rare, are written one by one.
   */
  async finish(worker: string, outcomes: Outcome<D>[]): Promise<number[]> {
    if (outcomes.length === 0) return [];
    const { table } = this.t;
    return this.db.transaction(
      async (trx) => {
        const ids = outcomes.map((o) => o.id);
        // Which rows this worker still owns, decided here rather than in SQL ("By id alone" above); the
        // transaction keeps them so until it ends, so the updates below may name them by id alone.
        let read = trx(table).select('id', 'locked_by', 'status').whereIn('id', paddedIds(ids));
        if (this.db.dialect === 'mysql') read = read.forUpdate();
        const rows = (await read) as { id: number | string; locked_by: string | null; status: string }[];
        const mine = new Set(rows.filter((r) => r.locked_by === worker && r.status === 'pending').map((r) => Number(r.id)));
        const done = outcomes.filter((o): o is Extract<Outcome, { status: 'done' }> & D => o.status === 'done' && mine.has(o.id));
        for (const chunk of statementChunks(done, this.db.sqlite, FINISH_CHUNK)) {
          const values = chunk.map((o) => ({
            status: this.t.doneStatus,
            finished_at: o.at,
            last_error: null,
            locked_by: null,
            locked_until: null,
            ...this.t.outcomeColumns(o),
          }));
          await trx(table)
            .whereIn(
              'id',
              chunk.map((o) => o.id),
            )
            .update(byId(trx, chunk, values));
        }
        if (done.length > 0 && this.t.afterDone) await this.t.afterDone(trx, done);
        for (const o of outcomes) {
          if (o.status === 'done' || !mine.has(o.id)) continue;
          const values =
            o.status === 'failed'
              ? { status: 'failed', finished_at: o.at, last_error: o.error }
              : { next_attempt_at: o.nextAttemptAt, last_error: o.error };
          await trx(table)
            .where({ id: o.id, locked_by: worker, status: 'pending' })
            .update({ ...values, locked_by: null, locked_until: null, ...this.t.outcomeColumns(o) });
        }
        return ids.filter((id) => !mine.has(id));
      },
      { readCommitted: true },
    );
  }

  async renew(worker: string, ids: number[], until: number): Promise<number[]> {
    if (ids.length === 0) return [];
    const { table } = this.t;
    // One transaction: the rows another worker holds are read as the renewal left them.
    return this.db.transaction(
      async (trx) => {
        const lost: number[] = [];
        for (const chunk of statementChunks(ids, this.db.sqlite, FINISH_CHUNK)) {
          const named = paddedIds(chunk);
          // By id and holder alone ("By id alone" above): a row that has a holder is pending, as finishing a
          // row clears its holder in the same statement.
          await trx(table).whereIn('id', named).andWhere('locked_by', worker).update({ locked_until: until, next_attempt_at: until });
          const rows = (await trx(table).select('id', 'locked_by').whereIn('id', named)) as {
            id: number | string;
            locked_by: string | null;
          }[];
          for (const r of rows) if (r.locked_by !== null && r.locked_by !== worker) lost.push(Number(r.id));
        }
        const taken = new Set(lost);
        return ids.filter((id) => taken.has(id));
      },
      { readCommitted: true },
    );
  }

  async nextDueAt(): Promise<number | undefined> {
    const row = (await this.db.knex(this.t.table).min({ due: 'next_attempt_at' }).where('status', 'pending').first()) as
      { due: number | string | null } | undefined;
    return row?.due === null || row?.due === undefined ? undefined : Number(row.due);
  }

  /**
   * How many rows wait for delivery, and when the oldest of them was queued: one statement, for the metrics. Counting
   * reads the (status, next_attempt_at) index only; the oldest is the pending row with the lowest id (ids grow with
   * created_at), found in the same index read and looked up by id, so a large backlog is not read row by row.
   */
  async backlog(): Promise<{ pending: number; oldestCreatedAt?: number }> {
    const { table } = this.t;
    const knex = this.db.knex;
    const row = (await knex
      .select('p.n', knex(`${table} as o`).select('o.created_at').whereRaw('o.id = p.first_id').as('oldest'))
      .from(knex(table).count({ n: '*' }).min({ first_id: 'id' }).where('status', 'pending').as('p'))
      .first()) as { n: number | string; oldest: number | string | null } | undefined;
    const pending = Number(row?.n ?? 0);
    return { pending, oldestCreatedAt: row?.oldest === null || row?.oldest === undefined ? undefined : Number(row.oldest) };
  }

  async deleteFinished(before: number, limit: number): Promise<number> {
    const { table } = this.t;
    // Only done and failed rows have a finished_at, and such a row stays finished: the finished_at index finds
    // them without a status condition, which would send SQLite down the status index ("By id alone" above).
    const ids = ((await this.db.knex(table).select('id').where('finished_at', '<', before).limit(limit)) as { id: number }[]).map(
      (r) => r.id,
    );
    if (ids.length === 0) return 0;
    return this.db.knex(table).whereIn('id', paddedIds(ids)).delete();
  }
}

/**
 * The SET of one UPDATE for several rows: a column with the same value for every row is set to it, one that
 * differs becomes `CASE id WHEN ? THEN ? ... END`.
 */
function byId(trx: Knex.Transaction, rows: { id: number }[], values: Record<string, unknown>[]): Record<string, unknown> {
  const set: Record<string, unknown> = {};
  for (const column of Object.keys(values[0]!)) {
    const first = values[0]![column];
    if (values.every((v) => v[column] === first)) {
      set[column] = first;
      continue;
    }
    set[column] = trx.raw(
      `CASE id ${rows.map(() => 'WHEN ? THEN ?').join(' ')} END`,
      rows.flatMap((r, i) => [r.id, values[i]![column] as Knex.Value]),
    );
  }
  return set;
}
