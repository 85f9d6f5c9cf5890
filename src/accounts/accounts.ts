// v2 accounts (identity-api.md section 7): OpenID registration, token look-up (the Authenticator), logout, terms.
import { createHash } from 'node:crypto';
import type { Deps } from '../deps.js';
import { DomainError } from '../platform/domainErrors.js';
import { parseServerName } from '../federation/discovery.js';
import { FederationError } from '../federation/types.js';
import type { AuthResult, Authenticator } from '../platform/http/security.js';
import type { AccountStore } from './AccountStore.js';
import { serverNameOf } from '../platform/threepid.js';
import { operations as homeserverOps } from '../../generated/homeserver.validators.js';
import type { Terms } from './terms.js';

export const USERINFO_PATH = '/_matrix/federation/v1/openid/userinfo';

/** Tokens are stored only as this digest: a database leak gives no usable token. */
export function hashAccessToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Longer tokens cannot be ours; they are refused before hashing or a database round trip. */
const MAX_TOKEN_LENGTH = 256;

export class AccountAuthenticator implements Authenticator {
  constructor(
    private readonly store: AccountStore,
    private readonly terms: Terms,
    private readonly clock: () => number,
  ) {}

  async authenticate(token: string): Promise<AuthResult | undefined> {
    if (token.length === 0 || token.length > MAX_TOKEN_LENGTH) return undefined;
    const row = await this.store.findAccountToken(hashAccessToken(token), this.clock());
    if (!row) return undefined;
    const termsAccepted = this.terms.empty || this.terms.allAccepted(await this.store.acceptedPolicies(row.userId));
    return { account: { userId: row.userId }, termsAccepted };
  }
}

export interface OpenIdToken {
  access_token: string;
  matrix_server_name: string;
}

function sameServer(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

/**
 * Checks the OpenID token with the user's homeserver and issues an access token for its user.
 * Returns the new token (the only time it exists in clear).
 */
export async function registerAccount(deps: Deps, openId: OpenIdToken): Promise<{ token: string; userId: string }> {
  const server = openId.matrix_server_name;
  if (!parseServerName(server)) throw new DomainError('invalid_param', "Invalid parameter 'matrix_server_name': not a server name");
  const allowed = deps.config.accounts.allowedServers;
  if (allowed.length > 0 && !allowed.some((s) => sameServer(s, server))) {
    throw new DomainError('forbidden', 'Users of this homeserver may not register here');
  }
  let res;
  try {
    res = await deps.federation.getJson(server, USERINFO_PATH, { access_token: openId.access_token });
  } catch (err) {
    if (err instanceof FederationError && err.permanent) {
      throw new DomainError('forbidden', 'This server does not call that homeserver');
    }
    deps.log.info('openid userinfo: homeserver unreachable', { server, err: (err as Error).message });
    throw new DomainError('homeserver_unavailable', 'Unable to contact the homeserver');
  }
  if (res.status >= 400 && res.status < 500 && res.status !== 429) {
    throw new DomainError('openid_rejected', 'The homeserver did not accept the OpenID token');
  }
  if (res.status !== 200 || !homeserverOps.getOpenIdUserInfo.responses['200']!(res.body)) {
    deps.log.info('openid userinfo: unusable answer', { server, status: res.status });
    throw new DomainError('homeserver_unavailable', 'The homeserver returned an invalid response');
  }
  const userId = (res.body as { sub: string }).sub;
  if (!sameServer(serverNameOf(userId), server)) {
    throw new DomainError('forbidden', 'The homeserver vouched for a user of another server');
  }
  const token = deps.random(32).toString('base64url');
  const now = deps.clock();
  await deps.accounts.insertAccountToken({
    tokenHash: hashAccessToken(token),
    userId,
    createdAt: now,
    expiresAt: now + deps.config.accounts.tokenLifetimeMs,
  });
  deps.log.debug('registered account token', { server });
  return { token, userId };
}

export async function logout(deps: Deps, token: string): Promise<void> {
  await deps.accounts.deleteAccountToken(hashAccessToken(token));
}

/** Records the policy versions the URLs belong to; acceptances accumulate across calls. */
export async function acceptTerms(deps: Deps, userId: string, urls: readonly string[]): Promise<void> {
  const accepted = deps.terms.acceptancesFor(urls);
  await deps.accounts.acceptPolicies(userId, accepted, deps.clock());
}
