// AccountStore on Knex: access-token hashes and accepted policy versions.
import type { Knex } from 'knex';
import type { AcceptedPolicy, AccountStore, AccountToken } from './types.js';
import { BatchedReader, paddedIds } from '../platform/db/batchedRead.js';

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
    const rows = (await this.knex('account_tokens')
      .select('token_hash', 'user_id', 'created_at', 'expires_at')
      .whereIn('token_hash', paddedIds([...new Set(keys.map((k) => k.tokenHash))]))) as TokenRow[];
    const byHash = new Map(rows.map((r) => [r.token_hash, r]));
    return keys.map(({ tokenHash, now }) => {
      const row = byHash.get(tokenHash);
      if (!row || Number(row.expires_at) <= now) return undefined;
      return { tokenHash: row.token_hash, userId: row.user_id, createdAt: Number(row.created_at), expiresAt: Number(row.expires_at) };
    });
  }, 100);

  constructor(private readonly knex: Knex) {}

  async insertAccountToken(t: AccountToken): Promise<void> {
    await this.knex('account_tokens').insert({ token_hash: t.tokenHash, user_id: t.userId, created_at: t.createdAt, expires_at: t.expiresAt });
  }

  findAccountToken(tokenHash: string, now: number): Promise<AccountToken | undefined> {
    return this.tokenReads.get({ tokenHash, now });
  }

  async deleteAccountToken(tokenHash: string): Promise<boolean> {
    return (await this.knex('account_tokens').where('token_hash', tokenHash).delete()) > 0;
  }

  async deleteExpiredAccountTokens(now: number, limit: number): Promise<number> {
    const hashes = (await this.knex('account_tokens').select('token_hash').where('expires_at', '<=', now).limit(limit)).map((r) => r.token_hash as string);
    if (hashes.length === 0) return 0;
    await this.knex('account_tokens').whereIn('token_hash', hashes).delete();
    return hashes.length;
  }

  async acceptPolicies(userId: string, accepted: AcceptedPolicy[], now: number): Promise<void> {
    if (accepted.length === 0) return;
    const rows = accepted.map((a) => ({ user_id: userId, policy: a.policy, version: a.version, accepted_at: now }));
    await this.knex('accepted_terms').insert(rows).onConflict(['user_id', 'policy', 'version']).ignore();
  }

  async acceptedPolicies(userId: string): Promise<AcceptedPolicy[]> {
    const rows = await this.knex('accepted_terms').select('policy', 'version').where('user_id', userId);
    return rows.map((r) => ({ policy: r.policy as string, version: r.version as string }));
  }
}
