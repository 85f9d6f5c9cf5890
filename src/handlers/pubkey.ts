// GET /pubkey/{keyId}, /pubkey/isvalid, /pubkey/ephemeral/isvalid (v1 and v2).
import type { Deps } from '../deps.js';
import { MatrixError } from '../http/errors.js';
import type { Reply, Req } from '../http/types.js';
import { canonicalKeyString } from '../util/base64.js';

export async function handleGetPubKey(req: Req<'getPubKeyV2'> | Req<'get'>, deps: Deps): Promise<Reply<'getPubKeyV2'>> {
  let keyId = req.params.keyId;
  try {
    keyId = decodeURIComponent(keyId); // `ed25519%3A0` may arrive still encoded
  } catch {
    // not percent-encoded after all: use as is
  }
  const publicKey = deps.keys.publicKeyFor(keyId);
  if (!publicKey) throw new MatrixError(404, 'M_NOT_FOUND', 'The public key was not found');
  return { status: 200, body: { public_key: publicKey } };
}

export async function handleIsPubKeyValid(req: Req<'isPubKeyValidV2'> | Req<'valid'>, deps: Deps): Promise<Reply<'isPubKeyValidV2'>> {
  return { status: 200, body: { valid: deps.keys.isValid(req.query.public_key) } };
}

export async function handleIsEphemeralPubKeyValid(req: Req<'isEphemeralPubKeyValidV2'> | Req<'ephemeralValid'>, deps: Deps): Promise<Reply<'isEphemeralPubKeyValidV2'>> {
  const valid = await deps.store.isEphemeralKeyValid(canonicalKeyString(req.query.public_key), deps.clock());
  return { status: 200, body: { valid } };
}
