// createApp(deps, handlers, xMatrix): the Koa application (no listen; tests mount it on their own server).
import Koa from 'koa';
import Router from '@koa/router';
import bodyParser from 'koa-bodyparser';
import type { Deps } from '../../deps.js';
import { createApi, errorResponse, type ApiRequest } from './api.js';
import type { HandlerTable } from '../../handlers.js';
import type { RequestSignatureVerifier } from './security.js';
import { bodyReadError, MatrixError } from './errors.js';
import { Gate } from './gate.js';
import { operations } from '../../../generated/identity.validators.js';
import { V1_BASE } from './paths.js';
import type { OperationId } from './types.js';
import { loadReference, referenceRoutes } from './reference.js';
import { opsMiddleware, type OpsEndpoints } from './ops.js';
import { requestContextEnabled, withRequestId } from '../requestContext.js';

/** Identity servers are called from browsers (web clients do lookups and terms directly): on every answer. */
const CORS_HEADERS: [string, string][] = [
  ['Access-Control-Allow-Origin', '*'],
  ['Access-Control-Allow-Methods', 'GET, POST, PUT, DELETE, OPTIONS'],
  ['Access-Control-Allow-Headers', 'Origin, X-Requested-With, Content-Type, Accept, Authorization'],
];

/** Methods whose requests carry no body we read: the body parser is skipped for them. */
const BODYLESS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** What an X-Request-Id set by a trusted proxy may look like to be used as is (it goes into the log). */
const FORWARDED_REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;

/**
 * Names each request for the log and the X-Request-Id response header, so that an ERROR line can be found from what
 * a client reports: a random per-process prefix (instances sharing a log stay apart) and a counter, cheaper than
 * random bytes per request. Behind a trusted proxy (server.trustProxy) the proxy's own id is kept, so both logs agree.
 */
function requestIdSource(random: Deps['random'], trustProxy: boolean): (forwarded: string) => string {
  const prefix = random(6).toString('base64url');
  let n = 0;
  return (forwarded) => (trustProxy && FORWARDED_REQUEST_ID.test(forwarded) ? forwarded : `${prefix}-${(++n).toString(36)}`);
}

/** The request metrics' operation label of a request that reached no operation. */
const unrouted = (status: number) => (status === 404 ? 'not_found' : 'unknown');

/** `ops`: the operator's endpoints this listener answers (/health, /ready, and /metrics unless it has its own listener). */
export async function createApp(deps: Deps, handlers: HandlerTable, xMatrix: RequestSignatureVerifier, ops?: OpsEndpoints): Promise<Koa> {
  const { handle, operationOf, checkResponse } = await createApi(deps, handlers, xMatrix);
  const { config, log, metrics } = deps;
  const app = new Koa();
  app.silent = true; // errors are logged once, below
  app.proxy = config.server.trustProxy;

  if (ops) app.use(opsMiddleware(ops));

  const answer = async (ctx: Koa.Context, next: Koa.Next, requestId: string) => {
    const started = performance.now();
    // Straight onto the response (constant, valid values): Koa's ctx.set re-checks and splits each one.
    for (const [name, value] of CORS_HEADERS) ctx.res.setHeader(name, value);
    ctx.state.requestId = requestId;
    ctx.res.setHeader('X-Request-Id', requestId);
    try {
      await next();
    } catch (err) {
      const res = errorResponse(err, deps, ctx.path, requestContextEnabled() ? undefined : requestId);
      ctx.status = res.status;
      if (res.headers) ctx.set(res.headers);
      ctx.body = res.body;
    }
    // Tests hold every answer to the document, whichever layer gave it (no-op unless a test asked for it);
    // a client that has gone gets no answer to check.
    if ((deps.responseViolations || deps.responseSeen) && ctx.method !== 'OPTIONS' && ctx.method !== 'HEAD' && !ctx.req.socket.destroyed) {
      checkResponse(ctx.method, ctx.path, { status: ctx.status, body: ctx.body, contentType: ctx.type });
    }
    const ms = performance.now() - started;
    // Labelled by operation, never by path: a bounded set of series whatever clients send.
    const op = ctx.state.operationId as OperationId | undefined;
    metrics.request(op ?? unrouted(ctx.status), ctx.status, ms / 1000);
    // Path only: query strings can carry access tokens and client secrets.
    log.debug('request', { method: ctx.method, path: ctx.path, status: ctx.status, ms: Math.round(ms) });
  };

  const requestIds = requestIdSource(deps.random, config.server.trustProxy);
  // Everything the request does, to its last log line, runs as part of it (requestContext.ts): the log names it.
  app.use((ctx, next) => {
    const requestId = requestIds(ctx.get('x-request-id'));
    return withRequestId(requestId, answer, ctx, next, requestId);
  });

  app.use(async (ctx, next) => {
    if (ctx.method === 'OPTIONS') {
      ctx.status = 200;
      ctx.body = {};
      return;
    }
    if (!config.server.v1Enabled && (ctx.path === V1_BASE || ctx.path.startsWith(`${V1_BASE}/`))) {
      throw new MatrixError(404, 'M_UNRECOGNIZED', 'The v1 identity API is disabled on this server');
    }
    await next();
  });

  const parseBody = bodyParser({
    enableTypes: ['json', 'form'],
    jsonLimit: `${config.server.bodyLimitBytes}b`,
    formLimit: `${config.server.bodyLimitBytes}b`,
    strict: true,
    // A POST without Content-Type is read as JSON (curl -d with no header, old clients).
    detectJSON: (ctx) => ctx.method === 'POST' && !ctx.get('content-type'),
    onerror: (err) => {
      throw bodyReadError(err);
    },
  });
  // koa-bodyparser also keeps the body's raw text (ctx.request.rawBody), which nothing here reads: it is
  // dropped at once, so a queued 1,000-address lookup holds its parsed body only (~50 KB less each).
  const dropRawBody = (ctx: Koa.Context, next: Koa.Next) => {
    (ctx.request as { rawBody?: string }).rawBody = undefined;
    return next();
  };
  // A not-offered operation (phone validation) is answered 404 whatever its body: it is never read, so a
  // malformed or oversized one cannot turn that answer into M_NOT_JSON or M_TOO_LARGE.
  // The operation is looked up once per request with a body, here, and kept for the bulk gate below.
  const readsBody = (ctx: Koa.Context) => {
    if (BODYLESS.has(ctx.method)) return false;
    const op = operationOf(ctx.method, ctx.path);
    ctx.state.operationId = op;
    return !op || !operations[op].notOffered;
  };
  app.use((ctx, next) => (readsBody(ctx) ? parseBody(ctx, () => dropRawBody(ctx, next)) : next()));

  // Bulk look-ups wait their turn here (src/http/gate.ts says why), after their bodies are read: a
  // place is held only while a request is worked on, never while a slow client trickles its body in.
  const bulkGate = new Gate(config.performance.bulkConcurrency);
  app.use(async (ctx, next) => {
    const op = ctx.state.operationId as OperationId | undefined;
    if (!op || !operations[op].bulk) return next();
    await bulkGate.enter();
    try {
      // A client that gave up while queued gets no work done (Koa writes nothing to a closed socket).
      if (ctx.req.socket.destroyed) return;
      await next();
    } finally {
      bulkGate.leave();
    }
  });

  const router = new Router();
  // Outside /_matrix, so no operation of the document matches them and the tests' response check passes them by.
  if (config.docs.enabled) referenceRoutes(router, loadReference(log));
  router.all('/_matrix/identity/{*rest}', async (ctx) => {
    const req: ApiRequest = {
      method: ctx.method,
      path: ctx.path,
      query: ctx.query,
      headers: ctx.headers,
      body: ctx.request.body,
      ip: ctx.ip,
      url: ctx.originalUrl,
      operationId: ctx.state.operationId as OperationId | undefined,
    };
    const res = await handle(req);
    ctx.state.operationId = req.operationId;
    ctx.status = res.status;
    if (res.headers) ctx.set(res.headers);
    if (res.contentType) ctx.type = res.contentType;
    ctx.body = res.body;
  });
  app.use(router.routes());
  app.use(() => {
    throw new MatrixError(404, 'M_UNRECOGNIZED', 'Unrecognized request');
  });
  return app;
}
