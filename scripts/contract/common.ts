// Shared helpers for the contract checks under scripts/contract/: where the repository is, which documents
// are checked, and how a package's command-line tool is run (its bin file under node, no shell, no network).
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The OpenAPI documents every contract check covers, relative to the repository root. */
export const DOCUMENTS = ['openapi/identity.yaml', 'openapi/homeserver.yaml'] as const;

/** Environment for third-party tools: no telemetry, no update or funding notices, no colour codes in output. */
export const QUIET_ENV: NodeJS.ProcessEnv = {
  ...process.env,
  REDOCLY_TELEMETRY: 'off',
  REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true',
  REDOCLY_SUPPRESS_NOTIFICATIONS: 'true',
  SCARF_ANALYTICS: 'false',
  DO_NOT_TRACK: '1',
  NO_COLOR: '1',
  FORCE_COLOR: '0',
  NO_UPDATE_NOTIFIER: '1',
};

/** The JavaScript file behind `bin` `name` of installed package `pkg` (run with this node, so no shell is involved). */
export function binPath(pkg: string, name: string): string {
  const dir = join(root, 'node_modules', pkg);
  const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { bin?: string | Record<string, string> };
  const bin = typeof manifest.bin === 'string' ? manifest.bin : manifest.bin?.[name];
  if (!bin) throw new Error(`${pkg} has no bin named ${name}`);
  return join(dir, bin);
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs `node <script> ...args` in the repository root; never rejects: a failure is in `code`. */
export function runNode(script: string, args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  const started = performance.now();
  return new Promise((done) => {
    execFile(
      process.execPath,
      [script, ...args],
      { cwd: opts.cwd ?? root, env: QUIET_ENV, maxBuffer: 64 * 1024 * 1024, timeout: opts.timeoutMs ?? 170_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        const extra = err && typeof err.code !== 'number' ? `\n${err.message}` : '';
        done({ code, stdout: String(stdout), stderr: String(stderr) + extra, ms: performance.now() - started });
      },
    );
  });
}

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

export function isObject(v: unknown): v is JsonObject {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Escapes one JSON Pointer segment (RFC 6901). */
export function pointerSegment(s: string | number): string {
  return String(s).replace(/~/g, '~0').replace(/\//g, '~1');
}

/** The node a local reference (`#/a/b`) points at in `doc`; throws on anything else or a dangling one. */
export function resolveRef(doc: JsonObject, ref: string): Json {
  if (!ref.startsWith('#')) throw new Error(`only local $refs are supported: ${ref}`);
  let node: Json = doc;
  for (const raw of ref.slice(1).split('/').slice(1)) {
    const part = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    node = Array.isArray(node) ? (node[Number(part)] as Json) : isObject(node) ? (node[part] as Json) : (undefined as unknown as Json);
    if (node === undefined) throw new Error(`dangling $ref ${ref}`);
  }
  return node;
}

/** Follows `$ref` (chains too) until a node without one, and returns that node. */
export function deref(doc: JsonObject, node: Json): Json {
  for (let hops = 0; isObject(node) && typeof node.$ref === 'string'; hops++) {
    if (hops > 50) throw new Error(`$ref chain too long at ${node.$ref}`);
    node = resolveRef(doc, node.$ref);
  }
  return node;
}

export const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;
