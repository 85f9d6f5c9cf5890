// A Sydent deployment for import tests: its database with the schema Sydent's sqlitedb.py leaves at
// PRAGMA user_version 5 (the .sql files, then its upgrades 1 to 5), its INI configuration and its terms file.
import BetterSqlite3 from 'better-sqlite3';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatSigningKey } from '../../src/keys/KeyRing.js';
import { generateKeyPair } from '../../src/keys/ed25519.js';

const SCHEMA = `
CREATE TABLE invite_tokens (id integer primary key, medium varchar(16) not null, address varchar(256) not null,
  room_id varchar(256) not null, sender varchar(256) not null, token varchar(256) not null, received_ts bigint, sent_ts bigint);
CREATE INDEX invite_token_medium_address on invite_tokens(medium, address);
CREATE INDEX invite_token_token on invite_tokens(token);
CREATE TABLE ephemeral_public_keys(id integer primary key, public_key varchar(256) not null, verify_count bigint default 0, persistence_ts bigint);
CREATE UNIQUE INDEX ephemeral_public_keys_index on ephemeral_public_keys(public_key);
CREATE TABLE local_threepid_associations (id integer primary key autoincrement, medium varchar(16) not null,
  address varchar(256) not null, mxid varchar(256), ts integer, notBefore bigint, notAfter bigint, lookup_hash VARCHAR(256));
CREATE UNIQUE INDEX local_threepid_medium_address on local_threepid_associations(medium, address);
CREATE TABLE global_threepid_associations (id integer primary key autoincrement, medium varchar(16) not null,
  address varchar(256) not null, mxid varchar(256) not null, ts integer not null, notBefore bigint not null,
  notAfter integer not null, originServer varchar(255) not null, originId integer not null, sgAssoc text not null, lookup_hash VARCHAR(256));
CREATE INDEX global_threepid_medium_address on global_threepid_associations (medium, address);
CREATE INDEX global_threepid_medium_lower_address on global_threepid_associations (medium, lower(address));
CREATE UNIQUE INDEX global_threepid_originServer_originId on global_threepid_associations (originServer, originId);
CREATE INDEX global_threepid_lookup_hash ON global_threepid_associations(lookup_hash);
CREATE TABLE hashing_metadata (id integer primary key, lookup_pepper varchar(256));
CREATE TABLE threepid_validation_sessions (id integer primary key, medium varchar(16) not null, address varchar(256) not null,
  clientSecret varchar(32) not null, validated int default 0, mtime bigint not null);
CREATE INDEX threepid_validation_sessions_mtime ON threepid_validation_sessions(mtime);
CREATE TABLE threepid_token_auths (id integer primary key, validationSession integer not null, token varchar(32) not null,
  sendAttemptNumber integer not null, foreign key (validationSession) references threepid_validations(id));
CREATE TABLE peers (id integer primary key, name varchar(255) not null, port integer default null, lastSentVersion integer,
  lastPokeSucceededAt integer, active integer not null default 0);
CREATE UNIQUE INDEX name on peers(name);
CREATE TABLE peer_pubkeys (id integer primary key, peername varchar(255) not null, alg varchar(16) not null, key text not null,
  foreign key (peername) references peers (name));
CREATE UNIQUE INDEX peername_alg on peer_pubkeys(peername, alg);
CREATE TABLE accounts(user_id TEXT NOT NULL PRIMARY KEY, created_ts BIGINT NOT NULL, consent_version TEXT);
CREATE TABLE tokens(token TEXT NOT NULL PRIMARY KEY, user_id TEXT NOT NULL);
CREATE TABLE accepted_terms_urls(user_id TEXT NOT NULL, url TEXT NOT NULL);
CREATE UNIQUE INDEX accepted_terms_urls_idx ON accepted_terms_urls (user_id, url);
PRAGMA user_version = 5;
`;

export interface SydentFixture {
  dir: string;
  configFile: string;
  dbFile: string;
  keyText: string;
  serverName: string;
  pepper: string;
  termsUrl: string;
}

/** Writes sydent.conf, sydent.db (schema only) and terms.yaml under `dir`; `rows` fills the database. */
export function writeSydent(dir: string, rows: (db: BetterSqlite3.Database) => void, opts: { userVersion?: number } = {}): SydentFixture {
  mkdirSync(dir, { recursive: true });
  const serverName = 'sydent.example';
  const keyText = formatSigningKey('0', generateKeyPair().seed).trim();
  const pepper = 'sydentPepper123';
  const termsUrl = 'https://sydent.example/terms-1.0-en.html';
  const dbFile = join(dir, 'sydent.db');
  const db = new BetterSqlite3(dbFile);
  db.exec(SCHEMA);
  if (opts.userVersion !== undefined) db.pragma(`user_version = ${opts.userVersion}`);
  db.prepare('INSERT INTO hashing_metadata (id, lookup_pepper) VALUES (1, ?)').run(pepper);
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
      '[general]',
      `server.name = ${serverName}`,
      'templates.path = res',
      'brand.default = matrix-org',
      'terms.path = terms.yaml',
      '',
      '[db]',
      'db.file = sydent.db',
      '',
      '[http]',
      'client_http_base = https://sydent.example',
      '',
      '[email]',
      'email.from = Sydent Validation <noreply@{hostname}>',
      'email.smtphost = smtp.example',
      'email.smtpport = 587',
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
