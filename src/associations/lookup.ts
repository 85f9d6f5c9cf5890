// Lookups (identity-api.md section 8): v1 /lookup and /bulk_lookup, v2 /hash_details and /lookup, all by lookup_hash.
import type { Deps } from '../deps.js';
import { DomainError } from '../platform/domainErrors.js';
import { normaliseAddress } from '../platform/threepid.js';
import { signAssociation, type SignedAssociation } from './bind.js';
import { lookupHash } from './hash.js';
import { lookupPeppers } from './pepper.js';

/** Hashes per query: one indexed IN query per batch, and a bound on bound parameters. */
export const LOOKUP_BATCH = 1000;

export const ALGORITHMS = ['none', 'sha256'] as const;

/** Resolves hash -> mxid for all of `hashes`, batch by batch. */
async function mxidsByHash(deps: Deps, hashes: string[]): Promise<Map<string, string>> {
  const now = deps.clock();
  const out = new Map<string, string>();
  const unique = [...new Set(hashes)];
  for (let i = 0; i < unique.length; i += LOOKUP_BATCH) {
    for (const a of await deps.associations.findMxidsByHash(unique.slice(i, i + LOOKUP_BATCH), now)) out.set(a.lookupHash, a.mxid);
  }
  return out;
}

export async function lookupV2(
  deps: Deps,
  input: { addresses: string[]; algorithm: string; pepper: string },
): Promise<Record<string, string>> {
  if (!(ALGORITHMS as readonly string[]).includes(input.algorithm)) {
    throw new DomainError('invalid_param', `Unsupported algorithm '${input.algorithm}'; supported: ${ALGORITHMS.join(', ')}`);
  }
  const { current, hashedWith } = await lookupPeppers(deps);
  if (input.pepper !== current)
    throw new DomainError('invalid_pepper', 'Unknown or invalid pepper: has it been rotated? Fetch /hash_details again');
  if (input.algorithm === 'sha256') {
    // Hashed by the client with the current pepper: rows a rotation has not reached yet are missed (docs/design.md).
    const found = await mxidsByHash(deps, input.addresses);
    // Only what was asked, matched exactly: MySQL's collations can match a hash that differs in letter case
    // or trailing spaces, and the answer must never name a key the client did not send.
    const mappings: Record<string, string> = {};
    for (const hash of input.addresses) {
      const mxid = found.get(hash);
      if (mxid !== undefined) mappings[hash] = mxid;
    }
    return mappings;
  }
  const hashesOf = new Map<string, string[]>(); // "<address> <medium>" as sent -> its lookup hash under each pepper rows may carry
  for (const entry of input.addresses) {
    const space = entry.lastIndexOf(' ');
    if (space <= 0) continue; // not "<address> <medium>": cannot be bound
    const medium = entry.slice(space + 1);
    const address = normaliseAddress(medium, entry.slice(0, space));
    hashesOf.set(
      entry,
      hashedWith.map((p) => lookupHash(address, medium, p)),
    );
  }
  const found = await mxidsByHash(deps, [...hashesOf.values()].flat());
  const mappings: Record<string, string> = {};
  for (const [entry, hashes] of hashesOf) {
    const mxid = firstFound(found, hashes);
    if (mxid !== undefined) mappings[entry] = mxid;
  }
  return mappings;
}

function firstFound(found: Map<string, string>, hashes: string[]): string | undefined {
  for (const h of hashes) {
    const mxid = found.get(h);
    if (mxid !== undefined) return mxid;
  }
  return undefined;
}

export async function lookupV1(deps: Deps, medium: string, address: string): Promise<SignedAssociation | Record<string, never>> {
  const a = await deps.associations.findAssociation(medium, normaliseAddress(medium, address), deps.clock());
  return a ? signAssociation(deps, a) : {};
}

export async function bulkLookupV1(deps: Deps, threepids: [string, string][]): Promise<[string, string, string][]> {
  const { hashedWith } = await lookupPeppers(deps);
  const hashes = threepids.map(([medium, address]) => hashedWith.map((p) => lookupHash(normaliseAddress(medium, address), medium, p)));
  const found = await mxidsByHash(deps, hashes.flat());
  const out: [string, string, string][] = [];
  threepids.forEach(([medium, address], i) => {
    const mxid = firstFound(found, hashes[i]!);
    if (mxid !== undefined) out.push([medium, address, mxid]);
  });
  return out;
}
