// A bind with its onbind calls: the address's pending invitations are read, their bodies built and signed
// outside any transaction, then the bind claims exactly those invitations and queues the bodies in one
// transaction, or reads and builds again if they changed meanwhile.
import type { Deps } from '../deps.js';
import type { InviteRecord } from '../invitations/InviteStore.js';
import { InvitesChanged, type Association, type BindResult } from './AssociationStore.js';

export interface ClaimOptions {
  lookupHash: string;
  /** Server name of the bound mxid: where the onbind calls go. */
  destination: string;
  /** Invites per onbind body: bounds the size of each call. */
  invitesPerCall: number;
  /** Builds one onbind body for a chunk of the invites (fresh objects, signed). */
  buildBody(association: Association, invites: InviteRecord[]): Record<string, unknown>;
  now: number;
}

/** Rounds of read, build and bind when invitations keep changing under a bind (each is rare already). */
const ATTEMPTS = 5;

export async function bindClaimingInvites(
  deps: Pick<Deps, 'invites' | 'associations'>,
  association: Association,
  opts: ClaimOptions,
): Promise<BindResult> {
  for (let attempt = 1; ; attempt++) {
    const pending = await deps.invites.pendingInvitesFor(association.medium, association.address, opts.now);
    const onbind = [];
    for (let i = 0; i < pending.length; i += opts.invitesPerCall) {
      const chunk = pending.slice(i, i + opts.invitesPerCall);
      onbind.push({ inviteIds: chunk.map((invite) => invite.id), body: JSON.stringify(opts.buildBody(association, chunk)) });
    }
    try {
      return await deps.associations.bindAssociation(association, {
        lookupHash: opts.lookupHash,
        destination: opts.destination,
        onbind,
        now: opts.now,
      });
    } catch (err) {
      if (!(err instanceof InvitesChanged) || attempt >= ATTEMPTS) throw err;
    }
  }
}
