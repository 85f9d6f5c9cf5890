// The schema's keys as a flat list, with what follows from each: environment variable names, how an environment
// value is read, the default. Also the duration syntax every millisecond key accepts.
import type { TSchema } from '@sinclair/typebox';
import { ConfigSchema, type Config } from './schema.js';

/** How a value is written in the environment (and, for durations, in the file). */
export type ValueKind = 'string' | 'integer' | 'duration' | 'boolean' | 'list' | 'json';

export interface ConfigKey {
  /** Dotted path in Config, e.g. mail.smtp.host. */
  path: string;
  /** TESSERA_ + the path in UPPER_SNAKE_CASE. */
  env: string;
  /** Other names that also set the key; `env` wins when both are set. */
  aliases: string[];
  kind: ValueKind;
  default: unknown;
  /** How an empty default is filled in from other keys. */
  derived?: string;
  /** The key's former path, still accepted in files and overrides. */
  formerly?: string;
  description: string;
  schema: TSchema;
}

/** The one rule: server.publicBaseUrl -> TESSERA_SERVER_PUBLIC_BASE_URL, mail.smtp.host -> TESSERA_MAIL_SMTP_HOST. */
export function envName(path: string): string {
  const segments = path.split('.').map((s) => s.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase());
  return `TESSERA_${segments.join('_')}`;
}

function kindOf(s: TSchema): ValueKind {
  if (s.unit === 'ms') return 'duration';
  if (s.type === 'integer') return 'integer';
  if (s.type === 'boolean') return 'boolean';
  if (s.type === 'array') return (s.items as TSchema).type === 'string' ? 'list' : 'json';
  return 'string';
}

function collect(section: TSchema, prefix: string, out: ConfigKey[]): ConfigKey[] {
  for (const [name, s] of Object.entries(section.properties as Record<string, TSchema>)) {
    const path = prefix + name;
    if (s.type === 'object') {
      collect(s, `${path}.`, out);
      continue;
    }
    out.push({
      path,
      env: envName(path),
      aliases: (s.aliases as string[] | undefined) ?? [],
      kind: kindOf(s),
      default: s.default,
      derived: s.derived as string | undefined,
      formerly: s.formerly as string | undefined,
      description: s.description ?? '',
      schema: s,
    });
  }
  return out;
}

/** Every key of the configuration, in schema order. */
export const CONFIG_KEYS: readonly ConfigKey[] = collect(ConfigSchema, '', []);

/** The schema's nested sections (objects), with their descriptions, in schema order. */
export function sections(): { path: string; description: string }[] {
  const out: { path: string; description: string }[] = [];
  const walk = (s: TSchema, prefix: string) => {
    for (const [name, sub] of Object.entries(s.properties as Record<string, TSchema>)) {
      if (sub.type !== 'object') continue;
      out.push({ path: prefix + name, description: sub.description ?? '' });
      walk(sub, `${prefix}${name}.`);
    }
  };
  walk(ConfigSchema, '');
  return out;
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function getPath(source: Record<string, unknown>, path: string): unknown {
  let cur: unknown = source;
  for (const p of path.split('.')) cur = isObject(cur) ? cur[p] : undefined;
  return cur;
}

export function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let cur = target;
  for (const p of parts.slice(0, -1)) {
    if (!isObject(cur[p])) cur[p] = {};
    cur = cur[p] as Record<string, unknown>;
  }
  cur[parts[parts.length - 1]!] = value;
}

/** Every key at its default (before the defaults derived from other keys are filled in). */
export function defaults(): Config {
  const out: Record<string, unknown> = {};
  for (const key of CONFIG_KEYS) setPath(out, key.path, structuredClone(key.default));
  return out as Config;
}

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
export const DURATION_SYNTAX = 'a whole number of milliseconds or a duration such as 500ms, 30s, 10m, 3h, 3d';

/** `1500`, `500ms`, `30s`, `10m`, `3h`, `3d` -> milliseconds; undefined when it is none of those. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) return undefined;
  const ms = Number(m[1]) * UNIT_MS[(m[2] ?? 'ms') as keyof typeof UNIT_MS];
  return Number.isSafeInteger(ms) ? ms : undefined;
}

/** The shortest exact spelling: 7776000000 -> 90d, 90000 -> 90s, 1500 -> 1500ms. */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) if (ms !== 0 && ms % UNIT_MS[unit] === 0) return `${ms / UNIT_MS[unit]}${unit}`;
  return `${ms}ms`;
}

const TRUE = ['1', 'true', 'yes', 'on'];
const FALSE = ['0', 'false', 'no', 'off'];

/** Reads one environment value for a key of the given kind: the value, or what is wrong with it. */
export function parseEnvValue(kind: ValueKind, raw: string): { value: unknown } | { problem: string } {
  const text = raw.trim();
  switch (kind) {
    case 'string':
      return { value: raw };
    case 'integer':
      return /^-?\d+$/.test(text) ? { value: Number(text) } : { problem: 'must be an integer' };
    case 'duration': {
      // A negative number is passed on, so that validation names the key's lower limit.
      const ms = /^-\d+$/.test(text) ? Number(text) : parseDuration(text);
      return ms === undefined ? { problem: `must be ${DURATION_SYNTAX}` } : { value: ms };
    }
    case 'boolean': {
      const v = text.toLowerCase();
      return TRUE.includes(v) ? { value: true } : FALSE.includes(v) ? { value: false } : { problem: 'must be true or false' };
    }
    case 'list':
      return {
        value: raw
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean),
      };
    case 'json':
      try {
        return { value: JSON.parse(raw) as unknown };
      } catch (err) {
        return { problem: `must be JSON (${(err as Error).message})` };
      }
  }
}
