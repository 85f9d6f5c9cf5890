// Email validation sessions (identity-api.md section 8): requestToken, submitToken, getValidated3pid.
import type { Deps } from '../deps.js';
import { DomainError } from '../platform/domainErrors.js';
import { basePath } from '../platform/http/paths.js';
import type { ValidationSession } from './SessionStore.js';
import { redactForLog } from '../platform/logger.js';
import { isPlainMailbox, normaliseAddress } from '../platform/threepid.js';
import { newSecret, secretsEqual } from './secrets.js';

export interface RequestTokenInput {
  client_secret: string;
  email: string;
  /** An integer; matrix-js-sdk (and so Element) sends it as a decimal string, which the document allows too. */
  send_attempt: number | string;
  next_link?: string;
}

const MAX_SEND_ATTEMPT = 2_147_483_647;

/** send_attempt as a number: the schema lets only non-negative integers and strings of 1 to 10 digits through. */
function sendAttemptOf(value: number | string): number {
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isSafeInteger(n) || n < 0 || n > MAX_SEND_ATTEMPT) {
    throw new DomainError('invalid_param', `'send_attempt' must be an integer from 0 to ${MAX_SEND_ATTEMPT}`);
  }
  return n;
}

/** An absolute http(s) URL without credentials: anything else could redirect a browser to script or a phishing host login. */
export function isValidNextLink(link: string): boolean {
  let url: URL;
  try {
    url = new URL(link);
  } catch {
    return false;
  }
  return (
    (url.protocol === 'http:' || url.protocol === 'https:') &&
    url.username === '' &&
    url.password === '' &&
    !/[\u0000-\u001f\u007f\s]/.test(link)
  );
}

function verificationLink(
  deps: Deps,
  version: 'v1' | 'v2',
  s: Pick<ValidationSession, 'sid' | 'clientSecret' | 'token' | 'nextLink'>,
): string {
  const q = new URLSearchParams({ token: s.token, client_secret: s.clientSecret, sid: s.sid });
  if (s.nextLink) q.set('next_link', s.nextLink);
  return `${deps.config.server.publicBaseUrl}${basePath(version)}/validate/email/submitToken?${q.toString()}`;
}

/**
 * Every new session or re-send emails someone, and v1 needs no login: limit per client IP and per address
 * (hashed, so the counter table never holds one) before anything is written or sent.
 */
async function checkSendLimits(deps: Deps, address: string, ip: string): Promise<void> {
  const limits = deps.config.rateLimits;
  await deps.limiter.check([
    { kind: 'reqtoken-ip', key: ip, max: limits.requestTokenPerIp },
    { kind: 'reqtoken-to', key: `email ${address}`, max: limits.requestTokenPerAddress },
  ]);
}

export async function requestEmailToken(
  deps: Deps,
  input: RequestTokenInput,
  ctx: { version: 'v1' | 'v2'; ip: string },
): Promise<{ sid: string }> {
  if (!isPlainMailbox(input.email)) throw new DomainError('invalid_email', 'Invalid email address');
  const sendAttempt = sendAttemptOf(input.send_attempt);
  const nextLink = input.next_link ?? null;
  if (nextLink !== null && !isValidNextLink(nextLink))
    throw new DomainError('invalid_param', "'next_link' must be an absolute http or https URL");
  const { sessions, config } = deps;
  const now = deps.clock();
  const address = normaliseAddress('email', input.email);
  const existing = await sessions.findSessionByOwner('email', address, input.client_secret, now);
  const mail = (s: Pick<ValidationSession, 'sid' | 'clientSecret' | 'token' | 'nextLink'>) => ({
    kind: 'verification' as const,
    recipient: input.email,
    payload: { token: s.token, link: verificationLink(deps, ctx.version, s), ipaddress: ctx.ip, brand: null },
    createdAt: now,
  });
  if (existing) {
    // A repeated send_attempt is a client retrying the same request: answer the same session, send nothing.
    if (sendAttempt <= existing.sendAttempt) return { sid: existing.sid };
    await checkSendLimits(deps, address, ctx.ip);
    const token = existing.tokenExpiresAt > now ? existing.token : newSecret(deps.random);
    const update = {
      token,
      tokenExpiresAt: existing.tokenExpiresAt > now ? existing.tokenExpiresAt : now + config.binding.tokenLifetimeMs,
      sendAttempt,
      nextLink,
    };
    await sessions.resendSession(existing.sid, update, mail({ sid: existing.sid, clientSecret: existing.clientSecret, token, nextLink }));
    deps.signals.mailQueued();
    return { sid: existing.sid };
  }
  await checkSendLimits(deps, address, ctx.ip);
  const session: ValidationSession = {
    sid: newSecret(deps.random),
    medium: 'email',
    address,
    clientSecret: input.client_secret,
    token: newSecret(deps.random),
    sendAttempt,
    nextLink,
    createdAt: now,
    tokenExpiresAt: now + config.binding.tokenLifetimeMs,
    validatedAt: null,
    expiresAt: now + config.binding.sessionLifetimeMs,
  };
  await sessions.insertSession(session, mail(session));
  deps.signals.mailQueued();
  deps.log.debug('validation session created', { to: redactForLog(address) });
  return { sid: session.sid };
}

/** The session with this sid whose client_secret matches (constant time), unexpired; else the contract's errors. */
async function ownedSession(deps: Deps, sid: string, clientSecret: string): Promise<ValidationSession> {
  const s = await deps.sessions.findSession(sid);
  if (!s || !secretsEqual(s.clientSecret, clientSecret)) {
    throw new DomainError('session_not_found', 'No valid session was found matching that sid and client secret');
  }
  if (s.expiresAt <= deps.clock()) throw new DomainError('session_expired', 'This validation session has expired: start a new one');
  return s;
}

/** Validates the session; answers the session as validated. A session already validated stays so. */
export async function submitEmailToken(
  deps: Deps,
  input: { sid: string; client_secret: string; token: string },
): Promise<ValidationSession> {
  const s = await ownedSession(deps, input.sid, input.client_secret);
  const now = deps.clock();
  if (!secretsEqual(s.token, input.token) || (s.validatedAt === null && s.tokenExpiresAt <= now)) {
    throw new DomainError('token_incorrect', 'The token is wrong or has expired');
  }
  if (s.validatedAt !== null) return s;
  const expiresAt = now + deps.config.binding.sessionLifetimeMs;
  await deps.sessions.markSessionValidated(s.sid, now, expiresAt);
  return { ...s, validatedAt: now, expiresAt };
}

export async function validatedSession(
  deps: Deps,
  sid: string,
  clientSecret: string,
): Promise<ValidationSession & { validatedAt: number }> {
  const s = await ownedSession(deps, sid, clientSecret);
  if (s.validatedAt === null) throw new DomainError('session_not_validated', 'This validation session has not been validated yet');
  return s as ValidationSession & { validatedAt: number };
}

/**
 * Expired sessions are deleted only a day after they expire, so a client asking about one in between hears
 * M_SESSION_EXPIRED (which tells it to start again) rather than M_NO_VALID_SESSION.
 */
const EXPIRED_SESSION_GRACE_MS = 24 * 3600 * 1000;

/** One batch of the sweep of expired sessions; returns how many went. */
export function deleteExpiredSessions(deps: Pick<Deps, 'sessions'>, now: number, limit: number): Promise<number> {
  return deps.sessions.deleteExpiredSessions(now - EXPIRED_SESSION_GRACE_MS, limit);
}
