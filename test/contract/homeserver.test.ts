// openapi/homeserver.yaml (what Tessera calls on homeservers) is a valid document with current validators.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { Validator } from '@seriousme/openapi-schema-validator';
import { operations } from '../../generated/homeserver.validators.js';

const doc = parse(readFileSync(new URL('../../openapi/homeserver.yaml', import.meta.url), 'utf8'));

describe('openapi/homeserver.yaml', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    const validator = new Validator();
    const result = await validator.validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it('has generated validators for exactly the documented operations', () => {
    const ids = Object.values<any>(doc.paths).flatMap((item) => Object.values<any>(item).map((op) => op.operationId));
    expect(Object.keys(operations).sort()).toEqual(ids.sort());
  });

  it('accepts the answers the Matrix spec shows, and refuses malformed ones', () => {
    const wk = operations.getWellKnownServer.responses['200']!;
    expect(wk({ 'm.server': 'matrix.example.org:443' })).toBe(true);
    expect(wk({ 'm.server': 7 })).toBe(false);
    expect(wk({})).toBe(false);
    const userinfo = operations.getOpenIdUserInfo.responses['200']!;
    expect(userinfo({ sub: '@alice:example.org' })).toBe(true);
    expect(userinfo({ sub: 'alice' })).toBe(false);
    expect(operations.getOpenIdUserInfo.query!({ access_token: 'abc' })).toBe(true);
    expect(operations.getOpenIdUserInfo.query!({})).toBe(false);
  });

  it('describes /_matrix/key/v2/server as the spec shows it, and refuses answers without keys or signatures', () => {
    const keys = operations.getServerKeys.responses['200']!;
    const sig = 'A'.repeat(86);
    expect(
      keys({
        server_name: 'example.org',
        valid_until_ts: 1652262000000,
        verify_keys: { 'ed25519:abc123': { key: 'VGhpcw' } },
        old_verify_keys: {},
        signatures: { 'example.org': { 'ed25519:abc123': sig } },
      }),
    ).toBe(true);
    expect(
      keys({
        server_name: 'example.org',
        valid_until_ts: 1652262000000,
        verify_keys: {},
        signatures: { 'example.org': { 'ed25519:abc123': sig } },
      }),
    ).toBe(false);
    expect(keys({ server_name: 'example.org', valid_until_ts: 1652262000000, verify_keys: { 'ed25519:abc123': { key: 'VGhpcw' } } })).toBe(
      false,
    );
    expect(
      keys({ server_name: 'example.org', valid_until_ts: 'soon', verify_keys: { 'ed25519:abc123': { key: 'VGhpcw' } }, signatures: {} }),
    ).toBe(false);
  });
});
