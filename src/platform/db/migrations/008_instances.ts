// Migration 008: the instances running on this database, each with a fingerprint of its outbound policy, so an
// instance starting with a policy that differs from its peers' says so (an onbind one instance may not make is
// left to another).
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('instances', (t) => {
    t.string('id', 100).primary();
    t.string('outbound_policy', 64).notNullable();
    t.bigInteger('started_at').notNullable();
    t.bigInteger('seen_at').notNullable().index('instances_seen_at');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('instances');
}
