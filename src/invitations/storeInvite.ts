// store-invite (identity-api.md section 2): policy checks, then invite + ephemeral key + email in one transaction.
import type { Deps } from '../deps.js';
import { DomainError } from '../platform/domainErrors.js';
import { isPlainMailbox, normaliseAddress, serverNameOf } from '../platform/threepid.js';
import { redactForLog } from '../platform/logger.js';
import { redactEmail } from './redact.js';
import { newInviteToken } from './token.js';
import { resolveBrand } from '../mail/brand.js';

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
  /** The client's IP, for rate limiting. */
  ip: string;
  /** The request's `brand` query parameter: kept only when that template folder exists. */
  brand?: string;
}

/** A server name without its port, lower-cased: `Evil.Example:8448` and `evil.example` are one server. */
function hostOf(serverName: string): string {
  const name = serverName.toLowerCase();
  const bracket = name.startsWith('[') ? name.indexOf(']') : -1;
  if (bracket >= 0) return name.slice(0, bracket + 1);
  const colon = name.lastIndexOf(':');
  return colon >= 0 ? name.slice(0, colon) : name;
}

/**
 * Operator block lists: rooms, the sender's server (any port) and keywords in the names shown to the invitee. Each
 * refusal is counted by list.
 */
function checkPolicy(deps: Deps, input: InvitationInput): void {
  const policy = deps.config.invites;
  if (policy.blockedRooms.includes(input.room_id)) {
    deps.metrics.blocked('rooms');
    throw new DomainError('blocked', 'Invitations into this room are not allowed');
  }
  const server = hostOf(serverNameOf(input.sender));
  if (policy.blockedServers.some((s) => hostOf(s) === server)) {
    deps.metrics.blocked('servers');
    throw new DomainError('blocked', "Invitations from this sender's server are not allowed");
  }
  if (policy.blockedKeywords.length > 0) {
    const shown = [input.room_name, input.room_alias, input.sender_display_name, input.sender]
      .filter((v): v is string => typeof v === 'string')
      .join('\n')
      .toLowerCase();
    if (policy.blockedKeywords.some((k) => k && shown.includes(k.toLowerCase()))) {
      deps.metrics.blocked('keywords');
      throw new DomainError('blocked', 'This invitation is not allowed');
    }
  }
}

/**
 * The invitation's JSON columns as text: its fields, and the email's payload (the fields again, then `rest`). Done
 * here, before the rows join a group commit, so that input which cannot be serialised is this request's own
 * `400`, never a failed transaction shared with other invitations. The pipeline already bounds what a body may
 * hold (inputCheck.ts), so this is the last line, not the check. The fields are serialised once and spliced into
 * the payload, as `JSON.stringify({ fields, ...rest })` would write them.
 */
function serialised(input: InvitationInput, rest: Record<string, unknown>): { fields: string; payload: string } {
  let fields: string;
  let others: string;
  try {
    fields = JSON.stringify(input);
    others = JSON.stringify(rest);
  } catch {
    throw new DomainError('invalid_param', 'Invalid request: the invitation cannot be stored as JSON');
  }
  return { fields, payload: `{"fields":${fields}${others === '{}' ? '}' : `,${others.slice(1)}`}` };
}

/** Checks run in the order of the wire contract's table; nothing is written unless all pass. */
export async function storeInvite(deps: Deps, input: InvitationInput, ctx: StoreInviteContext): Promise<StoredInvitation> {
  const { config } = deps;
  checkPolicy(deps, input);
  const address = normaliseAddress(input.medium, input.address);
  const limits = config.rateLimits;
  await deps.limiter.check([
    { kind: 'invite-ip', key: ctx.ip, max: limits.storeInvitePerIp },
    { kind: 'invite-sender', key: ctx.verifiedSender ?? input.sender, max: limits.storeInvitePerSender },
    { kind: 'invite-to', key: `${input.medium} ${address}`, max: limits.storeInvitePerAddress },
  ]);
  const now = deps.clock();
  const bound = await deps.associations.findAssociation(input.medium, address, now);
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
  const pair = deps.ephemeralKeys.take();
  const ephemeralPublicKey = pair.publicKey;
  // The private key lives only in the email's payload until the email is sent; it is never stored with the invite.
  const { fields, payload } = serialised(input, {
    token,
    ephemeralPrivateKey: pair.seed,
    version: ctx.version,
    verifiedSender: ctx.verifiedSender ?? null,
    brand: resolveBrand(config.mail, ctx.brand),
  });
  await deps.invites.insertInvite(
    {
      medium: input.medium,
      address,
      roomId: input.room_id,
      sender: input.sender,
      token,
      ephemeralPublicKey,
      fields,
      createdAt: now,
      expiresAt: now + config.invites.lifetimeMs,
    },
    { kind: 'invite', recipient: input.address, payload, createdAt: now },
  );
  deps.signals.mailQueued();
  deps.metrics.invitationStored();
  deps.log.debug('stored invitation', { room: input.room_id, to: redactForLog(address) });
  return { token, ephemeralPublicKey, displayName: redactEmail(input.address, config.invites.redactChars) };
}
