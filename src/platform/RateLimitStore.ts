// Rate-limit counters on Knex (fixed windows, one row per bucket), shared by every instance on the database.
import type { Database } from './db/Database.js';

export interface RateLimitStore {
  /**
   * Counts one hit on each bucket in the fixed window starting at `windowStart` (a bucket last hit in an earlier
   * window starts again at 1) and returns the buckets' counts, in order.
   */
  hitRateLimits(buckets: string[], windowStart: number): Promise<number[]>;
  /** Deletes up to `limit` counters of windows that started before `before`; returns how many went. */
  deleteRateLimitsBefore(before: number, limit: number): Promise<number>;
}

export class KnexRateLimitStore implements RateLimitStore {
  constructor(private readonly db: Database) {}

  async hitRateLimits(buckets: string[], windowStart: number): Promise<number[]> {
    if (buckets.length === 0) return [];
    const { knex } = this.db;
    await knex('rate_limits')
      .insert(buckets.map((bucket) => ({ bucket, window_start: windowStart, hits: 1 })))
      .onConflict('bucket')
      // `hits` is assigned before `window_start`: MySQL evaluates ON DUPLICATE KEY UPDATE left to right.
      .merge({
        hits: knex.raw('CASE WHEN rate_limits.window_start = ? THEN rate_limits.hits + 1 ELSE 1 END', [windowStart]),
        window_start: windowStart,
      });
    const rows = await knex('rate_limits').select('bucket', 'hits').whereIn('bucket', buckets);
    const byBucket = new Map(rows.map((r) => [r.bucket as string, Number(r.hits)]));
    return buckets.map((b) => byBucket.get(b) ?? 0);
  }

  async deleteRateLimitsBefore(before: number, limit: number): Promise<number> {
    // A bucket hit again meanwhile is in a new window: it stays (deleteBefore repeats the condition).
    return this.db.deleteBefore('rate_limits', 'bucket', 'window_start', before, limit);
  }
}
