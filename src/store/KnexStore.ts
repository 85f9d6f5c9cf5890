// The Store on Knex: SQLite and MySQL/MariaDB through the portable query builder.
import type { Knex } from 'knex';
import type { AcceptedPolicy, AccountToken, Association, InviteRecord, MailJob, MailKind, MailOutcome, NewInvite, NewMail, Store } from './types.js';
import { KnexAccountStore } from './KnexAccountStore.js';
import type * as B from './types.js';
import { associationRow, KnexBindingStore, toAssociation, type AssociationRow } from './KnexBindingStore.js';
import { lookupHash } from '../associations/hash.js';
import { migrateLatest, openDatabase, type DatabaseOptions, type Dialect } from '../platform/db/db.js';
import { KnexMailStore } from './KnexMailStore.js';
import { GroupCommitter } from '../platform/db/groupCommit.js';
import { BatchedReader, paddedIds, statementChunks } from '../platform/db/batchedRead.js';
import { KeyValidityCache, touchesKeys } from '../invitations/validityCache.js';

/** An `invites` row, optionally joined with its ephemeral key. */
export interface InviteRow {
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

export class KnexStore implements Store {
  /** Concurrent insertInvite calls share transactions (issue 6; see groupCommit.ts). */
  private readonly inviteCommits: GroupCommitter<{ invite: NewInvite; mail: NewMail }>;

  /** Ephemeral-key validity, kept <= 1 s (issue 6; see validityCache.ts). */
  readonly keyCache: KeyValidityCache;

  private readonly binding: KnexBindingStore;

  /** The mail outbox (issue 3). */
  private readonly mail: KnexMailStore;

  /** "Is this address bound?" look-ups of one event-loop turn, answered by one statement (batchedRead.ts). */
  private readonly associationReads = new BatchedReader((keys: { medium: string; address: string; now: number }[]) => this.readAssociations(keys), 100);

  /** Ephemeral-key look-ups the validity cache could not answer, one statement per event-loop turn. */
  private readonly keyReads = new BatchedReader((keys: string[]) => this.readKeyExpiries(keys), 100);

  private constructor(readonly knex: Knex, readonly dialect: Dialect, keyValidityCacheMs = 1000, commitConcurrency: number) {
    this.binding = new KnexBindingStore(knex, dialect);
    this.mail = new KnexMailStore(knex, dialect);
    this.inviteCommits = new GroupCommitter(
      (items) => this.knex.transaction((trx) => writeInvites(trx, items, dialect)),
      // SQLite has one writer (and knex one connection); MySQL commits up to `commitConcurrency` group commits
      // in parallel on its pool (TESSERA_DB_COMMIT_CONCURRENCY, default 4). Measured in the sixth pass
      // (docs/design.md): one at a time makes bigger batches and lets the mail worker fall behind less under full
      // load (54% of a run's emails delivered during it, against 30 to 31% with 4), but answered 9 to 27% fewer
      // store-invites a second at 64 connections, for about the same total CPU per invitation; so 4 stays.
      dialect === 'sqlite' ? 1 : commitConcurrency,
      256,
      isConnectionError,
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
    // Group commits leave the MySQL pool one connection for binds, the outboxes and look-ups (a pool of one
    // is shared, turn by turn).
    const commits = Math.max(1, Math.min(opts.commitConcurrency ?? 4, (opts.poolMax ?? 8) - 1));
    return new KnexStore(knex, dialect, opts.keyValidityCacheMs, commits);
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
    const expiresAt = await this.keyReads.get(publicKey);
    this.keyCache.set(publicKey, expiresAt, ticket, readAt);
    return expiresAt !== null && expiresAt > now;
  }

  /**
   * Each key's expires_at (null: no such key), for the keys of one batch, by one `IN` on the unique
   * public_key index. A homeserver checks a different key per invitation, so under load the cache rarely
   * answers, and one statement per request cost isvalid-spread most of its event-loop time (issue 6 notes).
   * Rows are matched to keys by exact string: a MySQL column with a case-insensitive collation may also
   * return a key that differs in case, which is a different key.
   */
  private async readKeyExpiries(keys: string[]): Promise<(number | null)[]> {
    const unique = [...new Set(keys)];
    const rows = (await this.knex('ephemeral_keys').select('public_key', 'expires_at').whereIn('public_key', paddedIds(unique))) as { public_key: string; expires_at: number | string }[];
    const byKey = new Map(rows.map((r) => [r.public_key, Number(r.expires_at)]));
    return keys.map((k) => byKey.get(k) ?? null);
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
    return this.associationReads.get({ medium, address, now });
  }

  /**
   * One statement for a batch of look-ups: a UNION ALL of the single-row query, one arm per look-up, each
   * tagged with its position. Every arm is exactly the old per-request query (same index, the same collation
   * semantics, its own `now`), so batching changes no answer.
   */
  private async readAssociations(keys: { medium: string; address: string; now: number }[]): Promise<(Association | undefined)[]> {
    const arm = 'SELECT ? AS k, medium, address, mxid, ts, not_before, not_after FROM associations WHERE medium = ? AND address = ? AND not_before <= ? AND not_after > ?';
    // Padded (paddedIds) with repeats of the first look-up, tagged 0 like it: they answer what it answers.
    const arms = paddedIds(keys);
    const rows = (await this.knex.raw(
      arms.map(() => arm).join(' UNION ALL '),
      arms.flatMap((k, i) => [i < keys.length ? i : 0, k.medium, k.address, k.now, k.now]),
    )) as unknown;
    // better-sqlite3 answers the rows; mysql2 answers [rows, fields].
    const list = (this.dialect === 'mysql' ? (rows as unknown[])[0] : rows) as (Omit<AssociationRow, 'id' | 'lookup_hash'> & { k: number | string })[];
    const out: (Association | undefined)[] = keys.map(() => undefined);
    for (const row of list) out[Number(row.k)] = toAssociation(row);
    return out;
  }

  async insertAssociation(a: Association): Promise<void> {
    const pepper = await this.binding.getBindingSetting('lookup_pepper');
    await this.knex('associations').insert(associationRow(a, pepper === undefined ? null : lookupHash(a.address, a.medium, pepper)));
  }

  async hitRateLimits(buckets: string[], windowStart: number): Promise<number[]> {
    if (buckets.length === 0) return [];
    await this.knex('rate_limits')
      .insert(buckets.map((bucket) => ({ bucket, window_start: windowStart, hits: 1 })))
      .onConflict('bucket')
      // `hits` is assigned before `window_start`: MySQL evaluates ON DUPLICATE KEY UPDATE left to right.
      .merge({
        hits: this.knex.raw('CASE WHEN rate_limits.window_start = ? THEN rate_limits.hits + 1 ELSE 1 END', [windowStart]),
        window_start: windowStart,
      });
    const rows = await this.knex('rate_limits').select('bucket', 'hits').whereIn('bucket', buckets);
    const byBucket = new Map(rows.map((r) => [r.bucket as string, Number(r.hits)]));
    return buckets.map((b) => byBucket.get(b) ?? 0);
  }

  async deleteRateLimitsBefore(before: number): Promise<number> {
    return this.knex('rate_limits').where('window_start', '<', before).delete();
  }

  // AccountStore (accounts and terms): src/store/KnexAccountStore.ts
  private accountStore?: KnexAccountStore;
  private get accounts(): KnexAccountStore {
    return (this.accountStore ??= new KnexAccountStore(this.knex));
  }
  insertAccountToken(t: AccountToken): Promise<void> {
    return this.accounts.insertAccountToken(t);
  }
  findAccountToken(tokenHash: string, now: number): Promise<AccountToken | undefined> {
    return this.accounts.findAccountToken(tokenHash, now);
  }
  deleteAccountToken(tokenHash: string): Promise<boolean> {
    return this.accounts.deleteAccountToken(tokenHash);
  }
  deleteExpiredAccountTokens(now: number, limit: number): Promise<number> {
    return this.accounts.deleteExpiredAccountTokens(now, limit);
  }
  acceptPolicies(userId: string, accepted: AcceptedPolicy[], now: number): Promise<void> {
    return this.accounts.acceptPolicies(userId, accepted, now);
  }
  acceptedPolicies(userId: string): Promise<AcceptedPolicy[]> {
    return this.accounts.acceptedPolicies(userId);
  }

  // Mail outbox (issue 3): implemented in KnexMailStore.
  claimDueMail(worker: string, now: number, leaseMs: number, limit: number): Promise<MailJob[]> {
    return this.mail.claimDueMail(worker, now, leaseMs, limit);
  }
  finishMail(worker: string, outcomes: MailOutcome[]): Promise<number[]> {
    return this.mail.finishMail(worker, outcomes);
  }
  nextMailDueAt(): Promise<number | undefined> {
    return this.mail.nextMailDueAt();
  }
  deleteFinishedMail(before: number, limit: number): Promise<number> {
    return this.mail.deleteFinishedMail(before, limit);
  }
  // ---- binding (issue 5): implemented in KnexBindingStore ----
  findSession(sid: string) { return this.binding.findSession(sid); }
  findSessionByOwner(medium: string, address: string, clientSecret: string, now: number) { return this.binding.findSessionByOwner(medium, address, clientSecret, now); }
  insertSession(session: B.ValidationSession, mail: NewMail) { return this.binding.insertSession(session, mail); }
  resendSession(sid: string, update: Pick<B.ValidationSession, 'token' | 'tokenExpiresAt' | 'sendAttempt' | 'nextLink'>, mail: NewMail) { return this.binding.resendSession(sid, update, mail); }
  markSessionValidated(sid: string, validatedAt: number, expiresAt: number) { return this.binding.markSessionValidated(sid, validatedAt, expiresAt); }
  deleteExpiredSessions(now: number, limit: number) { return this.binding.deleteExpiredSessions(now, limit); }
  bindAssociation(association: Association, opts: B.BindOptions) { return this.binding.bindAssociation(association, opts); }
  deleteAssociation(medium: string, address: string, mxid: string) { return this.binding.deleteAssociation(medium, address, mxid); }
  findMxidsByHash(hashes: string[], now: number) { return this.binding.findMxidsByHash(hashes, now); }
  getBindingSetting(name: string) { return this.binding.getBindingSetting(name); }
  putBindingSetting(name: string, value: string) { return this.binding.putBindingSetting(name, value); }
  rehashAssociations(hash: (address: string, medium: string) => string, batch: number) { return this.binding.rehashAssociations(hash, batch); }
  insertBindingSettingIfAbsent(name: string, value: string) { return this.binding.insertBindingSettingIfAbsent(name, value); }
  claimOnbind(worker: string, now: number, leaseMs: number, limit: number) { return this.binding.claimOnbind(worker, now, leaseMs, limit); }
  completeOnbind(id: number, worker: string, now: number, status: number) { return this.binding.completeOnbind(id, worker, now, status); }
  retryOnbind(id: number, worker: string, nextAttemptAt: number, error: string, status: number | null) { return this.binding.retryOnbind(id, worker, nextAttemptAt, error, status); }
  failOnbind(id: number, worker: string, now: number, error: string, status: number | null) { return this.binding.failOnbind(id, worker, now, error, status); }
  deleteFinishedOnbind(before: number, limit: number) { return this.binding.deleteFinishedOnbind(before, limit); }
}

/**
 * A group commit's rows in one transaction (issue 6): invites and keys as multi-row INSERTs (ids found again
 * by token, which is unique, so no dialect's RETURNING or auto-increment order is relied on), and the emails
 * as multi-row INSERTs too, in statementChunks (at most 64 rows each; power-of-two sizes on SQLite).
 */
async function writeInvites(trx: Knex.Transaction, items: { invite: NewInvite; mail: NewMail }[], dialect: Dialect): Promise<void> {
  if (items.length === 1) return writeInvite(trx, items[0]!.invite, items[0]!.mail);
  const chunks = statementChunks(items, dialect === 'sqlite', ROWS_PER_INSERT);
  for (const chunk of chunks) await trx('invites').insert(chunk.map(({ invite }) => inviteRow(invite)));
  const ids = new Map<string, number>();
  for (const chunk of chunks) {
    const rows = (await trx('invites').select('id', 'token').whereIn('token', chunk.map(({ invite }) => invite.token))) as { id: number; token: string }[];
    for (const r of rows) ids.set(r.token, Number(r.id));
  }
  for (const chunk of chunks) {
    await trx('ephemeral_keys').insert(chunk.map(({ invite }) => {
      const id = ids.get(invite.token);
      if (id === undefined) throw new Error('an invitation row vanished inside its own transaction');
      return keyRow(invite, id);
    }));
  }
  await insertMails(trx, items.map(({ mail }) => mail), dialect);
}

/** Rows per multi-row INSERT. */
const ROWS_PER_INSERT = 64;

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
  await trx('mail_outbox').insert(mailRow(mail));
}

/** Queues several emails with multi-row INSERTs (statementChunks). */
async function insertMails(trx: Knex | Knex.Transaction, mails: NewMail[], dialect: Dialect): Promise<void> {
  for (const chunk of statementChunks(mails, dialect === 'sqlite', ROWS_PER_INSERT)) await trx('mail_outbox').insert(chunk.map(mailRow));
}

function mailRow(mail: NewMail) {
  return {
    kind: mail.kind satisfies MailKind,
    recipient: mail.recipient,
    payload: JSON.stringify(mail.payload),
    status: 'pending',
    attempts: 0,
    next_attempt_at: mail.createdAt,
    created_at: mail.createdAt,
  };
}

export function toInvite(row: InviteRow): InviteRecord {
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

/**
 * Errors that no row of a group commit caused: the database could not be reached or answered too late. A
 * batch failing with one is failed whole rather than retried in halves (GroupCommitter).
 */
export function isConnectionError(err: unknown): boolean {
  const e = err as { name?: unknown; code?: unknown; fatal?: unknown } | null;
  if (!e || typeof e !== 'object') return false;
  if (e.name === 'KnexTimeoutError' || e.fatal === true) return true; // pool acquire timeout; mysql2: connection unusable
  // SQLite reports extended codes (SQLITE_IOERR_WRITE, ...): matched by their primary code.
  return typeof e.code === 'string' && (CONNECTION_CODES.has(e.code) || /^SQLITE_(CANTOPEN|IOERR|FULL)(_|$)/.test(e.code));
}

const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'PROTOCOL_CONNECTION_LOST', 'PROTOCOL_SEQUENCE_TIMEOUT', 'ER_CON_COUNT_ERROR']);
