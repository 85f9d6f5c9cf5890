#!/usr/bin/env node
// npm run import-sydent -- --sydent-config sydent.conf [--sydent-db sydent.db] [--dry-run] [--write-config FILE]
// (or node dist/src/sydent/cli.js ...): moves a Sydent deployment to Tessera. docs/moving-from-sydent.md.
//
// Exit codes: 0 imported (or nothing left to import); 1 refused, nothing written (not a Sydent database, an
// unknown schema, conflicting rows, another signing key); 2 usage or configuration error.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { ConfigError, loadConfig, type Config } from '../platform/config.js';
import { Database } from '../platform/db/Database.js';
import { createLogger } from '../platform/logger.js';
import { parseSigningKey } from '../keys/KeyRing.js';
import { encodeUnpadded } from '../platform/base64.js';
import { Terms } from '../accounts/terms.js';
import { iniValue, parseIni, type Ini } from './ini.js';
import { ImportError, importSydent, openSydent, type TableReport } from './importer.js';
import { adoptSigningKey, tesseraConfigFromSydent } from './config.js';
import { writeNewPrivateFile } from '../platform/privateFile.js';

const usage = `usage: npm run import-sydent -- --sydent-config sydent.conf [--sydent-db sydent.db] [--dry-run] [--write-config FILE] [--config TESSERA.yaml]

Reads Sydent's configuration and database (read-only), writes its bindings, pepper, pending invitations, ephemeral
keys, access tokens and accepted terms into the database Tessera is configured with (--config, TESSERA_*), and
prints a Tessera configuration for the deployment (or writes it to a new FILE).
  --sydent-db FILE     Sydent's database (default: [db] db.file of sydent.conf, relative to sydent.conf's folder)
  --dry-run            report what would be imported; write nothing
  --write-config FILE  write the Tessera configuration to FILE (refused if it exists) instead of printing it`;

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

export async function main(argv: string[], io: { out(s: string): void; err(s: string): void; tty: boolean }): Promise<number> {
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
  let ini: Ini;
  try {
    ini = parseIni(readFileSync(sydentConfig, 'utf8'));
  } catch (err) {
    io.err(`import-sydent: ${sydentConfig}: ${(err as Error).message}`);
    return 1;
  }
  const base = dirname(resolve(sydentConfig));
  const inBase = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  const dbFile = values['sydent-db'] ?? (iniValue(ini, 'db', 'db.file') ? inBase(iniValue(ini, 'db', 'db.file')!) : undefined);
  if (!dbFile) {
    io.err(`import-sydent: ${sydentConfig} names no [db] db.file: give --sydent-db`);
    return 2;
  }
  const serverName = iniValue(ini, 'general', 'server.name');
  if (!serverName) {
    io.err(`import-sydent: ${sydentConfig} has no [general] server.name; Tessera must sign under the name homeservers know`);
    return 1;
  }
  // The configuration printed below sets server.name; the one loaded now may not have it yet (its name is then
  // derived from the listener), so a difference is a reminder, not a refusal.
  if (config.server.name !== serverName) {
    io.err(
      `note: start Tessera with server.name ${serverName} (the configuration below sets it): homeservers know Sydent's signatures under that name`,
    );
  }
  const termsPath = iniValue(ini, 'general', 'terms.path');
  let terms: Terms | undefined;
  try {
    terms = termsPath ? Terms.load(inBase(termsPath)) : undefined;
  } catch (err) {
    io.err(`import-sydent: ${(err as Error).message}`);
    return 1;
  }

  let sydent;
  try {
    sydent = openSydent(dbFile);
  } catch (err) {
    if (err instanceof ImportError) {
      io.err(`import-sydent: ${err.message}`);
      return 1;
    }
    throw err;
  }
  let db: Database | undefined;
  try {
    // The signing key first: an import under another key would leave every old signature unverifiable.
    const keyText = iniValue(ini, 'crypto', 'ed25519.signingkey');
    if (!keyText) throw new ImportError(`${sydentConfig} has no [crypto] ed25519.signingkey`);
    const key = parseSigningKey(keyText);
    const keyOutcome = adoptSigningKey(config, keyText, values['dry-run']);
    db = await Database.open({ url: config.database.url, log: createLogger('warn'), poolMax: 2 });
    const now = Date.now();
    const result = await importSydent(sydent, db, {
      serverName,
      invitesLifetimeMs: config.invites.lifetimeMs,
      tokenLifetimeMs: config.accounts.tokenLifetimeMs,
      terms,
      now,
      dryRun: values['dry-run'],
      progress: io.tty ? (table, done, total) => process.stderr.write(`\r${table}: ${done}/${total}   `) : undefined,
    });
    if (io.tty) process.stderr.write('\r\x1b[K');
    if (result.conflicts.length > 0) {
      io.err(`import-sydent: Tessera's database already holds different data for ${result.conflicts.length} row(s); nothing was written:`);
      for (const c of result.conflicts.slice(0, 10)) io.err(`  ${c}`);
      if (result.conflicts.length > 10) io.err(`  ... and ${result.conflicts.length - 10} more`);
      return 1;
    }
    report(result.reports, io.err);
    io.err(
      `signing key ${key.keyId} (${encodeUnpadded(key.pair.publicKey)}): ${keyOutcome}; lookup pepper: ${
        { imported: 'imported', present: 'already Tessera’s', none: 'none in Sydent’s database' }[result.pepper]
      }`,
    );
    const changed = result.reports.some((r) => r.imported > 0) || result.pepper === 'imported' || keyOutcome.startsWith('written');
    io.err(
      values['dry-run']
        ? 'dry run: nothing was written'
        : changed
          ? 'import complete'
          : 'nothing to import: Tessera already holds all of it',
    );

    const tesseraConfig = `# Tessera configuration for the Sydent deployment of ${serverName}, from ${sydentConfig}\n${stringify(
      tesseraConfigFromSydent(ini, inBase, config),
    )}`;
    if (values['write-config'] && !values['dry-run']) {
      writeNewPrivateFile(values['write-config'], tesseraConfig);
      io.err(`wrote ${values['write-config']}`);
    } else {
      io.out(tesseraConfig.trimEnd());
    }
    return 0;
  } catch (err) {
    if (err instanceof ImportError) {
      io.err(`import-sydent: ${err.message}`);
      return 1;
    }
    throw err;
  } finally {
    sydent.close();
    await db?.close();
  }
}

const entry = process.argv[1] ? resolve(process.argv[1]) : '';
if (entry.endsWith('/sydent/cli.ts') || entry.endsWith('/sydent/cli.js')) {
  process.exitCode = await main(process.argv.slice(2), {
    out: (s) => process.stdout.write(`${s}\n`),
    err: (s) => process.stderr.write(`${s}\n`),
    tty: process.stderr.isTTY === true,
  });
}
