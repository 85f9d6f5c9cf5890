// The v2 lookup pepper: configured by the operator (rotation) or generated once, kept in the database.
//
// Two settings: 'lookup_pepper' is the pepper clients are told to use; 'lookup_pepper_hashed' is the pepper every
// association's lookup_hash was computed with, written only after a rehash has gone through every row. While they
// differ (a rotation in progress, or one cut short by a crash) each start-up rehashes again, and lookups that
// hash on the server side (v1 bulk_lookup, v2 algorithm "none") try both peppers.
import type { Deps } from '../deps.js';
import { lookupHash } from './hash.js';

const SETTING = 'lookup_pepper';
const HASHED = 'lookup_pepper_hashed';
const REHASH_BATCH = 1000;

type PepperDeps = Pick<Deps, 'associations' | 'config' | 'random' | 'log'>;

/** At start-up: adopt the configured pepper (or make the first one), then finish any rehash not yet done. */
export async function ensureLookupPepper(deps: PepperDeps): Promise<string> {
  const store = deps.associations;
  const configured = deps.config.binding.lookupPepper;
  let current = await store.getBindingSetting(SETTING);
  if (configured && configured !== current) {
    await store.putBindingSetting(SETTING, configured);
    current = configured;
  } else if (current === undefined) {
    // Instances starting together on an empty database: the first insert wins and everybody adopts it.
    await store.insertBindingSettingIfAbsent(SETTING, deps.random(18).toString('base64url'));
    current = (await store.getBindingSetting(SETTING))!;
  }
  const hashed = await store.getBindingSetting(HASHED);
  if (hashed !== current) {
    const pepper = current;
    const n = await store.rehashAssociations((address, medium) => lookupHash(address, medium, pepper), REHASH_BATCH);
    // Another instance may have rotated again meanwhile: then its own rehash sets the marker, not this one.
    if ((await store.getBindingSetting(SETTING)) === pepper) await store.putBindingSetting(HASHED, pepper);
    if (hashed !== undefined || n > 0) deps.log.info('lookup hashes recomputed for the current pepper', { rehashed: n });
  }
  return current;
}

/** Read per request, so a rotation by another instance is seen at once. */
export async function currentPepper(deps: PepperDeps): Promise<string> {
  return (await deps.associations.getBindingSetting(SETTING)) ?? ensureLookupPepper(deps);
}

/**
 * The current pepper, and every pepper an association's lookup_hash may be computed with right now: the
 * current one, plus the previous one while a rehash is unfinished.
 */
export async function lookupPeppers(deps: PepperDeps): Promise<{ current: string; hashedWith: string[] }> {
  const [current, hashed] = await Promise.all([currentPepper(deps), deps.associations.getBindingSetting(HASHED)]);
  return { current, hashedWith: hashed === undefined || hashed === current ? [current] : [current, hashed] };
}
