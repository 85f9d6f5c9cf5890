// In-process cache of ephemeral-key validity (issue 6). Homeservers check the same few keys over and over
// (`/pubkey/ephemeral/isvalid`), so the answer for a key is kept for at most `ttlMs` (<= 1 s) of real time.
//
// What it may and may not change:
// - expiry is exact: an entry keeps the key's expires_at and every answer compares it with the caller's clock;
// - a deleted (revoked, swept, delivered) key answers false within `ttlMs` at worst. Deletes made through this
//   process's knex are seen at once: KnexStore calls invalidate() for every DELETE/UPDATE statement on the
//   invites or ephemeral_keys tables (the knex query hooks in its constructor), and a look-up that overlapped one is not cached.
//   Only deletes by another Tessera instance on a shared MySQL database wait for the entry to age out.
// - it is bounded: at most `maxEntries`, the oldest entry going first.

interface Entry {
  /** The key's expires_at, or null when no such key existed. */
  expiresAt: number | null;
  /** performance.now() when read from the database. */
  readAt: number;
}

export class KeyValidityCache {
  private readonly entries = new Map<string, Entry>();
  private generation = 0;

  constructor(
    readonly ttlMs = 1000,
    readonly maxEntries = 10_000,
    private readonly monotonic: () => number = () => performance.now(),
  ) {}

  /** The cached answer at `now` (the service clock), or undefined when the key must be read. */
  get(publicKey: string, now: number): boolean | undefined {
    if (this.ttlMs <= 0) return undefined;
    const e = this.entries.get(publicKey);
    if (!e) return undefined;
    const age = this.monotonic() - e.readAt;
    if (age >= this.ttlMs || age < 0) {
      this.entries.delete(publicKey);
      return undefined;
    }
    return e.expiresAt !== null && e.expiresAt > now;
  }

  /** Call before the database read; pass the result to set() so a read that overlapped a delete is dropped. */
  ticket(): number {
    return this.generation;
  }

  set(publicKey: string, expiresAt: number | null, ticket: number, readAt: number): void {
    if (this.ttlMs <= 0 || ticket !== this.generation) return;
    this.entries.delete(publicKey); // re-inserted last: Map order is the eviction order
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(publicKey, { expiresAt, readAt });
  }

  /** Forget everything (a key may have been deleted). */
  invalidate(): void {
    this.generation++;
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }

  now(): number {
    return this.monotonic();
  }
}

/** True for SQL that can delete or change invitations or their keys. */
export function touchesKeys(sql: string): boolean {
  const head = sql.trimStart().slice(0, 6).toLowerCase();
  return (head === 'delete' || head === 'update') && /\b(ephemeral_keys|invites)\b/i.test(sql);
}
