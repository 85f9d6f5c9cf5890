// Deletes expired invitations (with their ephemeral keys), expired access tokens, long-expired validation
// sessions and finished rate-limit windows in batches, so no table grows without bound.
import type { Deps } from '../deps.js';

/**
 * Expired sessions are kept a day longer, so a client asking about one hears M_SESSION_EXPIRED (which tells
 * it to start again) rather than M_NO_VALID_SESSION.
 */
const EXPIRED_SESSION_GRACE_MS = 24 * 3600 * 1000;

export class Sweeper {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;

  constructor(
    private readonly deps: Pick<Deps, 'store' | 'log' | 'clock' | 'limiter'>,
    private readonly intervalMs: number,
    private readonly batch = 1000,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.sweepOnce(), this.intervalMs);
    this.timer.unref();
  }

  /** Runs `deleteBatch` until a batch comes back short; returns the total deleted. */
  private async drain(what: string, deleteBatch: (now: number, limit: number) => Promise<number>): Promise<void> {
    let total = 0;
    for (;;) {
      const n = await deleteBatch(this.deps.clock(), this.batch);
      total += n;
      if (n < this.batch) break;
    }
    if (total > 0) this.deps.log.info(`deleted ${what}`, { count: total });
  }

  /** One pass over every table. Overlapping calls share one pass. */
  sweepOnce(): Promise<void> {
    const { store, log, limiter } = this.deps;
    this.running ??= (async () => {
      try {
        await this.drain('expired invitations', (now, limit) => store.deleteExpiredInvites(now, limit));
        await this.drain('expired access tokens', (now, limit) => store.deleteExpiredAccountTokens(now, limit));
        await this.drain('expired validation sessions', (now, limit) => store.deleteExpiredSessions(now - EXPIRED_SESSION_GRACE_MS, limit));
        await limiter.sweep();
      } catch (err) {
        log.error('sweeping expired rows failed', { err: err as Error });
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }
}
