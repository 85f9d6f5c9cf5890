// The mail outbox's rows (mail_outbox): what store-invite and requestToken queue, and what a sent or failed row keeps.
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
