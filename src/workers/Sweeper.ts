// Deletes expired invitations (and their ephemeral keys) in batches, so no table grows without bound.
import type { Store } from '../store/types.js';
import type { Logger } from '../util/logger.js';

export class Sweeper {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    private readonly clock: () => number,
    private readonly intervalMs: number,
    private readonly batch = 1000,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.sweepOnce(), this.intervalMs);
    this.timer.unref();
  }

  /** One pass: deletes batches until none is full. Overlapping calls share one pass. */
  sweepOnce(): Promise<void> {
    this.running ??= (async () => {
      try {
        let total = 0;
        for (;;) {
          const n = await this.store.deleteExpiredInvites(this.clock(), this.batch);
          total += n;
          if (n < this.batch) break;
        }
        if (total > 0) this.log.info('deleted expired invitations', { count: total });
        let tokens = 0;
        for (;;) {
          const n = await this.store.deleteExpiredAccountTokens(this.clock(), this.batch);
          tokens += n;
          if (n < this.batch) break;
        }
        if (tokens > 0) this.log.info('deleted expired access tokens', { count: tokens });
      } catch (err) {
        this.log.error('sweeping expired invitations failed', { err: err as Error });
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
