// store-invite (identity-api.md section 2): policy checks, then invite + ephemeral key + email in one transaction.
import type { Deps } from '../deps.js';
import { DomainError } from '../domainErrors.js';
import { generateRawKeyPair } from '../keys/ed25519.js';
import { encodeUrlSafe } from '../util/base64.js';
import { isPlainMailbox, normaliseAddress, serverNameOf } from '../util/threepid.js';
import { redactForLog } from '../util/logger.js';
import { redactEmail } from './redact.js';
import { newInviteToken } from './token.js';

export interface InvitationInput {
  medium: string;
  address: string;
  room_id: string;
  sender: string;
  [extra: string]: unknown;
}

export interface StoredInvitation {
  token: string;
  ephemeralPublicKey: string;
  displayName: string;
}

export interface StoreInviteContext {
  /** The API the request came on; the email's links point back at it. */
  version: 'v1' | 'v2';
  /** v2: the token's user, already checked to equal `sender`. */
  verifiedSender?: string;
}

/** Checks run in the order of the wire contract's table; nothing is written unless all pass. */
export async function storeInvite(deps: Deps, input: InvitationInput, ctx: StoreInviteContext): Promise<StoredInvitation> {
  const { config, store } = deps;
  if (config.invites.blockedRooms.includes(input.room_id)) {
    throw new DomainError('blocked', 'Invitations into this room are not allowed');
  }
  if (config.invites.blockedServers.includes(serverNameOf(input.sender).toLowerCase())) {
    throw new DomainError('blocked', "Invitations from this sender's server are not allowed");
  }
  const now = deps.clock();
  const address = normaliseAddress(input.medium, input.address);
  const bound = await store.findAssociation(input.medium, address, now);
  if (bound) {
    throw new DomainError('threepid_in_use', 'Binding already known', { mxid: bound.mxid });
  }
  if (input.medium !== 'email') {
    throw new DomainError('unrecognized_medium', `Didn't understand medium '${input.medium}'`);
  }
  if (!isPlainMailbox(input.address)) {
    throw new DomainError('invalid_email', 'Invalid email address');
  }

  const token = newInviteToken(deps.random);
  const pair = await generateRawKeyPair();
  const ephemeralPublicKey = encodeUrlSafe(pair.publicKey);
  await store.insertInvite(
    {
      medium: input.medium,
      address,
      roomId: input.room_id,
      sender: input.sender,
      token,
      ephemeralPublicKey,
      fields: { ...input },
      createdAt: now,
      expiresAt: now + config.invites.lifetimeMs,
    },
    {
      kind: 'invite',
      recipient: input.address,
      // The private key lives only here until the email is sent; it is never stored with the invite.
      payload: {
        fields: { ...input },
        token,
        ephemeralPrivateKey: encodeUrlSafe(pair.seed),
        version: ctx.version,
        verifiedSender: ctx.verifiedSender ?? null,
      },
      createdAt: now,
    },
  );
  deps.signals.mailQueued();
  deps.log.debug('stored invitation', { room: input.room_id, to: redactForLog(address) });
  return { token, ephemeralPublicKey, displayName: redactEmail(input.address, config.invites.redactChars) };
}
