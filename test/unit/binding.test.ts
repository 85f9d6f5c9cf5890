// Pure parts of the binding lifecycle: the outbox backoff onbind retries with, next_link checks, secret comparison, lookup hashing, onbind bodies.
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { backoffMs } from '../../src/outbox/backoff.js';
import { isValidNextLink } from '../../src/validation/sessions.js';
import { newSecret, secretsEqual } from '../../src/validation/secrets.js';
import { lookupHash } from '../../src/associations/hash.js';
import { buildOnbindBody } from '../../src/associations/bind.js';
import { KeyRing } from '../../src/keys/KeyRing.js';
import { generateKeyPair } from '../../src/keys/ed25519.js';
import { onbindBodyErrors } from '../helpers/onbind.js';
import { verifyMatrixSignature } from '../helpers/signatures.js';
import type { Config } from '../../src/platform/config.js';
import { randomBytes } from 'node:crypto';

describe('onbind backoff (the outbox backoff)', () => {
  it('doubles from the initial delay, is capped, and jitters within [half, full]', () => {
    expect(backoffMs(1, 1000, 60_000, () => 0.999999)).toBe(1000);
    expect(backoffMs(4, 1000, 60_000, () => 0.999999)).toBe(8000);
    expect(backoffMs(30, 1000, 60_000, () => 0.999999)).toBe(60_000);
    expect(backoffMs(1000, 1000, 60_000, () => 0.999999)).toBe(60_000);
    expect(backoffMs(3, 1000, 60_000, () => 0)).toBe(2000);
    expect(backoffMs(3, 1000, 60_000, () => 0.999999)).toBeLessThanOrEqual(4000);
    expect(backoffMs(3, 1000, 60_000, () => 0.999999)).toBeGreaterThan(3990);
  });
});

describe('next_link', () => {
  it('accepts only absolute http(s) URLs without credentials', () => {
    for (const ok of ['https://app.example.org/x?y=1', 'http://localhost:8080/']) expect(isValidNextLink(ok), ok).toBe(true);
    for (const bad of [
      'javascript:alert(1)',
      'data:text/html,hi',
      '/relative',
      '//evil.example/',
      'https://u:p@example.org/',
      'ftp://example.org/',
      'https://example.org/\nx',
      '',
    ]) {
      expect(isValidNextLink(bad), bad).toBe(false);
    }
  });
});

describe('secrets', () => {
  it('come from the CSPRNG as 32 URL-safe characters and compare exactly', () => {
    const a = newSecret(randomBytes);
    expect(a).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(newSecret(randomBytes)).not.toBe(a);
    expect(secretsEqual(a, a)).toBe(true);
    expect(secretsEqual(a, `${a}x`)).toBe(false);
    expect(secretsEqual(a, a.toUpperCase() === a ? a.toLowerCase() : a.toUpperCase())).toBe(false);
    expect(secretsEqual('', '')).toBe(true);
  });
});

describe('lookup hash', () => {
  it('is unpadded URL-safe base64 of sha256("<address> <medium> <pepper>")', () => {
    const expected = createHash('sha256')
      .update('alice@example.org email matrixrocks')
      .digest('base64')
      .replace(/\+/g, '-')
      .replace(/\//g, '_')
      .replace(/=+$/, '');
    expect(lookupHash('alice@example.org', 'email', 'matrixrocks')).toBe(expected);
    expect(expected).toHaveLength(43);
  });
});

describe('onbind body', () => {
  const keys = new KeyRing('is.example', 'ed25519:0', generateKeyPair());
  const deps = { config: { server: { name: 'is.example' } } as Config, keys };
  const association = { id: 1, medium: 'email', address: 'bob@example.org', mxid: '@bob:hs.example', ts: 1, notBefore: 1, notAfter: 2 };
  const invite = (token: string) => ({
    id: 1,
    medium: 'email',
    address: 'bob@example.org',
    roomId: '!r:hs.example',
    sender: '@a:hs.example',
    token,
    ephemeralPublicKey: '',
    fields: {},
    createdAt: 0,
    expiresAt: 9,
  });

  it('matches openapi/homeserver.yaml and is signed as a whole and per invite', () => {
    const body = buildOnbindBody(deps, association, [invite('tok1'), invite('tok2')]) as any;
    expect(onbindBodyErrors(body)).toEqual([]);
    expect(verifyMatrixSignature(body, 'is.example', 'ed25519:0', keys.publicKey)).toBe(true);
    for (const i of body.invites) expect(verifyMatrixSignature(i.signed, 'is.example', 'ed25519:0', keys.publicKey)).toBe(true);
  });

  it('builds every body from fresh objects: nothing carries over between calls', () => {
    const a = buildOnbindBody(deps, association, [invite('tok1')]) as any;
    const b = buildOnbindBody(deps, { ...association, mxid: '@carol:hs.example' }, [invite('tok2')]) as any;
    expect(a.invites.map((i: any) => i.token)).toEqual(['tok1']);
    expect(b.invites.map((i: any) => i.token)).toEqual(['tok2']);
    expect(b.invites[0].mxid).toBe('@carol:hs.example');
    expect(a.signatures).not.toBe(b.signatures);
    expect(onbindBodyErrors({ ...a, invites: [] })).not.toEqual([]);
  });
});
