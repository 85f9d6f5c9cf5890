// The mail outbox's rows (mail_outbox): what store-invite and requestToken queue, and what a sent or failed row keeps.
import type { Knex } from 'knex';
import type { Database } from '../platform/db/Database.js';
import { KnexOutboxStore, type Outcome, type OutboxJob, type OutboxTable } from '../outbox/OutboxStore.js';

export type MailKind = 'invite' | 'verification';

export interface NewMail {
  kind: MailKind;
  /** The address the message goes to, as the requester wrote it. */
  recipient: string;
  /**
   * What the renderer needs; may hold secrets (the invite's ephemeral private key) until delivery. A string is the
   * payload already serialised (store-invite serialises before its group commit, so that nothing of one request can
   * fail inside a transaction shared with others).
   */
  payload: Record<string, unknown> | string;
  createdAt: number;
}

/** A claimed mail-outbox row. */
export interface MailJob extends OutboxJob {
  kind: MailKind;
  recipient: string;
  payload: Record<string, unknown>;
}

/** A sent or failed row's payload replaces the stored one: what the log needs, without the secrets. */
export interface MailDetail {
  payload?: Record<string, unknown>;
}

export type MailOutcome = Outcome<MailDetail>;

export type MailOutboxStore = KnexOutboxStore<MailJob, NewMail, MailDetail>;

const MAIL_OUTBOX: OutboxTable<MailJob, NewMail, MailDetail> = {
  table: 'mail_outbox',
  columns: ['kind', 'recipient', 'payload'],
  toJob: (r, base) => ({
    ...base,
    kind: r.kind as MailKind,
    recipient: r.recipient as string,
    payload: JSON.parse(r.payload as string) as Record<string, unknown>,
  }),
  toRow: (m) => ({
    createdAt: m.createdAt,
    columns: { kind: m.kind, recipient: m.recipient, payload: typeof m.payload === 'string' ? m.payload : JSON.stringify(m.payload) },
  }),
  doneStatus: 'sent',
  outcomeColumns: (o) => {
    // A retry keeps the payload: the next attempt needs it.
    if (o.status === 'retry') return {};
    const payload = o.payload === undefined ? {} : { payload: JSON.stringify(o.payload) };
    return o.status === 'done' ? { sent_at: o.at, ...payload } : payload;
  },
};

export function mailOutboxStore(db: Database): MailOutboxStore {
  return new KnexOutboxStore(db, MAIL_OUTBOX);
}

/**
 * Inside the caller's transaction: deletes the pending invitation email of the invitation with this token (its
 * payload holds the token). Answers how many went, and how many of them a worker held under lease at `now`: a send
 * already under way cannot be called back, though the worker's outcome is dropped with the row.
 */
export async function cancelInvitationMail(
  trx: Knex.Transaction,
  token: string,
  now: number,
): Promise<{ removed: number; inFlight: number }> {
  if (!/^[A-Za-z0-9_-]+$/.test(token)) throw new Error('an invitation token is URL-safe base64');
  const rows = (await trx('mail_outbox')
    .select('id', 'locked_until')
    .where({ kind: 'invite', status: 'pending' })
    .andWhere('payload', 'like', `%"token":"${token}"%`)) as { id: number; locked_until: number | string | null }[];
  if (rows.length === 0) return { removed: 0, inFlight: 0 };
  await trx('mail_outbox')
    .whereIn(
      'id',
      rows.map((r) => r.id),
    )
    .delete();
  return { removed: rows.length, inFlight: rows.filter((r) => r.locked_until !== null && Number(r.locked_until) > now).length };
}
