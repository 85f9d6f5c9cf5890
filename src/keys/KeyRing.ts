// Long-term signing keys: the current key (file or config) and rotated-out keys still trusted.
import { chmodSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { canonicalKeyString, decodeAny, encodeUnpadded } from '../platform/base64.js';
import { generateKeyPair, keyPairFromSeed, type Ed25519KeyPair } from './ed25519.js';
import type { SigningKey } from './signJson.js';
import type { Logger } from '../platform/logger.js';

export interface TrustedOldKey {
  keyId: string;
  publicKey: string;
}

/**
 * The signing key's text form is Sydent's (and signedjson's): `ed25519 <version> <unpadded base64 seed>`,
 * so an operator moving from Sydent can keep the key homeservers already trust.
 */
export function parseSigningKey(text: string): { keyId: string; pair: Ed25519KeyPair } {
  const parts = text.trim().split(/\s+/);
  if (parts.length !== 3 || parts[0] !== 'ed25519' || !/^[A-Za-z0-9_]+$/.test(parts[1]!)) {
    throw new Error('a signing key reads "ed25519 <version> <base64 seed>"');
  }
  const seed = decodeAny(parts[2]!);
  if (!seed || seed.length !== 32) throw new Error('the signing key seed must be 32 bytes of base64');
  return { keyId: `ed25519:${parts[1]}`, pair: keyPairFromSeed(seed) };
}

export function formatSigningKey(version: string, seed: Uint8Array): string {
  return `ed25519 ${version} ${encodeUnpadded(seed)}\n`;
}

/** Writes a new key file with mode 0600, atomically; never overwrites an existing file. */
export function writeNewKeyFile(path: string, version = '0'): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, formatSigningKey(version, generateKeyPair().seed));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  if (existsSync(path)) throw new Error(`refusing to overwrite ${path}`);
  renameSync(tmp, path);
  chmodSync(path, 0o600);
}

export class KeyRing {
  readonly signingKey: SigningKey;
  /** Unpadded standard base64 of the current public key. */
  readonly publicKey: string;
  private readonly byId = new Map<string, string>();
  private readonly valid = new Set<string>();

  constructor(
    readonly serverName: string,
    keyId: string,
    pair: Ed25519KeyPair,
    oldKeys: TrustedOldKey[] = [],
  ) {
    this.signingKey = { keyId, key: pair.privateKeyObject };
    this.publicKey = encodeUnpadded(pair.publicKey);
    for (const k of [...oldKeys, { keyId, publicKey: this.publicKey }]) {
      this.byId.set(k.keyId, k.publicKey);
      this.valid.add(canonicalKeyString(k.publicKey));
    }
  }

  /** Loads the key from config text, else from the file, generating the file on first start. */
  static load(opts: { serverName: string; keyText?: string; keyFile: string; oldKeys?: TrustedOldKey[]; log: Logger }): KeyRing {
    let text = opts.keyText;
    if (!text) {
      if (!existsSync(opts.keyFile)) {
        writeNewKeyFile(opts.keyFile);
        opts.log.info('generated a new long-term signing key', { file: opts.keyFile });
      } else if ((statSync(opts.keyFile).mode & 0o077) !== 0) {
        opts.log.warn('the signing key file is readable by other users; chmod 600 it', { file: opts.keyFile });
      }
      text = readFileSync(opts.keyFile, 'utf8');
    }
    const { keyId, pair } = parseSigningKey(text);
    return new KeyRing(opts.serverName, keyId, pair, opts.oldKeys);
  }

  publicKeyFor(keyId: string): string | undefined {
    return this.byId.get(keyId);
  }

  isValid(publicKey: string): boolean {
    return this.valid.has(canonicalKeyString(publicKey));
  }
}
