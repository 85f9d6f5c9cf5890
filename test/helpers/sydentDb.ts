// A Sydent deployment for import tests: its database with the schema Sydent's own code creates
// (test/fixtures/sydent/schema-v5.sql), its INI configuration as Sydent leaves it, and its terms file.
import BetterSqlite3 from 'better-sqlite3';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatSigningKey } from '../../src/keys/KeyRing.js';
import { generateKeyPair } from '../../src/keys/ed25519.js';

/** Made by Sydent's own code (see the file's header), not written by hand. */
const SCHEMA = readFileSync(new URL('../fixtures/sydent/schema-v5.sql', import.meta.url), 'utf8');

export interface SydentFixture {
  dir: string;
  configFile: string;
  dbFile: string;
  keyText: string;
  serverName: string;
  pepper: string;
  termsUrl: string;
}

/**
 * Writes sydent.conf, sydent.db (schema, the pepper, then `rows`), terms.yaml and an empty templates folder under
 * `dir`. The configuration has a [DEFAULT] section, as Sydent writes one when it saves the file (after making its
 * signing key): some settings are read from there.
 */
export function writeSydent(dir: string, rows: (db: BetterSqlite3.Database) => void, opts: { userVersion?: number } = {}): SydentFixture {
  mkdirSync(join(dir, 'res', 'matrix-org'), { recursive: true });
  const serverName = 'sydent.example';
  const keyText = formatSigningKey('0', generateKeyPair().seed).trim();
  const pepper = 'sydentPepper123';
  const termsUrl = 'https://sydent.example/terms-1.0-en.html';
  const dbFile = join(dir, 'sydent.db');
  const db = new BetterSqlite3(dbFile);
  // As Python's sqlite3 connects (Sydent's): foreign keys unchecked. better-sqlite3 checks them, and Sydent's
  // threepid_token_auths references a table its schema never creates (threepid_validations).
  db.pragma('foreign_keys = OFF');
  db.exec(SCHEMA);
  if (opts.userVersion !== undefined) db.pragma(`user_version = ${opts.userVersion}`);
  // Sydent keeps its one pepper row under id 0 (hashing_metadata.py)
  db.prepare('INSERT INTO hashing_metadata (id, lookup_pepper) VALUES (0, ?)').run(pepper);
  rows(db);
  db.close();
  writeFileSync(
    join(dir, 'terms.yaml'),
    `master_version: "1.0"\ndocs:\n  terms_of_service:\n    version: "1.0"\n    langs:\n      en:\n        name: Terms\n        url: ${termsUrl}\n`,
  );
  const configFile = join(dir, 'sydent.conf');
  writeFileSync(
    configFile,
    [
      '[DEFAULT]',
      'templates.path = res',
      'brand.default = matrix-org',
      'email.smtpport = 587',
      '# a literal % is written %% (configparser interpolation)',
      'email.smtppassword = p%%ss',
      'email.invite.subject = %(sender_display_name)s wants you in a room',
      '',
      '[general]',
      `server.name = ${serverName}`,
      'terms.path = terms.yaml',
      'enable_v1_access = false',
      'homeserver_allow_list = hs.example, other.example',
      '',
      '[db]',
      'db.file = sydent.db',
      '',
      '[http]',
      'client_http_base = https://sydent.example',
      'obey_x_forwarded_for = yes',
      '',
      '[email]',
      'email.from = Sydent Validation <noreply@{hostname}>',
      'email.smtphost = smtp.example',
      'email.smtpusername = sydent',
      'email.tlsmode = 2',
      'email.third_party_invite_homeserver_blocklist = evil.example',
      '  worse.example',
      '',
      '[crypto]',
      `ed25519.signingkey = ${keyText}`,
      '',
    ].join('\n'),
  );
  return { dir, configFile, dbFile, keyText, serverName, pepper, termsUrl };
}
