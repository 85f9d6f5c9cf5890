// ed25519 through node:crypto (native; see docs/design.md for why not tweetnacl on the hot path).
import { createPrivateKey, createPublicKey, generateKeyPair as generateKeyPairAsync, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';

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
 * A key pair as raw bytes only, for ephemeral keys (issue 6). The generation runs on libuv's thread pool, off
 * the event loop. The raw bytes come from a JWK export (`d` is the seed, `x` the public key): OpenSSL 3's DER
 * encoder made the DER route cost ~180 us per pair here against ~55 us this way (measured with
 * generateKeyPairSync, 20,000 pairs each; the DER output options had been chosen to skip two exports, but the
 * encoder itself is the slow part).
 *
 * Keep the generation asynchronous: on Node 20.20, a JWK export of a key made by generateKeyPairSync can
 * deadlock the event loop. The export holds the key's mutex while it allocates; a GC then may free the sync
 * key-generation job, whose destructor takes the same mutex (seen here twice within 12,000 sync pairs, in gdb:
 * ~KeyGenJob waiting on a mutex its own thread holds). The async job is freed as soon as its callback returns,
 * and 300,000 async pairs ran clean; generateKeyPair above exports through DER, clean for 50,000 pairs.
 */
export async function generateRawKeyPair(): Promise<{ seed: Buffer; publicKey: Buffer }> {
  const privateKey = await new Promise<KeyObject>((resolve, reject) => {
    generateKeyPairAsync('ed25519', {}, (err, _publicKey, key) => (err ? reject(err) : resolve(key)));
  });
  const jwk = privateKey.export({ format: 'jwk' });
  if (typeof jwk.d !== 'string' || typeof jwk.x !== 'string') throw new Error('ed25519 JWK export without d or x');
  return { seed: Buffer.from(jwk.d, 'base64url'), publicKey: Buffer.from(jwk.x, 'base64url') };
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
  // JWK import: ~10 us here against ~95 us through OpenSSL's DER decoder.
  const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey).toString('base64url') }, format: 'jwk' });
  return verify(null, message, key, signature);
}
