// The signing keys' lifecycle on Knex (SQLite and MySQL/MariaDB): public parts only, shared by every instance.
import type { Database } from '../platform/db/Database.js';

export interface SigningKeyRecord {
  keyId: string;
  publicKey: string;
  createdAt: number;
  /** null while the key signs. */
  retiredAt: number | null;
  /** A rotated-out key stays valid until then. */
  validUntil: number | null;
}

export interface SigningKeyStore {
  list(): Promise<SigningKeyRecord[]>;
  /** Records a key as signing when the database has no record of it; answers whether it added one. */
  recordIfAbsent(keyId: string, publicKey: string, now: number): Promise<boolean>;
  /**
   * One transaction: every signing key is retired at `now`, valid until `validUntil`, and `next` signs from now on.
   * Fails, changing nothing, when `next` is already recorded.
   */
  rotate(next: { keyId: string; publicKey: string }, now: number, validUntil: number): Promise<void>;
}

interface Row {
  key_id: string;
  public_key: string;
  created_at: number | string;
  retired_at: number | string | null;
  valid_until: number | string | null;
}

const num = (v: number | string | null): number | null => (v === null ? null : Number(v));

export class KnexSigningKeyStore implements SigningKeyStore {
  constructor(private readonly db: Database) {}

  async list(): Promise<SigningKeyRecord[]> {
    const rows = (await this.db.knex('signing_keys').select('*').orderBy('created_at').orderBy('key_id')) as Row[];
    return rows.map((r) => ({
      keyId: r.key_id,
      publicKey: r.public_key,
      createdAt: Number(r.created_at),
      retiredAt: num(r.retired_at),
      validUntil: num(r.valid_until),
    }));
  }

  async recordIfAbsent(keyId: string, publicKey: string, now: number): Promise<boolean> {
    return this.db.transaction(async (trx) => {
      const existing = await trx('signing_keys').where({ key_id: keyId }).first();
      if (existing) return false;
      await trx('signing_keys').insert({ key_id: keyId, public_key: publicKey, created_at: now, retired_at: null, valid_until: null });
      return true;
    });
  }

  async rotate(next: { keyId: string; publicKey: string }, now: number, validUntil: number): Promise<void> {
    await this.db.transaction(async (trx) => {
      if (await trx('signing_keys').where({ key_id: next.keyId }).first()) throw new Error(`${next.keyId} is already recorded`);
      await trx('signing_keys').whereNull('retired_at').update({ retired_at: now, valid_until: validUntil });
      await trx('signing_keys').insert({
        key_id: next.keyId,
        public_key: next.publicKey,
        created_at: now,
        retired_at: null,
        valid_until: null,
      });
    });
  }
}
