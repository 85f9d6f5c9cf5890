// Configuration: defaults <- optional YAML/JSON file (--config or TESSERA_CONFIG) <- TESSERA_* environment.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { Ajv } from 'ajv';
import type { LogLevel } from './util/logger.js';

export interface Config {
  server: {
    /** The name signatures are made under; homeservers look our keys up by it. */
    name: string;
    /** Absolute URL clients and homeservers reach us at; key_validity_urls and links are built from it. */
    publicBaseUrl: string;
    host: string;
    port: number;
    /** Largest request body accepted, in bytes. */
    bodyLimitBytes: number;
    /** Serve /_matrix/identity/api/v1 (removed from the spec in v1.1, still sent by older homeservers). */
    v1Enabled: boolean;
  };
  /** SQLite database, signing key and the mail folder live here unless configured elsewhere. */
  dataDir: string;
  database: {
    /** Empty: SQLite at <dataDir>/tessera.sqlite. Else mysql://user:pass@host:3306/db or sqlite:/path. */
    url: string;
    sqliteSynchronous: 'full' | 'normal';
    poolMax: number;
  };
  keys: {
    /** Empty: <dataDir>/signing.key, generated on first start. */
    signingKeyFile: string;
    /** The key itself (`ed25519 0 <base64 seed>`), instead of a file. */
    signingKey: string;
    /** Rotated-out keys that /pubkey/isvalid still reports valid. */
    trustedOldKeys: { keyId: string; publicKey: string }[];
  };
  invites: {
    /** Characters of each address part kept in display_name (Sydent default 3; large providers use 1). */
    redactChars: number;
    /** How long an invitation and its ephemeral key stay valid. */
    lifetimeMs: number;
    /** Invitations whose sender is on one of these homeservers are refused. */
    blockedServers: string[];
    /** Invitations into these rooms are refused. */
    blockedRooms: string[];
    /** How often expired invitations are deleted. */
    sweepIntervalMs: number;
  };
  log: { level: LogLevel };
  /** Issue 6: request-path speed-ups that are switchable because they trade something. */
  performance: {
    /** How long an ephemeral-key validity answer may be reused in memory, ms (0 = never, at most 1000). */
    keyValidityCacheMs: number;
  };
}

type DeepPartial<T> = { [K in keyof T]?: T[K] extends (infer U)[] ? U[] : T[K] extends object ? DeepPartial<T[K]> : T[K] };
export type ConfigInput = DeepPartial<Config>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

const DAY = 24 * 3600 * 1000;

export function defaults(): Config {
  return {
    server: { name: '', publicBaseUrl: '', host: '127.0.0.1', port: 8090, bodyLimitBytes: 64 * 1024, v1Enabled: true },
    dataDir: './data',
    database: { url: '', sqliteSynchronous: 'full', poolMax: 8 },
    keys: { signingKeyFile: '', signingKey: '', trustedOldKeys: [] },
    invites: { redactChars: 3, lifetimeMs: 90 * DAY, blockedServers: [], blockedRooms: [], sweepIntervalMs: 3600 * 1000 },
    log: { level: 'info' },
    performance: { keyValidityCacheMs: 1000 },
  };
}

type EnvKind = 'string' | 'int' | 'bool' | 'list';
/** Environment variable -> config path. Operators and test harnesses drive Tessera with these. */
export const ENV_VARS: [string, string, EnvKind][] = [
  ['TESSERA_SERVER_NAME', 'server.name', 'string'],
  ['TESSERA_PUBLIC_BASE_URL', 'server.publicBaseUrl', 'string'],
  ['TESSERA_HOST', 'server.host', 'string'],
  ['TESSERA_PORT', 'server.port', 'int'],
  ['TESSERA_BODY_LIMIT_BYTES', 'server.bodyLimitBytes', 'int'],
  ['TESSERA_V1_ENABLED', 'server.v1Enabled', 'bool'],
  ['TESSERA_DATA_DIR', 'dataDir', 'string'],
  ['TESSERA_DB_URL', 'database.url', 'string'],
  ['TESSERA_SQLITE_SYNCHRONOUS', 'database.sqliteSynchronous', 'string'],
  ['TESSERA_DB_POOL_MAX', 'database.poolMax', 'int'],
  ['TESSERA_SIGNING_KEY_FILE', 'keys.signingKeyFile', 'string'],
  ['TESSERA_SIGNING_KEY', 'keys.signingKey', 'string'],
  ['TESSERA_REDACT_CHARS', 'invites.redactChars', 'int'],
  ['TESSERA_INVITE_LIFETIME_MS', 'invites.lifetimeMs', 'int'],
  ['TESSERA_LOG_LEVEL', 'log.level', 'string'],
  ['TESSERA_KEY_VALIDITY_CACHE_MS', 'performance.keyValidityCacheMs', 'int'],
];

const SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    server: {
      type: 'object',
      additionalProperties: false,
      properties: {
        name: { type: 'string', pattern: '^[A-Za-z0-9.:\\[\\]-]*$' },
        publicBaseUrl: { type: 'string', pattern: '^(https?://[^/?#]+/?)?$' },
        host: { type: 'string', minLength: 1 },
        port: { type: 'integer', minimum: 0, maximum: 65535 },
        bodyLimitBytes: { type: 'integer', minimum: 1024 },
        v1Enabled: { type: 'boolean' },
      },
    },
    dataDir: { type: 'string', minLength: 1 },
    database: {
      type: 'object',
      additionalProperties: false,
      properties: {
        url: { type: 'string', pattern: '^($|(mysql|mariadb)://|sqlite:|[^:]*$)' },
        sqliteSynchronous: { enum: ['full', 'normal'] },
        poolMax: { type: 'integer', minimum: 1, maximum: 256 },
      },
    },
    keys: {
      type: 'object',
      additionalProperties: false,
      properties: {
        signingKeyFile: { type: 'string' },
        signingKey: { type: 'string' },
        trustedOldKeys: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['keyId', 'publicKey'],
            properties: { keyId: { type: 'string', pattern: '^ed25519:[A-Za-z0-9_]+$' }, publicKey: { type: 'string', minLength: 43 } },
          },
        },
      },
    },
    invites: {
      type: 'object',
      additionalProperties: false,
      properties: {
        redactChars: { type: 'integer', minimum: 1, maximum: 64 },
        lifetimeMs: { type: 'integer', minimum: 60_000 },
        blockedServers: { type: 'array', items: { type: 'string' } },
        blockedRooms: { type: 'array', items: { type: 'string' } },
        sweepIntervalMs: { type: 'integer', minimum: 1000 },
      },
    },
    log: { type: 'object', additionalProperties: false, properties: { level: { enum: ['debug', 'info', 'warn', 'error', 'silent'] } } },
    performance: {
      type: 'object',
      additionalProperties: false,
      properties: { keyValidityCacheMs: { type: 'integer', minimum: 0, maximum: 1000 } },
    },
  },
};

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    out[k] = isObject(v) && isObject(out[k]) ? merge(out[k] as Record<string, unknown>, v) : v;
  }
  return out;
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let cur = target;
  for (const p of parts.slice(0, -1)) {
    if (!isObject(cur[p])) cur[p] = {};
    cur = cur[p] as Record<string, unknown>;
  }
  cur[parts[parts.length - 1]!] = value;
}

function fromEnv(env: NodeJS.ProcessEnv, problems: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, path, kind] of ENV_VARS) {
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    let value: unknown = raw;
    if (kind === 'int') {
      value = /^-?\d+$/.test(raw.trim()) ? Number(raw) : NaN;
      if (Number.isNaN(value)) problems.push(`${name} must be an integer, got ${JSON.stringify(raw)}`);
    } else if (kind === 'bool') {
      const v = raw.trim().toLowerCase();
      value = ['1', 'true', 'yes', 'on'].includes(v) ? true : ['0', 'false', 'no', 'off'].includes(v) ? false : undefined;
      if (value === undefined) problems.push(`${name} must be true or false, got ${JSON.stringify(raw)}`);
    } else if (kind === 'list') {
      value = raw.split(',').map((s) => s.trim()).filter(Boolean);
    }
    if (value !== undefined && !Number.isNaN(value)) setPath(out, path, value);
  }
  return out;
}

export interface LoadOptions {
  argv?: string[];
  env?: NodeJS.ProcessEnv;
  /** Applied last; tests use it. */
  overrides?: ConfigInput;
}

/** Builds the effective configuration, or throws ConfigError listing every problem at once. */
export function loadConfig(opts: LoadOptions = {}): Config {
  const env = opts.env ?? process.env;
  const argv = opts.argv ?? process.argv.slice(2);
  const problems: string[] = [];
  let fileConfig: Record<string, unknown> = {};
  const flag = argv.indexOf('--config');
  const file = flag >= 0 ? argv[flag + 1] : env.TESSERA_CONFIG;
  if (file) {
    try {
      const parsed = parseYaml(readFileSync(file, 'utf8')) as unknown;
      if (parsed !== null && !isObject(parsed)) problems.push(`${file}: the config file must hold a mapping`);
      else fileConfig = parsed ?? {};
    } catch (err) {
      problems.push(`${file}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  let merged = merge(defaults() as unknown as Record<string, unknown>, fileConfig);
  merged = merge(merged, fromEnv(env, problems));
  merged = merge(merged, (opts.overrides ?? {}) as Record<string, unknown>);
  const validate = new Ajv({ allErrors: true }).compile(SCHEMA);
  if (!validate(merged)) {
    for (const e of validate.errors ?? []) {
      const where = e.instancePath.replace(/^\//, '').replace(/\//g, '.') || '(top level)';
      const extra = e.keyword === 'additionalProperties' ? ` (${(e.params as { additionalProperty: string }).additionalProperty})` : '';
      problems.push(`${where}: ${e.message ?? 'invalid'}${extra}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return finish(merged as unknown as Config);
}

/** Fills in the settings derived from others. */
function finish(c: Config): Config {
  const dataDir = resolve(c.dataDir);
  const host = c.server.host === '0.0.0.0' || c.server.host === '::' ? '127.0.0.1' : c.server.host;
  const publicBaseUrl = (c.server.publicBaseUrl || `http://${host.includes(':') ? `[${host}]` : host}:${c.server.port}`).replace(/\/+$/, '');
  return {
    ...c,
    dataDir,
    server: { ...c.server, publicBaseUrl, name: c.server.name || new URL(publicBaseUrl).host },
    database: { ...c.database, url: c.database.url || join(dataDir, 'tessera.sqlite') },
    keys: { ...c.keys, signingKeyFile: c.keys.signingKeyFile || join(dataDir, 'signing.key') },
  };
}
