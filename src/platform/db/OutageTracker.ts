// Database outages as the log tells them: one WARN when the first request or background job finds the database
// unavailable, one INFO when a probe finds it back, and nothing per failure in between.
import type { Logger } from '../logger.js';
import { isDatabaseUnavailable } from './Database.js';
import { outsideRequests } from '../requestContext.js';

export interface OutageTrackerOptions {
  log: Logger;
  clock: () => number;
  /** Resolves when the database answers again (Database.probe); rejects while it does not. */
  probe: () => Promise<void>;
  /** Pause between probes during an outage. */
  probeIntervalMs?: number;
}

/**
 * How often an outage is probed: the end of an outage is logged within about this long, and a probe is one cheap
 * statement (one per second costs nothing a database that is back would notice).
 */
const PROBE_INTERVAL_MS = 1000;

interface Outage {
  since: number;
  refusedRequests: number;
  failedJobRuns: number;
}

/**
 * Requests are not held back during an outage: each still tries the database and fails on its own (fast when the
 * server refuses connections), so service resumes with the first query that succeeds. The tracker only decides what
 * is logged, and ends an outage by probing rather than on the next successful query, because on SQLite reads go on
 * while another process holds the write lock: a read succeeding says nothing of the writes that fail.
 */
export class OutageTracker {
  private outage?: Outage;
  private timer?: NodeJS.Timeout;
  private probing?: Promise<void>;
  private closed = false;

  constructor(private readonly o: OutageTrackerOptions) {}

  /** True while an outage is on (from the first failure to the first successful probe). */
  get down(): boolean {
    return this.outage !== undefined;
  }

  /**
   * Whether `err` says the database is unavailable (isDatabaseUnavailable). If so it is counted against the outage,
   * which it starts (with the one WARN) if none is on, and the caller logs nothing; otherwise the caller logs it.
   * `from` names what failed for the WARN: a request's path or a background job's name.
   */
  absorbs(err: unknown, from: { path: string } | { job: string }): boolean {
    if (!isDatabaseUnavailable(err)) return false;
    if (!this.outage) {
      this.outage = { since: this.o.clock(), refusedRequests: 0, failedJobRuns: 0 };
      this.o.log.warn('database unavailable: requests that need it answer 503 until it is back', { ...from, code: codeOf(err) });
      // The probes are the outage's, not the request's that found it: their lines carry no request id.
      outsideRequests(() => this.schedule());
    }
    if ('path' in from) this.outage.refusedRequests++;
    else this.outage.failedJobRuns++;
    return true;
  }

  /** Stops probing (the service is stopping); resolves once a probe in flight is over. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.probing;
  }

  private schedule(): void {
    if (this.closed || this.timer || this.probing) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.probing = this.probe().finally(() => {
        this.probing = undefined;
        if (this.outage) this.schedule();
      });
    }, this.o.probeIntervalMs ?? PROBE_INTERVAL_MS);
    this.timer.unref();
  }

  private async probe(): Promise<void> {
    try {
      await this.o.probe();
    } catch (err) {
      // Still down: the WARN said so once. An error of another kind is worth seeing, but not once a second.
      this.o.log.debug('database probe failed', { code: codeOf(err) });
      return;
    }
    const outage = this.outage;
    if (!outage) return;
    this.outage = undefined;
    this.o.log.info('database available again', {
      downMs: this.o.clock() - outage.since,
      refusedRequests: outage.refusedRequests,
      failedJobRuns: outage.failedJobRuns,
    });
  }
}

/** What the log says of the error: its code (or name), never its message, which may quote values. */
function codeOf(err: unknown): string {
  type Cause = { code?: unknown; name?: unknown; fatal?: unknown; cause?: unknown } | undefined;
  for (let e = err as Cause, depth = 0; e && depth < 4; e = e.cause as Cause, depth++) {
    if (typeof e.code === 'string') return e.code;
    if (e.name === 'KnexTimeoutError') return e.name;
    // mysql2, on a connection it already knows is closed: no code.
    if (e.fatal === true) return 'connection closed';
  }
  return err instanceof Error ? err.name : typeof err;
}
