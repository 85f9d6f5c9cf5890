import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/platform/config.js';
import { SQLITE_WAL_AUTOCHECKPOINT } from '../../src/platform/db/db.js';

describe('loadConfig', () => {
  it('has working defaults derived from host, port and data directory', () => {
    const c = loadConfig({ argv: [], env: {} });
    expect(c.server.port).toBe(8090);
    expect(c.server.publicBaseUrl).toBe('http://127.0.0.1:8090');
    expect(c.server.name).toBe('127.0.0.1:8090');
    expect(c.database.url).toMatch(/data\/tessera\.sqlite$/);
    expect(c.keys.signingKeyFile).toMatch(/data\/signing\.key$/);
  });

  it('layers file, then environment', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-cfg-'));
    const file = join(dir, 'c.yaml');
    writeFileSync(file, 'server:\n  port: 9000\n  name: is.example.org\ninvites:\n  redactChars: 1\n');
    const c = loadConfig({
      argv: ['--config', file],
      env: {
        TESSERA_PORT: '9100',
        TESSERA_DB_URL: 'mysql://u:p@db:3306/x',
        TESSERA_DATA_DIR: dir,
        TESSERA_PUBLIC_BASE_URL: 'https://is.example.org/',
      },
    });
    expect(c.server.port).toBe(9100);
    expect(c.server.name).toBe('is.example.org');
    expect(c.server.publicBaseUrl).toBe('https://is.example.org');
    expect(c.invites.redactChars).toBe(1);
    expect(c.database.url).toBe('mysql://u:p@db:3306/x');
    expect(c.database.sqliteCacheMb).toBe(4);
    expect(loadConfig({ argv: [], env: { TESSERA_SQLITE_CACHE_MB: '64' } }).database.sqliteCacheMb).toBe(64);
    expect(c.database.sqliteWalAutocheckpoint).toBe(SQLITE_WAL_AUTOCHECKPOINT);
    expect(c.database.commitConcurrency).toBe(4);
    expect(loadConfig({ argv: [], env: { TESSERA_DB_COMMIT_CONCURRENCY: '1' } }).database.commitConcurrency).toBe(1);
    expect(loadConfig({ argv: [], env: { TESSERA_SQLITE_WAL_AUTOCHECKPOINT: '2000' } }).database.sqliteWalAutocheckpoint).toBe(2000);
    // 0 would turn automatic checkpoints off, and the WAL would grow without bound
    expect(() => loadConfig({ argv: [], env: { TESSERA_SQLITE_WAL_AUTOCHECKPOINT: '0' } })).toThrow(/sqliteWalAutocheckpoint/);
    expect(c.keys.signingKeyFile).toBe(join(dir, 'signing.key'));
    expect(loadConfig({ argv: [], env: { TESSERA_CONFIG: file } }).server.port).toBe(9000);
  });

  it('accepts the mail outbox settings under their former names, the current name winning', () => {
    const c = loadConfig({
      argv: [],
      env: {},
      overrides: { mail: { retryBaseMs: 7, retryMaxMs: 70, batchSize: 3, retentionMs: 9 } } as never,
    });
    expect([c.mail.initialBackoffMs, c.mail.maxBackoffMs, c.mail.concurrency, c.mail.keepFinishedMs]).toEqual([7, 70, 3, 9]);
    const both = loadConfig({ argv: [], env: {}, overrides: { mail: { retryBaseMs: 7, initialBackoffMs: 8 } } as never });
    expect(both.mail.initialBackoffMs).toBe(8);
    // the two outboxes share one set of names
    const outbox = [
      'initialBackoffMs',
      'maxBackoffMs',
      'giveUpAfterMs',
      'leaseMs',
      'leaseRenewMs',
      'pollIntervalMs',
      'concurrency',
      'keepFinishedMs',
    ];
    for (const section of [c.mail, c.onbind]) expect(Object.keys(section)).toEqual(expect.arrayContaining(outbox));
  });

  it('refuses a lease renewed no more often than it lasts, naming both settings', () => {
    expect(() => loadConfig({ argv: [], env: { TESSERA_MAIL_LEASE_MS: '5s', TESSERA_MAIL_LEASE_RENEW_MS: '5s' } })).toThrow(
      /mail\.leaseRenewMs: must be less than mail\.leaseMs \(5000 ms\) \(TESSERA_MAIL_LEASE_RENEW_MS, TESSERA_MAIL_LEASE_MS\)/,
    );
    expect(() => loadConfig({ argv: [], env: {}, overrides: { onbind: { leaseMs: 1000, leaseRenewMs: 2000 } } })).toThrow(
      /onbind\.leaseRenewMs/,
    );
    const ok = loadConfig({ argv: [], env: { TESSERA_ONBIND_LEASE_MS: '3s', TESSERA_ONBIND_LEASE_RENEW_MS: '2s' } });
    expect([ok.onbind.leaseMs, ok.onbind.leaseRenewMs]).toEqual([3000, 2000]);
    // unset: a third of the lease, whatever the lease
    const derived = loadConfig({ argv: [], env: { TESSERA_MAIL_LEASE_MS: '1500ms' } });
    expect([derived.mail.leaseRenewMs, derived.onbind.leaseRenewMs]).toEqual([500, 5000]);
  });

  it('lists every problem in one error', () => {
    try {
      loadConfig({
        argv: [],
        env: { TESSERA_PORT: 'eighty', TESSERA_V1_ENABLED: 'maybe', TESSERA_PUBLIC_BASE_URL: 'ftp://x' },
        overrides: { invites: { redactChars: 0 } },
      });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const problems = (err as ConfigError).problems.join('\n');
      expect(problems).toContain('TESSERA_PORT');
      expect(problems).toContain('TESSERA_V1_ENABLED');
      expect(problems).toContain('publicBaseUrl');
      expect(problems).toContain('redactChars');
    }
  });

  it('reads the memory, admission and timeout knobs, and refuses values that would admit nobody', () => {
    expect(loadConfig({ argv: [], env: {} }).performance).toMatchObject({ bulkConcurrency: 2, heapGrowingPercent: 20, keyWorker: true });
    const c = loadConfig({
      argv: [],
      env: { TESSERA_BULK_CONCURRENCY: '5', TESSERA_HEAP_GROWING_PERCENT: '0', TESSERA_KEY_WORKER: 'false' },
    });
    expect(c.performance).toMatchObject({ bulkConcurrency: 5, heapGrowingPercent: 0, keyWorker: false });
    expect(() => loadConfig({ argv: [], env: { TESSERA_BULK_CONCURRENCY: '0' } })).toThrow(/bulkConcurrency/);
    expect(() => loadConfig({ argv: [], env: { TESSERA_HEAP_GROWING_PERCENT: '-5' } })).toThrow(/heapGrowingPercent/);
    expect(loadConfig({ argv: [], env: {} }).server.requestTimeoutMs).toBe(30_000);
    expect(loadConfig({ argv: [], env: { TESSERA_REQUEST_TIMEOUT_MS: '5000' } }).server.requestTimeoutMs).toBe(5000);
    expect(() => loadConfig({ argv: [], env: { TESSERA_REQUEST_TIMEOUT_MS: '10' } })).toThrow(/requestTimeoutMs/);
  });

  it('refuses unknown keys in the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-cfg-'));
    const file = join(dir, 'c.yaml');
    writeFileSync(file, 'server:\n  prot: 1\n');
    expect(() => loadConfig({ argv: ['--config', file], env: {} })).toThrow(/prot/);
  });
});
