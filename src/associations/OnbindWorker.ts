// Drains the onbind outbox (identity-api.md section 5): POST each signed body to the invitee's homeserver,
// at least once, across restarts; capped exponential backoff with jitter; permanent 4xx (not 429) stops it,
// and so does onbind.giveUpAfterMs after the bind for failures that would otherwise be retried.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Deps } from '../deps.js';
import type { OnbindJob } from '../store/types.js';
import { FederationError } from '../federation/types.js';

export const ONBIND_PATH = '/_matrix/federation/v1/3pid/onbind';

/** Delay before retry number `attempts + 1`: initial * 2^attempts, capped, times a jitter in [0.75, 1.25). */
export function backoffMs(attempts: number, initialMs: number, maxMs: number, random: () => number): number {
  const base = Math.min(maxMs, initialMs * 2 ** Math.min(attempts, 40));
  return Math.max(1, Math.round(base * (0.75 + random() * 0.5)));
}

/** Keeps error text short and free of anything but the status and the homeserver's errcode/error. */
function describe(status: number, body: unknown): string {
  const b = (body ?? {}) as { errcode?: unknown; error?: unknown };
  const detail = [typeof b.errcode === 'string' ? b.errcode : '', typeof b.error === 'string' ? b.error : ''].filter(Boolean).join(': ');
  return `HTTP ${status}${detail ? ` ${detail}` : ''}`.slice(0, 500);
}

export class OnbindWorker {
  readonly id = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  private pollTimer?: NodeJS.Timeout;
  private retryTimer?: NodeJS.Timeout;
  private retryAt = Infinity;
  private running?: Promise<void>;
  private again = false;
  private stopped = false;
  private lastHousekeeping = 0;

  constructor(
    private readonly deps: Pick<Deps, 'store' | 'federation' | 'log' | 'clock' | 'config'>,
    private readonly random: () => number = Math.random,
  ) {}

  start(): void {
    this.pollTimer = setInterval(() => this.wake(), this.deps.config.onbind.pollIntervalMs);
    this.pollTimer.unref();
    this.wake();
  }

  /** Drain now (called after a bind commits); overlapping wakes coalesce into one more pass. */
  wake(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.drain().finally(() => {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        this.wake();
      }
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.pollTimer);
    clearTimeout(this.retryTimer);
    await this.running;
  }

  private async drain(): Promise<void> {
    const { store, config, log } = this.deps;
    try {
      for (;;) {
        if (this.stopped) return;
        const jobs = await store.claimOnbind(this.id, this.deps.clock(), config.onbind.leaseMs, config.onbind.concurrency);
        if (jobs.length === 0) break;
        await Promise.all(jobs.map((j) => this.deliver(j)));
      }
      await this.housekeeping();
    } catch (err) {
      log.error('onbind worker pass failed', { err: err as Error });
    }
  }

  private async deliver(job: OnbindJob): Promise<void> {
    const { store, federation, config, log } = this.deps;
    let status: number | null = null;
    let error: string;
    let permanent: boolean;
    try {
      const res = await federation.postJson(job.destination, ONBIND_PATH, JSON.parse(job.body) as unknown);
      status = res.status;
      if (status >= 200 && status < 300) {
        await store.completeOnbind(job.id, this.id, this.deps.clock(), status);
        log.info('onbind delivered', { id: job.id, server: job.destination, attempts: job.attempts + 1 });
        return;
      }
      error = describe(status, res.body);
      permanent = status >= 400 && status < 500 && status !== 429;
    } catch (err) {
      error = `${err instanceof FederationError ? 'federation' : 'unexpected'}: ${(err as Error).message ?? String(err)}`.slice(0, 500);
      permanent = err instanceof FederationError && err.permanent;
    }
    const now = this.deps.clock();
    if (permanent) {
      await store.failOnbind(job.id, this.id, now, error, status);
      log.warn('onbind failed permanently; not retrying', { id: job.id, server: job.destination, error });
      return;
    }
    // Unreachable, timing out or failing homeservers are not retried forever: anyone can queue such rows over v1.
    if (now - job.createdAt >= config.onbind.giveUpAfterMs) {
      const reason = `gave up after ${job.attempts + 1} attempts over ${now - job.createdAt} ms; last error: ${error}`.slice(0, 500);
      await store.failOnbind(job.id, this.id, now, reason, status);
      log.warn('onbind given up; not retrying', { id: job.id, server: job.destination, attempts: job.attempts + 1, error });
      return;
    }
    const at = now + backoffMs(job.attempts, config.onbind.initialBackoffMs, config.onbind.maxBackoffMs, this.random);
    await store.retryOnbind(job.id, this.id, at, error, status);
    log.warn('onbind failed; will retry', { id: job.id, server: job.destination, attempt: job.attempts + 1, error, retryInMs: at - now });
    this.scheduleRetry(at);
  }

  /** Wake at the earliest pending retry rather than waiting for the next poll. */
  private scheduleRetry(at: number): void {
    if (this.stopped || at >= this.retryAt) return;
    clearTimeout(this.retryTimer);
    this.retryAt = at;
    this.retryTimer = setTimeout(() => {
      this.retryAt = Infinity;
      this.wake();
    }, Math.max(0, at - this.deps.clock()));
    this.retryTimer.unref();
  }

  /** Finished outbox rows are deleted, at most once a minute. */
  private async housekeeping(): Promise<void> {
    const now = this.deps.clock();
    if (now - this.lastHousekeeping < 60_000) return;
    this.lastHousekeeping = now;
    const { store, config } = this.deps;
    while ((await store.deleteFinishedOnbind(now - config.onbind.keepFinishedMs, 1000)) === 1000);
  }
}
