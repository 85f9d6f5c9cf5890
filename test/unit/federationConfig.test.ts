// The federation config section: defaults, environment variables, validation, and the client built from it.
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/platform/config.js';
import { federationClientFromConfig } from '../../src/federation/client.js';

describe('federation config', () => {
  it('verifies TLS and denies private ranges by default', () => {
    const c = loadConfig({ argv: [], env: {} });
    expect(c.federation).toEqual({ verifyTls: true, allow: [], requestTimeoutMs: 10_000, maxResponseBytes: 1024 * 1024 });
  });

  it('reads TESSERA_FEDERATION_VERIFY_TLS and TESSERA_FEDERATION_ALLOW', () => {
    const c = loadConfig({
      argv: [],
      env: { TESSERA_FEDERATION_VERIFY_TLS: 'false', TESSERA_FEDERATION_ALLOW: '127.0.0.1/32, hs.internal,::1' },
    });
    expect(c.federation.verifyTls).toBe(false);
    expect(c.federation.allow).toEqual(['127.0.0.1/32', 'hs.internal', '::1']);
    const client = federationClientFromConfig(c);
    expect(client).toBeDefined();
  });

  it('reports an allow entry the schema lets through but the policy cannot parse as a configuration error', () => {
    const c = loadConfig({ argv: [], env: { TESSERA_FEDERATION_ALLOW: '10.0.0.0/40' } });
    expect(() => federationClientFromConfig(c)).toThrow(/invalid configuration[\s\S]*10\.0\.0\.0\/40/);
  });

  it('refuses a malformed allow entry', () => {
    expect(() => loadConfig({ argv: [], env: { TESSERA_FEDERATION_ALLOW: 'http://x/' } })).toThrow(/federation\.allow/);
    expect(() => loadConfig({ argv: [], env: { TESSERA_FEDERATION_VERIFY_TLS: 'maybe' } })).toThrow(/TESSERA_FEDERATION_VERIFY_TLS/);
  });
});
