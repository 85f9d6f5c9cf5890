// Drains one outbox: claims due rows under a lease, hands each to the outbox's delivery function, records each
// row's outcome, retries with backoff until the row's lifetime is over, and deletes finished rows.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from '../platform/logger.js';
import type { ScheduledJob, Scheduler } from '../platform/scheduler.js';
import { deleteInBatches } from '../platform/db/Database.js';
import { backoffMs } from './backoff.js';
import type { Outcome, OutboxJob, OutboxQueue } from './OutboxStore.js';

/** The settings of every outbox. */
/** What every outbox's worker is built from besides its queue and delivery: mail's and onbind's deps extend it. */
export interface OutboxWorkerEnv {
  scheduler: Scheduler;
  log: Logger;
  clock: () => number;
  /** Uniform in [0, 1): the retry backoff's jitter. */
  random: () => number;
  settings: OutboxSettings;
}

export interface OutboxSettings {
  /** First retry delay; doubles per attempt up to maxBackoffMs, with jitter (backoff.ts). */
  initialBackoffMs: number;
  maxBackoffMs: number;
  /** A row still failing this long after it was queued is failed for good: nothing is retried forever. */
  giveUpAfterMs: number;
  /** How long a claimed row stays reserved for one worker; longer than one delivery can take. */
  leaseMs: number;
  /** Longest pause between passes. New rows wake the worker at once, and a pass sleeps only until the earliest retry. */
  pollIntervalMs: number;
  /** Rows claimed at once and delivered in parallel. */
  concurrency: number;
  /** Finished (done or failed) rows are deleted this long after they finished. */
  keepFinishedMs: number;
}

/**
 * What one delivery attempt came to: `done` and `failed` are final, `retry` is tried again after a backoff. A
 * retry's detail is what the row keeps should it be given up (mail: the payload without its secrets).
 */
export type Attempt<D = unknown> = ({ status: 'done' } | { status: 'failed'; error: string } | { status: 'retry'; error: string }) & D;

export interface OutboxWorkerOptions<Job extends OutboxJob, D> extends OutboxWorkerEnv {
  /** Names the outbox in the log (`mail`, `onbind`). */
  name: string;
  queue: OutboxQueue<Job, D>;
  /** One attempt at one row. A throw counts as a retryable failure. */
  deliver(job: Job): Promise<Attempt<D>>;
  /** Log fields naming a row (never secrets or full addresses). */
  describe?(job: Job): Record<string, unknown>;
  /** Runs after each retention sweep, with the same cut-off (mail: its .eml files). */
  sweepAlso?(before: number): Promise<void>;
}

/** last_error keeps at most this many characters. */
const MAX_ERROR = 1000;
/** Retention sweeps run this often at most. */
const RETENTION_SWEEP_MS = 10 * 60_000;
const DELETE_BATCH = 1000;

export class OutboxWorker<Job extends OutboxJob, D> {
  /** locked_by: host, process and a random part, so a restarted process never passes for its predecessor (<= 64 characters). */
  readonly id = `${hostname().slice(0, 40)}:${process.pid}:${randomBytes(4).toString('hex')}`;
  private readonly poller: ScheduledJob;
  private readonly retention: ScheduledJob;

  constructor(private readonly o: OutboxWorkerOptions<Job, D>) {
    const { settings, scheduler, name } = o;
    // A pass at start-up: rows left by an earlier run (or by another instance that died) are due now.
    this.poller = scheduler.every({
      name: `${name} outbox pass`,
      intervalMs: settings.pollIntervalMs,
      runAtStart: true,
      run: () => this.drain(),
    });
    this.retention = scheduler.every({
      name: `${name} outbox retention`,
      intervalMs: Math.min(RETENTION_SWEEP_MS, Math.max(settings.keepFinishedMs, 1000)),
      run: () => this.sweep(),
    });
  }

  /** Called after a commit that queued rows: drain now, or right after the pass in progress. */
  wake(): void {
    this.poller.wake();
  }

  /** Resolves once the pass in progress (if any) is over; tests use it to wait without sleeping. */
  idle(): Promise<void> {
    return this.poller.idle();
  }

  /** Runs the retention sweep now. */
  sweepNow(): Promise<void> {
    return this.retention.runNow();
  }

  /** Claims and delivers until nothing is due; answers when the earliest pending row is due. */
  private async drain(): Promise<number | undefined> {
    const { queue, settings, clock, log, name } = this.o;
    while (!this.poller.stopping) {
      const jobs = await queue.claim(this.id, clock(), settings.leaseMs, settings.concurrency);
      if (jobs.length === 0) break;
      // The batch is delivered in parallel and its outcomes written together, in one transaction: one commit
      // (one fsync on SQLite) per batch rather than per row, which the mail path under load cannot afford.
      const outcomes = await Promise.all(jobs.map(async (job) => this.outcome(job, await this.attempt(job))));
      const lost = await queue.finish(this.id, outcomes);
      if (lost.length > 0)
        log.warn(`${name} outcome not recorded: the lease ran out and another worker owns the row`, { ids: lost.join(',') });
    }
    const due = await queue.nextDueAt();
    return due === undefined ? undefined : Math.max(due - clock(), 10);
  }

  private async attempt(job: Job): Promise<Attempt<D>> {
    try {
      return await this.o.deliver(job);
    } catch (err) {
      return { status: 'retry', error: `unexpected: ${(err as Error).message ?? String(err)}` } as Attempt<D>;
    }
  }

  /** The attempt as stored: times, the backoff, and give-up once the row's lifetime is over. */
  private outcome(job: Job, a: Attempt<D>): Outcome<D> {
    const { clock, settings, log, name, random } = this.o;
    const now = clock();
    const fields = { id: job.id, ...this.o.describe?.(job), attempts: job.attempts };
    if (a.status === 'done') return { ...a, id: job.id, at: now } as Outcome<D>;
    if (a.status === 'failed') return { ...a, id: job.id, at: now, error: a.error.slice(0, MAX_ERROR) } as Outcome<D>;
    const age = now - job.createdAt;
    if (age >= settings.giveUpAfterMs) {
      log.warn(`${name} given up; not retrying`, { ...fields, error: a.error });
      const error = `gave up after ${job.attempts} attempts over ${age} ms; last error: ${a.error}`.slice(0, MAX_ERROR);
      return { ...a, status: 'failed', id: job.id, at: now, error } as Outcome<D>;
    }
    const delay = backoffMs(job.attempts, settings.initialBackoffMs, settings.maxBackoffMs, random);
    log.warn(`${name} attempt failed; will retry`, { ...fields, error: a.error, retryInMs: delay });
    return { ...a, id: job.id, nextAttemptAt: now + delay, error: a.error.slice(0, MAX_ERROR) } as Outcome<D>;
  }

  private async sweep(): Promise<void> {
    const { queue, clock, settings, log, name } = this.o;
    const before = clock() - settings.keepFinishedMs;
    try {
      const n = await deleteInBatches((limit) => queue.deleteFinished(before, limit), DELETE_BATCH);
      if (n > 0) log.info(`deleted finished ${name} rows`, { count: n });
    } catch (err) {
      this.o.scheduler.failed(`deleting finished ${name} rows`, err);
    }
    await this.o.sweepAlso?.(before);
  }
}

/** The shared part of an outbox worker's options, taken from deps that extend OutboxWorkerEnv. */
export function outboxEnv(d: OutboxWorkerEnv): OutboxWorkerEnv {
  return { scheduler: d.scheduler, log: d.log, clock: d.clock, random: d.random, settings: d.settings };
}
