// Matrix "Signing JSON": sign the canonical form without `signatures`/`unsigned`, add the signature.
import type { KeyObject } from 'node:crypto';
import { canonicalJson } from './canonicalJson.js';
import { signDetached } from './ed25519.js';
import { encodeUnpadded } from '../platform/base64.js';

export type Signatures = Record<string, Record<string, string>>;

export interface SigningKey {
  /** e.g. `ed25519:0` */
  keyId: string;
  key: KeyObject;
}

/** Returns a new object: `value` plus `signatures[serverName][keyId]`; `value` is not modified. */
export function signJson<T extends object>(value: T, serverName: string, signingKey: SigningKey): T & { signatures: Signatures } {
  const { signatures: existing, unsigned, ...rest } = value as T & { signatures?: Signatures; unsigned?: unknown };
  const signature = encodeUnpadded(signDetached(signingKey.key, Buffer.from(canonicalJson(rest), 'utf8')));
  const signatures: Signatures = {};
  for (const [server, sigs] of Object.entries(existing ?? {})) signatures[server] = { ...sigs };
  signatures[serverName] = { ...(signatures[serverName] ?? {}), [signingKey.keyId]: signature };
  const out = { ...rest, signatures } as T & { signatures: Signatures };
  if (unsigned !== undefined) (out as Record<string, unknown>).unsigned = unsigned;
  return out;
}
