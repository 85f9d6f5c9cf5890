// The request a piece of work is done for, across its awaits: the HTTP pipeline names each request, and every log
// line written while handling it carries that name (logger.ts).
import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * The id of the request being handled, as the X-Request-Id response header carries it. One storage for the
 * process: it is the async context of the work, which several services in one process (tests) share anyway.
 */
const requestIds = new AsyncLocalStorage<string | undefined>();

/**
 * On Node 20 an AsyncLocalStorage in use adds a hook to every promise in the process (several percent of CPU on the
 * cheapest requests; docs/performance.md). `log.requestContext: false` leaves it unused: requests still get their
 * X-Request-Id, and the one line a failing request writes still names it, but other lines do not.
 */
let enabled = true;

export function setRequestContextEnabled(on: boolean): void {
  enabled = on;
}

export function requestContextEnabled(): boolean {
  return enabled;
}

/** Runs `work(...args)` (and everything it starts) as part of request `id`. */
export function withRequestId<R, A extends unknown[]>(id: string, work: (...args: A) => R, ...args: A): R {
  return enabled ? requestIds.run(id, work, ...args) : work(...args);
}

/** The id of the request the calling code works for, if any. */
export function currentRequestId(): string | undefined {
  return requestIds.getStore();
}

/**
 * Runs `work` as part of no request. For work a request merely sets off but that is not its own (an outbox pass a
 * commit wakes, an outage probe): its log lines would otherwise carry the id of whichever request happened to start it.
 */
export function outsideRequests<T>(work: () => T): T {
  // run(undefined), not exit(): on Node 20 exit() turns the async hooks off and on again around `work`.
  return enabled ? requestIds.run(undefined, work) : work();
}
