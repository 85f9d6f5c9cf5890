// Batched point reads: look-ups that arrive in the same turn of the event loop are answered by one
// query. store-invite reads "is this address already bound?" once per request, each an autocommitted statement
// (knex's and SQLite's overhead, and one more wait for the single SQLite connection); batched, a burst of
// requests costs one statement. Each caller still gets exactly its own answer.
//
// The batch starts on the next turn (setImmediate), like the group committer's, so every request read from
// the sockets in this turn joins it.

interface Waiting<K, V> {
  key: K;
  resolve(value: V): void;
  reject(err: unknown): void;
}

export class BatchedReader<K, V> {
  private waiting: Waiting<K, V>[] = [];
  private scheduled = false;

  /**
   * @param read answers every key, in order (one result per key).
   * @param maxBatch most keys per call of `read`.
   */
  constructor(
    private readonly read: (keys: K[]) => Promise<V[]>,
    private readonly maxBatch = 200,
  ) {}

  get(key: K): Promise<V> {
    return new Promise<V>((resolve, reject) => {
      this.waiting.push({ key, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const all = this.waiting;
    this.waiting = [];
    for (let i = 0; i < all.length; i += this.maxBatch) {
      const batch = all.slice(i, i + this.maxBatch);
      this.read(batch.map((w) => w.key))
        .then((values) => {
          if (values.length !== batch.length) throw new Error(`batched read answered ${values.length} of ${batch.length} keys`);
          batch.forEach((w, j) => w.resolve(values[j]!));
        })
        .catch((err: unknown) => batch.forEach((w) => w.reject(err)));
    }
  }
}

/**
 * The batch size a read's SQL is written for: `n` rounded up to a power of two, the extra places filled with
 * repeats of a key the batch already has. SQLite prepares and keeps one statement per distinct SQL text
 * (db.ts), so batches of every size from 1 to 100 would keep 100 statements per read in memory, megabytes for
 * the association read's UNION ALL alone; rounded, there are at most 8.
 */
export function paddedLength(n: number): number {
  return n <= 1 ? 1 : 2 ** Math.ceil(Math.log2(n));
}

/**
 * `items` cut into the chunks one multi-row statement each writes. On SQLite each chunk's size is a power of
 * two up to `max` (45 rows: 32, 8, 4, 1), for the reason paddedLength gives: prepared multi-row statements are
 * big (megabytes for a hundred variants of the invites INSERT or the outbox finish UPDATE), and rows cannot be
 * padded with repeats. A few more statements per batch cost far less than keeping every size prepared.
 * MySQL keeps no prepared statements here (mysql2's `query`), so there the chunks are simply `max` long.
 */
export function statementChunks<T>(items: T[], sqlite: boolean, max: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length;) {
    const left = Math.min(items.length - i, max);
    const size = sqlite ? 2 ** Math.floor(Math.log2(left)) : left;
    out.push(items.slice(i, i + size));
    i += size;
  }
  return out;
}

/** A key or id list padded to paddedLength with repeats of its first value (an `IN` list ignores them). */
export function paddedIds<T>(ids: T[]): T[] {
  return ids.length === 0 ? ids : ids.concat(Array<T>(paddedLength(ids.length) - ids.length).fill(ids[0]!));
}
