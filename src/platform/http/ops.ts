// The operator's endpoints, outside /_matrix: GET /health (the process answers), GET /ready (it can serve:
// readiness.ts) and GET /metrics (Prometheus text format), on the main listener or /metrics on a listener of its own.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type Koa from 'koa';
import type { Metrics } from '../metrics.js';
import type { Readiness } from '../readiness.js';

export const OPS_PATHS = { health: '/health', ready: '/ready', metrics: '/metrics' } as const;

export interface OpsEndpoints {
  ready: () => Promise<Readiness>;
  /** Set when /metrics is served on this listener. */
  metrics?: Metrics;
}

interface Answer {
  status: number;
  type: string;
  body: string;
}

const HEALTHY: Answer = { status: 200, type: 'application/json', body: '{"status":"ok"}' };

/** The answer to an operator path, or undefined when `path` is none of this listener's. */
async function answer(path: string, o: OpsEndpoints): Promise<Answer | undefined> {
  if (path === OPS_PATHS.health) return HEALTHY;
  if (path === OPS_PATHS.ready) {
    const r = await o.ready();
    const body = r.ready ? { status: 'ok', checks: r.checks } : { status: 'unavailable', failed: r.failed, checks: r.checks };
    return { status: r.ready ? 200 : 503, type: 'application/json', body: JSON.stringify(body) };
  }
  if (path === OPS_PATHS.metrics && o.metrics) {
    return { status: 200, type: o.metrics.contentType, body: await o.metrics.scrape() };
  }
  return undefined;
}

/**
 * First in the main listener's pipeline: probes and scrapes are answered before request ids, CORS, the request log
 * and the request metrics, so that a load balancer polling every second neither fills the log nor counts as traffic.
 * No rate limit applies to them (rate limits are per operation).
 */
export function opsMiddleware(o: OpsEndpoints): Koa.Middleware {
  return async (ctx, next) => {
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return next();
    const a = await answer(ctx.path, o);
    if (!a) return next();
    ctx.status = a.status;
    ctx.type = a.type;
    ctx.set('Cache-Control', 'no-store');
    ctx.body = a.body;
  };
}

/** The metrics listener's whole handler: GET /metrics, anything else 404. */
export function metricsListener(metrics: Metrics): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    const get = req.method === 'GET' || req.method === 'HEAD';
    const done = (a: Answer) => {
      res.writeHead(a.status, { 'Content-Type': a.type, 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(a.body) });
      res.end(req.method === 'HEAD' ? undefined : a.body);
    };
    if (!get || path !== OPS_PATHS.metrics) {
      done({ status: 404, type: 'text/plain; charset=utf-8', body: 'Not found\n' });
      return;
    }
    metrics.scrape().then(
      (body) => done({ status: 200, type: metrics.contentType, body }),
      () => done({ status: 500, type: 'text/plain; charset=utf-8', body: 'metrics unavailable\n' }),
    );
  };
}
