// Bind, unbind and lookups (ValidationApi's bind/unbind, LookupApi), v1 and v2: one handler per operation pair.
import type { Deps } from '../deps.js';
import { MatrixError } from '../platform/http/errors.js';
import type { Reply, Req } from '../platform/http/types.js';
import { bindThreepid, unbindThreepid } from './bind.js';
import { ALGORITHMS, bulkLookupV1, lookupV1, lookupV2 } from './lookup.js';
import { currentPepper } from './pepper.js';

export async function handleBind(req: Req<'bindV2'> | Req<'bind'>, deps: Deps): Promise<Reply<'bindV2'>> {
  if (req.account && req.account.userId !== req.body.mxid) {
    throw new MatrixError(403, 'M_UNAUTHORIZED', "'mxid' doesn't match the access token's user");
  }
  return { status: 200, body: await bindThreepid(deps, req.body) };
}

export async function handleUnbind(req: Req<'unbindV2'> | Req<'unbind'>, deps: Deps): Promise<Reply<'unbindV2'>> {
  await unbindThreepid(deps, req.body, { accountUserId: req.account?.userId, origin: req.origin });
  return { status: 200, body: {} };
}

export async function handleGetHashDetails(_req: Req<'getHashDetails'>, deps: Deps): Promise<Reply<'getHashDetails'>> {
  return { status: 200, body: { lookup_pepper: await currentPepper(deps), algorithms: [...ALGORITHMS] } };
}

export async function handleLookupV2(req: Req<'lookupUsersV2'>, deps: Deps): Promise<Reply<'lookupUsersV2'>> {
  return { status: 200, body: { mappings: await lookupV2(deps, req.body) } };
}

export async function handleLookupV1(req: Req<'lookup'>, deps: Deps): Promise<Reply<'lookup'>> {
  return { status: 200, body: await lookupV1(deps, req.query.medium, req.query.address) };
}

export async function handleBulkLookupV1(req: Req<'bulkLookup'>, deps: Deps): Promise<Reply<'bulkLookup'>> {
  return { status: 200, body: { threepids: await bulkLookupV1(deps, req.body.threepids as [string, string][]) } };
}
