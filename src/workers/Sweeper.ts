// Deletes expired invitations (with their ephemeral keys) and finished rate-limit windows in
// batches, so no table grows without bound.
import type { Deps } from '../deps.js';

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

  /** One pass: deletes batches until none is full. Overlapping calls share one pass. */
  sweepOnce(): Promise<void> {
    const { store, log, clock, limiter } = this.deps;
    this.running ??= (async () => {
      try {
        let total = 0;
        for (;;) {
          const n = await store.deleteExpiredInvites(clock(), this.batch);
          total += n;
          if (n < this.batch) break;
        }
        if (total > 0) log.info('deleted expired invitations', { count: total });
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
