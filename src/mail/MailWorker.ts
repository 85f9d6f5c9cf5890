// Drains the mail outbox (issue 3): woken after each commit, claims rows with a lease, sends, and retries
// with capped exponential backoff and jitter; permanent rejections and given-up rows are recorded as failed.
import { hostname } from 'node:os';
import type { MailConfig } from '../platform/config.js';
import type { RandomBytes } from '../invitations/token.js';
import type { MailJob, MailOutcome, Store } from '../store/types.js';
import { redactForLog, type Logger } from '../platform/logger.js';
import { PermanentMailError, type MailRenderer } from './render.js';
import { classifySendError, type MailTransport } from './transport.js';

export interface MailWorkerDeps {
  store: Store;
  log: Logger;
  clock: () => number;
  random: RandomBytes;
  mail: MailConfig;
  renderer: MailRenderer;
  transport: MailTransport;
}

const RETENTION_SWEEP_MS = 10 * 60_000;
const DELETE_BATCH = 1000;

/** Delay before attempt `attempts + 1`: base * 2^(attempts-1), capped, with "equal jitter" (half fixed, half random). */
export function backoffMs(attempts: number, baseMs: number, maxMs: number, random: RandomBytes): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.min(Math.max(attempts - 1, 0), 30));
  const unit = random(4).readUInt32BE(0) / 0x1_0000_0000;
  return Math.round(exp / 2 + unit * (exp / 2));
}

/** Secrets (the ephemeral private key, tokens, links) are dropped once a row is final; only what the log needs stays. */
function finalPayload(job: MailJob, extra: Record<string, unknown>): Record<string, unknown> {
  const fields = job.payload.fields as Record<string, unknown> | undefined;
  const roomId = typeof fields?.room_id === 'string' ? fields.room_id : undefined;
  return { ...(roomId ? { room_id: roomId } : {}), ...extra };
}

export class MailWorker {
  readonly id: string;
  private timer?: NodeJS.Timeout;
  private retention?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;
  private stopped = true;

  constructor(private readonly d: MailWorkerDeps) {
    this.id = `${hostname().slice(0, 40)}:${process.pid}:${d.random(4).toString('hex')}`;
  }

  start(): void {
    this.stopped = false;
    this.retention = setInterval(() => void this.sweepFinished(), Math.min(RETENTION_SWEEP_MS, Math.max(this.d.mail.retentionMs, 1000)));
    this.retention.unref();
    this.wake(); // rows left by an earlier run (or another instance that died) are due now
  }

  /** Called after a commit that queued mail: drain now, or right after the pass in progress. */
  wake(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.timer = undefined;
    this.running = this.drain().finally(() => {
      this.running = undefined;
    });
  }

  /** Resolves once the pass in progress (if any) is over; tests use it to wait without sleeping. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.retention);
    await this.idle();
    this.d.transport.close();
  }

  private async drain(): Promise<void> {
    const { store, mail, clock, log } = this.d;
    let retryIn: number | undefined;
    try {
      do {
        this.again = false;
        while (!this.stopped) {
          const jobs = await store.claimDueMail(this.id, clock(), mail.leaseMs, mail.batchSize);
          if (jobs.length === 0) break;
          // The batch is sent in parallel and its outcomes recorded together, in one transaction.
          const outcomes = await Promise.all(jobs.map((job) => this.deliver(job)));
          const lost = await store.finishMail(this.id, outcomes);
          if (lost.length > 0) log.warn('mail outcome not recorded: the lease ran out and another worker owns the row', { ids: lost.join(',') });
        }
      } while (this.again && !this.stopped);
    } catch (err) {
      log.error('mail worker pass failed', { err: err as Error });
      retryIn = 1000;
    }
    if (this.stopped) return;
    let delay = retryIn ?? mail.pollIntervalMs;
    if (retryIn === undefined) {
      try {
        const due = await store.nextMailDueAt();
        if (due !== undefined) delay = Math.min(delay, Math.max(due - clock(), 10));
      } catch (err) {
        log.error('mail worker could not read the next due time', { err: err as Error });
      }
    }
    this.timer = setTimeout(() => this.wake(), delay);
    this.timer.unref();
  }

  /** Renders and sends one message; never throws: every failure becomes a `failed` or `retry` outcome. */
  private async deliver(job: MailJob): Promise<MailOutcome> {
    const { log, clock, renderer, transport } = this.d;
    const to = redactForLog(job.recipient);
    let rendered;
    try {
      rendered = await renderer.render(job);
    } catch (err) {
      const reason = `render: ${(err as Error).message}`.slice(0, 1000);
      log.error('mail could not be rendered', { id: job.id, kind: job.kind, to, err: err as Error });
      if (err instanceof PermanentMailError) return { id: job.id, status: 'failed', at: clock(), error: reason, payload: finalPayload(job, {}) };
      return this.retry(job, reason);
    }
    try {
      const info = await transport.send({
        name: `${job.createdAt}-${job.id}-${job.kind}`,
        envelopeFrom: rendered.envelopeFrom,
        to: rendered.to,
        raw: rendered.raw,
      });
      // The file transport's path is logged so an operator without SMTP can find the message; never the address.
      if (transport.kind === 'file') log.info('mail written', { id: job.id, kind: job.kind, to, path: info });
      else log.info('mail sent', { id: job.id, kind: job.kind, to, attempts: job.attempts, template: rendered.template });
      return { id: job.id, status: 'sent', at: clock(), payload: finalPayload(job, { messageId: rendered.messageId }) };
    } catch (err) {
      const failure = classifySendError(err);
      const reason = scrub(failure.reason, job.recipient);
      if (failure.permanent) {
        log.warn('mail rejected permanently', { id: job.id, kind: job.kind, to, reason });
        return { id: job.id, status: 'failed', at: clock(), error: reason, payload: finalPayload(job, {}) };
      }
      log.warn('mail delivery failed, will retry', { id: job.id, kind: job.kind, to, attempts: job.attempts, reason, transport: transport.kind });
      return this.retry(job, reason);
    }
  }

  private retry(job: MailJob, reason: string): MailOutcome {
    const { clock, random, mail, log } = this.d;
    const now = clock();
    if (now - job.createdAt >= mail.giveUpAfterMs) {
      log.error('mail given up', { id: job.id, kind: job.kind, to: redactForLog(job.recipient), attempts: job.attempts });
      return { id: job.id, status: 'failed', at: now, error: `gave up after ${job.attempts} attempts; last error: ${reason}`.slice(0, 1000), payload: finalPayload(job, {}) };
    }
    return { id: job.id, status: 'retry', nextAttemptAt: now + backoffMs(job.attempts, mail.retryBaseMs, mail.retryMaxMs, random), error: reason };
  }

  private async sweepFinished(): Promise<void> {
    const { store, clock, mail, log } = this.d;
    try {
      let total = 0;
      for (;;) {
        const n = await store.deleteFinishedMail(clock() - mail.retentionMs, DELETE_BATCH);
        total += n;
        if (n < DELETE_BATCH) break;
      }
      if (total > 0) log.info('deleted finished mail rows', { count: total });
    } catch (err) {
      log.error('deleting finished mail rows failed', { err: err as Error });
    }
    try {
      // Without SMTP every message stays on disk as an .eml file, invitation private keys included.
      const files = (await this.d.transport.sweep?.(clock() - mail.retentionMs)) ?? 0;
      if (files > 0) log.info('deleted old mail files', { count: files });
    } catch (err) {
      log.error('deleting old mail files failed', { err: err as Error });
    }
  }

  /** Runs the retention sweep now (tests). */
  sweepNow(): Promise<void> {
    return this.sweepFinished();
  }
}

/** SMTP replies often quote the recipient; the log and the row's last_error get the redacted form. */
function scrub(text: string, address: string): string {
  if (!address) return text;
  const escaped = address.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return text.replace(new RegExp(escaped, 'gi'), redactForLog(address));
}
