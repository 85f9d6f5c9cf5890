// ed25519 through node:crypto (native; see docs/design.md for why not tweetnacl on the hot path).
import { createPrivateKey, createPublicKey, generateKeyPair as generateKeyPairAsync, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';

/** The fixed PKCS#8 DER prefix of an ed25519 private key; the 32-byte seed follows it. */
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
/** The fixed SPKI DER prefix of an ed25519 public key; the 32 raw bytes follow it. */
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

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
 * A key pair as raw bytes only, for ephemeral keys (issue 6). Asking for DER output skips building two
 * KeyObjects and exporting each (the exports were ~13% of store-invite's CPU profile), and the async form
 * runs the key generation on libuv's thread pool, off the event loop (the sync call was ~22%).
 */
export async function generateRawKeyPair(): Promise<{ seed: Buffer; publicKey: Buffer }> {
  const { privateKey, publicKey } = await new Promise<{ privateKey: Buffer; publicKey: Buffer }>((resolve, reject) => {
    generateKeyPairAsync(
      'ed25519',
      { privateKeyEncoding: { format: 'der', type: 'pkcs8' }, publicKeyEncoding: { format: 'der', type: 'spki' } },
      (err, publicKey, privateKey) => (err ? reject(err) : resolve({ privateKey, publicKey })),
    );
  });
  return { seed: privateKey.subarray(-32), publicKey: publicKey.subarray(-32) };
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
  const key = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' });
  return verify(null, message, key, signature);
}
