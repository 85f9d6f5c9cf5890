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
  // Errors carrying a client-error status come from reading the body (co-body, raw-body), wherever they surface.
  const status = (err as { status?: unknown } | null)?.status;
  if (typeof status === 'number' && status >= 400 && status < 500) return bodyReadError(err);
  return undefined;
}

/**
 * What reading a request body failed with, as the client's error: koa-bodyparser hands its `onerror` only the
 * failures of reading and parsing, and each is about the bytes the client sent. Those carrying an HTTP status come
 * from co-body and raw-body (too large, malformed JSON, an unsupported Content-Encoding or charset, an aborted
 * upload); the others come from the decompressor of the body's Content-Encoding, whose codes are zlib's (`Z_*`),
 * brotli's (`ERR__ERROR_FORMAT_*`) or whatever a later Node adds, so none of them is matched by code: a body that
 * cannot be read is never a server error.
 */
export function bodyReadError(err: unknown): MatrixError {
  const status = (err as { status?: unknown } | null)?.status;
  if (status === 413) return new MatrixError(413, 'M_TOO_LARGE', 'Request body too large');
  if (status === 415) return new MatrixError(400, 'M_NOT_JSON', 'Unsupported Content-Encoding or charset');
  if (typeof status === 'number' && status >= 400 && status < 500) return new MatrixError(400, 'M_NOT_JSON', 'Content not JSON.');
  return new MatrixError(400, 'M_NOT_JSON', 'Could not decode the request body');
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

/** Field names are echoed in error messages only up to this many characters. */
const MAX_NAME_SHOWN = 64;

/** A name as an error message may show it: lone surrogates and U+0000 as `\uXXXX` text, long names cut. */
export function shownName(name: string): string {
  const chars = Array.from(name.replace(/[\u0000\ud800-\udfff]/gu, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
  return chars.length > MAX_NAME_SHOWN ? `${chars.slice(0, MAX_NAME_SHOWN).join('')}...` : chars.join('');
}

function fieldOf(e: ErrorObject): string {
  // A field's name itself is wrong (propertyNames): ajv reports it on the object, with the name beside.
  if (e.instancePath === '' && e.propertyName !== undefined) return shownName(e.propertyName);
  return shownName(e.instancePath.replace(/^\//, '').split('/')[0]!.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/**
 * Turns ajv errors into the identity API's errors: every missing required field at once
 * (`Missing parameters: room_id,sender`), else `refused` (what the door's own checks found, inputCheck.ts), else the
 * first field with the wrong type or shape.
 */
export function validationError(errors: ErrorObject[] | null | undefined, refused?: MatrixError): MatrixError {
  const list = errors ?? [];
  const missing = list
    .filter((e) => e.keyword === 'required' && e.instancePath === '')
    .map((e) => (e.params as { missingProperty: string }).missingProperty);
  if (missing.length > 0) return new MatrixError(400, 'M_MISSING_PARAMS', `Missing parameters: ${missing.join(',')}`);
  if (refused) return refused;
  const first = list[0];
  if (!first) return new MatrixError(400, 'M_INVALID_PARAM', 'Invalid parameters');
  const field = fieldOf(first);
  return new MatrixError(
    400,
    'M_INVALID_PARAM',
    field ? `Invalid parameter '${field}': ${first.message ?? 'invalid'}` : `Invalid request: ${first.message ?? 'invalid'}`,
  );
}
