// Migrations run up, all the way down, and up again, on every database.
import { describe, expect, it } from 'vitest';
import { testDatabases } from '../helpers/databases.js';
import { migrateDown, migrateLatest, openDatabase } from '../../src/platform/db/db.js';

const TABLES = [
  'invites',
  'ephemeral_keys',
  'associations',
  'mail_outbox',
  'account_tokens',
  'accepted_terms',
  'validation_sessions',
  'onbind_outbox',
  'binding_settings',
  'rate_limits',
];

describe.each(testDatabases())('migrations on $name', (db) => {
  it('go up, down and up again', async () => {
    const { url, dispose } = await db.create();
    const { knex } = openDatabase({ url });
    try {
      expect((await migrateLatest(knex)).length).toBeGreaterThan(0);
      // SQLite: migrations sort with scratch files; the connection is back to memory after them
      if (db.name === 'sqlite') expect(await knex.raw('PRAGMA temp_store')).toEqual([{ temp_store: 2 }]);
      for (const t of TABLES) expect(await knex.schema.hasTable(t), t).toBe(true);
      expect(await migrateLatest(knex)).toEqual([]);
      await migrateDown(knex);
      for (const t of TABLES) expect(await knex.schema.hasTable(t), t).toBe(false);
      await migrateLatest(knex);
      for (const t of TABLES) expect(await knex.schema.hasTable(t), t).toBe(true);
    } finally {
      await knex.destroy();
      await dispose();
    }
  });
});
