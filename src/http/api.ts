// openapi-backend routes each request to its operationId; this module runs the request pipeline around
// the handler: body shape -> generated validators -> access token and terms -> handler -> reply.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { OpenAPIBackend, type Document } from 'openapi-backend';
import { operations } from '../../generated/identity.validators.js';
import type { Deps } from '../deps.js';
import type { HandlerTable } from '../handlers/index.js';
import { V1_BASE } from '../handlers/paths.js';
import { MatrixError, toMatrixError, unknownError, validationError } from './errors.js';
import { accessTokenOf } from './security.js';
import { compileRoutes, type RouteSpec } from './router.js';
import type { OperationId, Req } from './types.js';

export interface ApiRequest {
  method: string;
  path: string;
  query: Record<string, string | string[] | undefined>;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
  ip: string;
}

export interface ApiResponse {
  status: number;
  body: unknown;
}

export const IDENTITY_DOCUMENT = new URL('../../openapi/identity.yaml', import.meta.url);

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Synapse sends `null` for absent optional values; the wire contract says null means absent. */
function withoutNulls(body: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body)) if (v !== null) out[k] = v;
  return out;
}

interface Trace {
  operationId?: OperationId;
}

export async function createApi(deps: Deps, table: HandlerTable): Promise<(req: ApiRequest) => Promise<ApiResponse>> {
  const opIds = Object.keys(operations) as OperationId[];
  const missing = opIds.filter((op) => typeof (table as Record<string, unknown>)[op] !== 'function');
  if (missing.length > 0) throw new Error(`operations without a handler: ${missing.join(', ')}`);

  const definition = parseYaml(readFileSync(IDENTITY_DOCUMENT, 'utf8')) as Document;
  const api = new OpenAPIBackend({ definition, validate: false, quick: true, strict: true, ignoreTrailingSlashes: true });
  // Requests are matched by the compiled router (./router.ts), not api.handleRequest: openapi-backend's
  // per-request matching cost ~20% of a request's CPU (issue 6's profile). The backend still parses the document
  // at start-up so a stale generated/ is caught below. Authentication runs in `run`, after request validation,
  // because the wire contract orders M_MISSING_PARAMS/M_INVALID_PARAM before M_UNAUTHORIZED.
  const route = compileRoutes(operations as Record<OperationId, RouteSpec>);
  await api.init();
  const documentOps = new Set(Object.values(api.definition.paths ?? {}).flatMap((item) => Object.values(item ?? {}).map((o) => (o as { operationId?: string }).operationId)).filter(Boolean));
  const stale = [...documentOps].filter((op) => !(op! in operations));
  if (stale.length > 0) throw new Error(`generated/ is stale (no validators for ${stale.join(', ')}); run npm run generate`);

  async function run(op: OperationId, params: Record<string, unknown>, req: ApiRequest, trace: Trace): Promise<ApiResponse> {
    trace.operationId = op;
    const meta = operations[op];
    let body: unknown;
    if (meta.body) {
      if (!isPlainObject(req.body)) throw new MatrixError(400, 'M_NOT_JSON', 'Content not a JSON object');
      body = withoutNulls(req.body);
      if (!meta.body(body)) throw validationError(meta.body.errors);
    }
    if (meta.params && !meta.params(params)) throw validationError(meta.params.errors);
    if (meta.query && !meta.query(req.query)) throw validationError(meta.query.errors);
    let account;
    if (meta.secured) {
      const token = accessTokenOf(req.headers, req.query);
      const auth = token === undefined ? undefined : await deps.auth.authenticate(token);
      if (!auth) throw new MatrixError(401, 'M_UNAUTHORIZED', 'Unauthorized');
      if (!auth.termsAccepted && !meta.termsExempt) {
        throw new MatrixError(403, 'M_TERMS_NOT_SIGNED', 'Terms not signed');
      }
      account = auth.account;
    }
    const handlerReq = {
      operationId: op,
      version: meta.path.startsWith(V1_BASE) ? 'v1' : 'v2',
      body,
      query: req.query,
      params,
      headers: req.headers,
      ip: req.ip,
      account,
    } as unknown as Req<typeof op>;
    const handler = table[op] as (r: Req<typeof op>, d: Deps) => Promise<ApiResponse>;
    return handler(handlerReq, deps);
  }

  function checkResponse(op: OperationId | undefined, res: ApiResponse): void {
    if (!deps.responseViolations || !op) return;
    const validate = operations[op].responses[String(res.status)];
    if (!validate) {
      deps.responseViolations.push(`${op}: status ${res.status} is not documented`);
    } else if (!validate(res.body)) {
      deps.responseViolations.push(`${op} ${res.status}: ${JSON.stringify(validate.errors)} in ${JSON.stringify(res.body)}`);
    }
  }

  return async (req: ApiRequest): Promise<ApiResponse> => {
    const trace: Trace = {};
    let res: ApiResponse;
    try {
      const match = route(req.method, req.path);
      if (match.status !== 200) {
        throw match.status === 404
          ? new MatrixError(404, 'M_UNRECOGNIZED', 'Unrecognized request')
          : new MatrixError(405, 'M_UNRECOGNIZED', 'Unrecognized request: method not allowed');
      }
      res = await run(match.operationId, match.params, req, trace);
    } catch (err) {
      res = errorResponse(err, deps, req.path);
    }
    checkResponse(trace.operationId, res);
    return res;
  };
}

/** The one place an exception becomes a response: Matrix errors as they are, anything else a bare 500. */
export function errorResponse(err: unknown, deps: Pick<Deps, 'log'>, path: string): ApiResponse {
  const matrix = toMatrixError(err);
  if (matrix) return { status: matrix.status, body: matrix.toJSON() };
  deps.log.error('unhandled error', { path, err: err instanceof Error ? err : String(err) });
  const e = unknownError();
  return { status: e.status, body: e.toJSON() };
}
