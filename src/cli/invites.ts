// tessera invites list | revoke: what an operator does about an abusive invitation.
import { normaliseAddress } from '../platform/threepid.js';
import { redactEmail } from '../invitations/redact.js';
import type { InviteFilter, InviteSummary } from '../invitations/InviteStore.js';
import { CommandError, iso, table, UsageError, type Context } from './context.js';

type Values = Record<string, string | boolean | undefined>;

export async function invitesList(ctx: Context, values: Values): Promise<void> {
  const filter: InviteFilter = {};
  if (typeof values.address === 'string')
    filter.address = { medium: String(values.medium), address: normaliseAddress(String(values.medium), values.address) };
  if (typeof values.room === 'string') filter.roomId = values.room;
  if (typeof values.sender === 'string') filter.sender = values.sender;
  if (Object.keys(filter).length === 0) throw new UsageError('give --address, --room or --sender');
  const limit = Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new UsageError('--limit must be an integer from 1 to 10000');
  const { stores } = await ctx.open();
  const invites = await stores.invites.listInvites(filter, ctx.now(), limit);
  const full = values['full-addresses'] === true || filter.address !== undefined;
  const shown = (i: InviteSummary) => (full ? i.address : redactEmail(i.address, 3));
  if (values.json) {
    ctx.out(
      JSON.stringify(
        invites.map((i) => ({ ...i, address: shown(i) })),
        null,
        2,
      ),
    );
    return;
  }
  if (invites.length === 0) {
    ctx.out('no unexpired invitations match');
    return;
  }
  ctx.out(
    table(
      ['ID', 'STATE', 'CREATED', 'EXPIRES', 'ADDRESS', 'ROOM', 'SENDER'],
      invites.map((i) => [String(i.id), i.state, iso(i.createdAt), iso(i.expiresAt), shown(i), i.roomId, i.sender]),
    ),
  );
  if (invites.length === limit) ctx.out(`(the newest ${limit}; --limit shows more)`);
}

export async function invitesRevoke(ctx: Context, _values: Values, args: string[]): Promise<void> {
  if (args.length !== 1) throw new UsageError('give one invitation id or token');
  const ref = args[0]!;
  const key = /^[0-9]{1,15}$/.test(ref) ? { id: Number(ref) } : /^[A-Za-z0-9_-]{1,255}$/.test(ref) ? { token: ref } : undefined;
  if (!key) throw new UsageError('an invitation is named by its id (digits) or its token');
  const { stores } = await ctx.open();
  const result = await stores.invites.revokeInvite(key, ctx.now());
  if (result.outcome === 'not-found') throw new CommandError('no such invitation (expired ones are swept away)', 3);
  const what = `invitation ${result.invite.id} (${result.invite.roomId}, from ${result.invite.sender})`;
  if (result.outcome !== 'revoked') {
    throw new CommandError(
      `${what} was already ${result.outcome === 'delivered' ? "delivered to the invitee's homeserver" : 'claimed by a bind; its onbind is queued'}: it can no longer be revoked`,
      1,
    );
  }
  // Other instances answer key validity from a cache of at most keyValidityCacheMs (≤ 1 s): once that has passed
  // since the commit, none of them can answer the revoked key valid.
  await ctx.sleep(Math.min(ctx.config.performance.keyValidityCacheMs, 1000) + 50);
  if (result.keyRevoked) ctx.out(`revoked ${what}: its ephemeral key answers invalid on every instance`);
  else {
    ctx.out(`revoked ${what}: a bind of its address no longer delivers it`);
    ctx.out('it was imported from Sydent, which never linked keys to invitations: its ephemeral key stays valid until it expires');
  }
  if (result.mailRemoved > 0 && result.mailInFlight === 0) ctx.out('its invitation email had not been sent and never will be');
  else if (result.mailInFlight > 0)
    ctx.out('its invitation email was being sent at that moment: it may still arrive, but its link no longer works');
  else ctx.out('its invitation email had already been sent: the link in it no longer works');
}
