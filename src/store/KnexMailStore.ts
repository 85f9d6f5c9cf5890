// The mail outbox on Knex (issue 3): lease-based claiming, SKIP LOCKED on MySQL/MariaDB, one writer on SQLite.
import type { Knex } from 'knex';
import type { Dialect } from './db.js';
import type { MailJob, MailKind, MailOutboxStore, MailOutcome } from './types.js';

interface MailRow {
  id: number;
  kind: string;
  recipient: string;
  payload: string;
  attempts: number;
  created_at: number | string;
}

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
      // Rows another instance is claiming right now are skipped rather than waited for. SQLite has a single
      // writer, so the select and the update below cannot interleave with another claim there.
      if (this.dialect === 'mysql') due = due.forUpdate().skipLocked();
      const ids = (await due).map((r: { id: number }) => r.id);
      if (ids.length === 0) return [];
      // The lease end doubles as next_attempt_at, so a claimed row is simply "not due" for everybody else
      // and becomes due again by itself if this worker dies; the same index serves both.
      await trx('mail_outbox')
        .whereIn('id', ids)
        .andWhere('status', 'pending')
        .andWhere('next_attempt_at', '<=', now)
        .update({ locked_by: worker, locked_until: until, next_attempt_at: until, attempts: trx.raw('attempts + 1') });
      const rows = (await trx('mail_outbox')
        .select('id', 'kind', 'recipient', 'payload', 'attempts', 'created_at')
        .whereIn('id', ids)
        .andWhere({ locked_by: worker, locked_until: until })
        .orderBy('id')) as MailRow[];
      return rows.map(toJob);
      // READ COMMITTED on MySQL/MariaDB: the locking read then locks only the rows it returns, not the gaps
      // around them, so store-invite's inserts into the same index range never wait for a claim.
    }, this.dialect === 'mysql' ? { isolationLevel: 'read committed' } : undefined);
  }

  /**
   * One transaction per claimed batch: as autocommits, these updates cost one commit (one fsync on SQLite)
   * per email, the largest single item in the issue 6 profile of store-invite.
   */
  async finishMail(worker: string, outcomes: MailOutcome[]): Promise<number[]> {
    if (outcomes.length === 0) return [];
    return this.knex.transaction(async (trx) => {
      const lost: number[] = [];
      for (const o of outcomes) {
        const values =
          o.status === 'sent'
            ? { status: 'sent', sent_at: o.at, finished_at: o.at, payload: JSON.stringify(o.payload), last_error: null }
            : o.status === 'failed'
              ? { status: 'failed', finished_at: o.at, last_error: o.error, payload: JSON.stringify(o.payload) }
              : { next_attempt_at: o.nextAttemptAt, last_error: o.error };
        const n = await trx('mail_outbox')
          .where({ id: o.id, locked_by: worker, status: 'pending' })
          .update({ ...values, locked_by: null, locked_until: null });
        if (n !== 1) lost.push(o.id);
      }
      return lost;
    });
  }

  async nextMailDueAt(): Promise<number | undefined> {
    const row = (await this.knex('mail_outbox').min({ due: 'next_attempt_at' }).where('status', 'pending').first()) as { due: number | string | null } | undefined;
    return row?.due === null || row?.due === undefined ? undefined : Number(row.due);
  }

  async deleteFinishedMail(before: number, limit: number): Promise<number> {
    const ids = (await this.knex('mail_outbox').select('id').where('finished_at', '<=', before).limit(limit)).map((r: { id: number }) => r.id);
    if (ids.length === 0) return 0;
    return this.knex('mail_outbox').whereIn('id', ids).whereIn('status', ['sent', 'failed']).delete();
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
