// A small pool of nodemailer SMTPConnections. The outbox hands over finished messages (raw bytes and
// an explicit envelope), so nodemailer's Mail/SMTPPool layer (plugins, a MimeNode and a stream pipeline per
// message, a generated Message-ID) did nothing for us but cost CPU on every email; the protocol
// itself (EHLO, STARTTLS, AUTH, SMTPUTF8, dot-stuffing, timeouts, error codes) is still nodemailer's
// SMTPConnection, used directly (docs/design.md, Mail).
//
// Each of up to `maxConnections` slots connects when there is work, sends one message at a time, and is
// closed after `maxMessages` messages, after `idleMs` without work, or on any connection error. A message
// refused by the server (EENVELOPE/EMESSAGE) leaves the connection usable (RSET). A message that fails because
// a reused connection turned out to be dead (the server dropped it while idle) is tried once more on a fresh
// connection; everything else is the caller's to retry (the outbox does, with backoff).
import SMTPConnection from 'nodemailer/lib/smtp-connection';

export interface SmtpPoolOptions {
  host: string;
  port: number;
  /** TLS from the first byte (port 465). */
  secure: boolean;
  /** Refuse to send unless STARTTLS succeeds. */
  requireTLS: boolean;
  /** Never use STARTTLS. */
  ignoreTLS: boolean;
  rejectUnauthorized: boolean;
  user?: string;
  password?: string;
  /** EHLO name. */
  name: string;
  connectionTimeoutMs: number;
  greetingTimeoutMs: number;
  socketTimeoutMs: number;
  maxConnections?: number;
  maxMessages?: number;
  idleMs?: number;
}

export interface Envelope {
  from: string;
  to: string;
}

type SendInfo = SMTPConnection.SentMessageInfo;

interface Job {
  envelope: Envelope;
  raw: Buffer;
  resolve(info: SendInfo): void;
  reject(err: unknown): void;
  /** Already failed once on a dead reused connection. */
  retried?: boolean;
}

interface Conn {
  smtp: SMTPConnection;
  sent: number;
  dead: boolean;
  /** Its slot was given back (retire ran). */
  retired: boolean;
  /**
   * What it is doing. A loss while `sending` reaches the send callback, which decides; a loss while `idle`
   * or `resetting` must free the slot here (SMTPConnection drops a pending RSET's callback when it closes).
   */
  state: 'idle' | 'sending' | 'resetting';
  idleTimer?: NodeJS.Timeout;
}

/** Errors that mean "this connection is gone", not "the server said no". */
function isConnectionLoss(err: unknown): boolean {
  const e = err as { code?: unknown; responseCode?: unknown };
  return (
    e.responseCode === undefined && (e.code === 'ECONNECTION' || e.code === 'ESOCKET' || e.code === 'ETIMEDOUT' || e.code === 'EPROTOCOL')
  );
}

export class SmtpPool {
  private readonly queue: Job[] = [];
  private readonly idle: Conn[] = [];
  /** Connections open or opening, idle ones included. */
  private open = 0;
  private closed = false;
  private readonly maxConnections: number;
  private readonly maxMessages: number;
  private readonly idleMs: number;

  constructor(private readonly o: SmtpPoolOptions) {
    this.maxConnections = o.maxConnections ?? 4;
    this.maxMessages = o.maxMessages ?? 100;
    this.idleMs = o.idleMs ?? 30_000;
  }

  send(envelope: Envelope, raw: Buffer): Promise<SendInfo> {
    if (this.closed) return Promise.reject(Object.assign(new Error('SMTP pool closed'), { code: 'ECONNECTION' }));
    return new Promise((resolve, reject) => {
      this.queue.push({ envelope, raw, resolve, reject });
      this.dispatch();
    });
  }

  /** QUITs every idle connection; busy ones finish their message and close. */
  close(): void {
    this.closed = true;
    for (const job of this.queue.splice(0)) job.reject(Object.assign(new Error('SMTP pool closed'), { code: 'ECONNECTION' }));
    for (const c of this.idle.splice(0)) this.retire(c, true);
  }

  private dispatch(): void {
    while (this.queue.length > 0 && !this.closed) {
      const conn = this.idle.pop();
      if (conn) {
        clearTimeout(conn.idleTimer);
        this.run(conn, this.queue.shift()!);
      } else if (this.open < this.maxConnections) {
        this.open++;
        const job = this.queue.shift()!;
        this.connect().then(
          (c) => this.run(c, job),
          (err: unknown) => {
            this.open--;
            job.reject(err);
            this.dispatch();
          },
        );
      } else {
        return; // every slot busy: the next one to finish picks the queue up
      }
    }
  }

  private connect(): Promise<Conn> {
    const o = this.o;
    const smtp = new SMTPConnection({
      host: o.host,
      port: o.port,
      secure: o.secure,
      requireTLS: o.requireTLS,
      ignoreTLS: o.ignoreTLS,
      tls: { rejectUnauthorized: o.rejectUnauthorized, servername: o.host },
      name: o.name,
      connectionTimeout: o.connectionTimeoutMs,
      greetingTimeout: o.greetingTimeoutMs,
      socketTimeout: o.socketTimeoutMs,
      logger: false,
    });
    const conn: Conn = { smtp, sent: 0, dead: false, retired: false, state: 'idle' };
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (err: unknown) => {
        conn.dead = true;
        if (!settled) {
          settled = true;
          smtp.close();
          reject(err);
        } else if (conn.state !== 'sending') {
          // lost while idle (the server hung up) or during RSET: free the slot
          this.dropIdle(conn);
          this.retire(conn, false);
        }
        // (lost during a send: the send callback gets the error too, and decides about the message)
      };
      smtp.on('error', fail);
      smtp.once('end', () => fail(Object.assign(new Error('Connection closed by the server'), { code: 'ECONNECTION' })));
      smtp.connect((err?: Error) => {
        if (err) return fail(err);
        if (settled) return;
        const ready = () => {
          if (settled) return;
          settled = true;
          resolve(conn);
        };
        if (o.user && smtp.allowsAuth) {
          smtp.login({ user: o.user, credentials: { user: o.user, pass: o.password ?? '' } }, (err) => (err ? fail(err) : ready()));
        } else if (o.user) {
          fail(Object.assign(new Error('SMTP AUTH is configured but the server does not offer it'), { code: 'EAUTH' }));
        } else {
          ready();
        }
      });
    });
  }

  private run(conn: Conn, job: Job): void {
    const reused = conn.sent > 0;
    conn.state = 'sending';
    conn.smtp.send({ from: job.envelope.from, to: [job.envelope.to] }, job.raw, (err, info) => {
      conn.sent++;
      conn.state = 'idle';
      if (!err) {
        job.resolve(info);
        this.release(conn);
        return;
      }
      const e = err as { code?: unknown; responseCode?: unknown };
      if ((e.code === 'EENVELOPE' || e.code === 'EMESSAGE') && e.responseCode !== 421 && !conn.dead) {
        // The server refused this message; the session is fine once reset.
        job.reject(err);
        conn.state = 'resetting';
        conn.smtp.reset((resetErr) => {
          conn.state = 'idle';
          if (resetErr) this.retire(conn, false);
          else this.release(conn);
        });
        return;
      }
      this.retire(conn, false);
      if (reused && !job.retried && !this.closed && isConnectionLoss(err)) {
        job.retried = true;
        this.queue.unshift(job);
        this.dispatch();
        return;
      }
      job.reject(err);
    });
  }

  /** Back to work, or idle, or closed when it has sent its share or the pool is closing. */
  private release(conn: Conn): void {
    if (conn.dead || this.closed || conn.sent >= this.maxMessages) {
      this.retire(conn, !conn.dead);
      return;
    }
    const next = this.queue.shift();
    if (next) {
      this.run(conn, next);
      return;
    }
    conn.idleTimer = setTimeout(() => {
      if (this.dropIdle(conn)) this.retire(conn, true);
    }, this.idleMs);
    conn.idleTimer.unref();
    this.idle.push(conn);
  }

  /** Takes `conn` off the idle list; false when it was not idle (busy, or already gone). */
  private dropIdle(conn: Conn): boolean {
    const i = this.idle.indexOf(conn);
    if (i < 0) return false;
    this.idle.splice(i, 1);
    return true;
  }

  /** Closes a connection for good (QUIT when it is healthy) and frees its slot, once. */
  private retire(conn: Conn, polite: boolean): void {
    clearTimeout(conn.idleTimer);
    if (!conn.retired) {
      conn.retired = true;
      this.open--;
      const healthy = !conn.dead;
      conn.dead = true;
      if (polite && healthy) conn.smtp.quit();
      else conn.smtp.close();
    }
    this.dispatch();
  }
}
