// The onbind outbox's rows (onbind_outbox): one signed body per chunk of claimed invites, queued by the bind.
import type { Knex } from 'knex';
import type { Database } from '../platform/db/Database.js';
import { KnexOutboxStore, type Outcome, type OutboxJob, type OutboxTable } from '../outbox/OutboxStore.js';

export interface NewOnbind {
  /** Server name of the bound mxid: where the call goes. */
  destination: string;
  associationId: number;
  /** The signed body, exactly as it is sent on every attempt. */
  body: string;
  /** The invites it carries: marked delivered with it. */
  inviteIds: number[];
  createdAt: number;
}

/** A claimed onbind-outbox row. */
export interface OnbindJob extends OutboxJob {
  destination: string;
  body: string;
}

/** The homeserver's answer, kept as last_status (null: no answer). */
export interface OnbindDetail {
  httpStatus?: number | null;
}

export type OnbindOutcome = Outcome<OnbindDetail>;

export type OnbindOutboxStore = KnexOutboxStore<OnbindJob, NewOnbind, OnbindDetail>;

const ONBIND_OUTBOX: OutboxTable<OnbindJob, NewOnbind, OnbindDetail> = {
  table: 'onbind_outbox',
  columns: ['destination', 'body'],
  toJob: (r, base) => ({ ...base, destination: r.destination as string, body: r.body as string }),
  toRow: (o) => ({
    createdAt: o.createdAt,
    columns: { destination: o.destination, association_id: o.associationId, body: o.body, invite_ids: JSON.stringify(o.inviteIds) },
  }),
  doneStatus: 'delivered',
  outcomeColumns: (o) => (o.httpStatus === undefined ? {} : { last_status: o.httpStatus }),
  // The invites a delivered body carried are delivered with it, in the same transaction.
  afterDone: async (trx: Knex.Transaction, done) => {
    const at = new Map(done.map((d) => [d.id, d.at]));
    const rows = (await trx('onbind_outbox')
      .select('id', 'invite_ids')
      .whereIn('id', [...at.keys()])) as { id: number | string; invite_ids: string }[];
    for (const row of rows) {
      const inviteIds = JSON.parse(row.invite_ids) as number[];
      if (inviteIds.length > 0)
        await trx('invites')
          .whereIn('id', inviteIds)
          .whereNull('delivered_at')
          .update({ delivered_at: at.get(Number(row.id)) });
    }
  },
};

export function onbindOutboxStore(db: Database): OnbindOutboxStore {
  return new KnexOutboxStore(db, ONBIND_OUTBOX);
}
