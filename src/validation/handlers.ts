// Validation sessions (SessionApi, and ValidationApi's getValidated3pid): requestToken, submitToken (POST and the
// emailed link), the validated address, and the phone routes this server does not offer.
import type { Deps } from '../deps.js';
import { notOfferedError, toMatrixError } from '../platform/http/errors.js';
import type { RawReply, Reply, Req } from '../platform/http/types.js';
import { requestEmailToken, submitEmailToken, validatedSession } from './sessions.js';
import { renderVerifyResponsePage } from './pages.js';

export async function handleEmailRequestToken(
  req: Req<'emailRequestTokenV2'> | Req<'createEmailSession'>,
  deps: Deps,
): Promise<Reply<'emailRequestTokenV2'>> {
  const body = req.body;
  const { sid } = await requestEmailToken(deps, body, { version: req.version, ip: req.ip });
  return { status: 200, body: { sid } };
}

export async function handleEmailSubmitTokenPost(
  req: Req<'emailSubmitTokenPostV2'> | Req<'postValidateEmail'>,
  deps: Deps,
): Promise<Reply<'emailSubmitTokenPostV2'>> {
  await submitEmailToken(deps, req.body);
  return { status: 200, body: { success: true } };
}

const HTML = 'text/html; charset=utf-8';

/** The emailed link: a page for a person in a browser, or a redirect to the session's validated next_link. */
export async function handleEmailSubmitTokenGet(
  req: Req<'emailSubmitTokenGetV2'> | Req<'getValidateEmail'>,
  deps: Deps,
): Promise<RawReply> {
  const q = req.query;
  let session;
  try {
    session = await submitEmailToken(deps, { sid: q.sid, client_secret: q.client_secret, token: q.token });
  } catch (err) {
    // Still a page for the person who clicked, but with the status of the Matrix error behind it (404: unknown
    // session or wrong client_secret; 400: expired session or wrong token), so that no client takes it for success.
    const m = toMatrixError(err);
    if (!m || (m.status !== 400 && m.status !== 404)) throw err;
    const message =
      m.errcode === 'M_SESSION_EXPIRED'
        ? 'This link has expired. Please ask for a new one.'
        : 'This link is not valid. It may have expired or been used for a different request.';
    return { status: m.status, contentType: HTML, body: renderVerifyResponsePage(deps, { message }) };
  }
  // Only the next_link given (and checked) at requestToken: a link edited to point elsewhere is not followed.
  if (session.nextLink && (q.next_link === undefined || q.next_link === session.nextLink)) {
    return { status: 302, contentType: HTML, body: '', headers: { Location: session.nextLink } };
  }
  return {
    status: 200,
    contentType: HTML,
    body: renderVerifyResponsePage(deps, {
      message: 'Your email address has been verified. You can close this page and return to your Matrix client.',
    }),
  };
}

/** The pipeline answers not-offered operations before they reach a handler (api.ts); this is the fallback, with the same answer. */
export const handleMsisdnUnsupported = async (): Promise<never> => {
  throw notOfferedError();
};

export async function handleGetValidated3pid(
  req: Req<'getValidated3pidV2'> | Req<'validate'>,
  deps: Deps,
): Promise<Reply<'getValidated3pidV2'>> {
  const s = await validatedSession(deps, req.query.sid, req.query.client_secret);
  return { status: 200, body: { medium: s.medium, address: s.address, validated_at: s.validatedAt } };
}
