// The Store on Knex: SQLite and MySQL/MariaDB through the portable query builder.
import type { Knex } from 'knex';
import type { Association, InviteRecord, MailKind, NewInvite, NewMail, Store } from './types.js';
import { migrateLatest, openDatabase, type DatabaseOptions, type Dialect } from './db.js';
import { GroupCommitter } from './groupCommit.js';
import { KeyValidityCache, touchesKeys } from './validityCache.js';

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
  public_key: string | null;
}

export class KnexStore implements Store {
  /** Concurrent insertInvite calls share transactions (issue 6; see groupCommit.ts). */
  private readonly inviteCommits: GroupCommitter<{ invite: NewInvite; mail: NewMail }>;

  /** Ephemeral-key validity, kept <= 1 s (issue 6; see validityCache.ts). */
  readonly keyCache: KeyValidityCache;

  private constructor(readonly knex: Knex, readonly dialect: Dialect, keyValidityCacheMs = 1000) {
    this.inviteCommits = new GroupCommitter(
      (items) => this.knex.transaction((trx) => writeInvites(trx, items)),
      // SQLite has one writer (and knex one connection); MySQL commits in parallel on its pool.
      dialect === 'sqlite' ? 1 : 4,
    );
    this.keyCache = new KeyValidityCache(Math.min(keyValidityCacheMs, 1000));
    // Any DELETE/UPDATE of invites or keys through this knex (whoever's code runs it) drops the cache at once.
    const onQuery = (q: { sql?: string }) => {
      if (q.sql && touchesKeys(q.sql)) this.keyCache.invalidate();
    };
    knex.on('query', onQuery);
    knex.on('query-response', (_r: unknown, q: { sql?: string }) => onQuery(q));
  }

  /** Opens the database and brings its schema up to date. */
  static async create(opts: DatabaseOptions): Promise<KnexStore> {
    const { knex, dialect } = openDatabase(opts);
    try {
      await migrateLatest(knex);
    } catch (err) {
      await knex.destroy();
      throw err;
    }
    return new KnexStore(knex, dialect, opts.keyValidityCacheMs);
  }

  async close(): Promise<void> {
    await this.knex.destroy();
  }

  async insertInvite(invite: NewInvite, mail: NewMail): Promise<void> {
    await this.inviteCommits.submit({ invite, mail });
  }

  async findInviteByToken(token: string): Promise<InviteRecord | undefined> {
    const row = (await this.knex('invites')
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
    const row = await this.knex('ephemeral_keys').select('expires_at').where('public_key', publicKey).first();
    const expiresAt = row === undefined ? null : Number(row.expires_at);
    this.keyCache.set(publicKey, expiresAt, ticket, readAt);
    return expiresAt !== null && expiresAt > now;
  }

  async deleteExpiredInvites(now: number, limit: number): Promise<number> {
    const ids = (await this.knex('invites').select('id').where('expires_at', '<=', now).limit(limit)).map((r) => r.id as number);
    if (ids.length === 0) return 0;
    await this.knex.transaction(async (trx) => {
      await trx('ephemeral_keys').whereIn('invite_id', ids).delete();
      await trx('invites').whereIn('id', ids).delete();
    });
    return ids.length;
  }

  async findAssociation(medium: string, address: string, now: number): Promise<Association | undefined> {
    const row = await this.knex('associations')
      .where({ medium, address })
      .andWhere('not_before', '<=', now)
      .andWhere('not_after', '>', now)
      .first();
    return row && {
      medium: row.medium,
      address: row.address,
      mxid: row.mxid,
      ts: Number(row.ts),
      notBefore: Number(row.not_before),
      notAfter: Number(row.not_after),
    };
  }

  async insertAssociation(a: Association): Promise<void> {
    await this.knex('associations').insert({
      medium: a.medium,
      address: a.address,
      mxid: a.mxid,
      ts: a.ts,
      not_before: a.notBefore,
      not_after: a.notAfter,
    });
  }
}

/**
 * A group commit's rows in one transaction (issue 6): invites and keys as one multi-row INSERT each (ids
 * found again by token, which is unique, so no dialect's RETURNING or auto-increment order is relied on),
 * the emails one by one through insertMail (the mail issue owns that row's shape).
 */
async function writeInvites(trx: Knex.Transaction, items: { invite: NewInvite; mail: NewMail }[]): Promise<void> {
  if (items.length === 1) return writeInvite(trx, items[0]!.invite, items[0]!.mail);
  for (let i = 0; i < items.length; i += 100) {
    await trx('invites').insert(items.slice(i, i + 100).map(({ invite }) => inviteRow(invite)));
  }
  const ids = new Map<string, number>();
  for (let i = 0; i < items.length; i += 100) {
    const rows = (await trx('invites').select('id', 'token').whereIn('token', items.slice(i, i + 100).map(({ invite }) => invite.token))) as { id: number; token: string }[];
    for (const r of rows) ids.set(r.token, Number(r.id));
  }
  for (let i = 0; i < items.length; i += 100) {
    await trx('ephemeral_keys').insert(items.slice(i, i + 100).map(({ invite }) => {
      const id = ids.get(invite.token);
      if (id === undefined) throw new Error('an invitation row vanished inside its own transaction');
      return keyRow(invite, id);
    }));
  }
  for (const { mail } of items) await insertMail(trx, mail);
}

function inviteRow(invite: NewInvite) {
  return {
    medium: invite.medium,
    address: invite.address,
    room_id: invite.roomId,
    sender: invite.sender,
    token: invite.token,
    fields: JSON.stringify(invite.fields),
    created_at: invite.createdAt,
    expires_at: invite.expiresAt,
  };
}

function keyRow(invite: NewInvite, inviteId: number) {
  return { public_key: invite.ephemeralPublicKey, invite_id: inviteId, created_at: invite.createdAt, expires_at: invite.expiresAt };
}

/** One invitation's rows (invite, its ephemeral key, its email) inside the caller's transaction. */
async function writeInvite(trx: Knex.Transaction, invite: NewInvite, mail: NewMail): Promise<void> {
  const [id] = await trx('invites').insert(inviteRow(invite));
  await trx('ephemeral_keys').insert(keyRow(invite, id!));
  await insertMail(trx, mail);
}

export async function insertMail(trx: Knex | Knex.Transaction, mail: NewMail): Promise<void> {
  await trx('mail_outbox').insert({
    kind: mail.kind satisfies MailKind,
    recipient: mail.recipient,
    payload: JSON.stringify(mail.payload),
    status: 'pending',
    attempts: 0,
    next_attempt_at: mail.createdAt,
    created_at: mail.createdAt,
  });
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
