// KeyManagementApi's long-term keys: GET /pubkey/{keyId} and /pubkey/isvalid (v1 and v2).
import type { Deps } from '../deps.js';
import { MatrixError } from '../platform/http/errors.js';
import type { Reply, Req } from '../platform/http/types.js';

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
