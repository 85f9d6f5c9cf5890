// InvitationApi and SigningApi: POST /store-invite (v1 `invite`, v2 `storeInviteV2`), /sign-ed25519, and the
// ephemeral keys' validity (KeyManagementApi's ephemeralValid).
import type { Deps } from '../deps.js';
import { MatrixError } from '../platform/http/errors.js';
import type { Reply, Req } from '../platform/http/types.js';
import { storeInvite } from './storeInvite.js';
import { basePath } from '../platform/http/paths.js';
import { DomainError } from '../platform/domainErrors.js';
import { canonicalKeyString } from '../platform/base64.js';
import { signInvitation } from './signEd25519.js';

export async function handleStoreInvite(req: Req<'invite'> | Req<'storeInviteV2'>, deps: Deps): Promise<Reply<'invite'>> {
  const body = req.body;
  if (req.account && req.account.userId !== body.sender) {
    throw new MatrixError(403, 'M_UNAUTHORIZED', "'sender' doesn't match the access token's user");
  }
  const stored = await storeInvite(deps, body, {
    version: req.version,
    verifiedSender: req.account?.userId,
    ip: req.ip,
    brand: req.query.brand,
  });
  const base = `${deps.config.server.publicBaseUrl}${basePath(req.version)}`;
  return {
    status: 200,
    body: {
      token: stored.token,
      public_keys: [
        { public_key: deps.keys.publicKey, key_validity_url: `${base}/pubkey/isvalid` },
        { public_key: stored.ephemeralPublicKey, key_validity_url: `${base}/pubkey/ephemeral/isvalid` },
      ],
      public_key: deps.keys.publicKey,
      display_name: stored.displayName,
    },
  };
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
  const missing = [
    ['mxid', mxid],
    ['token', token],
    ['private_key', privateKey],
  ]
    .filter(([, v]) => v === undefined || v === '')
    .map(([k]) => k);
  if (missing.length > 0) throw new MatrixError(400, 'M_MISSING_PARAMS', `Missing parameters: ${missing.join(',')}`);
  if (!/^@[^:]+:.+$/.test(mxid!)) throw new DomainError('invalid_param', "Invalid parameter 'mxid'");
  return { status: 200, body: await signInvitation(deps, { mxid: mxid!, token: token!, private_key: privateKey! }) };
}

export async function handleIsEphemeralPubKeyValid(
  req: Req<'isEphemeralPubKeyValidV2'> | Req<'ephemeralValid'>,
  deps: Deps,
): Promise<Reply<'isEphemeralPubKeyValidV2'>> {
  const valid = await deps.invites.isEphemeralKeyValid(canonicalKeyString(req.query.public_key), deps.clock());
  return { status: 200, body: { valid } };
}
