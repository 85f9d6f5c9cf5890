#!/usr/bin/env node
// npm run import-sydent -- --sydent-config sydent.conf [--sydent-db sydent.db] [--dry-run] [--write-config FILE]
// (or node dist/src/sydent/cli.js ...): moves a Sydent deployment to Tessera. docs/moving-from-sydent.md.
//
// Exit codes: 0 imported (or nothing left to import); 1 refused, nothing written (not a Sydent database, an
// unknown schema, conflicting rows, another signing key or pepper); 2 usage or configuration error.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { ConfigError, loadConfig, type Config } from '../platform/config.js';
import { Database } from '../platform/db/Database.js';
import { createLogger } from '../platform/logger.js';
import { writeNewPrivateFile } from '../platform/privateFile.js';
import { Terms } from '../accounts/terms.js';
import { KnexSigningKeyStore } from '../keys/SigningKeyStore.js';
import { iniValue, parseIni, type Ini } from './ini.js';
import { ImportError } from './errors.js';
import { openSydent, readSydent, type TableReport } from './snapshot.js';
import { importSydent, type Progress } from './importer.js';
import { planSigningKey, sydentKey, tesseraConfigFromSydent, writeSigningKey } from './config.js';

const usage = `usage: npm run import-sydent -- --sydent-config sydent.conf [--sydent-db sydent.db] [--dry-run] [--write-config FILE] [--config TESSERA.yaml]

Reads Sydent's configuration and database (read-only), writes its bindings, lookup pepper, pending invitations,
ephemeral keys, access tokens, accepted terms and live validation sessions into the database Tessera is configured
with (--config, TESSERA_*), and prints a Tessera configuration for the deployment (or writes it to a new FILE).
  --sydent-db FILE     Sydent's database (default: [db] db.file of sydent.conf; a relative path is looked for
                       from sydent.conf's folder, then from the current one)
  --dry-run            report what would be imported; write nothing
  --write-config FILE  write the Tessera configuration to FILE (refused if it exists) instead of printing it`;

export interface Io {
  out(s: string): void;
  err(s: string): void;
  /** stderr is a terminal: progress is one line rewritten in place; otherwise plain lines. */
  tty: boolean;
}

function report(reports: TableReport[], out: (s: string) => void): void {
  const w = Math.max(...reports.map((r) => r.table.length));
  out(`${'table'.padEnd(w)}  ${'read'.padStart(9)}  ${'imported'.padStart(9)}  ${'present'.padStart(9)}  skipped`);
  for (const r of reports) {
    const skipped = Object.entries(r.skipped).map(([why, n]) => `${n} ${why}`);
    out(
      `${r.table.padEnd(w)}  ${String(r.read).padStart(9)}  ${String(r.imported).padStart(9)}  ${String(r.present).padStart(9)}  ${skipped.join('; ') || '0'}`,
    );
  }
}

/** On a terminal, one line with every table's count, rewritten in place; otherwise a line per table and per 10 batches. */
export function progressOn(io: Io, write: (s: string) => void): Progress & { end(): void } {
  const counts = new Map<string, string>();
  let shown = false;
  const line = (s: string) => {
    write(`\r\x1b[K${s}`);
    shown = true;
  };
  return {
    phase(what) {
      counts.clear();
      if (io.tty) line(`${what}…`);
      else io.err(`${what}…`);
    },
    rows(table, done, total) {
      counts.set(table, `${table} ${done}/${total}`);
      if (io.tty) line(`writing: ${[...counts.values()].join(' · ')}`);
      else if (done === total || done % 10_000 === 0) io.err(`  ${table}: ${done}/${total}`);
    },
    end() {
      if (shown) write('\r\x1b[K');
      shown = false;
    },
  };
}

export async function main(argv: string[], io: Io, writeTty: (s: string) => void = (s) => process.stderr.write(s)): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        'sydent-config': { type: 'string' },
        'sydent-db': { type: 'string' },
        'dry-run': { type: 'boolean', default: false },
        'write-config': { type: 'string' },
        config: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    io.err(`import-sydent: ${(err as Error).message}\n\n${usage}`);
    return 2;
  }
  if (values.help) {
    io.out(usage);
    return 0;
  }
  const sydentConfig = values['sydent-config'];
  if (!sydentConfig) {
    io.err(`import-sydent: --sydent-config is required\n\n${usage}`);
    return 2;
  }
  const dryRun = values['dry-run'];
  if (values['write-config'] && existsSync(values['write-config'])) {
    io.err(`import-sydent: ${values['write-config']} exists; refusing to overwrite it`);
    return 1;
  }
  let config: Config;
  try {
    config = loadConfig({ argv: values.config ? ['--config', values.config] : [] });
  } catch (err) {
    if (err instanceof ConfigError) {
      io.err(err.message);
      return 2;
    }
    throw err;
  }

  const refuse = (err: unknown): number => {
    if (!(err instanceof ImportError)) throw err;
    io.err(`import-sydent: ${err.message}`);
    return 1;
  };
  let ini: Ini;
  try {
    ini = parseIni(readFileSync(sydentConfig, 'utf8'));
    // configparser reads every value on demand; here the ones the import uses are read (and so checked) up front
    for (const [section, key] of [
      ['general', 'server.name'],
      ['db', 'db.file'],
      ['crypto', 'ed25519.signingkey'],
    ] as const)
      iniValue(ini, section, key);
  } catch (err) {
    return refuse(new ImportError(`${sydentConfig}: ${(err as Error).message}`));
  }
  // Sydent takes relative paths from its working directory, which the import cannot know: sydent.conf's folder
  // and the current one are tried, in that order.
  const base = dirname(resolve(sydentConfig));
  const found = (p: string) => (isAbsolute(p) ? [p] : [resolve(base, p), resolve(p)]).find((c) => existsSync(c));
  const warnings: string[] = [];
  const pathSetting = (setting: string, value: string) => {
    const at = found(value);
    if (!at)
      warnings.push(`${setting} ${value} was not found from ${base} nor from the current folder: set it in the configuration by hand`);
    return at;
  };

  const dbSetting = iniValue(ini, 'db', 'db.file');
  const dbFile = values['sydent-db'] ?? (dbSetting ? found(dbSetting) : undefined);
  if (!dbFile) {
    io.err(
      `import-sydent: ${
        dbSetting
          ? `[db] db.file ${dbSetting} was not found from ${base} nor from the current folder`
          : `${sydentConfig} names no [db] db.file`
      }: give --sydent-db`,
    );
    return 2;
  }
  const serverName = iniValue(ini, 'general', 'server.name');
  if (!serverName) {
    io.err(
      `import-sydent: ${sydentConfig} has no [general] server.name (Sydent then signs under its host name, as it says at start-up): set it to that name and run again; Tessera must sign under the name homeservers know`,
    );
    return 1;
  }
  // The configuration printed below sets server.name; the one loaded now may not have it yet (its name is then
  // derived from the listener), so a difference is a reminder, not a refusal.
  if (config.server.name !== serverName) {
    io.err(
      `note: start Tessera with server.name ${serverName} (the configuration below sets it): homeservers know Sydent's signatures under that name`,
    );
  }

  let terms: Terms | undefined;
  let key;
  let tesseraConfig: string;
  let sydent;
  try {
    const termsPath = iniValue(ini, 'general', 'terms.path');
    const termsFile = termsPath ? pathSetting('[general] terms.path', termsPath) : undefined;
    try {
      terms = termsFile ? Terms.load(termsFile) : undefined;
    } catch (err) {
      throw new ImportError((err as Error).message);
    }
    const keyText = iniValue(ini, 'crypto', 'ed25519.signingkey');
    if (!keyText) throw new ImportError(`${sydentConfig} has no [crypto] ed25519.signingkey`);
    key = sydentKey(keyText);
    tesseraConfig = `# Tessera configuration for the Sydent deployment of ${serverName}, from ${sydentConfig}\n${stringify(
      tesseraConfigFromSydent(
        ini,
        (setting, value) => (setting === '[general] terms.path' ? termsFile : pathSetting(setting, value)),
        config,
        (w) => warnings.push(w),
      ),
    )}`;
    sydent = openSydent(dbFile);
  } catch (err) {
    return refuse(err);
  }

  const progress = progressOn(io, writeTty);
  let db: Database | undefined;
  let writing = false;
  try {
    db = await Database.open({ url: config.database.url, log: createLogger('warn'), poolMax: 2 });
    // The signing key first: an import under another key would leave every old signature unverifiable.
    const keyPlan = planSigningKey(config, key, await new KnexSigningKeyStore(db).list());
    const tesseraPepper = ((await db.knex('binding_settings').where({ name: 'lookup_pepper' }).first()) as { value: string } | undefined)
      ?.value;
    progress.phase("reading Sydent's database");
    const data = readSydent(sydent, {
      serverName,
      invitesLifetimeMs: config.invites.lifetimeMs,
      accessTokenLifetimeMs: config.accounts.tokenLifetimeMs,
      sessionLifetimeMs: config.binding.sessionLifetimeMs,
      validationTokenLifetimeMs: config.binding.tokenLifetimeMs,
      terms,
      fallbackPepper: tesseraPepper,
      now: Date.now(),
    });
    let keyOutcome = keyPlan.outcome;
    const result = await importSydent(data, db, {
      dryRun,
      configuredPepper: config.binding.lookupPepper,
      progress,
      beforeWrite: () => {
        writing = true;
        keyOutcome = writeSigningKey(keyPlan);
      },
    });
    progress.end();
    if (result.conflicts.length > 0) {
      io.err(
        `import-sydent: refused, nothing was written: Tessera's database or configuration disagrees with Sydent's in ${result.conflicts.length} place(s):`,
      );
      for (const c of result.conflicts.slice(0, 10)) io.err(`  ${c}`);
      if (result.conflicts.length > 10) io.err(`  ... and ${result.conflicts.length - 10} more`);
      return 1;
    }
    report(result.reports, io.err);
    io.err(`Sydent's database was read in one snapshot: a read transaction of ${data.snapshotMs} ms`);
    const pepperOutcome = {
      imported: dryRun
        ? 'would be imported'
        : `imported${result.rehashed > 0 ? ` (${result.rehashed} of Tessera's own bindings rehashed for it)` : ''}`,
      present: 'already Tessera’s',
      none: 'none in Sydent’s database',
    }[result.pepper];
    io.err(
      `signing key ${key.keyId} (${key.publicKey}): ${dryRun ? keyOutcome.replace(/^to be written/, 'would be written') : keyOutcome}; lookup pepper: ${pepperOutcome}`,
    );
    for (const w of warnings) io.err(`warning: ${w}`);
    const changed = result.reports.some((r) => r.imported > 0) || result.pepper === 'imported' || keyPlan.write !== undefined;
    io.err(dryRun ? 'dry run: nothing was written' : changed ? 'import complete' : 'nothing to import: Tessera already holds all of it');

    if (values['write-config'] && !dryRun) {
      writeNewPrivateFile(values['write-config'], tesseraConfig);
      io.err(`wrote ${values['write-config']}`);
    } else {
      io.out(tesseraConfig.trimEnd());
    }
    return 0;
  } catch (err) {
    progress.end();
    if (err instanceof ImportError) return refuse(err);
    io.err(`import-sydent: failed: ${(err as Error).message}`);
    io.err(
      writing
        ? 'the batches written before the failure stay (each is whole); running the import again completes it'
        : 'nothing was written',
    );
    return 1;
  } finally {
    sydent.close();
    await db?.close();
  }
}

/** Runs the command in this process (the entry of scripts/import-sydent.ts and of the built cli.js). */
export async function run(): Promise<void> {
  process.exitCode = await main(process.argv.slice(2), {
    out: (s) => process.stdout.write(`${s}\n`),
    err: (s) => process.stderr.write(`${s}\n`),
    tty: process.stderr.isTTY === true,
  });
}

const entry = process.argv[1] ? resolve(process.argv[1]) : '';
if (entry.endsWith('/sydent/cli.ts') || entry.endsWith('/sydent/cli.js')) await run();
