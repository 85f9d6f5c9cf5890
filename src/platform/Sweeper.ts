// Deletes expired rows (invitations with their keys, access tokens, validation sessions, rate-limit windows) in
// batches, as one scheduled job, so no table grows without bound. What to delete is given by the composition root.
import { deleteInBatches } from './db/Database.js';
import type { Logger } from './logger.js';
import type { ScheduledJob, Scheduler } from './scheduler.js';

export interface Sweep {
  /** Names what goes in the log (`expired invitations`). */
  what: string;
  /** Deletes up to `limit` rows expired at `now`; returns how many went. */
  deleteBatch(now: number, limit: number): Promise<number>;
}

export class Sweeper {
  private readonly job: ScheduledJob;

  constructor(
    private readonly o: { scheduler: Scheduler; log: Logger; clock: () => number; intervalMs: number; batch?: number },
    private readonly sweeps: Sweep[],
  ) {
    this.job = o.scheduler.every({ name: 'sweeping expired rows', intervalMs: o.intervalMs, run: () => this.sweepAll() });
  }

  /** One pass over every table now; a call during a pass waits for it, then runs another. */
  sweepOnce(): Promise<void> {
    return this.job.runNow();
  }

  private async sweepAll(): Promise<void> {
    const { clock, log, batch = 1000 } = this.o;
    for (const sweep of this.sweeps) {
      // One table failing (a lock timeout) does not keep the others from being swept.
      try {
        const total = await deleteInBatches((limit) => sweep.deleteBatch(clock(), limit), batch);
        if (total > 0) log.info(`deleted ${sweep.what}`, { count: total });
      } catch (err) {
        this.o.scheduler.failed(`deleting ${sweep.what}`, err);
      }
    }
  }
}
