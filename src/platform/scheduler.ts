// One timer loop for every periodic job (outbox pollers, retention and expiry sweeps): a job's runs never
// overlap, a wake runs it early (or right after the run in progress), and stop waits for the run in progress.
import type { Logger } from './logger.js';
import type { OutageTracker } from './db/OutageTracker.js';

export interface JobOptions {
  /** Names the job in the log. */
  name: string;
  /** The longest time from the end of one run to the start of the next. */
  intervalMs: number;
  /**
   * One run. It may answer how soon the next run is due (ms from now) when that is sooner than `intervalMs`:
   * an outbox at its earliest retry.
   */
  run(): Promise<number | void | undefined>;
  /** Run once as soon as the scheduler starts, rather than after the first interval. */
  runAtStart?: boolean;
}

/** After a run that threw, the next one comes this soon at most (a database that was briefly unreachable). */
const RETRY_AFTER_ERROR_MS = 1000;

export class Scheduler {
  private readonly jobs: ScheduledJob[] = [];
  private started = false;

  /** `outage`: a run that failed because the database is unavailable is counted there, not logged on its own. */
  constructor(
    private readonly log: Logger,
    private readonly outage?: Pick<OutageTracker, 'absorbs'>,
  ) {}

  /** Adds a job; it starts with the scheduler (at once if the scheduler already runs). */
  every(opts: JobOptions): ScheduledJob {
    const job = new ScheduledJob(opts, (what, err) => this.failed(what, err));
    this.jobs.push(job);
    if (this.started) job.start();
    return job;
  }

  start(): void {
    this.started = true;
    for (const job of this.jobs) job.start();
  }

  /**
   * Reports a background failure: `<what> failed` with the error, once per failure, unless the database is
   * unavailable, which the outage tracker logs once per outage. Jobs that catch their own errors report them here.
   */
  failed(what: string, err: unknown): void {
    if (this.outage?.absorbs(err, { job: what })) return;
    this.log.error(`${what} failed`, { err: err as Error });
  }

  /** No job runs again; resolves once the runs in progress are over. */
  async stop(): Promise<void> {
    this.started = false;
    await Promise.all(this.jobs.map((job) => job.stop()));
  }
}

export class ScheduledJob {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;
  private stopped = true;

  constructor(
    private readonly opts: JobOptions,
    private readonly failed: (what: string, err: unknown) => void,
  ) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    if (this.opts.runAtStart) this.wake();
    else this.schedule(this.opts.intervalMs);
  }

  /** Run now, or right after the run in progress (several wakes meanwhile make one more run). */
  wake(): void {
    if (this.stopped) return;
    this.kick();
  }

  /**
   * Runs the job now, started or not (tests, and one-off passes), and resolves once that run is over: a call
   * during a run waits for it, then runs again.
   */
  async runNow(): Promise<void> {
    await this.idle();
    this.kick();
    await this.idle();
  }

  /** Resolves once no run is in progress. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  /** True while stop() was called and start() not since: long runs check it between steps. */
  get stopping(): boolean {
    return this.stopped;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.idle();
  }

  private kick(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.timer = undefined;
    this.running = this.loop().finally(() => {
      this.running = undefined;
    });
  }

  private async loop(): Promise<void> {
    // Never run inside the caller's turn: a job may be woken while its owner is still being built.
    await Promise.resolve();
    let next: number | undefined;
    do {
      this.again = false;
      try {
        next = (await this.opts.run()) ?? undefined;
      } catch (err) {
        this.failed(this.opts.name, err);
        next = RETRY_AFTER_ERROR_MS;
      }
    } while (this.again && !this.stopped);
    if (!this.stopped) this.schedule(Math.min(this.opts.intervalMs, next ?? this.opts.intervalMs));
  }

  private schedule(delayMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.wake(), Math.max(0, delayMs));
    this.timer.unref();
  }
}
