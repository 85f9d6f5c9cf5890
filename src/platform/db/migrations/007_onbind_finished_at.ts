// Migration 007: the onbind outbox gets the finished_at index the mail outbox has had since 002. Its retention
// sweep asked for delivered or failed rows finished before a date; through the (status, next_attempt_at)
// index that read every delivered row still kept whenever none was old enough, once per sweep.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('onbind_outbox', (t) => {
    t.index(['finished_at'], 'onbind_outbox_finished_at');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('onbind_outbox', (t) => {
    t.dropIndex(['finished_at'], 'onbind_outbox_finished_at');
  });
}
