// The ONE place tests read a validation token or an invitation's signurl: from the email a real SMTP server
// (test/helpers/smtp.ts) captured, the way a user would: the link and the code in the text part.
import type { ReceivedMail, TestSmtp } from './smtp.js';
import { until } from './smtp.js';

export interface VerificationMail {
  /** The code the email gives ("the code is …"); always the link's `token` too. */
  token: string;
  /** The submitToken link in the email. */
  link: string;
  mail: ReceivedMail;
}

/** Emails whose envelope is addressed to `recipient` (compared case-insensitively, as mail systems do). */
export const sentTo = (smtp: TestSmtp, recipient: string): ReceivedMail[] =>
  smtp.messages.filter((m) => m.envelope.to.some((t) => t.toLowerCase() === recipient.toLowerCase()));

const isVerification = (m: ReceivedMail) => /submitToken/.test(m.parsed.text ?? '');

/** How many verification emails `recipient` has received so far (read before a requestToken, pass +1 as `count`). */
export function verificationMailCount(smtp: TestSmtp, recipient: string): number {
  return sentTo(smtp, recipient).filter(isVerification).length;
}

const URL_RE = /https?:\/\/[^\s<>"]+/g;

/**
 * The newest verification email sent to `recipient`, once at least `count` of them have arrived
 * (pass the number of requestToken sends expected so far when a session sends more than one).
 */
export async function readVerificationMail(
  smtp: TestSmtp,
  recipient: string,
  opts: { count?: number; timeoutMs?: number } = {},
): Promise<VerificationMail> {
  const count = opts.count ?? 1;
  const mails = await until(
    () => {
      const m = sentTo(smtp, recipient).filter(isVerification);
      return m.length >= count ? m : undefined;
    },
    opts.timeoutMs ?? 15_000,
    `${count} verification email(s) to ${recipient}`,
  );
  const mail = mails[mails.length - 1]!;
  const text = mail.parsed.text ?? '';
  const link = (text.match(URL_RE) ?? []).find((u) => new URL(u).pathname.endsWith('/validate/email/submitToken'));
  if (!link) throw new Error(`no submitToken link in the verification email:\n${text}`);
  const code = /the code is ([A-Za-z0-9_-]+)/.exec(text)?.[1];
  if (!code) throw new Error(`no code in the verification email:\n${text}`);
  if (new URL(link).searchParams.get('token') !== code) throw new Error('the email link and the email code disagree');
  return { token: code, link, mail };
}

export interface InviteMail {
  /** The join link into the web client. */
  link: URL;
  /** The signurl, decoded from the join link exactly as the web client reads it. */
  signurl: string;
  mail: ReceivedMail;
}

/** The newest invitation email sent to `recipient` (waits for at least `count`). */
export async function readInviteMail(
  smtp: TestSmtp,
  recipient: string,
  opts: { count?: number; timeoutMs?: number } = {},
): Promise<InviteMail> {
  const count = opts.count ?? 1;
  const mails = await until(
    () => {
      const m = sentTo(smtp, recipient).filter((x) => /signurl=/.test(x.parsed.text ?? ''));
      return m.length >= count ? m : undefined;
    },
    opts.timeoutMs ?? 15_000,
    `${count} invitation email(s) to ${recipient}`,
  );
  const mail = mails[mails.length - 1]!;
  const raw = (mail.parsed.text ?? '').match(URL_RE)?.find((u) => u.includes('signurl='));
  if (!raw) throw new Error('no join link in the invitation email');
  // The web client reads its parameters from the fragment: `/#/room/<id>?email=…&signurl=…`.
  const link = new URL(raw);
  const params = new URLSearchParams(link.hash.slice(link.hash.indexOf('?') + 1));
  const signurl = params.get('signurl');
  if (!signurl) throw new Error('no signurl in the join link');
  return { link, signurl, mail };
}
