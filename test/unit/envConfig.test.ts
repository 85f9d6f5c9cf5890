// Environment variables derived from the schema, the older names kept as aliases, and durations.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFIG_KEYS, ConfigError, envName, loadConfig, parseDuration, type ConfigKey } from '../../src/platform/config.js';
import { formatDuration, getPath } from '../../src/platform/config/keys.js';

/** Every environment variable name Tessera accepted before names were derived from keys; each must keep working. */
const OLD_NAMES: [string, string][] = [
  ['TESSERA_SERVER_NAME', 'server.name'],
  ['TESSERA_PUBLIC_BASE_URL', 'server.publicBaseUrl'],
  ['TESSERA_HOST', 'server.host'],
  ['TESSERA_PORT', 'server.port'],
  ['TESSERA_BODY_LIMIT_BYTES', 'server.bodyLimitBytes'],
  ['TESSERA_V1_ENABLED', 'server.v1Enabled'],
  ['TESSERA_DATA_DIR', 'dataDir'],
  ['TESSERA_DB_URL', 'database.url'],
  ['TESSERA_SQLITE_SYNCHRONOUS', 'database.sqliteSynchronous'],
  ['TESSERA_SQLITE_CACHE_MB', 'database.sqliteCacheMb'],
  ['TESSERA_SQLITE_WAL_AUTOCHECKPOINT', 'database.sqliteWalAutocheckpoint'],
  ['TESSERA_DB_POOL_MAX', 'database.poolMax'],
  ['TESSERA_DB_COMMIT_CONCURRENCY', 'database.commitConcurrency'],
  ['TESSERA_SIGNING_KEY_FILE', 'keys.signingKeyFile'],
  ['TESSERA_SIGNING_KEY', 'keys.signingKey'],
  ['TESSERA_REDACT_CHARS', 'invites.redactChars'],
  ['TESSERA_INVITE_LIFETIME_MS', 'invites.lifetimeMs'],
  ['TESSERA_TRUST_PROXY', 'server.trustProxy'],
  ['TESSERA_REQUEST_TIMEOUT_MS', 'server.requestTimeoutMs'],
  ['TESSERA_RATELIMIT_WINDOW_MS', 'rateLimits.windowMs'],
  ['TESSERA_RATELIMIT_INVITES_PER_IP', 'rateLimits.storeInvitePerIp'],
  ['TESSERA_RATELIMIT_INVITES_PER_SENDER', 'rateLimits.storeInvitePerSender'],
  ['TESSERA_RATELIMIT_INVITES_PER_ADDRESS', 'rateLimits.storeInvitePerAddress'],
  ['TESSERA_RATELIMIT_REQUEST_TOKEN_PER_IP', 'rateLimits.requestTokenPerIp'],
  ['TESSERA_RATELIMIT_REQUEST_TOKEN_PER_ADDRESS', 'rateLimits.requestTokenPerAddress'],
  ['TESSERA_LOG_LEVEL', 'log.level'],
  ['TESSERA_KEY_VALIDITY_CACHE_MS', 'performance.keyValidityCacheMs'],
  ['TESSERA_BULK_CONCURRENCY', 'performance.bulkConcurrency'],
  ['TESSERA_HEAP_GROWING_PERCENT', 'performance.heapGrowingPercent'],
  ['TESSERA_KEY_WORKER', 'performance.keyWorker'],
  ['TESSERA_SESSION_LIFETIME_MS', 'binding.sessionLifetimeMs'],
  ['TESSERA_VALIDATION_TOKEN_LIFETIME_MS', 'binding.tokenLifetimeMs'],
  ['TESSERA_ASSOCIATION_LIFETIME_MS', 'binding.associationLifetimeMs'],
  ['TESSERA_LOOKUP_PEPPER', 'binding.lookupPepper'],
  ['TESSERA_ONBIND_INVITES_PER_CALL', 'onbind.invitesPerCall'],
  ['TESSERA_ONBIND_INITIAL_BACKOFF_MS', 'onbind.initialBackoffMs'],
  ['TESSERA_ONBIND_MAX_BACKOFF_MS', 'onbind.maxBackoffMs'],
  ['TESSERA_ONBIND_LEASE_MS', 'onbind.leaseMs'],
  ['TESSERA_ONBIND_POLL_INTERVAL_MS', 'onbind.pollIntervalMs'],
  ['TESSERA_ONBIND_CONCURRENCY', 'onbind.concurrency'],
  ['TESSERA_ONBIND_GIVE_UP_AFTER_MS', 'onbind.giveUpAfterMs'],
  ['TESSERA_FEDERATION_VERIFY_TLS', 'federation.verifyTls'],
  ['TESSERA_FEDERATION_ALLOW', 'federation.allow'],
  ['TESSERA_FEDERATION_TIMEOUT_MS', 'federation.requestTimeoutMs'],
  ['TESSERA_ACCOUNT_TOKEN_LIFETIME_MS', 'accounts.tokenLifetimeMs'],
  ['TESSERA_ACCOUNT_ALLOWED_SERVERS', 'accounts.allowedServers'],
  ['TESSERA_TERMS_FILE', 'terms.file'],
  ['TESSERA_SMTP_HOST', 'mail.smtp.host'],
  ['TESSERA_SMTP_PORT', 'mail.smtp.port'],
  ['TESSERA_SMTP_TLS', 'mail.smtp.tls'],
  ['TESSERA_SMTP_VERIFY_CERTIFICATES', 'mail.smtp.verifyCertificates'],
  ['TESSERA_SMTP_MAX_CONNECTIONS', 'mail.smtp.maxConnections'],
  ['TESSERA_SMTP_USER', 'mail.smtp.user'],
  ['TESSERA_SMTP_PASSWORD', 'mail.smtp.password'],
  ['TESSERA_MAIL_FROM', 'mail.from'],
  ['TESSERA_TEMPLATES_DIR', 'mail.templatesDir'],
  ['TESSERA_BRAND', 'mail.brand'],
  ['TESSERA_WEB_CLIENT_URL', 'mail.webClientUrl'],
  ['TESSERA_WEB_CLIENT_ALLOWED_HOSTS', 'mail.webClientAllowedHosts'],
  ['TESSERA_MAIL_RETENTION_MS', 'mail.keepFinishedMs'],
];

/** String keys whose pattern or derivation a generic value would not survive. */
const STRING_SAMPLES: Record<string, string> = {
  'server.name': 'is.example.org',
  'server.publicBaseUrl': 'https://is.example.org',
  'server.host': '0.0.0.0',
  dataDir: '/tmp/tessera-env-sample',
  'database.url': 'mysql://u:p@db:3306/x',
  'keys.signingKeyFile': '/tmp/tessera-env-sample/key',
  'terms.file': '/tmp/tessera-env-sample/terms.yaml',
  'mail.from': 'Sample <is@example.org>',
  'mail.templatesDir': '/tmp/tessera-env-sample/templates',
  'mail.brand': 'acme',
  'mail.webClientUrl': 'https://chat.example.org',
  'mail.messageIdDomain': 'mid.example.org',
  'binding.lookupPepper': 'pepper',
};

/** A valid value for the key that differs from its default and survives the derived-default step unchanged. */
function sample(key: ConfigKey): unknown {
  const s = key.schema;
  switch (key.kind) {
    case 'integer':
    case 'duration': {
      const min = (s.minimum as number | undefined) ?? 0;
      const max = (s.maximum as number | undefined) ?? Number.MAX_SAFE_INTEGER;
      const v = Math.min(min + 7000, max);
      return v === key.default ? v - 1 : v;
    }
    case 'boolean':
      return !key.default;
    case 'list':
      return ['a.example', 'b.example'];
    case 'json':
      return [{ keyId: 'ed25519:old', publicKey: 'A'.repeat(43) }];
    case 'string':
      if (Array.isArray(s.enum)) return (s.enum as string[]).find((v) => v !== key.default);
      if (STRING_SAMPLES[key.path] !== undefined) return STRING_SAMPLES[key.path];
      if (s.pattern && !new RegExp(s.pattern as string).test('sample text')) expect.unreachable(`give ${key.path} a sample value`);
      return 'sample text';
  }
}

const asEnv = (v: unknown) =>
  typeof v === 'string' ? v : Array.isArray(v) ? (typeof v[0] === 'string' ? v.join(',') : JSON.stringify(v)) : String(v);

describe('environment variable names', () => {
  it('derives each name from the key path by one rule', () => {
    expect(envName('server.publicBaseUrl')).toBe('TESSERA_SERVER_PUBLIC_BASE_URL');
    expect(envName('mail.smtp.host')).toBe('TESSERA_MAIL_SMTP_HOST');
    expect(envName('server.v1Enabled')).toBe('TESSERA_SERVER_V1_ENABLED');
    expect(envName('dataDir')).toBe('TESSERA_DATA_DIR');
    for (const key of CONFIG_KEYS) expect(key.env).toBe(envName(key.path));
  });

  it('reads every key from its derived variable', () => {
    const env: Record<string, string> = {};
    const want: Record<string, unknown> = {};
    for (const key of CONFIG_KEYS) {
      want[key.path] = sample(key);
      env[key.env] = asEnv(want[key.path]);
    }
    const c = loadConfig({ argv: [], env }) as unknown as Record<string, unknown>;
    for (const key of CONFIG_KEYS) expect(getPath(c, key.path), key.env).toEqual(want[key.path]);
  });

  it('still accepts every older name, each as an alias of the same key', () => {
    const byPath = new Map(CONFIG_KEYS.map((k) => [k.path, k]));
    for (const [name, path] of OLD_NAMES) {
      const key = byPath.get(path)!;
      expect([key.env, ...key.aliases], name).toContain(name);
      const value = sample(key);
      const env: Record<string, string> = { [name]: asEnv(value) };
      if (path === 'mail.smtp.host') env.TESSERA_MAIL_FROM = 'is@example.org';
      expect(getPath(loadConfig({ argv: [], env }) as unknown as Record<string, unknown>, path), name).toEqual(value);
    }
    // No alias beyond the older names, and none that merely repeats the derived name.
    const aliases = CONFIG_KEYS.flatMap((k) => k.aliases);
    expect(aliases.every((a) => OLD_NAMES.some(([n]) => n === a))).toBe(true);
    expect(CONFIG_KEYS.filter((k) => k.aliases.includes(k.env))).toEqual([]);
  });

  it('gives every variable to one key, and never takes TESSERA_CONFIG', () => {
    const all = CONFIG_KEYS.flatMap((k) => [k.env, ...k.aliases]);
    expect(new Set(all).size).toBe(all.length);
    expect(all).not.toContain('TESSERA_CONFIG');
  });

  it('lets the derived name win over an alias, and treats an empty variable as unset', () => {
    expect(loadConfig({ argv: [], env: { TESSERA_PORT: '9100', TESSERA_SERVER_PORT: '9200' } }).server.port).toBe(9200);
    expect(loadConfig({ argv: [], env: { TESSERA_PORT: '9100', TESSERA_SERVER_PORT: '' } }).server.port).toBe(9100);
    expect(loadConfig({ argv: [], env: { TESSERA_SERVER_HOST: '' } }).server.host).toBe('127.0.0.1');
  });

  it('names the variable in the problem when its value is out of range, and reads JSON for lists of objects', () => {
    expect(() => loadConfig({ argv: [], env: { TESSERA_DB_POOL_MAX: '0' } })).toThrow(
      /database\.poolMax \(TESSERA_DB_POOL_MAX\): must be >= 1/,
    );
    expect(() => loadConfig({ argv: [], env: { TESSERA_KEYS_TRUSTED_OLD_KEYS: '[{' } })).toThrow(
      /TESSERA_KEYS_TRUSTED_OLD_KEYS must be JSON/,
    );
    expect(() => loadConfig({ argv: [], env: { TESSERA_KEYS_TRUSTED_OLD_KEYS: '[{"keyId":"x"}]' } })).toThrow(/keys\.trustedOldKeys/);
    expect(() => loadConfig({ argv: [], env: { TESSERA_LOG_LEVEL: 'loud' } })).toThrow(
      /log\.level \(TESSERA_LOG_LEVEL\): must be one of debug, info, warn, error, silent/,
    );
  });
});

describe('durations', () => {
  it('parses and formats the duration syntax', () => {
    expect([
      parseDuration('1500'),
      parseDuration('500ms'),
      parseDuration('30s'),
      parseDuration('10m'),
      parseDuration('3h'),
      parseDuration('3d'),
    ]).toEqual([1500, 500, 30_000, 600_000, 3 * 3_600_000, 3 * 86_400_000]);
    for (const bad of ['', '1.5h', '-3s', '3 d', '3D', '1h30m', 'soon', '99999999999999d']) expect(parseDuration(bad), bad).toBeUndefined();
    expect([formatDuration(7_776_000_000), formatDuration(90_000), formatDuration(1500), formatDuration(0)]).toEqual([
      '90d',
      '90s',
      '1500ms',
      '0ms',
    ]);
  });

  it('makes every millisecond key a duration', () => {
    const ms = CONFIG_KEYS.filter((k) => k.path.endsWith('Ms'));
    expect(ms.length).toBeGreaterThan(0);
    expect(ms.filter((k) => k.kind !== 'duration').map((k) => k.path)).toEqual([]);
    expect(CONFIG_KEYS.filter((k) => k.kind === 'duration' && !k.path.endsWith('Ms')).map((k) => k.path)).toEqual([]);
  });

  it('accepts durations in the file and the environment, and keeps milliseconds in Config', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'tessera-cfg-')), 'c.yaml');
    writeFileSync(
      file,
      'server:\n  requestTimeoutMs: "45s"\ninvites:\n  lifetimeMs: 30d\n  sweepIntervalMs: 120000\nmail:\n  retryBaseMs: 500ms\n  leaseMs: "60000"\n',
    );
    const c = loadConfig({
      argv: ['--config', file],
      env: { TESSERA_ONBIND_LEASE_MS: '10m', TESSERA_ACCOUNT_TOKEN_LIFETIME_MS: '3h', TESSERA_MAIL_POLL_INTERVAL_MS: '2500' },
    });
    expect(c.server.requestTimeoutMs).toBe(45_000);
    expect(c.invites.lifetimeMs).toBe(30 * 86_400_000);
    expect(c.invites.sweepIntervalMs).toBe(120_000);
    // retryBaseMs is mail.initialBackoffMs's former name, still accepted
    expect(c.mail.initialBackoffMs).toBe(500);
    expect(c.mail.leaseMs).toBe(60_000);
    expect(c.onbind.leaseMs).toBe(600_000);
    expect(c.accounts.tokenLifetimeMs).toBe(3 * 3_600_000);
    expect(c.mail.pollIntervalMs).toBe(2500);
    // giveUpAfterMs 0 still follows the invitation lifetime, now given as a duration
    expect(c.onbind.giveUpAfterMs).toBe(30 * 86_400_000);
  });

  it('reports every bad duration, from the file and the environment, in one ConfigError', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'tessera-cfg-')), 'c.yaml');
    writeFileSync(
      file,
      'invites:\n  lifetimeMs: 3 days\nmail:\n  maxBackoffMs: 1.5h\n  leaseMs: true\nserver:\n  requestTimeoutMs: 500ms\n',
    );
    try {
      loadConfig({
        argv: ['--config', file],
        env: { TESSERA_SERVER_REQUEST_TIMEOUT_MS: '', TESSERA_ONBIND_LEASE_MS: '10x', TESSERA_INVITE_LIFETIME_MS: '' },
      });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const problems = (err as ConfigError).problems;
      expect(problems).toHaveLength(5);
      const text = problems.join('\n');
      expect(text).toContain(
        'invites.lifetimeMs: must be a whole number of milliseconds or a duration such as 500ms, 30s, 10m, 3h, 3d, got "3 days"',
      );
      expect(text).toContain('mail.maxBackoffMs: must be');
      expect(text).toContain('mail.leaseMs: must be a whole number of milliseconds or a duration');
      expect(text).toContain('server.requestTimeoutMs: must be at least 1s (1000 ms)');
      expect(text).toContain(
        'TESSERA_ONBIND_LEASE_MS must be a whole number of milliseconds or a duration such as 500ms, 30s, 10m, 3h, 3d, got "10x"',
      );
    }
  });
});
