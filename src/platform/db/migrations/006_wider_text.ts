// Migration 006: invite fields and mail payloads in MEDIUMTEXT on MySQL/MariaDB. TEXT holds 64 KiB,
// the same as the request body cap, so a valid large invite failed to insert; SQLite TEXT is unbounded.
import type { Knex } from 'knex';

const COLUMNS: [table: string, column: string][] = [
  ['invites', 'fields'],
  ['mail_outbox', 'payload'],
];

function isMysql(knex: Knex): boolean {
  return knex.client.config.client === 'mysql2';
}

export async function up(knex: Knex): Promise<void> {
  if (!isMysql(knex)) return;
  for (const [table, column] of COLUMNS) {
    await knex.schema.alterTable(table, (t) => {
      t.text(column, 'mediumtext').notNullable().alter();
    });
  }
}

export async function down(knex: Knex): Promise<void> {
  if (!isMysql(knex)) return;
  for (const [table, column] of COLUMNS) {
    await knex.schema.alterTable(table, (t) => {
      t.text(column).notNullable().alter();
    });
  }
}
