// POST /3pid/bind and /3pid/unbind (identity-api.md sections 5 and 8): signed associations, onbind queued in the bind transaction.
import type { Deps } from '../deps.js';
import { DomainError } from '../platform/domainErrors.js';
import { signJson, type SigningKey } from '../keys/signJson.js';
import type { Schema } from '../platform/http/types.js';
import type { Association } from './AssociationStore.js';
import type { InviteRecord } from '../invitations/InviteStore.js';
import { redactForLog } from '../platform/logger.js';
import { normaliseAddress, serverNameOf } from '../platform/threepid.js';
import { lookupHash } from './hash.js';
import { currentPepper } from './pepper.js';
import { validatedSession } from '../validation/sessions.js';
import { bindClaimingInvites } from './claimInvites.js';

export type SignedAssociation = Schema<'PublishResponse'>;

/** An association as it travels on the wire (bind answer, v1 lookup, onbind body), before signing. */
function associationFields(a: Association) {
  return { address: a.address, medium: a.medium, mxid: a.mxid, not_before: a.notBefore, not_after: a.notAfter, ts: a.ts };
}

export function signAssociation(deps: Pick<Deps, 'config' | 'keys'>, a: Association): SignedAssociation {
  return signJson(associationFields(a), deps.config.server.name, deps.keys.signingKey);
}

/**
 * One onbind body for a chunk of claimed invites. Every object is built here, fresh, from the rows: nothing is
 * shared between calls or bodies (a shared default once leaked one user's invites into another's onbind).
 */
/** `value` signed with each key in turn. */
function signedByAll<T extends object>(value: T, server: string, keys: SigningKey[]): T {
  return keys.reduce<T>((signed, key) => signJson(signed, server, key), value);
}

export function buildOnbindBody(deps: Pick<Deps, 'config' | 'keys'>, a: Association, invites: InviteRecord[]): Record<string, unknown> {
  const server = deps.config.server.name;
  return signJson(
    {
      ...associationFields(a),
      invites: invites.map((i) => ({
        medium: i.medium,
        address: i.address,
        mxid: a.mxid,
        room_id: i.roomId,
        sender: i.sender,
        token: i.token,
        // every key an invitation may have been stored under: see KeyRing.invitationSigningKeys
        signed: signedByAll({ mxid: a.mxid, token: i.token }, server, deps.keys.invitationSigningKeys()),
      })),
    },
    server,
    deps.keys.signingKey,
  );
}

export async function bindThreepid(deps: Deps, input: { sid: string; client_secret: string; mxid: string }): Promise<SignedAssociation> {
  const session = await validatedSession(deps, input.sid, input.client_secret);
  const now = deps.clock();
  const association: Association = {
    medium: session.medium,
    address: session.address,
    mxid: input.mxid,
    ts: now,
    notBefore: now,
    notAfter: now + deps.config.binding.associationLifetimeMs,
  };
  const pepper = await currentPepper(deps);
  const result = await bindClaimingInvites(deps, association, {
    lookupHash: lookupHash(association.address, association.medium, pepper),
    destination: serverNameOf(input.mxid),
    invitesPerCall: deps.config.onbind.invitesPerCall,
    buildBody: (a, invites) => buildOnbindBody(deps, a, invites),
    now,
  });
  if (result.onbindRows > 0) deps.signals.onbindQueued();
  deps.log.info('bound address', {
    to: redactForLog(association.address),
    server: serverNameOf(input.mxid),
    invites: result.claimedInvites,
    calls: result.onbindRows,
  });
  return signAssociation(deps, association);
}

export interface UnbindInput {
  mxid: string;
  threepid: { medium: string; address: string };
  sid?: string;
  client_secret?: string;
}

/** Who is asking to unbind: the v2 access token's user, or the homeserver whose X-Matrix signature was verified. */
export interface UnbindCaller {
  accountUserId?: string;
  origin?: string;
}

/**
 * Allowed with a session that validated this address, for the authenticated owner (v2), or for the homeserver of
 * `mxid` (X-Matrix): a homeserver may unbind its own users only (Sydent's rule).
 */
export async function unbindThreepid(deps: Deps, input: UnbindInput, caller: UnbindCaller = {}): Promise<void> {
  const medium = input.threepid.medium;
  const address = normaliseAddress(medium, input.threepid.address);
  if (input.sid !== undefined || input.client_secret !== undefined) {
    if (input.sid === undefined || input.client_secret === undefined)
      throw new DomainError('invalid_param', "'sid' and 'client_secret' go together");
    const session = await validatedSession(deps, input.sid, input.client_secret);
    if (session.medium !== medium || session.address !== address) {
      throw new DomainError('forbidden', 'The session did not validate this address');
    }
  } else if (caller.origin !== undefined) {
    if (serverNameOf(input.mxid) !== caller.origin)
      throw new DomainError('forbidden', "A homeserver may only unbind its own users: 'mxid' is not on the signing server");
  } else if (caller.accountUserId === undefined || caller.accountUserId !== input.mxid) {
    throw new DomainError('forbidden', 'Unbinding needs a session that validated the address, or the access token of the bound user');
  }
  const removed = await deps.associations.deleteAssociation(medium, address, input.mxid);
  if (!removed) throw new DomainError('not_found', 'That address is not bound to that Matrix ID');
  deps.log.info('unbound address', { to: redactForLog(address), ...(caller.origin !== undefined ? { by: caller.origin } : {}) });
}
