// The v2 lookup pepper: configured by the operator (rotation) or generated once, kept in the database.
import type { Deps } from '../deps.js';
import { lookupHash } from './hash.js';

const SETTING = 'lookup_pepper';

/** At start-up: adopt the configured pepper (rehashing every association when it changed) or make one. */
export async function ensureLookupPepper(deps: Pick<Deps, 'store' | 'config' | 'random' | 'log'>): Promise<string> {
  const { store } = deps;
  const stored = await store.getBindingSetting(SETTING);
  const wanted = deps.config.binding.lookupPepper || stored || deps.random(18).toString('base64url');
  if (wanted !== stored) {
    await store.putBindingSetting(SETTING, wanted);
    const n = await store.rehashAssociations((address, medium) => lookupHash(address, medium, wanted), 1000);
    if (stored !== undefined) deps.log.info('lookup pepper rotated', { rehashed: n });
  }
  return wanted;
}

/** Read per request, so a rotation by another instance is seen at once. */
export async function currentPepper(deps: Pick<Deps, 'store' | 'config' | 'random' | 'log'>): Promise<string> {
  return (await deps.store.getBindingSetting(SETTING)) ?? ensureLookupPepper(deps);
}
