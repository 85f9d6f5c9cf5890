// Errors that domain modules throw; src/http/errors.ts alone decides their errcode and status.

export type DomainErrorCode =
  | 'threepid_in_use'
  | 'unrecognized_medium'
  | 'invalid_email'
  | 'blocked'
  | 'forbidden'
  | 'not_found'
  | 'unknown_token'
  | 'invalid_param'
  | 'rate_limited'
  | 'openid_rejected'
  | 'homeserver_unavailable'
  // validation sessions and lookups
  | 'session_not_found'
  | 'session_not_validated'
  | 'session_expired'
  | 'invalid_pepper'
  // submitToken: the validation token is wrong or has expired
  | 'token_incorrect';

export class DomainError extends Error {
  constructor(
    readonly code: DomainErrorCode,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'DomainError';
  }
}
