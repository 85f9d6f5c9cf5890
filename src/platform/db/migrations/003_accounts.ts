// Migration 003: v2 accounts (access tokens, stored as hashes) and accepted terms.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('account_tokens', (t) => {
    t.string('token_hash', 64).primary(); // sha256 hex of the access token
    t.string('user_id', 255).notNullable().index('account_tokens_user_id');
    t.bigInteger('created_at').notNullable();
    t.bigInteger('expires_at').notNullable().index('account_tokens_expires_at');
  });
  await knex.schema.createTable('accepted_terms', (t) => {
    t.increments('id').primary();
    t.string('user_id', 255).notNullable();
    t.string('policy', 128).notNullable();
    t.string('version', 128).notNullable();
    t.bigInteger('accepted_at').notNullable();
    t.unique(['user_id', 'policy', 'version'], { indexName: 'accepted_terms_user_policy_version_unique' });
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('accepted_terms');
  await knex.schema.dropTableIfExists('account_tokens');
}
