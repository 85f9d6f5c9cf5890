import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { KeyRing } from '../../src/keys/KeyRing.js';
import { createLogger } from '../../src/platform/logger.js';

const log = createLogger('silent');

describe('KeyRing', () => {
  it('generates a 0600 key file on first load and reuses it', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'tessera-key-')), 'sub', 'signing.key');
    const a = KeyRing.load({ serverName: 's', keyFile: file, log });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, 'utf8')).toMatch(/^ed25519 0 [A-Za-z0-9+/]{43}\n$/);
    const b = KeyRing.load({ serverName: 's', keyFile: file, log });
    expect(b.publicKey).toBe(a.publicKey);
    expect(a.signingKey.keyId).toBe('ed25519:0');
  });

  it('trusts rotated-out keys for validity and lookup, in either alphabet', () => {
    const old = { keyId: 'ed25519:old', publicKey: '+/+/AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxw' };
    const ring = KeyRing.load({
      serverName: 's',
      keyText: 'ed25519 1 YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1',
      keyFile: '/nonexistent',
      oldKeys: [old],
      log,
    });
    expect(ring.signingKey.keyId).toBe('ed25519:1');
    expect(ring.publicKeyFor('ed25519:old')).toBe(old.publicKey);
    expect(ring.isValid('-_-_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxw')).toBe(true);
    expect(ring.isValid(ring.publicKey)).toBe(true);
    expect(ring.isValid('A'.repeat(43))).toBe(false);
  });
});
