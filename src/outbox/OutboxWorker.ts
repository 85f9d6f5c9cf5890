// Drains one outbox: claims due rows under a lease, hands each to the outbox's delivery function, records each
// row's outcome, retries with backoff until the row's lifetime is over, and deletes finished rows.
import type { Logger } from '../platform/logger.js';
import type { ScheduledJob, Scheduler } from '../platform/scheduler.js';
import { deleteInBatches } from '../platform/db/Database.js';
import { GroupCommitter } from '../platform/db/groupCommit.js';
import { newInstanceId } from '../platform/instances.js';
import { backoffMs } from './backoff.js';
import type { Outcome, OutboxJob, OutboxQueue } from './OutboxStore.js';

/** What every outbox's worker is built from besides its queue and delivery: mail's and onbind's deps extend it. */
export interface OutboxWorkerEnv {
  scheduler: Scheduler;
  log: Logger;
  clock: () => number;
  /** Uniform in [0, 1): the retry backoff's jitter. */
  random: () => number;
  settings: OutboxSettings;
  /** Told what each delivery attempt came to (`failed` also when a retry is given up): the metrics count them. */
  outcomes?: (outcome: 'done' | 'retry' | 'failed') => void;
}

export interface OutboxSettings {
  /** First retry delay; doubles per attempt up to maxBackoffMs, with jitter (backoff.ts). */
  initialBackoffMs: number;
  maxBackoffMs: number;
  /** A row still failing this long after it was queued is failed for good: nothing is retried forever. */
  giveUpAfterMs: number;
  /**
   * How long a claimed row stays reserved for one worker unless renewed: after a crash, its rows are due again
   * this long after the last renewal.
   */
  leaseMs: number;
  /** How often a worker renews the leases of the rows it holds; shorter than leaseMs. */
  leaseRenewMs: number;
  /** Longest pause between passes. New rows wake the worker at once, and a pass sleeps only until the earliest retry. */
  pollIntervalMs: number;
  /** Rows held at once (claimed and not yet finished), delivered in parallel. */
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
/**
 * Outcomes ending within this long of each other are recorded in one transaction. Recording each send's
 * outcome the moment it ended cost store-invite about a sixth more CPU under full load (a transaction per few
 * emails on the writer store-invite shares); this keeps one per ~10 ms at most, and adds at most that much to
 * what a crash can send twice: the sends completed in the last few milliseconds.
 */
const RECORD_GATHER_MS = 10;
/** After a failed claim, the next pass comes this soon. */
const CLAIM_RETRY_MS = 1000;

export class OutboxWorker<Job extends OutboxJob, D> {
  /** locked_by: unique to this worker of this process. */
  readonly id = newInstanceId();
  private readonly poller: ScheduledJob;
  private readonly retention: ScheduledJob;
  /** Outcomes ending while one is being committed are committed together, in the next transaction. */
  private readonly finisher: GroupCommitter<Outcome<D>>;
  /** Set by a wake and by a full claim: claim again before the pass ends. */
  private moreDue = false;
  private renewing = false;

  constructor(private readonly o: OutboxWorkerOptions<Job, D>) {
    const { settings, scheduler, name, queue, log } = o;
    // One transaction at a time; its failure is no row's doing, so it is not retried in parts (batchWide).
    this.finisher = new GroupCommitter(
      async (outcomes) => {
        const lost = await queue.finish(this.id, outcomes);
        if (lost.length > 0)
          log.warn(`${name} outcome not recorded: the lease ran out and another worker owns the row`, { ids: lost.join(',') });
      },
      1,
      settings.concurrency,
      () => true,
      RECORD_GATHER_MS,
    );
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
    this.moreDue = true;
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

  /**
   * Claims and delivers until nothing is due; answers when the earliest pending row is due.
   *
   * Rows flow through a window of `concurrency` slots: a row holds its slot from its claim until its outcome is
   * committed, and freed slots are refilled by the next claim. Each outcome is recorded as its delivery ends:
   * outcomes ending within RECORD_GATHER_MS of each other, or while a finishing transaction is in flight, share
   * one transaction (a group commit), so a busy outbox still costs one commit per many rows, and a crash
   * re-delivers at most the rows whose
   * delivery had ended but whose outcome was not yet committed, never more than the window. The leases of the
   * rows held are renewed every leaseRenewMs, so they can be short: a crashed worker's rows are due again
   * within leaseMs.
   */
  private async drain(): Promise<number | undefined> {
    const { queue, settings, clock } = this.o;
    const held = new Map<number, Promise<void>>();
    const renewal = setInterval(() => void this.renew([...held.keys()]), settings.leaseRenewMs);
    renewal.unref();
    // A refill waits for half of the window to be free, so a busy outbox claims in batches, not row by row (a
    // claim is a transaction on the writer that store-invite shares), while the other half keeps the
    // connections busy meanwhile.
    const refillAt = Math.max(1, Math.ceil(settings.concurrency / 2));
    this.moreDue = true;
    // A claim that failed (the database unavailable) ends the claiming, not the pass: the rows in flight are
    // still delivered, recorded and renewed; the next pass comes soon.
    let claimFailed = false;
    try {
      while (true) {
        const free = settings.concurrency - held.size;
        if (this.moreDue && !claimFailed && !this.poller.stopping && (free >= refillAt || held.size === 0)) {
          this.moreDue = false;
          let jobs: Job[];
          try {
            jobs = await queue.claim(this.id, clock(), settings.leaseMs, free);
          } catch (err) {
            this.o.scheduler.failed(`claiming ${this.o.name} rows`, err);
            claimFailed = true;
            continue;
          }
          // A full claim suggests more is due; a short one drained what was due (a wake says otherwise).
          if (jobs.length === free) this.moreDue = true;
          for (const job of jobs) {
            const run = this.run(job).finally(() => held.delete(job.id));
            held.set(job.id, run);
          }
          continue;
        }
        if (held.size === 0) break;
        await Promise.race(held.values());
      }
    } finally {
      clearInterval(renewal);
    }
    if (claimFailed) return CLAIM_RETRY_MS;
    const due = await queue.nextDueAt();
    return due === undefined ? undefined : Math.max(due - clock(), 10);
  }

  /** One row: its delivery, then its outcome recorded (with those of other rows ending meanwhile). */
  private async run(job: Job): Promise<void> {
    const outcome = this.outcome(job, await this.attempt(job));
    this.o.outcomes?.(outcome.status);
    try {
      await this.finisher.submit(outcome);
    } catch (err) {
      // The row stays leased to this worker and is due again when the lease runs out: delivered twice at worst.
      // A database outage is counted by the outage tracker rather than logged per row.
      this.o.scheduler.failed(`recording ${this.o.name} row ${job.id}'s outcome (it is attempted again once its lease runs out)`, err);
    }
  }

  /** Extends the leases of the rows held; a row whose lease was lost will be delivered by its new holder too. */
  private async renew(ids: number[]): Promise<void> {
    const { queue, clock, settings, log, name } = this.o;
    if (ids.length === 0 || this.renewing) return;
    this.renewing = true;
    try {
      const lost = await queue.renew(this.id, ids, clock() + settings.leaseMs);
      if (lost.length > 0) log.warn(`${name} lease lost: another worker may deliver these rows too`, { ids: lost.join(',') });
    } catch (err) {
      this.o.scheduler.failed(`renewing ${name} leases (tried again at the next renewal)`, err);
    } finally {
      this.renewing = false;
    }
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
  return { scheduler: d.scheduler, log: d.log, clock: d.clock, random: d.random, settings: d.settings, outcomes: d.outcomes };
}
