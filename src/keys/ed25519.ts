// ed25519 through node:crypto (native; see docs/design.md for why not tweetnacl on the hot path).
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';

/** The fixed PKCS#8 DER prefix of an ed25519 private key; the 32-byte seed follows it. */
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

export interface Ed25519KeyPair {
  /** 32-byte seed (what Matrix tooling calls the private key). */
  seed: Buffer;
  /** 32-byte public key. */
  publicKey: Buffer;
  privateKeyObject: KeyObject;
}

export function generateKeyPair(): Ed25519KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    seed: privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(-32),
    publicKey: publicKey.export({ format: 'der', type: 'spki' }).subarray(-32),
    privateKeyObject: privateKey,
  };
}

/**
 * An ephemeral key pair from a fresh 32-byte seed, both halves as URL-safe unpadded base64. An
 * ed25519 private key is 32 random bytes (RFC 8032 5.1.5), so the seed comes from the caller's CSPRNG and
 * only the public key is computed: a JWK import of `d` (OpenSSL derives the public point; Node reads `x` of a
 * private JWK only as a string) and a JWK export, all on the calling thread. The async generateKeyPair route
 * would cost the event loop about as much (the job's set-up, two KeyObjects, the export), and its jobs would
 * queue on libuv's four-thread pool in front of the WAL flush every SQLite group commit waits for: under
 * load, one key job per request ahead of each commit.
 *
 * Should a Node release start to check or trust `x`, the export would not give back `d` and a 43-character
 * `x`; that is checked, and the slower DER route (keyPairFromSeed) answers instead. test/unit/signing.test.ts
 * requires the JWK route to answer and compares it with the DER route and tweetnacl, so such a release fails
 * CI rather than slowing production down.
 *
 * generateKeyPairSync is not used for these keys: on Node 20.20 a JWK export of a key it made can deadlock
 * the event loop. The export holds the key's mutex while it allocates; a GC may then free the key-generation
 * job, whose destructor takes the same mutex (~KeyGenJob waiting on a mutex its own thread holds). No
 * key-generation job exists on this route.
 */
export function encodedPairFromSeed(seed: Buffer): { seed: string; publicKey: string } {
  if (seed.length !== 32) throw new Error('an ed25519 seed is 32 bytes');
  const d = seed.toString('base64url');
  return { seed: d, publicKey: publicKeyByJwk(d) ?? keyPairFromSeed(seed).publicKey.toString('base64url') };
}

/** The JWK route alone: the public key of seed `d` (URL-safe base64), or undefined if Node did not derive it. */
export function publicKeyByJwk(d: string): string | undefined {
  try {
    const jwk = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d, x: '' }, format: 'jwk' }).export({ format: 'jwk' });
    return jwk.d === d && typeof jwk.x === 'string' && jwk.x.length === 43 ? jwk.x : undefined;
  } catch {
    return undefined;
  }
}

/** Rebuilds a key pair from its 32-byte seed; throws on a seed of the wrong length. */
export function keyPairFromSeed(seed: Uint8Array): Ed25519KeyPair {
  if (seed.length !== 32) throw new Error('an ed25519 seed is 32 bytes');
  const privateKeyObject = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
  const publicKey = createPublicKey(privateKeyObject).export({ format: 'der', type: 'spki' }).subarray(-32);
  return { seed: Buffer.from(seed), publicKey, privateKeyObject };
}

export function signDetached(key: KeyObject, message: Uint8Array): Buffer {
  return sign(null, message, key);
}

export function verifyDetached(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  // JWK import: several times cheaper than OpenSSL's DER decoder.
  const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey).toString('base64url') }, format: 'jwk' });
  return verify(null, message, key, signature);
}
