// Migration 001: invitations, their ephemeral keys, associations, and the mail outbox.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('invites', (t) => {
    t.increments('id').primary();
    t.string('medium', 16).notNullable();
    t.string('address', 320).notNullable();
    t.string('room_id', 255).notNullable();
    t.string('sender', 255).notNullable();
    t.string('token', 255).notNullable().unique('invites_token_unique');
    t.text('fields').notNullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('expires_at').notNullable().index('invites_expires_at');
    t.index(['medium', 'address'], 'invites_medium_address');
  });
  await knex.schema.createTable('ephemeral_keys', (t) => {
    t.string('public_key', 64).primary();
    t.integer('invite_id')
      .unsigned()
      .notNullable()
      .unique('ephemeral_keys_invite_unique')
      .references('id')
      .inTable('invites')
      .onDelete('CASCADE');
    t.bigInteger('created_at').notNullable();
    t.bigInteger('expires_at').notNullable();
  });
  await knex.schema.createTable('associations', (t) => {
    t.increments('id').primary();
    t.string('medium', 16).notNullable();
    t.string('address', 320).notNullable();
    t.string('mxid', 255).notNullable().index('associations_mxid');
    t.bigInteger('ts').notNullable();
    t.bigInteger('not_before').notNullable();
    t.bigInteger('not_after').notNullable();
    t.unique(['medium', 'address'], { indexName: 'associations_medium_address_unique' });
  });
  await knex.schema.createTable('mail_outbox', (t) => {
    t.increments('id').primary();
    t.string('kind', 32).notNullable();
    t.string('recipient', 320).notNullable();
    t.text('payload').notNullable();
    t.string('status', 16).notNullable().defaultTo('pending');
    t.integer('attempts').notNullable().defaultTo(0);
    t.bigInteger('next_attempt_at').notNullable();
    t.text('last_error');
    t.string('locked_by', 64);
    t.bigInteger('locked_until');
    t.bigInteger('created_at').notNullable();
    t.bigInteger('sent_at');
    t.index(['status', 'next_attempt_at'], 'mail_outbox_due');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('mail_outbox');
  await knex.schema.dropTableIfExists('associations');
  await knex.schema.dropTableIfExists('ephemeral_keys');
  await knex.schema.dropTableIfExists('invites');
}
