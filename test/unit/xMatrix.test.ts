// X-Matrix header parsing, /_matrix/key/v2/server answer checks, and the bounds of the server-key cache.
import { describe, expect, it } from 'vitest';
import nacl from 'tweetnacl';
import { isXMatrix, parseXMatrix, ServerKeyCache, verifyKeyResponse } from '../../src/federation/xMatrix.js';
import type { FederationClient } from '../../src/federation/types.js';
import { canonical } from '../helpers/signatures.js';

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64').replace(/=+$/, '');

function keyAnswer(
  server: string,
  opts: { keyId?: string; validUntil?: number; signer?: nacl.SignKeyPair; pair?: nacl.SignKeyPair; serverName?: string } = {},
) {
  const pair = opts.pair ?? nacl.sign.keyPair();
  const keyId = opts.keyId ?? 'ed25519:k1';
  const body = {
    server_name: opts.serverName ?? server,
    valid_until_ts: opts.validUntil ?? 2_000_000,
    verify_keys: { [keyId]: { key: b64(pair.publicKey) } },
    old_verify_keys: {},
  };
  const sig = b64(nacl.sign.detached(Buffer.from(canonical(body)), (opts.signer ?? pair).secretKey));
  return { pair, body: { ...body, signatures: { [opts.serverName ?? server]: { [keyId]: sig } } } };
}

describe('parseXMatrix', () => {
  it('reads quoted, unquoted and escaped parameters in any order, with or without destination', () => {
    expect(parseXMatrix('X-Matrix origin="hs.example",destination="is.example",key="ed25519:abc",sig="c2ln"')).toEqual({
      origin: 'hs.example',
      destination: 'is.example',
      key: 'ed25519:abc',
      sig: 'c2ln',
    });
    expect(parseXMatrix('X-Matrix origin=hs.example, key=ed25519:abc, sig=c2ln+/')).toEqual({
      origin: 'hs.example',
      key: 'ed25519:abc',
      sig: 'c2ln+/',
    });
    expect(parseXMatrix('x-matrix  SIG="c2ln" , Key="ed25519:abc",ORIGIN="hs\\.example",extra=1')).toEqual({
      origin: 'hs.example',
      key: 'ed25519:abc',
      sig: 'c2ln',
    });
  });

  it.each([
    'Bearer abc',
    'X-Matrix',
    'X-Matrix origin="hs.example",key="ed25519:abc"',
    'X-Matrix origin="",key="ed25519:abc",sig="c2ln"',
    'X-Matrix origin="hs.example",origin="evil.example",key="ed25519:abc",sig="c2ln"',
    'X-Matrix origin="hs.example" key="ed25519:abc" sig="c2ln"',
    'X-Matrix origin="hs.example,key="ed25519:abc",sig="c2ln"',
  ])('refuses %s', (header) => {
    expect(parseXMatrix(header)).toBeUndefined();
  });

  it('recognises the scheme case-insensitively', () => {
    expect(isXMatrix('X-Matrix origin=a')).toBe(true);
    expect(isXMatrix('x-matrix origin=a')).toBe(true);
    expect(isXMatrix('Bearer x')).toBe(false);
    expect(isXMatrix(undefined)).toBe(false);
  });
});

describe('verifyKeyResponse', () => {
  it('keeps a self-signed key that is still valid', () => {
    const { pair, body } = keyAnswer('hs.example');
    const r = verifyKeyResponse(body, 'hs.example', 1_000_000);
    expect('keys' in r && Buffer.from(r.keys.get('ed25519:k1')!).equals(Buffer.from(pair.publicKey))).toBe(true);
  });

  it('refuses another server name, an expired answer, a key not signing itself, and a malformed answer', () => {
    expect(verifyKeyResponse(keyAnswer('hs.example', { serverName: 'evil.example' }).body, 'hs.example', 1_000_000)).toEqual({
      error: 'server_name is not the origin',
    });
    expect(verifyKeyResponse(keyAnswer('hs.example', { validUntil: 999 }).body, 'hs.example', 1_000_000)).toEqual({
      error: 'valid_until_ts has passed',
    });
    expect(verifyKeyResponse(keyAnswer('hs.example', { signer: nacl.sign.keyPair() }).body, 'hs.example', 1_000_000)).toEqual({
      error: 'no verify key signed the answer',
    });
    expect(verifyKeyResponse({ server_name: 'hs.example' }, 'hs.example', 1_000_000)).toEqual({
      error: 'answer does not match the schema',
    });
    // a signature over a different answer (verify_keys swapped after signing)
    const { body } = keyAnswer('hs.example');
    const swapped = { ...body, verify_keys: { 'ed25519:k1': { key: b64(nacl.sign.keyPair().publicKey) } } };
    expect(verifyKeyResponse(swapped, 'hs.example', 1_000_000)).toEqual({ error: 'no verify key signed the answer' });
  });
});

describe('ServerKeyCache', () => {
  function stubFederation(answers: Record<string, () => unknown>) {
    const calls: string[] = [];
    const federation: FederationClient = {
      getJson: async (server, path) => {
        calls.push(`${server}${path}`);
        const a = answers[server];
        if (!a) throw new Error('unreachable');
        return { status: 200, body: a() };
      },
      postJson: () => Promise.reject(new Error('no')),
    };
    return { federation, calls };
  }

  it('caches keys until the shorter of valid_until_ts and its own lifetime', async () => {
    let now = 1_000_000;
    const pair = nacl.sign.keyPair();
    const { federation, calls } = stubFederation({
      'hs.example': () => keyAnswer('hs.example', { pair, validUntil: now + 10_000_000 }).body,
    });
    const cache = new ServerKeyCache({ federation, clock: () => now, maxLifetimeMs: 5000 });
    expect(await cache.key('hs.example', 'ed25519:k1')).toBeDefined();
    now += 4000;
    expect(await cache.key('hs.example', 'ed25519:k1')).toBeDefined();
    expect(calls).toHaveLength(1);
    now += 2000;
    expect(await cache.key('hs.example', 'ed25519:k1')).toBeDefined();
    expect(calls).toHaveLength(2);
  });

  it('does not refetch for unknown key ids or after failures sooner than retryAfterMs, and dedupes concurrent fetches', async () => {
    let now = 1_000_000;
    const { federation, calls } = stubFederation({ 'hs.example': () => keyAnswer('hs.example', { validUntil: now + 10_000_000 }).body });
    const cache = new ServerKeyCache({ federation, clock: () => now, retryAfterMs: 1000 });
    await Promise.all([
      cache.key('hs.example', 'ed25519:k1'),
      cache.key('hs.example', 'ed25519:k1'),
      cache.key('hs.example', 'ed25519:k1'),
    ]);
    expect(calls).toHaveLength(1);
    for (let i = 0; i < 5; i++) expect(await cache.key('hs.example', `ed25519:nope${i}`)).toBeUndefined();
    expect(calls).toHaveLength(1);
    for (let i = 0; i < 5; i++) expect(await cache.key('down.example', 'ed25519:k1')).toBeUndefined();
    expect(calls.filter((c) => c.startsWith('down.example'))).toHaveLength(1);
    now += 1001;
    expect(await cache.key('down.example', 'ed25519:k1')).toBeUndefined();
    expect(calls.filter((c) => c.startsWith('down.example'))).toHaveLength(2);
  });

  it('holds at most maxEntries servers, dropping the oldest', async () => {
    const now = 1_000_000;
    const answers: Record<string, () => unknown> = {};
    for (let i = 0; i < 5; i++) answers[`hs${i}.example`] = () => keyAnswer(`hs${i}.example`, { validUntil: now + 10_000_000 }).body;
    const { federation, calls } = stubFederation(answers);
    const cache = new ServerKeyCache({ federation, clock: () => now, maxEntries: 3 });
    for (let i = 0; i < 5; i++) await cache.key(`hs${i}.example`, 'ed25519:k1');
    expect(cache.size).toBe(3);
    await cache.key('hs4.example', 'ed25519:k1'); // still cached
    expect(calls).toHaveLength(5);
    await cache.key('hs0.example', 'ed25519:k1'); // dropped: fetched again
    expect(calls).toHaveLength(6);
  });
});
