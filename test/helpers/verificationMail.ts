// The ONE place tests read a validation token: today from the queued mail_outbox row's payload.
// (After the email pipeline lands, this reads the message a real SMTP server captured instead.)
import type { Knex } from 'knex';

export interface VerificationMail {
  token: string;
  link: string;
}

/** The newest verification email queued for `recipient` (as the requester wrote it). */
export async function readVerificationMail(knex: Knex, recipient: string): Promise<VerificationMail> {
  const row = await knex('mail_outbox').where({ kind: 'verification', recipient }).orderBy('id', 'desc').first();
  if (!row) throw new Error(`no verification email queued for ${recipient}`);
  const payload = JSON.parse(row.payload as string) as { token: string; link: string };
  return { token: payload.token, link: payload.link };
}
