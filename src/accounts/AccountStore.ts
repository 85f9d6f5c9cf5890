// Accounts on Knex (SQLite and MySQL/MariaDB): access-token hashes and accepted policy versions.
import type { Database } from '../platform/db/Database.js';
import { BatchedReader, paddedIds } from '../platform/db/batchedRead.js';

export interface AccountToken {
  /** sha256 of the access token, hex; the token itself is never stored. */
  tokenHash: string;
  userId: string;
  createdAt: number;
  expiresAt: number;
}

export interface AcceptedPolicy {
  policy: string;
  version: string;
}

export interface AccountStore {
  insertAccountToken(token: AccountToken): Promise<void>;
  /** The token's row while it has not expired. */
  findAccountToken(tokenHash: string, now: number): Promise<AccountToken | undefined>;
  /** True when a row was deleted. */
  deleteAccountToken(tokenHash: string): Promise<boolean>;
  /** Deletes up to `limit` expired tokens; returns how many went. */
  deleteExpiredAccountTokens(now: number, limit: number): Promise<number>;
  /** Records accepted policy versions for a user; accepting one again changes nothing. */
  acceptPolicies(userId: string, accepted: AcceptedPolicy[], now: number): Promise<void>;
  acceptedPolicies(userId: string): Promise<AcceptedPolicy[]>;
}

interface TokenRow {
  token_hash: string;
  user_id: string;
  created_at: number | string;
  expires_at: number | string;
}

export class KnexAccountStore implements AccountStore {
  /**
   * Every v2 request reads its access token: the reads of one event-loop turn share one statement
   * (batchedRead.ts). Hashes are lower-case hex from hashAccessToken on both sides, so matching rows back
   * by exact string is what the database's comparison does; expiry is checked per caller, with its own now.
   */
  private readonly tokenReads = new BatchedReader(async (keys: { tokenHash: string; now: number }[]) => {
    const rows = (await this.db
      .knex('account_tokens')
      .select('token_hash', 'user_id', 'created_at', 'expires_at')
      .whereIn('token_hash', paddedIds([...new Set(keys.map((k) => k.tokenHash))]))) as TokenRow[];
    const byHash = new Map(rows.map((r) => [r.token_hash, r]));
    return keys.map(({ tokenHash, now }) => {
      const row = byHash.get(tokenHash);
      if (!row || Number(row.expires_at) <= now) return undefined;
      return { tokenHash: row.token_hash, userId: row.user_id, createdAt: Number(row.created_at), expiresAt: Number(row.expires_at) };
    });
  }, 100);

  constructor(private readonly db: Database) {}

  async insertAccountToken(t: AccountToken): Promise<void> {
    await this.db
      .knex('account_tokens')
      .insert({ token_hash: t.tokenHash, user_id: t.userId, created_at: t.createdAt, expires_at: t.expiresAt });
  }

  findAccountToken(tokenHash: string, now: number): Promise<AccountToken | undefined> {
    return this.tokenReads.get({ tokenHash, now });
  }

  async deleteAccountToken(tokenHash: string): Promise<boolean> {
    return (await this.db.knex('account_tokens').where('token_hash', tokenHash).delete()) > 0;
  }

  async deleteExpiredAccountTokens(now: number, limit: number): Promise<number> {
    return this.db.deleteBefore('account_tokens', 'token_hash', 'expires_at', now, limit, true);
  }

  async acceptPolicies(userId: string, accepted: AcceptedPolicy[], now: number): Promise<void> {
    if (accepted.length === 0) return;
    const rows = accepted.map((a) => ({ user_id: userId, policy: a.policy, version: a.version, accepted_at: now }));
    await this.db.knex('accepted_terms').insert(rows).onConflict(['user_id', 'policy', 'version']).ignore();
  }

  async acceptedPolicies(userId: string): Promise<AcceptedPolicy[]> {
    const rows = await this.db.knex('accepted_terms').select('policy', 'version').where('user_id', userId);
    return rows.map((r) => ({ policy: r.policy as string, version: r.version as string }));
  }
}
