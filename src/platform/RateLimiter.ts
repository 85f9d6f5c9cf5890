// Rate limits in shared storage (fixed windows), so several instances enforce one limit.
// Unlike the reference server's in-memory, per-declared-sender limit, callers limit per client
// IP, per (verified) sender and per recipient address at once.
import { createHash } from 'node:crypto';
import { DomainError } from './domainErrors.js';
import type { RateLimitStore } from './RateLimitStore.js';

export interface Limit {
  /** What is counted, e.g. `invite-ip`. */
  kind: string;
  /** Whose hits these are (an IP, a sender, an address); stored only as a hash, so any length fits. */
  key: string;
  /** Hits allowed per window; 0 switches this limit off. */
  max: number;
}

export class RateLimiter {
  constructor(
    private readonly store: RateLimitStore,
    private readonly clock: () => number,
    readonly windowMs: number,
    /** Told the kind of each limit a refused request was over (the metrics count refusals by limit). */
    private readonly refused: (kind: string) => void = () => {},
  ) {}

  /** Counts a hit on every active limit; throws `rate_limited` (with retry_after_ms) if any is over. */
  async check(limits: Limit[]): Promise<void> {
    const active = limits.filter((l) => l.max > 0);
    if (active.length === 0) return;
    const now = this.clock();
    const windowStart = now - (now % this.windowMs);
    const buckets = active.map((l) => `${l.kind}:${createHash('sha256').update(l.key).digest('base64url')}`);
    const counts = await this.store.hitRateLimits(buckets, windowStart);
    const over = active.filter((l, i) => counts[i]! > l.max);
    if (over.length > 0) {
      for (const l of over) this.refused(l.kind);
      throw new DomainError('rate_limited', 'Too many requests', { retry_after_ms: windowStart + this.windowMs - now });
    }
  }

  /** Drops up to `limit` counters of finished windows; returns how many went. */
  async sweep(limit = 1000): Promise<number> {
    const now = this.clock();
    return this.store.deleteRateLimitsBefore(now - (now % this.windowMs), limit);
  }
}
