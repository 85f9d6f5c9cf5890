// The pipeline's routing: openapi-backend decides, the answer is remembered per method and path.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { OpenAPIBackend, type Document } from 'openapi-backend';
import { IDENTITY_DOCUMENT, memoizedRouter } from '../../src/platform/http/api.js';

async function router() {
  const api = new OpenAPIBackend({
    definition: parse(readFileSync(IDENTITY_DOCUMENT, 'utf8')) as Document,
    validate: false,
    quick: true,
    strict: true,
  });
  await api.init();
  return memoizedRouter(api);
}

describe('memoizedRouter', () => {
  it('gives openapi-backend’s answers: operation, decoded path parameters, 404 and 405', async () => {
    const route = await router();
    expect(route('post', '/_matrix/identity/api/v1/store-invite')).toEqual({ status: 200, operationId: 'invite', params: {} });
    expect(route('get', '/_matrix/identity/v2/pubkey/ed25519%3A0')).toEqual({
      status: 200,
      operationId: 'getPubKeyV2',
      params: { keyId: 'ed25519:0' },
    });
    // a literal path wins over the {keyId} template
    expect(route('get', '/_matrix/identity/v2/pubkey/isvalid')).toMatchObject({ operationId: 'isPubKeyValidV2' });
    expect(route('get', '/_matrix/identity/v2/store-invite/')).toEqual({ status: 405 });
    expect(route('get', '/_matrix/identity/v2/nothing-here')).toEqual({ status: 404 });
  });

  it('remembers answers, but not errors', async () => {
    const route = await router();
    const first = route('get', '/_matrix/identity/v2/pubkey/ed25519:0');
    expect(route('get', '/_matrix/identity/v2/pubkey/ed25519:0')).toBe(first);
    expect(() => route('get', '/_matrix/identity/v2/pubkey/%E0%A4%A')).toThrow(URIError);
    expect(() => route('get', '/_matrix/identity/v2/pubkey/%E0%A4%A')).toThrow(URIError);
  });
});
