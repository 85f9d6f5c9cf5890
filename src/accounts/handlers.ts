// v2 accounts and terms: /account/register, /account, /account/logout, /terms.
import type { Deps } from '../deps.js';
import { acceptTerms, logout, registerAccount } from './accounts.js';
import { MatrixError } from '../platform/http/errors.js';
import { accessTokenOf } from '../platform/http/security.js';
import type { Reply, Req } from '../platform/http/types.js';

export async function handleRegisterAccount(req: Req<'registerAccount'>, deps: Deps): Promise<Reply<'registerAccount'>> {
  const { token } = await registerAccount(deps, req.body);
  return { status: 200, body: { token, access_token: token } };
}

export async function handleGetAccount(req: Req<'getAccount'>): Promise<Reply<'getAccount'>> {
  return { status: 200, body: { user_id: req.account!.userId } };
}

export async function handleLogout(req: Req<'logout'>, deps: Deps): Promise<Reply<'logout'>> {
  // The pipeline has authenticated this very token.
  const token = accessTokenOf(req.headers, req.query);
  if (token === undefined) throw new MatrixError(401, 'M_UNAUTHORIZED', 'Unauthorized');
  await logout(deps, token);
  return { status: 200, body: {} };
}

export async function handleGetTerms(_req: Req<'getTerms'>, deps: Deps): Promise<Reply<'getTerms'>> {
  return { status: 200, body: deps.terms.toResponse() as Reply<'getTerms'>['body'] };
}

export async function handleAgreeToTerms(req: Req<'agreeToTerms'>, deps: Deps): Promise<Reply<'agreeToTerms'>> {
  await acceptTerms(deps, req.account!.userId, req.body.user_accepts);
  return { status: 200, body: {} };
}
