// Invitations and their ephemeral keys on Knex (SQLite and MySQL/MariaDB): store-invite's group commit, the
// batched and cached key-validity reads, the expiry sweep, and the pending invitations a bind claims.
import type { Knex } from 'knex';
import { createHash } from 'node:crypto';
import type { Database } from '../platform/db/Database.js';
import type { GroupCommitter } from '../platform/db/groupCommit.js';
import { BatchedReader, paddedIds, statementChunks } from '../platform/db/batchedRead.js';
import { KeyValidityCache } from '../platform/db/validityCache.js';
import { cancelInvitationMail, type MailOutboxStore, type NewMail } from '../mail/MailOutboxStore.js';

export interface NewInvite {
  medium: string;
  /** Normalised (case-folded) address. */
  address: string;
  roomId: string;
  sender: string;
  token: string;
  /** URL-safe unpadded base64, exactly as returned to the homeserver. */
  ephemeralPublicKey: string;
  /**
   * Every field of the request (extra keys included), for email templates and onbind: as JSON text (store-invite
   * serialises them itself, so that a failure is its own 400), or an object the store serialises.
   */
  fields: string | Record<string, unknown>;
  createdAt: number;
  expiresAt: number;
}

export interface InviteRecord extends Omit<NewInvite, 'fields'> {
  id: number;
  fields: Record<string, unknown>;
}

/** What an operator sees of an invitation: never its token or keys. */
export interface InviteSummary {
  id: number;
  medium: string;
  address: string;
  roomId: string;
  sender: string;
  createdAt: number;
  expiresAt: number;
  /** pending: waiting for a bind; claimed: a bind took it and its onbind is queued; delivered: the homeserver has it. */
  state: 'pending' | 'claimed' | 'delivered';
}

export type RevokeOutcome =
  | { outcome: 'not-found' }
  | { outcome: 'claimed' | 'delivered'; invite: InviteSummary }
  | {
      outcome: 'revoked';
      invite: InviteSummary;
      mailRemoved: number;
      mailInFlight: number;
      /** False for an invitation imported from Sydent: its key was never linked to it, so it stays until it expires. */
      keyRevoked: boolean;
    };

export interface InviteFilter {
  /** Medium and normalised address. */
  address?: { medium: string; address: string };
  roomId?: string;
  sender?: string;
}

export interface InviteStore {
  /** Invite + its ephemeral key + the email to the invitee, in one transaction, or nothing. */
  insertInvite(invite: NewInvite, mail: NewMail): Promise<void>;
  findInviteByToken(token: string): Promise<InviteRecord | undefined>;
  /** True while the key's invitation exists and has not expired. */
  isEphemeralKeyValid(publicKey: string, now: number): Promise<boolean>;
  /** Deletes up to `limit` expired invitations with their keys; returns how many went. */
  deleteExpiredInvites(now: number, limit: number): Promise<number>;
  /**
   * True while an ephemeral key linked to no invitation (one imported from Sydent, which never linked them) exists
   * and has not expired: such a key may sign for an imported invitation.
   */
  isUnlinkedKeyValid(publicKey: string, now: number): Promise<boolean>;
  /** Deletes up to `limit` expired keys linked to no invitation; returns how many went. */
  deleteExpiredUnlinkedKeys(now: number, limit: number): Promise<number>;
  /** Forgets up to `limit` revocations made before `before` (their invitations have expired by then). */
  deleteRevocationsBefore(before: number, limit: number): Promise<number>;
  /**
   * The address's invitations a bind at `now` claims: created up to `now`, unexpired, claimed by no earlier bind,
   * oldest first. (Their ephemeralPublicKey is not read: a bind does not need it.)
   */
  pendingInvitesFor(medium: string, address: string, now: number): Promise<InviteRecord[]>;
  /** Unexpired invitations matching the filter, newest first. */
  listInvites(filter: InviteFilter, now: number, limit: number): Promise<InviteSummary[]>;
  /**
   * Revokes an invitation not yet claimed by a bind, by id or token: the invitation, its ephemeral key and its
   * pending email go in one transaction.
   */
  revokeInvite(ref: { id: number } | { token: string }, now: number): Promise<RevokeOutcome>;
}

/** An `invites` row, optionally joined with its ephemeral key. */
interface InviteRow {
  id: number;
  medium: string;
  address: string;
  room_id: string;
  sender: string;
  token: string;
  fields: string;
  created_at: number | string;
  expires_at: number | string;
  public_key?: string | null;
}

/** Rows per multi-row INSERT. */
const ROWS_PER_INSERT = 64;

/** One invitation as its group commit writes it: rows only, every JSON column already text. */
interface PreparedInvite {
  invite: ReturnType<typeof inviteRow>;
  publicKey: string;
  mail: NewMail;
}

export class KnexInviteStore implements InviteStore {
  /** Concurrent insertInvite calls share transactions (groupCommit.ts). */
  private readonly inviteCommits: GroupCommitter<PreparedInvite>;

  /** Ephemeral-key validity, reused for at most 1 s (validityCache.ts). */
  readonly keyCache: KeyValidityCache;

  /** Key look-ups the validity cache could not answer, one statement per event-loop turn. */
  private readonly keyReads = new BatchedReader((keys: string[]) => this.readKeyExpiries(keys), 100);

  constructor(
    private readonly db: Database,
    private readonly mail: Pick<MailOutboxStore, 'enqueue'>,
    opts: { keyValidityCacheMs?: number } = {},
  ) {
    this.inviteCommits = db.groupCommitter((trx, items) => this.writeInvites(trx, items));
    this.keyCache = new KeyValidityCache(Math.min(opts.keyValidityCacheMs ?? 1000, 1000));
  }

  /**
   * The rows are built, JSON columns serialised, before the invitation joins a group commit: whatever can fail for
   * one invitation alone fails here, for its caller only. Inside the shared transaction only the database can fail,
   * so one client's input never costs other invitations a rolled-back transaction and a retry in halves.
   */
  async insertInvite(invite: NewInvite, mail: NewMail): Promise<void> {
    const prepared: PreparedInvite = {
      invite: inviteRow(invite),
      publicKey: invite.ephemeralPublicKey,
      mail: { ...mail, payload: typeof mail.payload === 'string' ? mail.payload : JSON.stringify(mail.payload) },
    };
    await this.inviteCommits.submit(prepared);
  }

  async findInviteByToken(token: string): Promise<InviteRecord | undefined> {
    const row = (await this.db
      .knex('invites')
      .leftJoin('ephemeral_keys', 'ephemeral_keys.invite_id', 'invites.id')
      .select('invites.*', 'ephemeral_keys.public_key')
      .where('invites.token', token)
      .first()) as InviteRow | undefined;
    return row && toInvite(row);
  }

  async isEphemeralKeyValid(publicKey: string, now: number): Promise<boolean> {
    const cached = this.keyCache.get(publicKey, now);
    if (cached !== undefined) return cached;
    const ticket = this.keyCache.ticket();
    const readAt = this.keyCache.now();
    const expiresAt = await this.keyReads.get(publicKey);
    this.keyCache.set(publicKey, expiresAt, ticket, readAt);
    return expiresAt !== null && expiresAt > now;
  }

  /**
   * Each key's expires_at (null: no such key), for the keys of one batch, by one `IN` on the unique public_key
   * index. A homeserver checks a different key per invitation, so under load the cache rarely answers, and one
   * statement per request would cost most of an isvalid's event-loop time. Rows are matched to keys by exact
   * string: a MySQL column with a case-insensitive collation may also return a key that differs in case, which
   * is a different key.
   */
  private async readKeyExpiries(keys: string[]): Promise<(number | null)[]> {
    const unique = [...new Set(keys)];
    const rows = (await this.db.knex('ephemeral_keys').select('public_key', 'expires_at').whereIn('public_key', paddedIds(unique))) as {
      public_key: string;
      expires_at: number | string;
    }[];
    const byKey = new Map(rows.map((r) => [r.public_key, Number(r.expires_at)]));
    return keys.map((k) => byKey.get(k) ?? null);
  }

  async deleteExpiredInvites(now: number, limit: number): Promise<number> {
    const ids = (await this.db.knex('invites').select('id').where('expires_at', '<=', now).limit(limit)).map((r) => r.id as number);
    if (ids.length === 0) return 0;
    // Cleared before (answers cached from now on may be stale) and after (a look-up that read a key before the
    // delete committed is not kept): the cache never outlives a delete made here.
    this.keyCache.invalidate();
    try {
      await this.db.transaction(async (trx) => {
        await trx('ephemeral_keys').whereIn('invite_id', ids).delete();
        await trx('invites').whereIn('id', ids).delete();
      });
    } finally {
      this.keyCache.invalidate();
    }
    return ids.length;
  }

  async isUnlinkedKeyValid(publicKey: string, now: number): Promise<boolean> {
    const row = (await this.db
      .knex('ephemeral_keys')
      .select('expires_at')
      .where({ public_key: publicKey })
      .whereNull('invite_id')
      .first()) as { expires_at: number | string } | undefined;
    return row !== undefined && Number(row.expires_at) > now;
  }

  async deleteExpiredUnlinkedKeys(now: number, limit: number): Promise<number> {
    const keys = (
      (await this.db.knex('ephemeral_keys').select('public_key').whereNull('invite_id').andWhere('expires_at', '<=', now).limit(limit)) as {
        public_key: string;
      }[]
    ).map((r) => r.public_key);
    if (keys.length === 0) return 0;
    this.keyCache.invalidate();
    try {
      return await this.db.knex('ephemeral_keys').whereIn('public_key', keys).whereNull('invite_id').delete();
    } finally {
      this.keyCache.invalidate();
    }
  }

  deleteRevocationsBefore(before: number, limit: number): Promise<number> {
    return this.db.deleteBefore('revoked_invites', 'token_hash', 'revoked_at', before, limit);
  }

  async pendingInvitesFor(medium: string, address: string, now: number): Promise<InviteRecord[]> {
    const rows = (await this.db
      .knex('invites')
      .select('*')
      .where({ medium, address })
      .whereNull('claimed_by')
      .andWhere('created_at', '<=', now)
      .andWhere('expires_at', '>', now)
      .orderBy('id')) as InviteRow[];
    return rows.map(toInvite);
  }

  async listInvites(filter: InviteFilter, now: number, limit: number): Promise<InviteSummary[]> {
    let q = this.db.knex('invites').select('*').where('expires_at', '>', now);
    if (filter.address) q = q.where({ medium: filter.address.medium, address: filter.address.address });
    if (filter.roomId) q = q.where({ room_id: filter.roomId });
    if (filter.sender) q = q.where({ sender: filter.sender });
    const rows = (await q.orderBy('id', 'desc').limit(limit)) as (InviteRow & StateColumns)[];
    return rows.map(toSummary);
  }

  async revokeInvite(ref: { id: number } | { token: string }, now: number): Promise<RevokeOutcome> {
    // The cache is cleared before and after, as for the expiry sweep: no answer cached here outlives the delete.
    this.keyCache.invalidate();
    try {
      return await this.db.transaction(async (trx): Promise<RevokeOutcome> => {
        const row = (await trx('invites')
          .where('id' in ref ? { id: ref.id } : { token: ref.token })
          .first()) as (InviteRow & StateColumns) | undefined;
        if (!row) return { outcome: 'not-found' };
        const invite = toSummary(row);
        if (invite.state !== 'pending') return { outcome: invite.state, invite };
        const mail = await cancelInvitationMail(trx, row.token, now);
        const keys = await trx('ephemeral_keys').where({ invite_id: row.id }).delete();
        await trx('invites').where({ id: row.id }).delete();
        // remembered, so that an import from Sydent run again later does not bring it back
        await trx('revoked_invites').insert({ token_hash: createHash('sha256').update(row.token, 'utf8').digest('hex'), revoked_at: now });
        return { outcome: 'revoked', invite, mailRemoved: mail.removed, mailInFlight: mail.inFlight, keyRevoked: keys > 0 };
      });
    } finally {
      this.keyCache.invalidate();
    }
  }

  /**
   * A group commit's rows in one transaction: invites and keys as multi-row INSERTs (ids found again by token,
   * which is unique, so no dialect's RETURNING or auto-increment order is relied on), and the emails queued the
   * same way, in statementChunks (at most 64 rows each; power-of-two sizes on SQLite).
   */
  private async writeInvites(trx: Knex.Transaction, items: PreparedInvite[]): Promise<void> {
    if (items.length === 1) {
      const { invite, publicKey, mail } = items[0]!;
      const [id] = await trx('invites').insert(invite);
      await trx('ephemeral_keys').insert(keyRow(invite, publicKey, id!));
      await this.mail.enqueue(trx, [mail]);
      return;
    }
    const chunks = statementChunks(items, this.db.sqlite, ROWS_PER_INSERT);
    for (const chunk of chunks) await trx('invites').insert(chunk.map(({ invite }) => invite));
    const ids = new Map<string, number>();
    for (const chunk of chunks) {
      const rows = (await trx('invites')
        .select('id', 'token')
        .whereIn(
          'token',
          chunk.map(({ invite }) => invite.token),
        )) as { id: number; token: string }[];
      for (const r of rows) ids.set(r.token, Number(r.id));
    }
    for (const chunk of chunks) {
      await trx('ephemeral_keys').insert(
        chunk.map(({ invite, publicKey }) => {
          const id = ids.get(invite.token);
          if (id === undefined) throw new Error('an invitation row vanished inside its own transaction');
          return keyRow(invite, publicKey, id);
        }),
      );
    }
    await this.mail.enqueue(
      trx,
      items.map(({ mail }) => mail),
    );
  }
}

function inviteRow(invite: NewInvite) {
  return {
    medium: invite.medium,
    address: invite.address,
    room_id: invite.roomId,
    sender: invite.sender,
    token: invite.token,
    fields: typeof invite.fields === 'string' ? invite.fields : JSON.stringify(invite.fields),
    created_at: invite.createdAt,
    expires_at: invite.expiresAt,
  };
}

function keyRow(invite: ReturnType<typeof inviteRow>, publicKey: string, inviteId: number) {
  return { public_key: publicKey, invite_id: inviteId, created_at: invite.created_at, expires_at: invite.expires_at };
}

interface StateColumns {
  claimed_by: number | null;
  delivered_at: number | string | null;
}

function toSummary(row: InviteRow & StateColumns): InviteSummary {
  return {
    id: Number(row.id),
    medium: row.medium,
    address: row.address,
    roomId: row.room_id,
    sender: row.sender,
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
    state:
      row.delivered_at !== null && row.delivered_at !== undefined
        ? 'delivered'
        : row.claimed_by !== null && row.claimed_by !== undefined
          ? 'claimed'
          : 'pending',
  };
}

function toInvite(row: InviteRow): InviteRecord {
  return {
    id: row.id,
    medium: row.medium,
    address: row.address,
    roomId: row.room_id,
    sender: row.sender,
    token: row.token,
    ephemeralPublicKey: row.public_key ?? '',
    fields: JSON.parse(row.fields) as Record<string, unknown>,
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
  };
}
