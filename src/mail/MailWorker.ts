// Delivers the mail outbox: renders each claimed row and sends it. Claiming, retries with backoff, give-up and
// retention are the outbox's (src/outbox/); this file decides what a send's failure means.
import type { MailDetail, MailJob, MailOutboxStore } from './MailOutboxStore.js';
import { redactForLog } from '../platform/logger.js';
import { OutboxWorker, outboxEnv, type Attempt, type OutboxWorkerEnv } from '../outbox/OutboxWorker.js';
import type { MailRenderer } from './render.js';
import { classifySendError, type MailTransport } from './transport.js';

export interface MailWorkerDeps extends OutboxWorkerEnv {
  queue: MailOutboxStore;
  renderer: MailRenderer;
  transport: MailTransport;
}

export type MailWorker = OutboxWorker<MailJob, MailDetail>;

/** Secrets (the ephemeral private key, tokens, links) are dropped once a row is final; only what the log needs stays. */
function finalPayload(job: MailJob, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const fields = job.payload.fields as Record<string, unknown> | undefined;
  const roomId = typeof fields?.room_id === 'string' ? fields.room_id : undefined;
  return { ...(roomId ? { room_id: roomId } : {}), ...extra };
}

export function createMailWorker(d: MailWorkerDeps): MailWorker {
  return new OutboxWorker<MailJob, MailDetail>({
    name: 'mail',
    ...outboxEnv(d),
    queue: d.queue,
    deliver: (job) => deliver(d, job),
    describe: (job) => ({ kind: job.kind, to: redactForLog(job.recipient) }),
    sweepAlso: async (before) => {
      try {
        // Without SMTP every message stays on disk as an .eml file, invitation private keys included.
        const files = (await d.transport.sweep?.(before)) ?? 0;
        if (files > 0) d.log.info('deleted old mail files', { count: files });
      } catch (err) {
        d.log.error('deleting old mail files failed', { err: err as Error });
      }
    },
  });
}

/** Renders and sends one message; never throws: every failure is a `failed` or `retry` attempt. */
async function deliver(d: MailWorkerDeps, job: MailJob): Promise<Attempt<MailDetail>> {
  const { log, renderer, transport } = d;
  const to = redactForLog(job.recipient);
  let rendered;
  try {
    rendered = await renderer.render(job);
  } catch (err) {
    const error = scrub(`render: ${(err as Error).message ?? String(err)}`, job.recipient);
    // Reading a template file failed (the error names a system call: permissions, a file replaced under us, out of
    // file descriptors): the environment's fault, not the row's, and it may heal, so the row is retried like an
    // unreachable relay (the outbox logs each attempt, without a stack). Everything else is the row's own and
    // happens again on every attempt: a payload that is not what the renderer needs (PermanentMailError), text
    // that cannot go into a link (URIError), or a template that does not compile. The last could be fixed by an
    // operator, but nunjucks keeps a template it has read until the process restarts, so a retry in the same
    // process meets the same error for three days. Such an email fails at once, its reason in last_error.
    if (isSystemError(err)) return { status: 'retry', error, payload: finalPayload(job) };
    log.error('mail could not be rendered; not retrying', { id: job.id, kind: job.kind, to, reason: error });
    return { status: 'failed', error, payload: finalPayload(job) };
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
    return { status: 'done', payload: finalPayload(job, { messageId: rendered.messageId }) };
  } catch (err) {
    const failure = classifySendError(err);
    const error = scrub(failure.reason, job.recipient);
    if (failure.permanent) {
      log.warn('mail rejected permanently', { id: job.id, kind: job.kind, to, reason: error });
      return { status: 'failed', error, payload: finalPayload(job) };
    }
    return { status: 'retry', error, payload: finalPayload(job) };
  }
}

/**
 * A template file that could not be read: a failed system call, as Node reports it, or a file that went between the
 * renderer's existence check and nunjucks' read (the next attempt falls back to the default brand).
 */
function isSystemError(err: unknown): boolean {
  const e = err as { syscall?: unknown; message?: unknown } | null;
  return typeof e?.syscall === 'string' || (typeof e?.message === 'string' && e.message.includes('template not found'));
}

/** SMTP replies often quote the recipient; the log and the row's last_error get the redacted form. */
function scrub(text: string, address: string): string {
  if (!address) return text;
  const escaped = address.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return text.replace(new RegExp(escaped, 'gi'), redactForLog(address));
}
