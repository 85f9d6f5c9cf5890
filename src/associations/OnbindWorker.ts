// Delivers the onbind outbox (identity-api.md section 5): POSTs each stored, signed body to the invitee's
// homeserver. Claiming, retries with backoff, give-up and retention are the outbox's (src/outbox/); this file
// decides which answers are final: 2xx delivered, 4xx other than 429 (or a FederationError marked permanent)
// failed, anything else retried.
import type { FederationClient } from '../federation/types.js';
import { FederationError } from '../federation/types.js';
import { OutboxWorker, outboxEnv, type Attempt, type OutboxWorkerEnv } from '../outbox/OutboxWorker.js';
import type { OnbindDetail, OnbindJob, OnbindOutboxStore } from './OnbindOutboxStore.js';

export const ONBIND_PATH = '/_matrix/federation/v1/3pid/onbind';

export interface OnbindWorkerDeps extends OutboxWorkerEnv {
  queue: OnbindOutboxStore;
  federation: FederationClient;
}

export type OnbindWorker = OutboxWorker<OnbindJob, OnbindDetail>;

/** Keeps error text short and free of anything but the status and the homeserver's errcode/error. */
function describe(status: number, body: unknown): string {
  const b = (body ?? {}) as { errcode?: unknown; error?: unknown };
  const detail = [typeof b.errcode === 'string' ? b.errcode : '', typeof b.error === 'string' ? b.error : ''].filter(Boolean).join(': ');
  return `HTTP ${status}${detail ? ` ${detail}` : ''}`.slice(0, 500);
}

export function createOnbindWorker(d: OnbindWorkerDeps): OnbindWorker {
  return new OutboxWorker<OnbindJob, OnbindDetail>({
    name: 'onbind',
    ...outboxEnv(d),
    queue: d.queue,
    deliver: (job) => deliver(d, job),
    describe: (job) => ({ server: job.destination }),
  });
}

async function deliver(d: OnbindWorkerDeps, job: OnbindJob): Promise<Attempt<OnbindDetail>> {
  let httpStatus: number | null = null;
  let error: string;
  let permanent: boolean;
  try {
    const res = await d.federation.postJson(job.destination, ONBIND_PATH, JSON.parse(job.body) as unknown);
    httpStatus = res.status;
    if (httpStatus >= 200 && httpStatus < 300) {
      d.log.info('onbind delivered', { id: job.id, server: job.destination, attempts: job.attempts });
      return { status: 'done', httpStatus };
    }
    error = describe(httpStatus, res.body);
    permanent = httpStatus >= 400 && httpStatus < 500 && httpStatus !== 429;
  } catch (err) {
    error = `${err instanceof FederationError ? 'federation' : 'unexpected'}: ${(err as Error).message ?? String(err)}`.slice(0, 500);
    permanent = err instanceof FederationError && err.permanent;
    if (err instanceof FederationError && err.deniedByPolicy) {
      // Final for this instance, not for the row: an instance on the same database with a wider allow list may
      // deliver it. Left for it (retried with backoff, so whichever instance may reach the homeserver takes it
      // in time) and failed only at the end of the row's lifetime, by the outbox's give-up. The outbox logs the
      // attempt with this reason.
      return { status: 'retry', error: `${error} (this instance's outbound policy; left for another instance)`, httpStatus };
    }
  }
  if (permanent) {
    d.log.warn('onbind failed permanently; not retrying', { id: job.id, server: job.destination, error });
    return { status: 'failed', error, httpStatus };
  }
  // Unreachable, timing out or failing homeservers are retried until the row's lifetime is over (the outbox's
  // give-up): anyone can queue such rows over v1.
  return { status: 'retry', error, httpStatus };
}
