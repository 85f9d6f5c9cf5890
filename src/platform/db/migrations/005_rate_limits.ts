// Migration 005: fixed-window rate-limit counters, shared by every instance on one database.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('rate_limits', (t) => {
    t.string('bucket', 191).primary();
    t.bigInteger('window_start').notNullable().index('rate_limits_window_start');
    t.integer('hits').notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('rate_limits');
}
