// Validation sessions, bind/unbind, lookups and sign-ed25519 (v1 and v2; one handler per operation pair).
import type { Deps } from '../deps.js';
import { MatrixError, notOfferedError, toMatrixError } from '../http/errors.js';
import type { RawReply, Reply, Req } from '../http/types.js';
import { bindThreepid, unbindThreepid } from '../binding/bind.js';
import { ALGORITHMS, bulkLookupV1, lookupV1, lookupV2 } from '../binding/lookup.js';
import { currentPepper } from '../binding/pepper.js';
import { requestEmailToken, submitEmailToken, validatedSession } from '../binding/sessions.js';
import { signInvitation } from '../invites/signEd25519.js';
import { renderVerifyResponsePage } from '../mail/pages.js';
import { DomainError } from '../domainErrors.js';

export async function handleEmailRequestToken(req: Req<'emailRequestTokenV2'> | Req<'createEmailSession'>, deps: Deps): Promise<Reply<'emailRequestTokenV2'>> {
  const body = req.body;
  const { sid } = await requestEmailToken(deps, body, { version: req.version, ip: req.ip });
  return { status: 200, body: { sid } };
}

export async function handleEmailSubmitTokenPost(req: Req<'emailSubmitTokenPostV2'> | Req<'postValidateEmail'>, deps: Deps): Promise<Reply<'emailSubmitTokenPostV2'>> {
  await submitEmailToken(deps, req.body);
  return { status: 200, body: { success: true } };
}

const HTML = 'text/html; charset=utf-8';

/** The emailed link: a page for a person in a browser, or a redirect to the session's validated next_link. */
export async function handleEmailSubmitTokenGet(req: Req<'emailSubmitTokenGetV2'> | Req<'getValidateEmail'>, deps: Deps): Promise<RawReply> {
  const q = req.query;
  let session;
  try {
    session = await submitEmailToken(deps, { sid: q.sid, client_secret: q.client_secret, token: q.token });
  } catch (err) {
    // Still a page for the person who clicked, but with the status of the Matrix error behind it (404: unknown
    // session or wrong client_secret; 400: expired session or wrong token), so that no client takes it for success.
    const m = toMatrixError(err);
    if (!m || (m.status !== 400 && m.status !== 404)) throw err;
    const message = m.errcode === 'M_SESSION_EXPIRED' ? 'This link has expired. Please ask for a new one.' : 'This link is not valid. It may have expired or been used for a different request.';
    return { status: m.status, contentType: HTML, body: renderVerifyResponsePage(deps, { message }) };
  }
  // Only the next_link given (and checked) at requestToken: a link edited to point elsewhere is not followed.
  if (session.nextLink && (q.next_link === undefined || q.next_link === session.nextLink)) {
    return { status: 302, contentType: HTML, body: '', headers: { Location: session.nextLink } };
  }
  return { status: 200, contentType: HTML, body: renderVerifyResponsePage(deps, { message: 'Your email address has been verified. You can close this page and return to your Matrix client.' }) };
}

/** The pipeline answers not-offered operations before they reach a handler (api.ts); this is the fallback, with the same answer. */
export const handleMsisdnUnsupported = async (): Promise<never> => {
  throw notOfferedError();
};

export async function handleGetValidated3pid(req: Req<'getValidated3pidV2'> | Req<'validate'>, deps: Deps): Promise<Reply<'getValidated3pidV2'>> {
  const s = await validatedSession(deps, req.query.sid, req.query.client_secret);
  return { status: 200, body: { medium: s.medium, address: s.address, validated_at: s.validatedAt } };
}

export async function handleBind(req: Req<'bindV2'> | Req<'bind'>, deps: Deps): Promise<Reply<'bindV2'>> {
  if (req.account && req.account.userId !== req.body.mxid) {
    throw new MatrixError(403, 'M_UNAUTHORIZED', "'mxid' doesn't match the access token's user");
  }
  return { status: 200, body: await bindThreepid(deps, req.body) };
}

export async function handleUnbind(req: Req<'unbindV2'> | Req<'unbind'>, deps: Deps): Promise<Reply<'unbindV2'>> {
  await unbindThreepid(deps, req.body, { accountUserId: req.account?.userId, origin: req.origin });
  return { status: 200, body: {} };
}

export async function handleGetHashDetails(_req: Req<'getHashDetails'>, deps: Deps): Promise<Reply<'getHashDetails'>> {
  return { status: 200, body: { lookup_pepper: await currentPepper(deps), algorithms: [...ALGORITHMS] } };
}

export async function handleLookupV2(req: Req<'lookupUsersV2'>, deps: Deps): Promise<Reply<'lookupUsersV2'>> {
  return { status: 200, body: { mappings: await lookupV2(deps, req.body) } };
}

export async function handleLookupV1(req: Req<'lookup'>, deps: Deps): Promise<Reply<'lookup'>> {
  return { status: 200, body: await lookupV1(deps, req.query.medium, req.query.address) };
}

export async function handleBulkLookupV1(req: Req<'bulkLookup'>, deps: Deps): Promise<Reply<'bulkLookup'>> {
  return { status: 200, body: { threepids: await bulkLookupV1(deps, req.body.threepids as [string, string][]) } };
}

/** v1 also takes the three values from the query string (old web clients); the body wins. */
/**
 * sign-ed25519. On v1 each value comes from the JSON body, else from the query string, because matrix-js-sdk POSTs
 * only `{mxid}` to the invite email's signurl (`…/sign-ed25519?token=…&private_key=…`); the body wins. The OpenAPI
 * schema cannot require them (either place will do), so required-ness is checked here: M_MISSING_PARAMS lists what
 * is missing from both. v2 reads the body only (its signurl is used only when v1 is disabled: see mail/links.ts).
 */
export async function handleSignEd25519(req: Req<'blindlySignStuffV2'> | Req<'sign'>, deps: Deps): Promise<Reply<'blindlySignStuffV2'>> {
  const query = (req.version === 'v1' ? req.query : {}) as { mxid?: string; token?: string; private_key?: string };
  const body = (req.body ?? {}) as { mxid?: string; token?: string; private_key?: string };
  const mxid = body.mxid ?? query.mxid;
  const token = body.token ?? query.token;
  const privateKey = body.private_key ?? query.private_key;
  const missing = [['mxid', mxid], ['token', token], ['private_key', privateKey]].filter(([, v]) => v === undefined || v === '').map(([k]) => k);
  if (missing.length > 0) throw new MatrixError(400, 'M_MISSING_PARAMS', `Missing parameters: ${missing.join(',')}`);
  if (!/^@[^:]+:.+$/.test(mxid!)) throw new DomainError('invalid_param', "Invalid parameter 'mxid'");
  return { status: 200, body: await signInvitation(deps, { mxid: mxid!, token: token!, private_key: privateKey! }) };
}
