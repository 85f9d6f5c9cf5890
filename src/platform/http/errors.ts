// Matrix error bodies, and the one table that turns domain errors into them.
import type { ErrorObject } from 'ajv';
import { DomainError, type DomainErrorCode } from '../domainErrors.js';

export class MatrixError extends Error {
  constructor(
    readonly status: number,
    readonly errcode: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'MatrixError';
  }

  toJSON(): Record<string, unknown> {
    return { ...this.extra, errcode: this.errcode, error: this.message };
  }
}

const DOMAIN_TABLE: Record<DomainErrorCode, [number, string]> = {
  threepid_in_use: [400, 'M_THREEPID_IN_USE'],
  unrecognized_medium: [400, 'M_UNRECOGNIZED'],
  invalid_email: [400, 'M_INVALID_EMAIL'],
  blocked: [403, 'M_UNAUTHORIZED'],
  forbidden: [403, 'M_UNAUTHORIZED'],
  not_found: [404, 'M_NOT_FOUND'],
  unknown_token: [404, 'M_UNRECOGNIZED'],
  invalid_param: [400, 'M_INVALID_PARAM'],
  rate_limited: [429, 'M_LIMIT_EXCEEDED'],
  openid_rejected: [401, 'M_UNAUTHORIZED'],
  homeserver_unavailable: [502, 'M_UNKNOWN'],
  session_not_found: [404, 'M_NO_VALID_SESSION'],
  session_not_validated: [400, 'M_SESSION_NOT_VALIDATED'],
  session_expired: [400, 'M_SESSION_EXPIRED'],
  invalid_pepper: [400, 'M_INVALID_PEPPER'],
  // Spec v1.18+: a wrong or expired token on submitToken is M_TOKEN_INCORRECT (earlier versions named no code).
  token_incorrect: [400, 'M_TOKEN_INCORRECT'],
};

/** Maps anything thrown to a Matrix error; undefined for unexpected errors (they become 500). */
export function toMatrixError(err: unknown): MatrixError | undefined {
  if (err instanceof MatrixError) return err;
  if (err instanceof DomainError) {
    const [status, errcode] = DOMAIN_TABLE[err.code];
    return new MatrixError(status, errcode, err.message, err.extra);
  }
  // A path or query with broken percent-encoding (thrown while routing, before any handler).
  if (err instanceof URIError) return new MatrixError(400, 'M_INVALID_PARAM', 'Malformed URL encoding');
  // A body whose Content-Encoding does not match its bytes (zlib errors carry no HTTP status).
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code.startsWith('Z_')) return new MatrixError(400, 'M_NOT_JSON', 'Could not decode the request body');
  // koa-bodyparser (co-body, raw-body) throws errors carrying an HTTP status: map them to the body errors.
  const status = (err as { status?: unknown } | null)?.status;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    if (status === 413) return new MatrixError(413, 'M_TOO_LARGE', 'Request body too large');
    return new MatrixError(400, 'M_NOT_JSON', 'Content not JSON.');
  }
  return undefined;
}

export const unknownError = (): MatrixError => new MatrixError(500, 'M_UNKNOWN', 'Internal server error');

/**
 * Retry-After on 503, in seconds. Service resumes with the first query that succeeds, so this only paces clients
 * that honour it: a database failover takes seconds to tens of seconds, and a retry much sooner would mostly fail
 * again (on SQLite, after a write has waited out busy_timeout).
 */
export const RETRY_AFTER_SECONDS = 5;

/**
 * The answer while the database is unavailable (OutageTracker). The specification has no errcode for it: M_UNKNOWN
 * is what Synapse answers when it cannot serve for a while, and the status, 503, with Retry-After, tells clients it
 * is temporary, not a defect (500).
 */
export function unavailableResponse(): { status: number; body: Record<string, unknown>; headers: Record<string, string> } {
  const e = new MatrixError(503, 'M_UNKNOWN', 'Service temporarily unavailable; try again later');
  return { status: e.status, body: e.toJSON(), headers: { 'Retry-After': String(RETRY_AFTER_SECONDS) } };
}

/** Operations the document lists but this server does not offer (`notOffered`: phone-number validation). */
export const notOfferedError = (): MatrixError =>
  new MatrixError(404, 'M_UNRECOGNIZED', 'This identity server does not validate phone numbers (msisdn); use email');

function fieldOf(e: ErrorObject): string {
  return e.instancePath.replace(/^\//, '').split('/')[0]!.replace(/~1/g, '/').replace(/~0/g, '~');
}

/**
 * Turns ajv errors into the identity API's errors: every missing required field at once
 * (`Missing parameters: room_id,sender`), else the first field with the wrong type or shape.
 */
export function validationError(errors: ErrorObject[] | null | undefined): MatrixError {
  const list = errors ?? [];
  const missing = list
    .filter((e) => e.keyword === 'required' && e.instancePath === '')
    .map((e) => (e.params as { missingProperty: string }).missingProperty);
  if (missing.length > 0) return new MatrixError(400, 'M_MISSING_PARAMS', `Missing parameters: ${missing.join(',')}`);
  const first = list[0];
  if (!first) return new MatrixError(400, 'M_INVALID_PARAM', 'Invalid parameters');
  const field = fieldOf(first);
  return new MatrixError(
    400,
    'M_INVALID_PARAM',
    field ? `Invalid parameter '${field}': ${first.message ?? 'invalid'}` : `Invalid request: ${first.message ?? 'invalid'}`,
  );
}
