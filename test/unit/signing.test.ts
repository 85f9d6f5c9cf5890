import { describe, expect, it } from 'vitest';
import nacl from 'tweetnacl';
import { canonicalJson } from '../../src/keys/canonicalJson.js';
import { generateKeyPair, keyPairFromSeed, signDetached, verifyDetached } from '../../src/keys/ed25519.js';
import { signJson } from '../../src/keys/signJson.js';
import { parseSigningKey } from '../../src/keys/KeyRing.js';

describe('canonical JSON (Matrix specification appendix vectors)', () => {
  it.each([
    [{}, '{}'],
    [{ one: 1, two: 'Two' }, '{"one":1,"two":"Two"}'],
    [{ b: '2', a: '1' }, '{"a":"1","b":"2"}'],
    [
      {
        auth: {
          success: true,
          mxid: '@john.doe:example.com',
          profile: {
            display_name: 'John Doe',
            three_pids: [
              { medium: 'email', address: 'john.doe@example.org' },
              { medium: 'msisdn', address: '123456789' },
            ],
          },
        },
      },
      '{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},"success":true}}',
    ],
    [{ a: '日本語' }, '{"a":"日本語"}'],
    [{ 本: 2, 日: 1 }, '{"日":1,"本":2}'],
    [{ a: '\u1234' }, '{"a":"ሴ"}'],
    [{ a: null }, '{"a":null}'],
    [{ a: -0x1fffffffffffff }, '{"a":-9007199254740991}'],
  ])('%j', (value, expected) => {
    expect(canonicalJson(value)).toBe(expected);
  });

  it('orders keys by code point, not UTF-16 unit', () => {
    expect(canonicalJson({ '\u{1F600}': 1, '\uFFFF': 2 })).toBe('{"\uFFFF":2,"\u{1F600}":1}');
  });

  it('refuses floats', () => {
    expect(() => canonicalJson({ a: 1.5 })).toThrow();
  });
});

describe('ed25519 signing', () => {
  // The Matrix specification's signing-JSON example: seed "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1",
  // key id ed25519:1, server "domain".
  const seed = Buffer.from('YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1', 'base64');
  const pair = keyPairFromSeed(seed);
  const key = { keyId: 'ed25519:1', key: pair.privateKeyObject };

  it('reproduces the specification vectors', () => {
    expect(signJson({}, 'domain', key).signatures).toEqual({
      domain: { 'ed25519:1': 'K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ' },
    });
    expect(signJson({ one: 1, two: 'Two' }, 'domain', key).signatures).toEqual({
      domain: { 'ed25519:1': 'KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw' },
    });
  });

  it('signs without signatures/unsigned, keeps them, and does not modify the input', () => {
    const input = { a: 1, unsigned: { age: 5 }, signatures: { other: { 'ed25519:x': 'sig' } } };
    const copy = structuredClone(input);
    const signed = signJson(input, 'domain', key);
    expect(input).toEqual(copy);
    expect(signed.unsigned).toEqual({ age: 5 });
    expect(signed.signatures.other).toEqual({ 'ed25519:x': 'sig' });
    const sig = Buffer.from(signed.signatures.domain!['ed25519:1']!, 'base64');
    expect(nacl.sign.detached.verify(Buffer.from('{"a":1}'), sig, pair.publicKey)).toBe(true);
  });

  it('produces signatures and public keys that tweetnacl agrees with', () => {
    for (let i = 0; i < 20; i++) {
      const p = generateKeyPair();
      const naclPair = nacl.sign.keyPair.fromSeed(p.seed);
      expect(Buffer.from(naclPair.publicKey)).toEqual(p.publicKey);
      const msg = Buffer.from(`message ${i}`);
      const sig = signDetached(p.privateKeyObject, msg);
      expect(Buffer.from(nacl.sign.detached(msg, naclPair.secretKey))).toEqual(sig);
      expect(nacl.sign.detached.verify(msg, sig, p.publicKey)).toBe(true);
      expect(verifyDetached(p.publicKey, msg, sig)).toBe(true);
      expect(verifyDetached(p.publicKey, Buffer.from('other'), sig)).toBe(false);
    }
  });

  it("reads Sydent's signing key format", () => {
    const { keyId, pair: p } = parseSigningKey('ed25519 0 YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1\n');
    expect(keyId).toBe('ed25519:0');
    expect(p.publicKey).toEqual(pair.publicKey);
    expect(() => parseSigningKey('rsa 0 abc')).toThrow();
    expect(() => parseSigningKey('ed25519 0 c2hvcnQ')).toThrow();
  });
});

describe('encodedPairFromSeed', () => {
  it('derives the same public key as the DER route and tweetnacl, for many seeds', async () => {
    const { encodedPairFromSeed, keyPairFromSeed, publicKeyByJwk } = await import('../../src/keys/ed25519.js');
    const { randomBytes } = await import('node:crypto');
    for (let i = 0; i < 200; i++) {
      const seed = randomBytes(32);
      const pair = encodedPairFromSeed(seed);
      expect(pair.seed).toBe(seed.toString('base64url'));
      // the fast route itself answered (a Node release that changed the JWK importer would fall back to DER)
      expect(publicKeyByJwk(pair.seed)).toBe(pair.publicKey);
      expect(pair.publicKey).toBe(keyPairFromSeed(seed).publicKey.toString('base64url'));
      expect(Buffer.from(nacl.sign.keyPair.fromSeed(seed).publicKey).toString('base64url')).toBe(pair.publicKey);
    }
  });

  it('refuses a seed that is not 32 bytes', async () => {
    const { encodedPairFromSeed } = await import('../../src/keys/ed25519.js');
    expect(() => encodedPairFromSeed(Buffer.alloc(31))).toThrow(/32 bytes/);
  });
});
