// Where rendered messages go: SMTP through nodemailer, or .eml files when no SMTP is configured.
import { mkdirSync, readdirSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { headerAddress } from './mime.js';
import { SmtpPool } from './smtpPool.js';
import type { MailConfig } from '../platform/config.js';

export interface OutgoingMail {
  /** Unique per outbox row; file names are made from it so that a retry overwrites rather than duplicates. */
  name: string;
  envelopeFrom: string;
  to: string;
  raw: Buffer;
}

export interface MailTransport {
  readonly kind: 'smtp' | 'file';
  /** Resolves with a short description for the log (never the address); rejects with the SMTP/IO error. */
  send(mail: OutgoingMail): Promise<string>;
  close(): void;
  /** Deletes what the transport kept of messages older than `before` (ms); returns how many. File transport only. */
  sweep?(before: number): Promise<number>;
}

export function smtpTransport(mail: MailConfig): MailTransport {
  const { smtp } = mail;
  const pool = new SmtpPool({
    host: smtp.host,
    port: smtp.port,
    secure: smtp.tls === 'tls',
    requireTLS: smtp.tls === 'starttls',
    ignoreTLS: smtp.tls === 'none',
    rejectUnauthorized: smtp.verifyCertificates,
    user: smtp.user || undefined,
    password: smtp.password,
    name: mail.messageIdDomain,
    maxConnections: smtp.maxConnections,
    // Shorter than the claim lease, so a hung server turns into a retry before another worker reclaims the row.
    connectionTimeoutMs: 15_000,
    greetingTimeoutMs: 15_000,
    socketTimeoutMs: 60_000,
  });
  return {
    kind: 'smtp',
    async send(m) {
      // The envelope is explicit: the recipient is the row's address alone, whatever the message headers say.
      // Internationalised domains go out in their ASCII form (a non-ASCII local part needs the server's SMTPUTF8).
      const info = await pool.send({ from: headerAddress(m.envelopeFrom), to: headerAddress(m.to) }, m.raw);
      return `smtp ${String(info.response ?? '').slice(0, 100)}`;
    },
    close() {
      pool.close();
    },
  };
}

/**
 * The embedded default: each message as a complete .eml file (mode 0600: it holds the invitation's key), deleted
 * by the mail worker's retention sweep once older than mail.keepFinishedMs.
 */
export function fileTransport(dir: string): MailTransport {
  return {
    kind: 'file',
    async send(m) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const path = join(dir, `${m.name}.eml`);
      const tmp = `${path}.tmp`;
      writeFileSync(tmp, m.raw, { mode: 0o600 });
      renameSync(tmp, path);
      return path;
    },
    close() {},
    async sweep(before) {
      let names: string[];
      try {
        names = readdirSync(dir);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
        throw err;
      }
      let deleted = 0;
      for (const name of names) {
        if (!name.endsWith('.eml') && !name.endsWith('.eml.tmp')) continue;
        const path = join(dir, name);
        try {
          // Names start with the row's created_at; a retry may have written the file later, hence the mtime too.
          const createdAt = Number(/^(\d+)-/.exec(name)?.[1] ?? 0);
          if (Math.max(createdAt, statSync(path).mtimeMs) >= before) continue;
          unlinkSync(path);
          deleted++;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err; // another instance deleted it first
        }
      }
      return deleted;
    },
  };
}

export interface SendFailure {
  /** SMTP said no for good (5xx to the envelope or the message): never retry. */
  permanent: boolean;
  reason: string;
}

/**
 * 5xx answers to MAIL FROM/RCPT TO/DATA are permanent for this message. Everything else is retried:
 * 4xx, network and TLS errors, and also 5xx to the connection or to AUTH, which are the server's or
 * the operator's problem rather than this message's, and heal once fixed.
 */
export function classifySendError(err: unknown): SendFailure {
  const e = (err ?? {}) as { responseCode?: unknown; code?: unknown; response?: unknown; message?: unknown };
  const status = typeof e.responseCode === 'number' ? e.responseCode : undefined;
  const code = typeof e.code === 'string' ? e.code : 'ERROR';
  const permanent = status !== undefined && status >= 500 && status < 600 && (code === 'EENVELOPE' || code === 'EMESSAGE');
  const detail = typeof e.response === 'string' && e.response ? e.response : typeof e.message === 'string' ? e.message : String(err);
  return { permanent, reason: `${code}${status ? ` ${status}` : ''}: ${detail}`.slice(0, 1000) };
}
