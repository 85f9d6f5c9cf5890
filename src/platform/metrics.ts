// Prometheus metrics (prom-client) of one service, answered at /metrics in the text format: requests by operation,
// outbox outcomes and backlog, refusals, the database pool, and the process's own figures.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export type OutboxName = 'mail' | 'onbind';
/** What one delivery attempt came to (the outbox's Attempt status, after give-up). */
export type OutboxOutcome = 'done' | 'retry' | 'failed';
/** The operator block lists a store-invite can be refused by (invites.blocked*). */
export type BlockList = 'rooms' | 'servers' | 'keywords';

/** A pending outbox's size, and when its oldest pending row was queued (none pending: undefined). */
export interface OutboxBacklog {
  pending: number;
  oldestCreatedAt?: number;
}

/** The database pool's connections (knex's tarn pool; SQLite's is one connection). */
export interface PoolUse {
  used: number;
  free: number;
  pendingAcquires: number;
  max: number;
}

/**
 * Request durations in seconds: most answers take a millisecond or two, a bulk look-up or a commit behind a slow disk
 * much longer, and a request cut off by the request timeout about 30 s.
 */
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** A scrape waits this long at most for the figures read from the database; the gauges are left out past it. */
const COLLECT_TIMEOUT_MS = 2000;

let processRegistry: Registry | undefined;

/**
 * prom-client's process metrics (CPU, memory, heap, event-loop delay, GC), prefixed `tessera_`. They describe the
 * process, not a service, and some of them start a monitor that is never stopped: one registry of them per process,
 * made at the first scrape, shared by every service in it (tests run several).
 */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry, prefix: 'tessera_' });
  }
  return processRegistry;
}

interface OperationSeries {
  observe(seconds: number): void;
  byStatus: Map<number, () => void>;
}

/**
 * The service's own registry (never prom-client's global one, which several services in one process would share).
 * Counters are incremented where things happen; gauges that describe the database (outbox backlogs, the pool) are read
 * at scrape time, one cheap query per outbox.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly requests = new Counter({
    name: 'tessera_http_requests_total',
    help: 'HTTP requests answered, by operationId (not_found: no route; unknown: no operation) and status.',
    labelNames: ['operation', 'status'] as const,
    registers: [this.registry],
  });
  private readonly durations = new Histogram({
    name: 'tessera_http_request_duration_seconds',
    help: 'Time from a request arriving to its answer being ready, by operationId (not_found, unknown as above).',
    labelNames: ['operation'] as const,
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  /** Children per operation and status, so that counting a request allocates no labels object of ours. */
  private readonly series = new Map<string, OperationSeries>();
  private readonly outcomes: Record<OutboxName, Record<OutboxOutcome, Counter>>;
  private readonly rateLimited = new Counter({
    name: 'tessera_rate_limited_total',
    help: 'Requests refused 429 M_LIMIT_EXCEEDED, by the limit that was over (a request over several counts under each).',
    labelNames: ['limit'] as const,
    registers: [this.registry],
  });
  private readonly blockedTotal = new Counter({
    name: 'tessera_blocked_total',
    help: "store-invite requests refused by the operator's block lists, by list.",
    labelNames: ['list'] as const,
    registers: [this.registry],
  });
  private readonly invitations = new Counter({
    name: 'tessera_invitations_stored_total',
    help: 'Invitations stored (store-invite answered 200).',
    registers: [this.registry],
  });
  private readonly pending = new Gauge({
    name: 'tessera_outbox_pending',
    help: 'Rows waiting for delivery (due or backing off), by outbox.',
    labelNames: ['outbox'] as const,
    registers: [this.registry],
  });
  private readonly oldestAge = new Gauge({
    name: 'tessera_outbox_oldest_pending_age_seconds',
    help: 'How long ago the oldest row still waiting for delivery was queued, by outbox (0: none waiting).',
    labelNames: ['outbox'] as const,
    registers: [this.registry],
  });
  private readonly pool = {
    used: new Gauge({ name: 'tessera_db_pool_used', help: 'Database connections in use.', registers: [this.registry] }),
    free: new Gauge({ name: 'tessera_db_pool_free', help: 'Database connections open and idle.', registers: [this.registry] }),
    pending: new Gauge({
      name: 'tessera_db_pool_pending_acquires',
      help: 'Queries waiting for a database connection.',
      registers: [this.registry],
    }),
    max: new Gauge({ name: 'tessera_db_pool_max', help: 'Most database connections the pool opens.', registers: [this.registry] }),
  };
  private readonly databaseAvailable = new Gauge({
    name: 'tessera_database_available',
    help: '0 while a database outage is on (requests that need the database answer 503), else 1.',
    registers: [this.registry],
  });
  private readonly backlogs = new Map<OutboxName, () => Promise<OutboxBacklog>>();
  private poolUse?: () => PoolUse;
  private outage?: () => boolean;

  constructor(private readonly clock: () => number = Date.now) {
    const counter = (name: string, help: string) => new Counter({ name, help, registers: [this.registry] });
    this.outcomes = {
      mail: {
        done: counter('tessera_emails_sent_total', 'Emails accepted by the relay (or written as .eml files without SMTP).'),
        retry: counter('tessera_emails_retried_total', 'Email delivery attempts that failed and will be retried.'),
        failed: counter('tessera_emails_failed_total', 'Emails given up: refused permanently, not renderable, or past mail.giveUpAfterMs.'),
      },
      onbind: {
        done: counter('tessera_onbind_delivered_total', 'onbind calls a homeserver accepted (2xx).'),
        retry: counter('tessera_onbind_retried_total', 'onbind attempts that failed and will be retried.'),
        failed: counter('tessera_onbind_failed_total', 'onbind calls given up: refused permanently (4xx) or past onbind.giveUpAfterMs.'),
      },
    };
    for (const list of ['rooms', 'servers', 'keywords'] as const) this.blockedTotal.labels(list).inc(0);
  }

  /** One answered request: `operation` is an operationId or one of a few fixed names, never a path. */
  request(operation: string, status: number, seconds: number): void {
    let s = this.series.get(operation);
    if (!s) {
      s = { observe: this.durations.labels(operation).observe, byStatus: new Map() };
      this.series.set(operation, s);
    }
    let inc = s.byStatus.get(status);
    if (!inc) {
      const child = this.requests.labels(operation, String(status));
      inc = () => child.inc();
      s.byStatus.set(status, inc);
    }
    inc();
    s.observe(seconds);
  }

  /** Counts one outbox's delivery outcomes (OutboxWorker's `outcomes` option). */
  outboxOutcomes(outbox: OutboxName): (outcome: OutboxOutcome) => void {
    const counters = this.outcomes[outbox];
    return (outcome) => counters[outcome].inc();
  }

  /** A request refused by rate limit `limit` (the RateLimiter's kind, e.g. `invite-ip`). */
  limited(limit: string): void {
    this.rateLimited.labels(limit).inc();
  }

  blocked(list: BlockList): void {
    this.blockedTotal.labels(list).inc();
  }

  invitationStored(): void {
    this.invitations.inc();
  }

  /** Where the scrape-time figures come from: each outbox's backlog query, the pool, the outage tracker. */
  watch(sources: { outboxes: Record<OutboxName, () => Promise<OutboxBacklog>>; pool: () => PoolUse; outage: () => boolean }): void {
    for (const [name, read] of Object.entries(sources.outboxes) as [OutboxName, () => Promise<OutboxBacklog>][])
      this.backlogs.set(name, read);
    this.poolUse = sources.pool;
    this.outage = sources.outage;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The text format: the process's metrics, then the service's, with the scrape-time gauges read now. */
  async scrape(): Promise<string> {
    await this.refresh();
    const [processText, serviceText] = await Promise.all([processMetrics().metrics(), this.registry.metrics()]);
    return `${processText}\n${serviceText}`;
  }

  private async refresh(): Promise<void> {
    if (this.poolUse) {
      const p = this.poolUse();
      this.pool.used.set(p.used);
      this.pool.free.set(p.free);
      this.pool.pending.set(p.pendingAcquires);
      this.pool.max.set(p.max);
    }
    if (this.outage) this.databaseAvailable.set(this.outage() ? 0 : 1);
    await Promise.all(
      [...this.backlogs].map(async ([outbox, read]) => {
        try {
          const b = await withTimeout(read(), COLLECT_TIMEOUT_MS);
          this.pending.labels(outbox).set(b.pending);
          this.oldestAge.labels(outbox).set(b.oldestCreatedAt === undefined ? 0 : Math.max(0, (this.clock() - b.oldestCreatedAt) / 1000));
        } catch {
          // The database did not answer: no sample rather than a stale one (tessera_database_available says why).
          this.pending.remove(outbox);
          this.oldestAge.remove(outbox);
        }
      }),
    );
  }
}

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}
