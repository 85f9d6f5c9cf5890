// The mail outbox on Knex (issue 3): lease-based claiming, SKIP LOCKED on MySQL/MariaDB, one writer on SQLite.
import type { Knex } from 'knex';
import type { Dialect } from '../platform/db/db.js';
import { paddedIds, statementChunks } from '../platform/db/batchedRead.js';
import type { MailJob, MailKind, MailOutboxStore, MailOutcome } from './types.js';

interface MailRow {
  id: number;
  kind: string;
  recipient: string;
  payload: string;
  attempts: number;
  created_at: number | string;
}

/*
 * By id alone: a statement that names a batch of rows by id names them by id alone. Beside `id IN (...)`, a
 * condition on `status` leads SQLite's planner (which has no statistics) to walk the (status, ...) index
 * instead, reading every row in that status: every pending email for a claim, every sent one still kept for
 * a retention sweep. With a few thousand pending rows, claiming and finishing a batch took ~3 ms of the
 * event loop instead of well under one (issue 6 notes); with a backlog or a long retention it grows without
 * bound. Each such condition is settled beforehand, in the same transaction, or holds for good. What keeps
 * the rows as that read saw them until the write: on MySQL/MariaDB the read's row locks (FOR UPDATE); on
 * SQLite, the transaction itself. It begins deferred, so another connection (a second process on the same
 * file) may commit after our read, but SQLite then refuses our write (SQLITE_BUSY_SNAPSHOT, or SQLITE_BUSY
 * while the other still writes) rather than let a stale read turn into one; the transaction rolls back and
 * the rows are left as the other left them (test/integration/queryPlans.test.ts checks this).
 * (KnexBindingStore's onbind claim follows the same rule.)
 */

/** Sent rows finished per UPDATE statement at most (each brings 7 bound values: 3 CASE pairs and its id). */
const FINISH_CHUNK = 128;

export class KnexMailStore implements MailOutboxStore {
  constructor(private readonly knex: Knex, private readonly dialect: Dialect) {}

  async claimDueMail(worker: string, now: number, leaseMs: number, limit: number): Promise<MailJob[]> {
    const until = now + leaseMs;
    return this.knex.transaction(async (trx) => {
      let due = trx('mail_outbox')
        .select('id')
        .where('status', 'pending')
        .andWhere('next_attempt_at', '<=', now)
        .orderBy('next_attempt_at')
        .limit(limit);
      // Rows another instance is claiming right now are skipped rather than waited for. On SQLite a claim that
      // interleaves with another connection's fails instead ("By id alone" above).
      if (this.dialect === 'mysql') due = due.forUpdate().skipLocked();
      const ids = (await due).map((r: { id: number }) => r.id);
      if (ids.length === 0) return [];
      // The lease end doubles as next_attempt_at, so a claimed row is simply "not due" for everybody else
      // and becomes due again by itself if this worker dies; the same index serves both. The rows are named
      // by id alone ("By id alone" above): the read above, in this transaction, found them pending and due, and
      // the transaction keeps them so until it ends.
      const named = paddedIds(ids);
      await trx('mail_outbox')
        .whereIn('id', named)
        .update({ locked_by: worker, locked_until: until, next_attempt_at: until, attempts: trx.raw('attempts + 1') });
      const rows = (await trx('mail_outbox')
        .select('id', 'kind', 'recipient', 'payload', 'attempts', 'created_at')
        .whereIn('id', named)
        .andWhere({ locked_by: worker, locked_until: until })
        .orderBy('id')) as MailRow[];
      return rows.map(toJob);
      // READ COMMITTED on MySQL/MariaDB: the locking read then locks only the rows it returns, not the gaps
      // around them, so store-invite's inserts into the same index range never wait for a claim.
    }, this.dialect === 'mysql' ? { isolationLevel: 'read committed' } : undefined);
  }

  /**
   * One transaction per claimed batch: as autocommits, these updates cost one commit (one fsync on SQLite)
   * per email, the largest single item in the issue 6 profile of store-invite. Which rows this worker still
   * owns is read first (locked, on MySQL/MariaDB); the sent ones, nearly all of them, are then finished by
   * one UPDATE per 200 rows (their payloads and times by CASE), so a batch costs a few statements, not one
   * round trip per email; failures and retries, rare, are written one by one.
   */
  async finishMail(worker: string, outcomes: MailOutcome[]): Promise<number[]> {
    if (outcomes.length === 0) return [];
    return this.knex.transaction(async (trx) => {
      const ids = outcomes.map((o) => o.id);
      // Which rows this worker still owns, decided here rather than in SQL ("By id alone" above); the transaction
      // keeps them so until it ends, so the updates below may name them by id alone.
      let read = trx('mail_outbox').select('id', 'locked_by', 'status').whereIn('id', paddedIds(ids));
      if (this.dialect === 'mysql') read = read.forUpdate();
      const rows = (await read) as { id: number | string; locked_by: string | null; status: string }[];
      const mine = new Set(rows.filter((r) => r.locked_by === worker && r.status === 'pending').map((r) => Number(r.id)));
      const sent = outcomes.filter((o): o is Extract<MailOutcome, { status: 'sent' }> => o.status === 'sent' && mine.has(o.id));
      for (const chunk of statementChunks(sent, this.dialect === 'sqlite', FINISH_CHUNK)) {
        const byId = (value: (o: (typeof chunk)[number]) => string | number) =>
          trx.raw(`CASE id ${chunk.map(() => 'WHEN ? THEN ?').join(' ')} END`, chunk.flatMap((o) => [o.id, value(o)]));
        await trx('mail_outbox')
          .whereIn('id', chunk.map((o) => o.id))
          .update({
            status: 'sent',
            sent_at: byId((o) => o.at),
            finished_at: byId((o) => o.at),
            payload: byId((o) => JSON.stringify(o.payload)),
            last_error: null,
            locked_by: null,
            locked_until: null,
          });
      }
      for (const o of outcomes) {
        if (o.status === 'sent' || !mine.has(o.id)) continue;
        const values =
          o.status === 'failed'
            ? { status: 'failed', finished_at: o.at, last_error: o.error, payload: JSON.stringify(o.payload) }
            : { next_attempt_at: o.nextAttemptAt, last_error: o.error };
        await trx('mail_outbox')
          .where({ id: o.id, locked_by: worker, status: 'pending' })
          .update({ ...values, locked_by: null, locked_until: null });
      }
      return ids.filter((id) => !mine.has(id));
    }, this.dialect === 'mysql' ? { isolationLevel: 'read committed' } : undefined);
  }

  async nextMailDueAt(): Promise<number | undefined> {
    const row = (await this.knex('mail_outbox').min({ due: 'next_attempt_at' }).where('status', 'pending').first()) as { due: number | string | null } | undefined;
    return row?.due === null || row?.due === undefined ? undefined : Number(row.due);
  }

  async deleteFinishedMail(before: number, limit: number): Promise<number> {
    const ids = (await this.knex('mail_outbox').select('id').where('finished_at', '<=', before).limit(limit)).map((r: { id: number }) => r.id);
    if (ids.length === 0) return 0;
    // By id alone (see above): only sent and failed rows have a finished_at, and such a row stays finished.
    return this.knex('mail_outbox').whereIn('id', ids).delete();
  }
}

function toJob(row: MailRow): MailJob {
  return {
    id: row.id,
    kind: row.kind as MailKind,
    recipient: row.recipient,
    payload: JSON.parse(row.payload) as Record<string, unknown>,
    attempts: Number(row.attempts),
    createdAt: Number(row.created_at),
  };
}
