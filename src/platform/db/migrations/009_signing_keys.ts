// Migration 009: the long-term signing keys' lifecycle, shared by every instance on the database: which key signs
// now, and until when each rotated-out key stays valid. Only public keys are recorded here; private keys stay in
// the key files (docs/operations-cli.md).
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('signing_keys', (t) => {
    t.string('key_id', 64).primary();
    t.string('public_key', 64).notNullable();
    t.bigInteger('created_at').notNullable();
    // null while the key signs; set when `tessera keys rotate` replaces it
    t.bigInteger('retired_at');
    // a rotated-out key answers valid on /pubkey/isvalid and is served on /pubkey/{keyId} until then
    t.bigInteger('valid_until');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('signing_keys');
}
