// POST /store-invite (v1 `invite`, v2 `storeInviteV2`).
import type { Deps } from '../deps.js';
import { MatrixError } from '../http/errors.js';
import type { Reply, Req } from '../http/types.js';
import { storeInvite } from '../invites/storeInvite.js';
import { basePath } from './paths.js';

export async function handleStoreInvite(req: Req<'invite'> | Req<'storeInviteV2'>, deps: Deps): Promise<Reply<'invite'>> {
  const body = req.body;
  if (req.account && req.account.userId !== body.sender) {
    throw new MatrixError(403, 'M_UNAUTHORIZED', "'sender' doesn't match the access token's user");
  }
  const stored = await storeInvite(deps, body, { version: req.version, verifiedSender: req.account?.userId, ip: req.ip });
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
