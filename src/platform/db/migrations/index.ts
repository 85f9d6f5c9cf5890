// The ordered list of migrations; knex reads them from here rather than from the file system,
// so they run the same under tsx, a bundler or compiled output.
import type { Knex } from 'knex';
import * as m001 from './001_initial.js';
import * as m002 from './002_mail.js';
import * as m003 from './003_accounts.js';
import * as m004 from './004_binding.js';
import * as m005 from './005_rate_limits.js';
import * as m006 from './006_wider_text.js';
import * as m007 from './007_onbind_finished_at.js';
import * as m008 from './008_instances.js';
import * as m009 from './009_signing_keys.js';
import * as m010 from './010_unlinked_ephemeral_keys.js';

const migrations: Record<string, Knex.Migration> = {
  '001_initial': m001,
  '002_mail': m002,
  '003_accounts': m003,
  '004_binding': m004,
  '005_rate_limits': m005,
  '006_wider_text': m006,
  '007_onbind_finished_at': m007,
  '008_instances': m008,
  '009_signing_keys': m009,
  '010_unlinked_ephemeral_keys': m010,
};

export const migrationSource: Knex.MigrationSource<string> = {
  getMigrations: () => Promise.resolve(Object.keys(migrations)),
  getMigrationName: (name) => name,
  getMigration: (name) => Promise.resolve(migrations[name]!),
};
