// Inserts an association directly (no session, no onbind), hashed with the current lookup pepper like a bind's.
import { lookupHash } from '../../src/associations/hash.js';
import type { Association, AssociationStore } from '../../src/associations/AssociationStore.js';

export async function insertAssociation(deps: { associations: AssociationStore }, a: Association): Promise<void> {
  const pepper = await deps.associations.getBindingSetting('lookup_pepper');
  await deps.associations.insertAssociation(a, pepper === undefined ? null : lookupHash(a.address, a.medium, pepper));
}
