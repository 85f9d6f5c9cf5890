// Configuration: defaults <- optional YAML/JSON file (--config or TESSERA_CONFIG) <- TESSERA_* environment.
// Every key is declared once, in config/schema.ts; docs/configuration.md is generated from it.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { Ajv, type ErrorObject } from 'ajv';
import { ANNOTATIONS, ConfigSchema, type Config, type MailConfig } from './config/schema.js';
import {
  CONFIG_KEYS,
  DURATION_SYNTAX,
  defaults,
  envName,
  formatDuration,
  getPath,
  isObject,
  parseDuration,
  parseEnvValue,
  setPath,
} from './config/keys.js';

export type { Config, LogLevel, MailConfig } from './config/schema.js';
export { CONFIG_KEYS, defaults, envName, parseDuration, type ConfigKey } from './config/keys.js';

type DeepPartial<T> = { [K in keyof T]?: T[K] extends (infer U)[] ? U[] : T[K] extends object ? DeepPartial<T[K]> : T[K] };
export type ConfigInput = DeepPartial<Config>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

export interface LoadOptions {
  argv?: string[];
  env?: NodeJS.ProcessEnv;
  /** Applied last; tests use it. */
  overrides?: ConfigInput;
}

type Validator = ReturnType<Ajv['compile']>;
let cachedValidator: WeakRef<Validator> | undefined;

/**
 * The schema's validator, held weakly: a server loads its configuration once, and a compiled validator kept for
 * the process's life would hold several MiB for nothing; a process that loads often (tests) reuses it while alive.
 */
function compileValidator(): Validator {
  const cached = cachedValidator?.deref();
  if (cached) return cached;
  const ajv = new Ajv({ allErrors: true });
  ajv.addVocabulary([...ANNOTATIONS]);
  const validate = ajv.compile(ConfigSchema);
  cachedValidator = new WeakRef(validate);
  return validate;
}

function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    out[k] = isObject(v) && isObject(out[k]) ? merge(out[k] as Record<string, unknown>, v) : v;
  }
  return out;
}

/**
 * The TESSERA_* variables that are set (an empty one counts as unset). A key's own name wins over its aliases.
 * `sources` learns which variable set each key, so that a validation problem can name it.
 */
function fromEnv(env: NodeJS.ProcessEnv, problems: string[], sources: Map<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of CONFIG_KEYS) {
    const name = [key.env, ...key.aliases].find((n) => env[n] !== undefined && env[n] !== '');
    if (name === undefined) continue;
    const raw = env[name]!;
    const read = parseEnvValue(key.kind, raw);
    if ('problem' in read) {
      problems.push(`${name} ${read.problem}, got ${JSON.stringify(raw)}`);
      continue;
    }
    setPath(out, key.path, read.value);
    sources.set(key.path, name);
  }
  return out;
}

/** Replaces duration strings in the file (`30s`) by milliseconds; a value that is no duration is reported and dropped. */
function fileDurations(file: Record<string, unknown>, problems: string[]): void {
  for (const key of CONFIG_KEYS) {
    if (key.kind !== 'duration') continue;
    const value = getPath(file, key.path);
    if (typeof value !== 'string') continue;
    const ms = parseDuration(value);
    if (ms === undefined) problems.push(`${key.path}: must be ${DURATION_SYNTAX}, got ${JSON.stringify(value)}`);
    setPath(file, key.path, ms);
  }
}

/** Moves values given under a key's former path (`formerly` in the schema) to its path; the current name wins. */
function renameFormerKeys(input: Record<string, unknown>): void {
  for (const key of CONFIG_KEYS) {
    if (!key.formerly) continue;
    const value = getPath(input, key.formerly);
    if (value === undefined) continue;
    const [parent, leaf] = [key.formerly.split('.').slice(0, -1).join('.'), key.formerly.split('.').pop()!];
    const holder = (parent ? getPath(input, parent) : input) as Record<string, unknown>;
    delete holder[leaf];
    if (getPath(input, key.path) === undefined) setPath(input, key.path, value);
  }
}

/** One ajv error as `path (VARIABLE): message`, in the key's own terms. */
function problemOf(e: ErrorObject, sources: Map<string, string>): string {
  const where = e.instancePath.replace(/^\//, '').replace(/\//g, '.');
  const key = CONFIG_KEYS.find((k) => where === k.path || where.startsWith(`${k.path}.`));
  const from = key && sources.has(key.path) ? ` (${sources.get(key.path)})` : '';
  let message = e.message ?? 'invalid';
  if (e.keyword === 'additionalProperties') message += ` (${(e.params as { additionalProperty: string }).additionalProperty})`;
  if (e.keyword === 'enum') message = `must be one of ${(e.params as { allowedValues: string[] }).allowedValues.join(', ')}`;
  if (key?.kind === 'duration') message = durationMessage(e) ?? message;
  return `${where || '(top level)'}${from}: ${message}`;
}

/** A duration's limits in its own unit, and its syntax when the value is no number. */
function durationMessage(e: ErrorObject): string | undefined {
  if (e.keyword === 'type') return `must be ${DURATION_SYNTAX}`;
  if (e.keyword !== 'minimum' && e.keyword !== 'maximum') return undefined;
  const limit = (e.params as { limit: number }).limit;
  return `must be ${e.keyword === 'minimum' ? 'at least' : 'at most'} ${formatDuration(limit)} (${limit} ms)`;
}

/** Builds the effective configuration, or throws ConfigError listing every problem at once. */
export function loadConfig(opts: LoadOptions = {}): Config {
  const env = opts.env ?? process.env;
  const argv = opts.argv ?? process.argv.slice(2);
  const problems: string[] = [];
  const sources = new Map<string, string>();
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
  renameFormerKeys(fileConfig);
  fileDurations(fileConfig, problems);
  let merged = merge(defaults() as unknown as Record<string, unknown>, fileConfig);
  merged = merge(merged, fromEnv(env, problems, sources));
  const overrides = structuredClone((opts.overrides ?? {}) as Record<string, unknown>);
  renameFormerKeys(overrides);
  merged = merge(merged, overrides);
  const validate = compileValidator();
  if (!validate(merged)) for (const e of validate.errors ?? []) problems.push(problemOf(e, sources));
  problems.push(...mailProblems(merged), ...leaseProblems(merged));
  if (problems.length > 0) throw new ConfigError(problems);
  return finish(merged as unknown as Config);
}

/** A lease renewed no more often than it lasts would run out under a worker that is alive and working. */
function leaseProblems(merged: Record<string, unknown>): string[] {
  const problems: string[] = [];
  for (const section of ['mail', 'onbind'] as const) {
    const s = merged[section] as { leaseMs?: unknown; leaseRenewMs?: unknown } | undefined;
    if (typeof s?.leaseMs === 'number' && typeof s.leaseRenewMs === 'number' && s.leaseRenewMs > 0 && s.leaseRenewMs >= s.leaseMs)
      problems.push(
        `${section}.leaseRenewMs: must be less than ${section}.leaseMs (${s.leaseMs} ms) (${envName(`${section}.leaseRenewMs`)}, ${envName(`${section}.leaseMs`)})`,
      );
  }
  return problems;
}

/** Cross-field mail rules the schema cannot say. */
function mailProblems(merged: Record<string, unknown>): string[] {
  const mail = merged.mail as Partial<MailConfig> | undefined;
  if (!mail?.from)
    return mail?.smtp?.host ? [`mail.from: a From address is required when mail.smtp.host is set (${envName('mail.from')})`] : [];
  const plain = /^[^<>@\s]+@[^<>@\s]+$/;
  const named = /^[^<>]*<[^<>@\s]+@[^<>@\s]+>$/;
  return plain.test(mail.from.trim()) || named.test(mail.from.trim()) ? [] : ['mail.from: must be an address or "Name <address>"'];
}

/** Fills in the settings derived from others (each key's `derived` in the schema says how). */
function finish(c: Config): Config {
  const dataDir = resolve(c.dataDir);
  const host = c.server.host === '0.0.0.0' || c.server.host === '::' ? '127.0.0.1' : c.server.host;
  const publicBaseUrl = (c.server.publicBaseUrl || `http://${host.includes(':') ? `[${host}]` : host}:${c.server.port}`).replace(
    /\/+$/,
    '',
  );
  return {
    ...c,
    dataDir,
    server: { ...c.server, publicBaseUrl, name: c.server.name || new URL(publicBaseUrl).host },
    metrics: { ...c.metrics, host: c.metrics.host || c.server.host },
    database: { ...c.database, url: c.database.url || join(dataDir, 'tessera.sqlite') },
    keys: { ...c.keys, signingKeyFile: c.keys.signingKeyFile || join(dataDir, 'signing.key') },
    mail: { ...finishMail(c.mail, new URL(publicBaseUrl).hostname), leaseRenewMs: renewalOf(c.mail) },
    // An onbind is useless once its invitations have expired: by default give up retrying then.
    onbind: { ...c.onbind, giveUpAfterMs: c.onbind.giveUpAfterMs || c.invites.lifetimeMs, leaseRenewMs: renewalOf(c.onbind) },
  };
}

/** Three renewals per lease by default: a lease survives two missed renewals (a busy database, a long pause). */
function renewalOf(s: { leaseMs: number; leaseRenewMs: number }): number {
  return s.leaseRenewMs || Math.max(1, Math.floor(s.leaseMs / 3));
}

function finishMail(m: MailConfig, publicHost: string): MailConfig {
  const domain = m.messageIdDomain || publicHost.replace(/^\[|\]$/g, '').replace(/[^A-Za-z0-9.-]/g, '-');
  return {
    ...m,
    from: m.from || `Tessera <noreply@${publicHost.includes('.') ? publicHost : `${publicHost}.invalid`}>`,
    templatesDir: m.templatesDir ? resolve(m.templatesDir) : '',
    webClientUrl: m.webClientUrl.replace(/\/+$/, ''),
    webClientAllowedHosts: m.webClientAllowedHosts.map((h) => h.toLowerCase()),
    messageIdDomain: domain,
  };
}
