// What every operator command gets, and the failures it may end with (commands.ts maps them to exit codes).
import type { Config } from '../platform/config.js';
import type { Database } from '../platform/db/Database.js';
import type { Stores } from '../service.js';

export class UsageError extends Error {}

/** A failure the command reports as is, with its exit code. */
export class CommandError extends Error {
  constructor(
    message: string,
    readonly exitCode: 1 | 3,
  ) {
    super(message);
  }
}

export interface Context {
  config: Config;
  /** Opens the database (migrated) and its stores; closed when the command ends. */
  open(): Promise<{ db: Database; stores: Stores }>;
  out(line: string): void;
  now(): number;
  sleep(ms: number): Promise<void>;
}

/** Rows as aligned columns under a header. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows].map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n');
}

/** A time as an operator reads it: ISO 8601, to the second. */
export const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
