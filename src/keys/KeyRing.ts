// Long-term signing keys: the current key (file or config), keys rotated out with `tessera keys rotate` while they
// stay valid, and keys the configuration trusts (keys.trustedOldKeys).
import { chmodSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { canonicalKeyString, decodeAny, encodeUnpadded } from '../platform/base64.js';
import { generateKeyPair, keyPairFromSeed, type Ed25519KeyPair } from './ed25519.js';
import type { SigningKey } from './signJson.js';
import type { Logger } from '../platform/logger.js';
import type { SigningKeyRecord } from './SigningKeyStore.js';

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

/** Where a rotated-out key's file is kept while it may still co-sign invitations: `<key file>.retired/<version>.key`. */
export function retiredKeyPath(keyFile: string, keyId: string): string {
  return join(`${keyFile}.retired`, `${keyId.slice('ed25519:'.length)}.key`);
}

/** A rotated-out key: valid (isvalid, /pubkey/{keyId}) until `validUntil`; `pair` when its file is on this host. */
interface RetiredKey {
  publicKey: string;
  validUntil: number;
  pair?: Ed25519KeyPair;
}

export class KeyRing {
  private current: { keyId: string; pair: Ed25519KeyPair; signing: SigningKey; publicKey: string; canonical: string };
  /** Keys trusted forever by configuration (keys.trustedOldKeys). */
  private readonly trusted = new Map<string, string>();
  private readonly trustedValid = new Set<string>();
  /** Keys rotated out with `tessera keys rotate`, as the database records them. */
  private retired = new Map<string, RetiredKey>();
  /** The database's signing key when this host has no file for it (warned about once). */
  private missingCurrent: string | undefined;

  constructor(
    readonly serverName: string,
    keyId: string,
    pair: Ed25519KeyPair,
    oldKeys: TrustedOldKey[] = [],
    private readonly clock: () => number = Date.now,
    /** The key file, where rotated keys are read from (none when the key is given in configuration). */
    readonly keyFile?: string,
  ) {
    this.current = KeyRing.entry(keyId, pair);
    for (const k of oldKeys) {
      this.trusted.set(k.keyId, k.publicKey);
      this.trustedValid.add(canonicalKeyString(k.publicKey));
    }
  }

  private static entry(keyId: string, pair: Ed25519KeyPair) {
    const publicKey = encodeUnpadded(pair.publicKey);
    return { keyId, pair, signing: { keyId, key: pair.privateKeyObject }, publicKey, canonical: canonicalKeyString(publicKey) };
  }

  /** Loads the key from config text, else from the file, generating the file on first start. */
  static load(opts: {
    serverName: string;
    keyText?: string;
    keyFile: string;
    oldKeys?: TrustedOldKey[];
    log: Logger;
    clock?: () => number;
  }): KeyRing {
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
    return new KeyRing(opts.serverName, keyId, pair, opts.oldKeys, opts.clock, opts.keyText ? undefined : opts.keyFile);
  }

  /** The key that signs from now on. */
  get signingKey(): SigningKey {
    return this.current.signing;
  }

  /** Unpadded standard base64 of the current public key. */
  get publicKey(): string {
    return this.current.publicKey;
  }

  get keyId(): string {
    return this.current.keyId;
  }

  /**
   * The keys an invitation's `signed` block is signed with: the current key, then every rotated-out key still
   * valid whose file is on this host. A homeserver checks that block against the public keys store-invite gave it,
   * so an invitation stored before a rotation still verifies after it.
   */
  invitationSigningKeys(): SigningKey[] {
    const now = this.clock();
    const out = [this.current.signing];
    for (const [keyId, k] of this.retired) if (k.pair && k.validUntil > now) out.push({ keyId, key: k.pair.privateKeyObject });
    return out;
  }

  publicKeyFor(keyId: string): string | undefined {
    if (keyId === this.current.keyId) return this.current.publicKey;
    const retired = this.retired.get(keyId);
    if (retired) return retired.validUntil > this.clock() ? retired.publicKey : undefined;
    return this.trusted.get(keyId);
  }

  isValid(publicKey: string): boolean {
    const key = canonicalKeyString(publicKey);
    if (key === this.current.canonical || this.trustedValid.has(key)) return true;
    if (this.retired.size === 0) return false;
    const now = this.clock();
    for (const k of this.retired.values()) if (k.validUntil > now && canonicalKeyString(k.publicKey) === key) return true;
    return false;
  }

  /**
   * Applies the database's record of the keys: a rotation made by `tessera keys rotate` (on this host or another)
   * moves signing to the new key when this host has its file, and keeps rotated-out keys valid until their time.
   */
  apply(records: SigningKeyRecord[], log: Logger): void {
    const signing = records.find((r) => r.retiredAt === null);
    if (signing && signing.keyId !== this.current.keyId) {
      const next = this.readKeyFile(this.keyFile, signing.keyId);
      if (next) {
        log.info('signing with the rotated key', { keyId: signing.keyId, previous: this.current.keyId });
        this.retired.set(this.current.keyId, {
          publicKey: this.current.publicKey,
          validUntil: Number.MAX_SAFE_INTEGER,
          pair: this.current.pair,
        });
        this.current = KeyRing.entry(signing.keyId, next);
        this.missingCurrent = undefined;
      } else if (this.missingCurrent !== signing.keyId) {
        this.missingCurrent = signing.keyId;
        log.warn('the database says another key signs now, but this host has no file for it: still signing with the old one', {
          keyId: signing.keyId,
          signingWith: this.current.keyId,
          file: this.keyFile ?? '(keys.signingKey)',
        });
      }
    }
    const retired = new Map<string, RetiredKey>();
    for (const r of records) {
      if (r.retiredAt === null || r.keyId === this.current.keyId) continue;
      const known = this.retired.get(r.keyId);
      const pair = known?.pair ?? (this.keyFile ? this.readKeyFile(retiredKeyPath(this.keyFile, r.keyId), r.keyId) : undefined);
      retired.set(r.keyId, { publicKey: r.publicKey, validUntil: r.validUntil ?? 0, ...(pair ? { pair } : {}) });
    }
    this.retired = retired;
  }

  /** The key in `file` when that file holds `keyId`; undefined otherwise (missing, another key, unreadable). */
  private readKeyFile(file: string | undefined, keyId: string): Ed25519KeyPair | undefined {
    if (!file || !existsSync(file)) return undefined;
    try {
      const parsed = parseSigningKey(readFileSync(file, 'utf8'));
      return parsed.keyId === keyId ? parsed.pair : undefined;
    } catch {
      return undefined;
    }
  }
}
