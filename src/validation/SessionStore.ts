// Email validation sessions on Knex (SQLite and MySQL/MariaDB); each new or re-sent token queues its email in
// the same transaction.
import type { Database } from '../platform/db/Database.js';
import type { MailOutboxStore, NewMail } from '../mail/MailOutboxStore.js';

export interface ValidationSession {
  /** Opaque session id (CSPRNG). */
  sid: string;
  medium: string;
  /** Normalised (case-folded) address. */
  address: string;
  clientSecret: string;
  token: string;
  sendAttempt: number;
  nextLink: string | null;
  createdAt: number;
  tokenExpiresAt: number;
  validatedAt: number | null;
  expiresAt: number;
}

export interface SessionStore {
  findSession(sid: string): Promise<ValidationSession | undefined>;
  /** The newest unexpired session of this (medium, address, client_secret), for send_attempt idempotence. */
  findSessionByOwner(medium: string, address: string, clientSecret: string, now: number): Promise<ValidationSession | undefined>;
  /** The session and its verification email in one transaction. */
  insertSession(session: ValidationSession, mail: NewMail): Promise<void>;
  /** A new send_attempt: the session's new token/attempt and the email in one transaction. */
  resendSession(
    sid: string,
    update: Pick<ValidationSession, 'token' | 'tokenExpiresAt' | 'sendAttempt' | 'nextLink'>,
    mail: NewMail,
  ): Promise<void>;
  markSessionValidated(sid: string, validatedAt: number, expiresAt: number): Promise<void>;
  /** Deletes up to `limit` sessions that expired at or before `before`; returns how many went. */
  deleteExpiredSessions(before: number, limit: number): Promise<number>;
}

interface SessionRow {
  sid: string;
  medium: string;
  address: string;
  client_secret: string;
  token: string;
  send_attempt: number;
  next_link: string | null;
  created_at: number | string;
  token_expires_at: number | string;
  validated_at: number | string | null;
  expires_at: number | string;
}

function toSession(r: SessionRow): ValidationSession {
  return {
    sid: r.sid,
    medium: r.medium,
    address: r.address,
    clientSecret: r.client_secret,
    token: r.token,
    sendAttempt: Number(r.send_attempt),
    nextLink: r.next_link,
    createdAt: Number(r.created_at),
    tokenExpiresAt: Number(r.token_expires_at),
    validatedAt: r.validated_at === null ? null : Number(r.validated_at),
    expiresAt: Number(r.expires_at),
  };
}

export class KnexSessionStore implements SessionStore {
  constructor(
    private readonly db: Database,
    private readonly mail: Pick<MailOutboxStore, 'enqueue'>,
  ) {}

  async findSession(sid: string): Promise<ValidationSession | undefined> {
    const row = (await this.db.knex('validation_sessions').where({ sid }).first()) as SessionRow | undefined;
    return row && toSession(row);
  }

  async findSessionByOwner(medium: string, address: string, clientSecret: string, now: number): Promise<ValidationSession | undefined> {
    const row = (await this.db
      .knex('validation_sessions')
      .where({ medium, address, client_secret: clientSecret })
      .andWhere('expires_at', '>', now)
      .orderBy('created_at', 'desc')
      .first()) as SessionRow | undefined;
    return row && toSession(row);
  }

  async insertSession(s: ValidationSession, mail: NewMail): Promise<void> {
    await this.db.transaction(async (trx) => {
      await trx('validation_sessions').insert({
        sid: s.sid,
        medium: s.medium,
        address: s.address,
        client_secret: s.clientSecret,
        token: s.token,
        send_attempt: s.sendAttempt,
        next_link: s.nextLink,
        created_at: s.createdAt,
        token_expires_at: s.tokenExpiresAt,
        validated_at: s.validatedAt,
        expires_at: s.expiresAt,
      });
      await this.mail.enqueue(trx, [mail]);
    });
  }

  async resendSession(
    sid: string,
    u: Pick<ValidationSession, 'token' | 'tokenExpiresAt' | 'sendAttempt' | 'nextLink'>,
    mail: NewMail,
  ): Promise<void> {
    await this.db.transaction(async (trx) => {
      await trx('validation_sessions')
        .where({ sid })
        .update({ token: u.token, token_expires_at: u.tokenExpiresAt, send_attempt: u.sendAttempt, next_link: u.nextLink });
      await this.mail.enqueue(trx, [mail]);
    });
  }

  async markSessionValidated(sid: string, validatedAt: number, expiresAt: number): Promise<void> {
    await this.db
      .knex('validation_sessions')
      .where({ sid })
      .whereNull('validated_at')
      .update({ validated_at: validatedAt, expires_at: expiresAt });
  }

  async deleteExpiredSessions(before: number, limit: number): Promise<number> {
    return this.db.deleteBefore('validation_sessions', 'sid', 'expires_at', before, limit, true);
  }
}
