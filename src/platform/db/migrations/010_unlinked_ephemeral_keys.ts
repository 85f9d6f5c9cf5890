// Migration 010: ephemeral keys without an invitation. Sydent never linked its ephemeral keys to invitations, so
// the keys an import brings over (homeservers hold them and keep checking them) have no invitation row;
// invite_id becomes nullable. Tessera's own keys keep their link, unique, deleted with their invitation.
// And the invitations an operator revoked, by token hash, so that a later import from Sydent does not bring one back.
import type { Knex } from 'knex';

async function rebuildSqlite(knex: Knex, nullable: boolean): Promise<void> {
  // SQLite cannot change a column's nullability: build the table anew, copy, swap.
  await knex.schema.createTable('ephemeral_keys_rebuilt', (t) => {
    t.string('public_key', 64).primary();
    const inviteId = t.integer('invite_id').unsigned();
    if (!nullable) inviteId.notNullable();
    inviteId
      .unique(nullable ? 'ephemeral_keys_invite_id_unique' : 'ephemeral_keys_invite_unique')
      .references('id')
      .inTable('invites')
      .onDelete('CASCADE');
    t.bigInteger('created_at').notNullable();
    t.bigInteger('expires_at').notNullable();
  });
  await knex.raw(
    `INSERT INTO ephemeral_keys_rebuilt (public_key, invite_id, created_at, expires_at)
     SELECT public_key, invite_id, created_at, expires_at FROM ephemeral_keys${nullable ? '' : ' WHERE invite_id IS NOT NULL'}`,
  );
  await knex.schema.dropTable('ephemeral_keys');
  await knex.schema.renameTable('ephemeral_keys_rebuilt', 'ephemeral_keys');
}

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('revoked_invites', (t) => {
    t.string('token_hash', 64).primary(); // sha256 hex of the invitation token
    t.bigInteger('revoked_at').notNullable().index('revoked_invites_revoked_at');
  });
  if (knex.client.config.client === 'better-sqlite3') return rebuildSqlite(knex, true);
  await knex.schema.alterTable('ephemeral_keys', (t) => {
    t.integer('invite_id').unsigned().nullable().alter();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('revoked_invites');
  if (knex.client.config.client === 'better-sqlite3') return rebuildSqlite(knex, false);
  await knex('ephemeral_keys').whereNull('invite_id').delete();
  await knex.schema.alterTable('ephemeral_keys', (t) => {
    t.integer('invite_id').unsigned().notNullable().alter();
  });
}
