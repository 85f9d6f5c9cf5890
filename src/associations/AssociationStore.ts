// Associations (bind, unbind, lookups) and the lookup-pepper settings on Knex (SQLite and MySQL/MariaDB). A bind
// claims the address's pending invitations and queues their onbind bodies, already built and signed, in its
// transaction.
import type { Database } from '../platform/db/Database.js';
import { BatchedReader, paddedIds } from '../platform/db/batchedRead.js';
import type { NewOnbind, OnbindOutboxStore } from './OnbindOutboxStore.js';

export interface Association {
  medium: string;
  address: string;
  mxid: string;
  ts: number;
  notBefore: number;
  notAfter: number;
}

export interface StoredAssociation extends Association {
  id: number;
}

/** One onbind call a bind queues: a chunk of the invites it claims, and the body carrying them. */
export interface OnbindChunk {
  inviteIds: number[];
  /** Built and signed before the transaction; stored and sent exactly as given. */
  body: string;
}

export interface BindOptions {
  lookupHash: string;
  /** Server name of the bound mxid: where the onbind calls go. */
  destination: string;
  /** Every invite the bind claims (pendingInvitesFor at `now`), in chunks, with their bodies. */
  onbind: OnbindChunk[];
  now: number;
}

export interface BindResult {
  association: StoredAssociation;
  claimedInvites: number;
  onbindRows: number;
}

/**
 * The address's pending invitations are no longer the ones the bodies were built for (another bind claimed
 * some, or one was stored or swept meanwhile): nothing was written; build them again from a fresh read.
 */
export class InvitesChanged extends Error {
  override name = 'InvitesChanged';
}

export interface AssociationStore {
  /** The current association of the address, if any (look-ups of one event-loop turn share one statement). */
  findAssociation(medium: string, address: string, now: number): Promise<Association | undefined>;
  /** Inserts an association as is (no claim, no onbind); `lookupHash` is null until a pepper exists. */
  insertAssociation(association: Association, lookupHash: string | null): Promise<void>;
  /**
   * One transaction: replace any association of the address, claim exactly the invites of `opts.onbind` (which
   * must be every invite of the address pending at `opts.now`, else InvitesChanged), and queue their bodies.
   */
  bindAssociation(association: Association, opts: BindOptions): Promise<BindResult>;
  /** Removes the association if it is bound to `mxid`; claimed invites stay claimed. */
  deleteAssociation(medium: string, address: string, mxid: string): Promise<boolean>;
  /**
   * The mxid of each current association whose lookup_hash is one of `hashes` (callers batch; one indexed
   * query). Only the two columns a lookup answers with are read: a 1,000-address v2 lookup is the heaviest
   * read served, and full rows would cost it CPU and memory for nothing.
   */
  findMxidsByHash(hashes: string[], now: number): Promise<{ lookupHash: string; mxid: string }[]>;
  getBindingSetting(name: string): Promise<string | undefined>;
  putBindingSetting(name: string, value: string): Promise<void>;
  /** Writes the setting only if it has no value yet (concurrent first starts agree on one value). */
  insertBindingSettingIfAbsent(name: string, value: string): Promise<void>;
  /**
   * Recomputes lookup_hash of every association, `batch` rows per transaction; returns how many. The hashes
   * of a batch are computed before its transaction opens.
   */
  rehashAssociations(hash: (address: string, medium: string) => string, batch: number): Promise<number>;
}

/** An associations row as the drivers answer it (mysql2 may answer BIGINT columns as strings). */
interface AssociationRow {
  id: number;
  medium: string;
  address: string;
  mxid: string;
  ts: number | string;
  not_before: number | string;
  not_after: number | string;
  lookup_hash: string | null;
}

function toAssociation(r: Pick<AssociationRow, 'medium' | 'address' | 'mxid' | 'ts' | 'not_before' | 'not_after'>): Association {
  return {
    medium: r.medium,
    address: r.address,
    mxid: r.mxid,
    ts: Number(r.ts),
    notBefore: Number(r.not_before),
    notAfter: Number(r.not_after),
  };
}

function associationRow(a: Association, lookupHash: string | null) {
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

/** Invite ids per claiming UPDATE. */
const CLAIM_CHUNK = 256;

export class KnexAssociationStore implements AssociationStore {
  /** "Is this address bound?" look-ups of one event-loop turn, answered by one statement (batchedRead.ts). */
  private readonly associationReads = new BatchedReader(
    (keys: { medium: string; address: string; now: number }[]) => this.readAssociations(keys),
    100,
  );

  constructor(
    private readonly db: Database,
    private readonly onbind: Pick<OnbindOutboxStore, 'enqueue'>,
  ) {}

  findAssociation(medium: string, address: string, now: number): Promise<Association | undefined> {
    return this.associationReads.get({ medium, address, now });
  }

  /**
   * One statement for a batch of look-ups: a UNION ALL of the single-row query, one arm per look-up, each
   * tagged with its position. Every arm is exactly the single look-up's query (same index, the same collation
   * semantics, its own `now`), so batching changes no answer.
   */
  private async readAssociations(keys: { medium: string; address: string; now: number }[]): Promise<(Association | undefined)[]> {
    const arm =
      'SELECT ? AS k, medium, address, mxid, ts, not_before, not_after FROM associations WHERE medium = ? AND address = ? AND not_before <= ? AND not_after > ?';
    // Padded (paddedIds) with repeats of the first look-up, tagged 0 like it: they answer what it answers.
    const arms = paddedIds(keys);
    const rows = (await this.db.knex.raw(
      arms.map(() => arm).join(' UNION ALL '),
      arms.flatMap((k, i) => [i < keys.length ? i : 0, k.medium, k.address, k.now, k.now]),
    )) as unknown;
    // better-sqlite3 answers the rows; mysql2 answers [rows, fields].
    const list = (this.db.dialect === 'mysql' ? (rows as unknown[])[0] : rows) as (Omit<AssociationRow, 'id' | 'lookup_hash'> & {
      k: number | string;
    })[];
    const out: (Association | undefined)[] = keys.map(() => undefined);
    for (const row of list) out[Number(row.k)] = toAssociation(row);
    return out;
  }

  async insertAssociation(a: Association, lookupHash: string | null): Promise<void> {
    await this.db.knex('associations').insert(associationRow(a, lookupHash));
  }

  /** Two binds of one address at once can collide on its unique key or deadlock (MySQL): the loser retries. */
  async bindAssociation(a: Association, opts: BindOptions): Promise<BindResult> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.bindOnce(a, opts);
      } catch (err) {
        const code = (err as { code?: string }).code ?? '';
        if (
          attempt >= 3 ||
          !['ER_DUP_ENTRY', 'ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT', 'SQLITE_CONSTRAINT_UNIQUE', 'SQLITE_BUSY'].includes(code)
        )
          throw err;
      }
    }
  }

  private bindOnce(a: Association, opts: BindOptions): Promise<BindResult> {
    // READ COMMITTED on MySQL: at REPEATABLE READ the delete of a not-yet-bound address and the invites claim
    // take gap locks, and binds of unrelated neighbouring addresses deadlock one another. Without gap locks the
    // claim keeps its meaning: the UPDATE still locks the rows it changes and rereads them once a competing
    // binder commits, so an invite still goes to the first binder only.
    return this.db.transaction(
      async (trx) => {
        await trx('associations').where({ medium: a.medium, address: a.address }).delete();
        const [id] = (await trx('associations').insert(associationRow(a, opts.lookupHash))) as number[];
        const association: StoredAssociation = { ...a, id: id! };
        // Claim, atomically: exactly the invites the bodies carry, each only if no bind claimed it before.
        const inviteIds = opts.onbind.flatMap((c) => c.inviteIds);
        let claimed = 0;
        for (let i = 0; i < inviteIds.length; i += CLAIM_CHUNK) {
          claimed += await trx('invites')
            .whereIn('id', paddedIds(inviteIds.slice(i, i + CLAIM_CHUNK)))
            .andWhere({ medium: a.medium, address: a.address })
            .whereNull('claimed_by')
            .update({ claimed_by: association.id });
        }
        if (claimed !== inviteIds.length) throw new InvitesChanged('another bind claimed some of the invitations');
        const unclaimed = await trx('invites')
          .first('id')
          .where({ medium: a.medium, address: a.address })
          .whereNull('claimed_by')
          .andWhere('created_at', '<=', opts.now)
          .andWhere('expires_at', '>', opts.now);
        if (unclaimed) throw new InvitesChanged('an invitation was stored meanwhile');
        const rows: NewOnbind[] = opts.onbind.map((c) => ({
          destination: opts.destination,
          associationId: association.id,
          body: c.body,
          inviteIds: c.inviteIds,
          createdAt: opts.now,
        }));
        await this.onbind.enqueue(trx, rows);
        return { association, claimedInvites: claimed, onbindRows: rows.length };
      },
      { readCommitted: true },
    );
  }

  async deleteAssociation(medium: string, address: string, mxid: string): Promise<boolean> {
    const n = await this.db.knex('associations').where({ medium, address, mxid }).delete();
    return n > 0;
  }

  async findMxidsByHash(hashes: string[], now: number): Promise<{ lookupHash: string; mxid: string }[]> {
    if (hashes.length === 0) return [];
    return (
      (await this.db
        .knex('associations')
        .select({ lookupHash: 'lookup_hash', mxid: 'mxid' })
        // Padded (paddedIds): a lookup's last batch can be any size up to 1,000, and SQLite would keep a
        // prepared statement of up to 1,000 parameters for each size it met.
        .whereIn('lookup_hash', paddedIds(hashes))
        .andWhere('not_before', '<=', now)
        .andWhere('not_after', '>', now)) as { lookupHash: string; mxid: string }[]
    );
  }

  async getBindingSetting(name: string): Promise<string | undefined> {
    const row = await this.db.knex('binding_settings').where({ name }).first();
    return row ? (row.value as string) : undefined;
  }

  async putBindingSetting(name: string, value: string): Promise<void> {
    await this.db.knex('binding_settings').insert({ name, value }).onConflict('name').merge();
  }

  async insertBindingSettingIfAbsent(name: string, value: string): Promise<void> {
    await this.db.knex('binding_settings').insert({ name, value }).onConflict('name').ignore();
  }

  async rehashAssociations(hash: (address: string, medium: string) => string, batch: number): Promise<number> {
    let lastId = 0;
    let total = 0;
    for (;;) {
      const rows = (await this.db
        .knex('associations')
        .select('id', 'medium', 'address')
        .where('id', '>', lastId)
        .orderBy('id')
        .limit(batch)) as AssociationRow[];
      if (rows.length === 0) break;
      const hashes = rows.map((r) => hash(r.address, r.medium));
      await this.db.transaction(async (trx) => {
        for (const [i, r] of rows.entries()) await trx('associations').where({ id: r.id }).update({ lookup_hash: hashes[i] });
      });
      total += rows.length;
      lastId = rows[rows.length - 1]!.id;
      if (rows.length < batch) break;
    }
    return total;
  }
}
