// Validation sessions, associations (bind, lookup) and the onbind outbox on Knex (SQLite and MySQL/MariaDB).
import type { Knex } from 'knex';
import type { Dialect } from '../platform/db/db.js';
import { insertMail, toInvite, type InviteRow } from './KnexStore.js';
import { paddedIds } from '../platform/db/batchedRead.js';
import type {
  Association,
  BindOptions,
  BindResult,
  NewMail,
  OnbindJob,
  StoredAssociation,
  ValidationSession,
} from './types.js';

interface SessionRow {
  sid: string;
  medium: string;
  address: string;
  client_secret: string;
  token: string;
  send_attempt: number;
  next_link: string | null;
  created_at: number | string;
  token_expires_at: number | string;
  validated_at: number | string | null;
  expires_at: number | string;
}

function toSession(r: SessionRow): ValidationSession {
  return {
    sid: r.sid,
    medium: r.medium,
    address: r.address,
    clientSecret: r.client_secret,
    token: r.token,
    sendAttempt: Number(r.send_attempt),
    nextLink: r.next_link,
    createdAt: Number(r.created_at),
    tokenExpiresAt: Number(r.token_expires_at),
    validatedAt: r.validated_at === null ? null : Number(r.validated_at),
    expiresAt: Number(r.expires_at),
  };
}

/** An associations row as the drivers answer it (mysql2 may answer BIGINT columns as strings). */
export interface AssociationRow {
  id: number;
  medium: string;
  address: string;
  mxid: string;
  ts: number | string;
  not_before: number | string;
  not_after: number | string;
  lookup_hash: string | null;
}

export function toAssociation(r: Pick<AssociationRow, 'medium' | 'address' | 'mxid' | 'ts' | 'not_before' | 'not_after'>): Association {
  return { medium: r.medium, address: r.address, mxid: r.mxid, ts: Number(r.ts), notBefore: Number(r.not_before), notAfter: Number(r.not_after) };
}

export class KnexBindingStore {
  constructor(
    private readonly knex: Knex,
    private readonly dialect: Dialect,
  ) {}

  // ---- sessions ----

  async findSession(sid: string): Promise<ValidationSession | undefined> {
    const row = (await this.knex('validation_sessions').where({ sid }).first()) as SessionRow | undefined;
    return row && toSession(row);
  }

  async findSessionByOwner(medium: string, address: string, clientSecret: string, now: number): Promise<ValidationSession | undefined> {
    const row = (await this.knex('validation_sessions')
      .where({ medium, address, client_secret: clientSecret })
      .andWhere('expires_at', '>', now)
      .orderBy('created_at', 'desc')
      .first()) as SessionRow | undefined;
    return row && toSession(row);
  }

  async insertSession(s: ValidationSession, mail: NewMail): Promise<void> {
    await this.knex.transaction(async (trx) => {
      await trx('validation_sessions').insert({
        sid: s.sid,
        medium: s.medium,
        address: s.address,
        client_secret: s.clientSecret,
        token: s.token,
        send_attempt: s.sendAttempt,
        next_link: s.nextLink,
        created_at: s.createdAt,
        token_expires_at: s.tokenExpiresAt,
        validated_at: s.validatedAt,
        expires_at: s.expiresAt,
      });
      await insertMail(trx, mail);
    });
  }

  async resendSession(sid: string, u: Pick<ValidationSession, 'token' | 'tokenExpiresAt' | 'sendAttempt' | 'nextLink'>, mail: NewMail): Promise<void> {
    await this.knex.transaction(async (trx) => {
      await trx('validation_sessions').where({ sid }).update({ token: u.token, token_expires_at: u.tokenExpiresAt, send_attempt: u.sendAttempt, next_link: u.nextLink });
      await insertMail(trx, mail);
    });
  }

  async markSessionValidated(sid: string, validatedAt: number, expiresAt: number): Promise<void> {
    await this.knex('validation_sessions').where({ sid }).whereNull('validated_at').update({ validated_at: validatedAt, expires_at: expiresAt });
  }

  async deleteExpiredSessions(now: number, limit: number): Promise<number> {
    const sids = (await this.knex('validation_sessions').select('sid').where('expires_at', '<=', now).limit(limit)).map((r) => r.sid as string);
    if (sids.length === 0) return 0;
    await this.knex('validation_sessions').whereIn('sid', sids).delete();
    return sids.length;
  }

  // ---- associations ----

  /** Two binds of one address at once can collide on its unique key or deadlock (MySQL): the loser retries. */
  async bindAssociation(a: Association, opts: BindOptions): Promise<BindResult> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.bindOnce(a, opts);
      } catch (err) {
        const code = (err as { code?: string }).code ?? '';
        if (attempt >= 3 || !['ER_DUP_ENTRY', 'ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT', 'SQLITE_CONSTRAINT_UNIQUE', 'SQLITE_BUSY'].includes(code)) throw err;
      }
    }
  }

  private async bindOnce(a: Association, opts: BindOptions): Promise<BindResult> {
    // MySQL at READ COMMITTED: at REPEATABLE READ the delete of a not-yet-bound address and the invites
    // claim take gap locks, and binds of unrelated neighbouring addresses deadlocked one another (the bench
    // found 1 to 2% of 64 concurrent binds failing after their retries). Without gap locks the claim keeps
    // its meaning: the UPDATE still locks the rows it changes and rereads them once a competing binder
    // commits, so an invite still goes to the first binder only.
    return this.knex.transaction(async (trx) => {
      await trx('associations').where({ medium: a.medium, address: a.address }).delete();
      const [id] = (await trx('associations').insert(associationRow(a, opts.lookupHash))) as number[];
      const association: StoredAssociation = { ...a, id: id! };
      // Claim, atomically: only invites nobody has claimed before, created up to this bind.
      const claimedInvites = await trx('invites')
        .where({ medium: a.medium, address: a.address })
        .whereNull('claimed_by')
        .andWhere('created_at', '<=', opts.now)
        .andWhere('expires_at', '>', opts.now)
        .update({ claimed_by: association.id });
      let onbindRows = 0;
      let lastId = 0;
      // Chunks of invitesPerCall: memory and body size stay bounded however many invites are pending.
      for (;;) {
        const rows = (await trx('invites')
          .select('*')
          .where('claimed_by', association.id)
          .andWhere('id', '>', lastId)
          .orderBy('id')
          .limit(opts.invitesPerCall)) as InviteRow[];
        if (rows.length === 0) break;
        lastId = rows[rows.length - 1]!.id;
        const invites = rows.map(toInvite);
        const body = opts.buildBody(association, invites);
        await trx('onbind_outbox').insert({
          destination: opts.destination,
          association_id: association.id,
          body: JSON.stringify(body),
          invite_ids: JSON.stringify(rows.map((r) => r.id)),
          status: 'pending',
          attempts: 0,
          next_attempt_at: opts.now,
          created_at: opts.now,
        });
        onbindRows++;
        if (rows.length < opts.invitesPerCall) break;
      }
      return { association, claimedInvites, onbindRows };
    }, this.dialect === 'mysql' ? { isolationLevel: 'read committed' } : undefined);
  }

  async deleteAssociation(medium: string, address: string, mxid: string): Promise<boolean> {
    const n = await this.knex('associations').where({ medium, address, mxid }).delete();
    return n > 0;
  }

  async findMxidsByHash(hashes: string[], now: number): Promise<{ lookupHash: string; mxid: string }[]> {
    if (hashes.length === 0) return [];
    return (await this.knex('associations')
      .select({ lookupHash: 'lookup_hash', mxid: 'mxid' })
      // Padded (paddedIds): a lookup's last batch can be any size up to 1,000, and SQLite would keep a
      // prepared statement of up to 1,000 parameters for each size it met.
      .whereIn('lookup_hash', paddedIds(hashes))
      .andWhere('not_before', '<=', now)
      .andWhere('not_after', '>', now)) as { lookupHash: string; mxid: string }[];
  }

  async getBindingSetting(name: string): Promise<string | undefined> {
    const row = await this.knex('binding_settings').where({ name }).first();
    return row ? (row.value as string) : undefined;
  }

  async putBindingSetting(name: string, value: string): Promise<void> {
    await this.knex('binding_settings').insert({ name, value }).onConflict('name').merge();
  }

  async insertBindingSettingIfAbsent(name: string, value: string): Promise<void> {
    await this.knex('binding_settings').insert({ name, value }).onConflict('name').ignore();
  }

  async rehashAssociations(hash: (address: string, medium: string) => string, batch: number): Promise<number> {
    let lastId = 0;
    let total = 0;
    for (;;) {
      const rows = (await this.knex('associations').select('id', 'medium', 'address').where('id', '>', lastId).orderBy('id').limit(batch)) as AssociationRow[];
      if (rows.length === 0) break;
      await this.knex.transaction(async (trx) => {
        for (const r of rows) await trx('associations').where({ id: r.id }).update({ lookup_hash: hash(r.address, r.medium) });
      });
      total += rows.length;
      lastId = rows[rows.length - 1]!.id;
      if (rows.length < batch) break;
    }
    return total;
  }

  // ---- onbind outbox ----

  async claimOnbind(worker: string, now: number, leaseMs: number, limit: number): Promise<OnbindJob[]> {
    try {
      return await this.claimOnce(worker, now, leaseMs, limit);
    } catch (err) {
      // Claimers racing on MySQL can still deadlock now and then; the loser claims nothing this pass.
      if ((err as { code?: string }).code === 'ER_LOCK_DEADLOCK') return [];
      throw err;
    }
  }

  private async claimOnce(worker: string, now: number, leaseMs: number, limit: number): Promise<OnbindJob[]> {
    return this.knex.transaction(async (trx) => {
      const due = trx('onbind_outbox')
        .select('id')
        .where('status', 'pending')
        .andWhere('next_attempt_at', '<=', now)
        .andWhere((q) => q.whereNull('locked_until').orWhere('locked_until', '<', now))
        .orderBy('next_attempt_at')
        .limit(limit);
      // MySQL/MariaDB: several instances claim disjoint rows without waiting. SQLite: a claim that interleaves
      // with another connection's fails instead (see "By id alone" in KnexMailStore).
      const ids = (await (this.dialect === 'mysql' ? due.forUpdate().skipLocked() : due)).map((r) => r.id as number);
      if (ids.length === 0) return [];
      // By id alone (see KnexMailStore): the read above, in this transaction, found them pending and free, and
      // the transaction keeps them so until it ends. A status condition here made SQLite walk every pending
      // row through the status index.
      const named = paddedIds(ids);
      await trx('onbind_outbox').whereIn('id', named).update({ locked_by: worker, locked_until: now + leaseMs });
      const rows = await trx('onbind_outbox').select('id', 'destination', 'body', 'attempts', 'created_at').whereIn('id', named).andWhere({ locked_by: worker, locked_until: now + leaseMs });
      return rows.map((r) => ({ id: r.id as number, destination: r.destination as string, body: r.body as string, attempts: Number(r.attempts), createdAt: Number(r.created_at) }));
      // READ COMMITTED: no gap locks, so SKIP LOCKED claimers do not block or deadlock one another.
    }, this.dialect === 'mysql' ? { isolationLevel: 'read committed' } : undefined);
  }

  async completeOnbind(id: number, _worker: string, now: number, status: number): Promise<void> {
    await this.knex.transaction(async (trx) => {
      const row = await trx('onbind_outbox').select('invite_ids').where({ id }).first();
      if (!row) return;
      await trx('onbind_outbox')
        .where({ id })
        .update({ status: 'delivered', attempts: trx.raw('attempts + 1'), last_status: status, last_error: null, locked_by: null, locked_until: null, finished_at: now });
      const inviteIds = JSON.parse(row.invite_ids as string) as number[];
      if (inviteIds.length > 0) await trx('invites').whereIn('id', inviteIds).whereNull('delivered_at').update({ delivered_at: now });
    });
  }

  async retryOnbind(id: number, worker: string, nextAttemptAt: number, error: string, status: number | null): Promise<void> {
    await this.knex('onbind_outbox')
      .where({ id, locked_by: worker, status: 'pending' })
      .update({ attempts: this.knex.raw('attempts + 1'), next_attempt_at: nextAttemptAt, last_error: error, last_status: status, locked_by: null, locked_until: null });
  }

  async failOnbind(id: number, worker: string, now: number, error: string, status: number | null): Promise<void> {
    await this.knex('onbind_outbox')
      .where({ id, locked_by: worker, status: 'pending' })
      .update({ status: 'failed', attempts: this.knex.raw('attempts + 1'), last_error: error, last_status: status, locked_by: null, locked_until: null, finished_at: now });
  }

  async deleteFinishedOnbind(before: number, limit: number): Promise<number> {
    // Only delivered and failed rows have a finished_at, and such a row stays finished: the finished_at index
    // (migration 007) finds them without a status condition, which would send SQLite down the status index.
    const ids = (await this.knex('onbind_outbox').select('id').where('finished_at', '<', before).limit(limit)).map((r) => r.id as number);
    if (ids.length === 0) return 0;
    await this.knex('onbind_outbox').whereIn('id', ids).delete();
    return ids.length;
  }
}

/** An `associations` row; `lookupHash` is null until a pepper exists. */
export function associationRow(a: Association, lookupHash: string | null) {
  return {
    medium: a.medium,
    address: a.address,
    mxid: a.mxid,
    ts: a.ts,
    not_before: a.notBefore,
    not_after: a.notAfter,
    lookup_hash: lookupHash,
  };
}
