// The compiled router (src/http/router.ts) must match exactly as openapi-backend's router did.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { OpenAPIRouter, type Document } from 'openapi-backend';
import { operations } from '../../generated/identity.validators.js';
import { compileRoutes, type RouteSpec } from '../../src/http/router.js';
import { IDENTITY_DOCUMENT } from '../../src/http/api.js';

const definition = parseYaml(readFileSync(IDENTITY_DOCUMENT, 'utf8')) as Document;
const reference = new OpenAPIRouter({ definition, ignoreTrailingSlashes: true });
const route = compileRoutes(operations as Record<string, RouteSpec>);

function expected(method: string, path: string): { status: number; operationId?: string; params?: Record<string, string> } {
  try {
    const op = reference.matchOperation({ method, path, headers: {} }, true);
    if (!op) return { status: 404 };
    const parsed = reference.parseRequest({ method, path, headers: {} }, op);
    return { status: 200, operationId: op.operationId, params: parsed.params as Record<string, string> };
  } catch (err) {
    return { status: (err as Error).message.startsWith('405') ? 405 : 404 };
  }
}

const paths = [
  ...Object.values(operations).map((o) => o.path.replace(/\{[^}]+\}/g, 'ed25519:0')),
  ...Object.values(operations).map((o) => `${o.path.replace(/\{[^}]+\}/g, 'ed25519%3A0')}/`),
  '/_matrix/identity/v2/pubkey/isvalid',
  '/_matrix/identity/v2/pubkey/ephemeral/isvalid?public_key=x',
  '/_matrix/identity/v2/pubkey/a/b',
  '/_matrix/identity/v2/pubkey/',
  '/_matrix/identity/v2/nope',
  '/_matrix/identity',
  '/_matrix/identity/api/v1/store-invite',
  ' /_matrix/identity/versions ',
  '/',
];

describe('compiled router', () => {
  it.each(paths.flatMap((p) => ['GET', 'POST', 'PUT', 'DELETE', 'head'].map((m) => [m, p] as const)))('%s %s matches as openapi-backend does', (method, path) => {
    const got = route(method, path);
    const want = expected(method, path);
    expect(got.status).toBe(want.status);
    if (got.status === 200) {
      expect(got.operationId).toBe(want.operationId);
      expect(got.params).toEqual(want.params);
    }
  });
});

it('keeps a malformed percent-escape as sent instead of failing', () => {
  expect(route('GET', '/_matrix/identity/v2/pubkey/ed25519%zz')).toEqual({ status: 200, operationId: 'getPubKey', params: { keyId: 'ed25519%zz' } });
});
