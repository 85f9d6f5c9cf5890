// openapi-backend routes each request to its operationId; this module runs the request pipeline around
// the handler: body shape -> generated validators -> access token and terms -> handler -> reply.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { OpenAPIBackend, type Document } from 'openapi-backend';
import { operations } from '../../../generated/identity.validators.js';
import type { Deps } from '../../deps.js';
import type { HandlerTable } from '../../handlers.js';
import { V1_BASE } from './paths.js';
import { MatrixError, notOfferedError, toMatrixError, unavailableResponse, unknownError, validationError } from './errors.js';
import { accessTokenOf, isXMatrix, type RequestSignatureVerifier } from './security.js';
import { checkBody, checkParameters, checkRawQuery } from './inputCheck.js';
import type { OperationId, Req } from './types.js';

export interface ApiRequest {
  method: string;
  path: string;
  query: Record<string, string | string[] | undefined>;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
  ip: string;
  /** Path and query exactly as received (what an X-Matrix signature covers); `path` + query when absent. */
  url?: string;
  /** Set by `handle` to the operation the request was routed to (the request metrics' label). */
  operationId?: OperationId;
}

export interface ApiResponse {
  status: number;
  body: unknown;
  /** Set for non-JSON answers (HTML pages, redirects); JSON otherwise. */
  contentType?: string;
  headers?: Record<string, string>;
}

export const IDENTITY_DOCUMENT = new URL('../../../openapi/identity.yaml', import.meta.url);

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Synapse sends `null` for absent optional values; the wire contract says null means absent. */
function withoutNulls(body: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body)) if (v !== null) out[k] = v;
  return out;
}

type FormTypes = NonNullable<(typeof operations)[OperationId]['form']>;

/** `application/x-www-form-urlencoded`, with or without parameters (`; charset=utf-8`). */
function isFormEncoded(headers: ApiRequest['headers']): boolean {
  const type = headers['content-type'];
  return typeof type === 'string' && /^\s*application\/x-www-form-urlencoded\s*(;|$)/i.test(type);
}

function fromFormString(value: string, type: FormTypes[string]): unknown {
  switch (type) {
    case 'integer':
      return /^-?\d+$/.test(value) ? Number(value) : value;
    case 'number': {
      const n = value.trim() === '' ? NaN : Number(value);
      return Number.isFinite(n) ? n : value;
    }
    case 'boolean':
      return value === 'true' ? true : value === 'false' ? false : value;
  }
}

/**
 * A form body holds strings only: each field the operation's `form` entry names gets the JSON type its schema
 * wants. What does not convert stays a string, and a repeated key (an array from the parser) stays an array, so
 * that the JSON validator rejects it as it would the same value sent as JSON.
 */
export function fromForm(body: Record<string, unknown>, types: FormTypes): Record<string, unknown> {
  const out = { ...body };
  for (const [field, type] of Object.entries(types)) {
    const value = out[field];
    if (typeof value === 'string') out[field] = fromFormString(value, type);
  }
  return out;
}

export interface Api {
  /** Runs one request through the pipeline; never throws (failures are error responses). */
  handle(req: ApiRequest): Promise<ApiResponse>;
  /** The operation a method and path route to, before anything is read (undefined: none, or unroutable). */
  operationOf(method: string, path: string): OperationId | undefined;
  /**
   * Tests only (deps.responseViolations set): records a response that does not match the document. Called by app.ts
   * on every answer, those of the outer layers (body parser, v1 switch) included; a no-op otherwise.
   */
  checkResponse(method: string, path: string, res: ApiResponse): void;
}

export async function createApi(deps: Deps, table: HandlerTable, xMatrix: RequestSignatureVerifier): Promise<Api> {
  const opIds = Object.keys(operations) as OperationId[];
  const missing = opIds.filter((op) => typeof (table as Record<string, unknown>)[op] !== 'function');
  if (missing.length > 0) throw new Error(`operations without a handler: ${missing.join(', ')}`);

  const definition = parseYaml(readFileSync(IDENTITY_DOCUMENT, 'utf8')) as Document;
  const api = new OpenAPIBackend({ definition, validate: false, quick: true, strict: true, ignoreTrailingSlashes: true });
  await api.init();
  const documentOps = new Set(
    Object.values(api.definition.paths ?? {})
      .flatMap((item) => Object.values(item ?? {}).map((o) => (o as { operationId?: string }).operationId))
      .filter(Boolean),
  );
  const stale = [...documentOps].filter((op) => !(op! in operations));
  if (stale.length > 0) throw new Error(`generated/ is stale (no validators for ${stale.join(', ')}); run npm run generate`);
  const route = memoizedRouter(api);

  async function run(op: OperationId, params: Record<string, unknown>, req: ApiRequest): Promise<ApiResponse> {
    const meta = operations[op];
    // Documented (the spec has them) but not offered: the same answer whatever the request carries, before
    // anything of it is read or checked (app.ts does not even parse the body).
    if (meta.notOffered) throw notOfferedError();
    let body: unknown;
    if (meta.body) {
      let raw = req.body;
      if (isFormEncoded(req.headers)) {
        // Only the legacy v1 routes that old clients POST forms to (`form` in the operation table) take one.
        if (!meta.form) throw new MatrixError(400, 'M_NOT_JSON', 'Content not JSON.');
        if (isPlainObject(raw)) raw = fromForm(raw, meta.form);
      }
      if (!isPlainObject(raw)) throw new MatrixError(400, 'M_NOT_JSON', 'Content not a JSON object');
      // Nesting and text are checked before anything else reads the body (the validators, X-Matrix's canonical
      // JSON, the handler); missing fields are still reported first, as the contract orders them.
      const refused = checkBody(raw);
      body = withoutNulls(raw);
      const valid = meta.body(body);
      if (!valid || refused) throw validationError(valid ? [] : meta.body.errors, refused);
    }
    if (meta.params) {
      const refused = checkParameters(params);
      const valid = meta.params(params);
      if (!valid || refused) throw validationError(valid ? [] : meta.params.errors, refused);
    }
    if (meta.query) {
      const raw = rawQueryOf(req.url);
      const refused = (raw === undefined ? undefined : checkRawQuery(raw)) ?? checkParameters(req.query);
      const valid = meta.query(req.query);
      if (!valid || refused) throw validationError(valid ? [] : meta.query.errors, refused);
    }
    let account;
    let origin: string | undefined;
    if (meta.xMatrix && isXMatrix(req.headers.authorization)) {
      // A homeserver's signature stands in for the access token; it is checked here, and a bad one is refused
      // (never passed on as an anonymous request). Which users it may act for is the handler's decision.
      const result = await xMatrix.verify(req.headers.authorization, {
        method: req.method.toUpperCase(),
        uri: req.url ?? rawUrlOf(req),
        content: req.body,
      });
      if ('error' in result) {
        deps.log.info('X-Matrix request refused', { op, reason: result.error });
        // Credentials were given and are invalid: 403, as the spec says for unbind (401 is for missing ones).
        throw new MatrixError(403, 'M_UNAUTHORIZED', `Invalid X-Matrix authorization: ${result.error}`);
      }
      origin = result.origin;
    } else if (meta.secured) {
      const token = accessTokenOf(req.headers, req.query);
      const auth = token === undefined ? undefined : await deps.auth.authenticate(token);
      // Missing, unknown, expired and logged-out tokens alike: the spec's general rule for credentials that are
      // required but missing or invalid, and what the reference server and the established test suites expect.
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
      origin,
    } as unknown as Req<typeof op>;
    const handler = table[op] as (r: Req<typeof op>, d: Deps) => Promise<ApiResponse>;
    return handler(handlerReq, deps);
  }

  function checkResponse(method: string, path: string, res: ApiResponse): void {
    if (!deps.responseViolations && !deps.responseSeen) return;
    const op = operationOf(method, path);
    if (!op) return; // no operation: nothing in the document to hold it to
    if (deps.responseSeen) {
      const errcode = (res.body as { errcode?: unknown } | null)?.errcode;
      deps.responseSeen(op, res.status, typeof errcode === 'string' ? errcode : undefined);
    }
    if (!deps.responseViolations) return;
    const status = String(res.status);
    // An HTML page (the emailed link's answers; a redirect's empty body is no page: it is checked as no content).
    if (res.contentType?.startsWith('text/html') && res.body !== '') {
      if (!operations[op].text.includes(status))
        deps.responseViolations.push(`${op}: an HTML answer with status ${status} is not documented`);
      return;
    }
    const validate = operations[op].responses[status];
    if (!validate) {
      deps.responseViolations.push(`${op}: status ${res.status} is not documented`);
    } else if (!validate(res.body)) {
      deps.responseViolations.push(`${op} ${res.status}: ${JSON.stringify(validate.errors)} in ${JSON.stringify(res.body)}`);
    }
  }

  const operationOf = (method: string, path: string): OperationId | undefined => {
    try {
      const match = route(method, path);
      return match.status === 200 ? match.operationId : undefined;
    } catch {
      return undefined; // a malformed path: the pipeline answers it
    }
  };

  const handle = async (req: ApiRequest): Promise<ApiResponse> => {
    try {
      const match = route(req.method, req.path);
      if (match.status !== 200) {
        throw match.status === 404
          ? new MatrixError(404, 'M_UNRECOGNIZED', 'Unrecognized request')
          : new MatrixError(405, 'M_UNRECOGNIZED', 'Unrecognized request: method not allowed');
      }
      req.operationId = match.operationId;
      return await run(match.operationId, { ...match.params }, req);
    } catch (err) {
      return errorResponse(err, deps, req.path);
    }
  };
  return { handle, operationOf, checkResponse };
}

/** What follows `?` in the URL as received (undefined: no URL given, or no query). */
function rawQueryOf(url: string | undefined): string | undefined {
  const at = url?.indexOf('?') ?? -1;
  return at < 0 ? undefined : url!.slice(at + 1);
}

function rawUrlOf(req: ApiRequest): string {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(req.query)) for (const one of Array.isArray(v) ? v : v === undefined ? [] : [v]) qs.append(k, one);
  const text = qs.toString();
  return text ? `${req.path}?${text}` : req.path;
}

export type RouteMatch = { status: 200; operationId: OperationId; params: Record<string, string> } | { status: 404 | 405 };

/** Distinct method+path pairs remembered; the cache is emptied when full, so it stays bounded. */
const ROUTE_CACHE_MAX = 10_000;

/**
 * openapi-backend's router decides which operation a request is, and with which path parameters. Its
 * matcher rebuilds the operation list and a RegExp per path template on every call (a large share of a
 * request's CPU), and the answer depends only on method and path, so it is
 * remembered per method+path. Errors (a malformed percent-escape) are not remembered: they throw again.
 */
export function memoizedRouter(api: OpenAPIBackend): (method: string, path: string) => RouteMatch {
  const cache = new Map<string, RouteMatch>();
  const resolve = (method: string, path: string): RouteMatch => {
    const request = { method, path, headers: {}, query: {} };
    try {
      const operation = api.router.matchOperation(request, true);
      const params = api.router.parseRequest(request, operation).params as Record<string, string>;
      return { status: 200, operationId: operation.operationId as OperationId, params };
    } catch (err) {
      const message = err instanceof Error ? err.message : '';
      if (message.startsWith('404')) return { status: 404 };
      if (message.startsWith('405')) return { status: 405 };
      throw err;
    }
  };
  return (method, path) => {
    const key = `${method} ${path}`;
    let match = cache.get(key);
    if (!match) {
      match = resolve(method, path);
      if (cache.size >= ROUTE_CACHE_MAX) cache.clear();
      cache.set(key, match);
    }
    return match;
  };
}

/**
 * The one place an exception becomes a response: Matrix errors as they are, a database outage 503 (logged once per
 * outage by the tracker, not per request), anything else a bare 500 and one ERROR line naming the request (its
 * request_id, which the logger adds to every line written while a request is handled).
 */
export function errorResponse(err: unknown, deps: Pick<Deps, 'log' | 'outage'>, path: string, requestId?: string): ApiResponse {
  const matrix = toMatrixError(err);
  if (matrix) return { status: matrix.status, body: matrix.toJSON() };
  if (deps.outage.absorbs(err, { path })) return unavailableResponse();
  // requestId: given when the request context is off (requestContext.ts), so that this line still names the request
  deps.log.error('unhandled error', {
    path,
    err: err instanceof Error ? err : typeof err,
    ...(requestId ? { request_id: requestId } : {}),
  });
  const e = unknownError();
  return { status: e.status, body: e.toJSON() };
}
