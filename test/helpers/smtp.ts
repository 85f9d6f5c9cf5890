// A real SMTP server (smtp-server) on an ephemeral loopback port that records and parses (mailparser) every message.
import type { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerAddress } from 'smtp-server';
import { simpleParser, type ParsedMail } from 'mailparser';
import type { ConfigInput } from '../../src/platform/config.js';

export interface ReceivedMail {
  envelope: { from: string; to: string[] };
  raw: Buffer;
  parsed: ParsedMail;
  at: number;
  /** The session was encrypted (implicit TLS or STARTTLS). */
  secure: boolean;
}

export interface TestSmtp {
  port: number;
  messages: ReceivedMail[];
  /** Time of every connection, and every RCPT TO seen (accepted or not). */
  connections: number[];
  rcpts: string[];
  waitFor(n: number, timeoutMs?: number): Promise<ReceivedMail[]>;
  /** Ends holdAfter: messages from now on are accepted, and so are those held whose client is still connected. */
  release(): void;
  /** Connections not yet closed (once 0 after a client died, nothing more of its is accepted). */
  open(): number;
  stop(): Promise<void>;
}

export interface TestSmtpOptions {
  /** Listen here (e.g. a port Tessera already failed to reach). Default: ephemeral. */
  port?: number;
  /** Return [code, text] to reject a recipient. */
  rcpt?: (address: string, seen: number) => [number, string] | undefined;
  /** `tls`: TLS from the first byte; `starttls`: offer STARTTLS. Both use smtp-server's built-in self-signed certificate. */
  tls?: 'none' | 'starttls' | 'tls';
  /** Wait this long before accepting each message, so that sends overlap (a relay's own latency). */
  acceptDelayMs?: number;
  /** Once this many messages are accepted, leave every further one unanswered until release(). */
  holdAfter?: number;
}

/** Polls `check` until it returns a truthy value, or fails after `timeoutMs`. */
export async function until<T>(check: () => Promise<T> | T, timeoutMs = 10_000, what = 'condition'): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function startSmtp(opts: TestSmtpOptions = {}): Promise<TestSmtp> {
  const messages: ReceivedMail[] = [];
  const connections: number[] = [];
  const rcpts: string[] = [];
  let holding = opts.holdAfter !== undefined;
  const held: (() => void)[] = [];
  const closed = new Set<string>();
  const server = new SMTPServer({
    onClose(session) {
      closed.add(session.id);
    },
    secure: opts.tls === 'tls',
    authOptional: true,
    disabledCommands: opts.tls === 'starttls' || opts.tls === 'tls' ? ['AUTH'] : ['STARTTLS', 'AUTH'],
    logger: false,
    disableReverseLookup: true,
    size: 1024 * 1024,
    onRcptTo(address: SMTPServerAddress, _session, cb) {
      rcpts.push(address.address);
      const reject = opts.rcpt?.(address.address, rcpts.filter((a) => a === address.address).length);
      if (reject) {
        const err = new Error(reject[1]) as Error & { responseCode: number };
        err.responseCode = reject[0];
        return cb(err);
      }
      cb();
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks);
        const envelope = {
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
        };
        simpleParser(raw).then(
          (parsed) => {
            const accept = () => {
              // held: not answered until release(); a client killed meanwhile sends it again on its next connection
              if (holding && messages.length >= (opts.holdAfter ?? Infinity)) {
                held.push(accept);
                return;
              }
              // A client gone before the reply could be sent never learns of the message: a relay drops it.
              if (closed.has(session.id)) return;
              messages.push({ envelope, raw, parsed, at: Date.now(), secure: Boolean(session.secure) });
              cb();
            };
            if (opts.acceptDelayMs) setTimeout(accept, opts.acceptDelayMs);
            else accept();
          },
          (err: Error) => cb(err),
        );
      });
    },
  });
  // A client that refuses our test certificate closes the socket mid-handshake; smtp-server reports that
  // as an 'error' event, which would otherwise be an uncaught exception in the test run.
  const socketErrors: Error[] = [];
  server.on('error', (err: Error) => socketErrors.push(err));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  // The TCP accept is when a delivery attempt starts (smtp-server greets 100 ms later).
  server.server.on(opts.tls === 'tls' ? 'secureConnection' : 'connection', () => connections.push(Date.now()));
  const port = (server.server.address() as AddressInfo).port;
  return {
    port,
    messages,
    connections,
    rcpts,
    waitFor: (n, timeoutMs = 15_000) =>
      until(() => (messages.length >= n ? messages : undefined), timeoutMs, `${n} emails (got ${messages.length})`),
    open: () => connections.length - closed.size,
    release: () => {
      holding = false;
      for (const accept of held.splice(0)) accept();
    },
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Config that makes a test server send its email to this capture (plain SMTP on loopback, fast retries). */
export function smtpConfig(port: number, extra: NonNullable<ConfigInput['mail']> = {}): ConfigInput {
  return {
    mail: {
      from: 'Tessera Test <is@is.test>',
      smtp: { host: '127.0.0.1', port, tls: 'none' },
      initialBackoffMs: 50,
      maxBackoffMs: 200,
      ...extra,
    },
  };
}

/** The same as TESSERA_* environment variables, for spawned processes. */
export function smtpEnv(port: number): Record<string, string> {
  return {
    TESSERA_SMTP_HOST: '127.0.0.1',
    TESSERA_SMTP_PORT: String(port),
    TESSERA_SMTP_TLS: 'none',
    TESSERA_MAIL_FROM: 'Tessera Test <is@is.test>',
  };
}
