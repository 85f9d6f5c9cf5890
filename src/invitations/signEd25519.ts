// POST /sign-ed25519 (identity-api.md section 4): sign {mxid, sender, token} with the invitation's own ephemeral key only.
import type { Deps } from '../deps.js';
import { DomainError } from '../platform/domainErrors.js';
import { keyPairFromSeed } from '../keys/ed25519.js';
import { signJson, type Signatures } from '../keys/signJson.js';
import { canonicalKeyString, decodeAny, encodeUrlSafe } from '../platform/base64.js';

export async function signInvitation(
  deps: Deps,
  input: { mxid: string; token: string; private_key: string },
): Promise<{ mxid: string; sender: string; token: string; signatures: Signatures }> {
  const invite = await deps.invites.findInviteByToken(input.token);
  if (!invite || invite.expiresAt <= deps.clock()) throw new DomainError('unknown_token', 'Unknown invitation token');
  const seed = decodeAny(input.private_key);
  if (!seed || seed.length !== 32) throw new DomainError('invalid_param', "'private_key' must be 32 bytes of unpadded base64");
  const pair = keyPairFromSeed(seed);
  // Better than the reference server: only the key generated for this token may sign for it. An invitation
  // imported from Sydent has no key of its own (Sydent never linked them): any imported key still valid may.
  const publicKey = encodeUrlSafe(pair.publicKey);
  const allowed =
    invite.ephemeralPublicKey === ''
      ? await deps.invites.isUnlinkedKeyValid(publicKey, deps.clock())
      : canonicalKeyString(publicKey) === canonicalKeyString(invite.ephemeralPublicKey);
  if (!allowed) throw new DomainError('forbidden', 'This private key does not belong to that invitation');
  return signJson({ mxid: input.mxid, sender: invite.sender, token: invite.token }, deps.config.server.name, {
    keyId: 'ed25519:0',
    key: pair.privateKeyObject,
  });
}
