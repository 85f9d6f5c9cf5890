// Migration 004: validation sessions, lookup hashes on associations, invite claims, the onbind outbox.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('validation_sessions', (t) => {
    t.string('sid', 64).primary();
    t.string('medium', 16).notNullable();
    t.string('address', 320).notNullable();
    t.string('client_secret', 255).notNullable();
    t.string('token', 255).notNullable();
    t.integer('send_attempt').notNullable();
    t.string('next_link', 2048);
    t.bigInteger('created_at').notNullable();
    t.bigInteger('token_expires_at').notNullable();
    t.bigInteger('validated_at');
    /** Unvalidated: created_at + lifetime; validated: validated_at + lifetime. */
    t.bigInteger('expires_at').notNullable().index('validation_sessions_expires_at');
    t.index(['medium', 'address', 'client_secret'], 'validation_sessions_owner');
  });
  await knex.schema.alterTable('associations', (t) => {
    // base64url(sha256("<address> <medium> <pepper>")): v1 and v2 lookups are one indexed IN query per batch.
    t.string('lookup_hash', 64).index('associations_lookup_hash');
  });
  await knex.schema.alterTable('invites', (t) => {
    // The association (id) whose bind claimed this invite: a later binder of the same address never gets it.
    t.integer('claimed_by').index('invites_claimed_by');
    t.bigInteger('delivered_at');
  });
  await knex.schema.createTable('binding_settings', (t) => {
    t.string('name', 64).primary();
    t.text('value').notNullable();
  });
  await knex.schema.createTable('onbind_outbox', (t) => {
    t.increments('id').primary();
    t.string('destination', 255).notNullable();
    t.integer('association_id').notNullable();
    // One signed onbind body (a chunk of at most onbind.invitesPerCall invites), exactly as it is POSTed.
    t.text('body', 'mediumtext').notNullable();
    t.text('invite_ids').notNullable();
    t.string('status', 16).notNullable().defaultTo('pending');
    t.integer('attempts').notNullable().defaultTo(0);
    t.bigInteger('next_attempt_at').notNullable();
    t.text('last_error');
    t.integer('last_status');
    t.string('locked_by', 64);
    t.bigInteger('locked_until');
    t.bigInteger('created_at').notNullable();
    t.bigInteger('finished_at');
    t.index(['status', 'next_attempt_at'], 'onbind_outbox_due');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('onbind_outbox');
  await knex.schema.dropTableIfExists('binding_settings');
  await knex.schema.alterTable('invites', (t) => {
    t.dropIndex(['claimed_by'], 'invites_claimed_by');
    t.dropColumn('claimed_by');
    t.dropColumn('delivered_at');
  });
  await knex.schema.alterTable('associations', (t) => {
    t.dropIndex(['lookup_hash'], 'associations_lookup_hash');
    t.dropColumn('lookup_hash');
  });
  await knex.schema.dropTableIfExists('validation_sessions');
}
