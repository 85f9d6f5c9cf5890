// Migration 002 (mail delivery): when a mail-outbox row reached a final state, so that sent and
// failed rows can be deleted after the retention period through an index instead of a table scan.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('mail_outbox', (t) => {
    t.bigInteger('finished_at').nullable();
    t.index(['finished_at'], 'mail_outbox_finished_at');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('mail_outbox', (t) => {
    t.dropIndex(['finished_at'], 'mail_outbox_finished_at');
  });
  await knex.schema.alterTable('mail_outbox', (t) => {
    t.dropColumn('finished_at');
  });
}
