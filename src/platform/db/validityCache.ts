// In-process cache of key validity: for each key, the expiry read from the database (or "no such key"), reused
// for at most `ttlMs` (<= 1 s) of real time. Homeservers check the same few ephemeral keys over and over
// (`/pubkey/ephemeral/isvalid`), and each answer would otherwise be a database round trip.
//
// What it may and may not change:
// - expiry is exact: an entry keeps the key's expires_at and every answer compares it with the caller's clock;
// - a deleted key answers false within `ttlMs` at worst. Deletes by this process are seen at once: the store
//   method that deletes calls invalidate() before and after its statements, and a look-up that overlapped it is
//   not cached. Only deletes by another instance on a shared database wait for the entry to age out.
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
