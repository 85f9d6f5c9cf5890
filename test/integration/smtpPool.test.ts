// The SMTP connection pool against a real SMTP server (smtp-server): reuse, refusals, lost idle
// connections, AUTH, and the per-connection message cap.
import { afterEach, describe, expect, it } from 'vitest';
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { SmtpPool, type SmtpPoolOptions } from '../../src/mail/smtpPool.js';

interface Server {
  port: number;
  connections: number;
  received: string[];
  stop(): Promise<void>;
}

async function server(extra: Partial<SMTPServerOptions> = {}): Promise<Server> {
  const s: Server = { port: 0, connections: 0, received: [], stop: async () => {} };
  const srv = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    disableReverseLookup: true,
    onConnect(_session, cb) {
      s.connections++;
      cb();
    },
    onRcptTo(address, _session, cb) {
      if (address.address.startsWith('refuse')) return cb(Object.assign(new Error('no such user'), { responseCode: 550 }));
      cb();
    },
    onData(stream, session, cb) {
      stream.resume();
      stream.on('end', () => {
        s.received.push(session.envelope.rcptTo[0]!.address);
        cb();
      });
    },
    ...extra,
  });
  srv.on('error', () => {});
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  s.port = (srv.server.address() as AddressInfo).port;
  s.stop = () => new Promise<void>((resolve) => srv.close(() => resolve()));
  return s;
}

/**
 * A scripted SMTP server for failure cases smtp-server cannot be told to produce (a connection dropped at a
 * chosen command). `answer` gets each command line (and `.` at the end of DATA) and writes the reply.
 */
async function scripted(
  answer: (sock: Socket, line: string, state: { mails: number; data: boolean }) => void,
): Promise<{ port: number; stop(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const srv = createTcpServer((sock) => {
    sockets.add(sock);
    const state = { mails: 0, data: false };
    let buf = '';
    sock.on('error', () => {});
    sock.write('220 scripted ESMTP\r\n');
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      for (let i = buf.indexOf('\r\n'); i >= 0; i = buf.indexOf('\r\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (state.data && line !== '.') continue;
        if (line === '.') state.data = false;
        answer(sock, line, state);
      }
    });
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return {
    port: (srv.address() as AddressInfo).port,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        srv.close(() => resolve());
      }),
  };
}

/** The usual happy replies; `special` may take a command first (return true when it answered). */
function replies(special: (sock: Socket, line: string, state: { mails: number; data: boolean }) => boolean = () => false) {
  return (sock: Socket, line: string, state: { mails: number; data: boolean }) => {
    if (special(sock, line, state)) return;
    const cmd = line.slice(0, 4).toUpperCase();
    if (cmd === 'EHLO') sock.write('250 scripted\r\n');
    else if (cmd === 'MAIL') sock.write('250 ok\r\n');
    else if (cmd === 'RCPT') sock.write(line.includes('refuse') ? '550 no such user\r\n' : '250 ok\r\n');
    else if (cmd === 'DATA') {
      state.data = true;
      sock.write('354 go ahead\r\n');
    } else if (line === '.') sock.write('250 queued\r\n');
    else if (cmd === 'RSET') sock.write('250 reset\r\n');
    else if (cmd === 'QUIT') sock.end('221 bye\r\n');
  };
}

/** Settles within `ms`, or says it hung. */
const within = <T>(p: Promise<T>, ms = 3000) =>
  Promise.race([
    p.then(
      (v) => ({ settled: 'resolved', v }),
      (e: unknown) => ({ settled: 'rejected', e }),
    ),
    new Promise<{ settled: 'hung' }>((r) => setTimeout(() => r({ settled: 'hung' }), ms)),
  ]);

const RAW = Buffer.from('From: a@is.test\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nhello\r\n.leading dot\r\n');

function pool(port: number, over: Partial<SmtpPoolOptions> = {}): SmtpPool {
  return new SmtpPool({
    host: '127.0.0.1',
    port,
    secure: false,
    requireTLS: false,
    ignoreTLS: true,
    rejectUnauthorized: true,
    name: 'is.test',
    connectionTimeoutMs: 2000,
    greetingTimeoutMs: 2000,
    socketTimeoutMs: 5000,
    ...over,
  });
}

let cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

describe('SmtpPool', () => {
  it('sends many messages over at most maxConnections connections', async () => {
    const s = await server();
    const p = pool(s.port, { maxConnections: 3 });
    cleanup.push(
      () => s.stop(),
      () => p.close(),
    );
    const infos = await Promise.all(Array.from({ length: 40 }, (_, i) => p.send({ from: 'a@is.test', to: `u${i}@example.org` }, RAW)));
    expect(infos.every((i) => /^250/.test(i.response))).toBe(true);
    expect(s.received.sort()).toEqual(Array.from({ length: 40 }, (_, i) => `u${i}@example.org`).sort());
    expect(s.connections).toBeLessThanOrEqual(3);
  });

  it('reports a refused recipient as EENVELOPE 550 and keeps using the connection', async () => {
    const s = await server();
    const p = pool(s.port, { maxConnections: 1 });
    cleanup.push(
      () => s.stop(),
      () => p.close(),
    );
    const refused = await p.send({ from: 'a@is.test', to: 'refuse@example.org' }, RAW).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'EENVELOPE', responseCode: 550 });
    await p.send({ from: 'a@is.test', to: 'ok@example.org' }, RAW);
    expect(s.received).toEqual(['ok@example.org']);
    expect(s.connections).toBe(1);
  });

  it('opens a fresh connection when the server dropped the idle one', async () => {
    const s = await server({ socketTimeout: 300 });
    const p = pool(s.port, { maxConnections: 1 });
    cleanup.push(
      () => s.stop(),
      () => p.close(),
    );
    await p.send({ from: 'a@is.test', to: 'first@example.org' }, RAW);
    await new Promise((r) => setTimeout(r, 700)); // the server times the idle session out
    await p.send({ from: 'a@is.test', to: 'second@example.org' }, RAW);
    expect(s.received).toEqual(['first@example.org', 'second@example.org']);
    expect(s.connections).toBe(2);
  });

  it('closes a connection after maxMessages and carries on with a new one', async () => {
    const s = await server();
    const p = pool(s.port, { maxConnections: 1, maxMessages: 2 });
    cleanup.push(
      () => s.stop(),
      () => p.close(),
    );
    for (let i = 0; i < 5; i++) await p.send({ from: 'a@is.test', to: `m${i}@example.org` }, RAW);
    expect(s.received).toHaveLength(5);
    expect(s.connections).toBe(3);
  });

  it('logs in with AUTH, and fails with EAUTH on wrong credentials', async () => {
    const s = await server({
      disabledCommands: ['STARTTLS'],
      authOptional: false,
      allowInsecureAuth: true,
      onAuth(auth, _session, cb) {
        if (auth.username === 'tessera' && auth.password === 'secret') return cb(null, { user: 'tessera' });
        cb(new Error('bad credentials'));
      },
    });
    const good = pool(s.port, { user: 'tessera', password: 'secret' });
    const bad = pool(s.port, { user: 'tessera', password: 'wrong' });
    cleanup.push(
      () => s.stop(),
      () => good.close(),
      () => bad.close(),
    );
    await good.send({ from: 'a@is.test', to: 'authed@example.org' }, RAW);
    expect(s.received).toEqual(['authed@example.org']);
    await expect(bad.send({ from: 'a@is.test', to: 'x@example.org' }, RAW)).rejects.toMatchObject({ code: 'EAUTH' });
    // The failed slot is free again: the pool still answers (and fails the same way) rather than hanging.
    await expect(bad.send({ from: 'a@is.test', to: 'y@example.org' }, RAW)).rejects.toMatchObject({ code: 'EAUTH' });
  });

  it('frees the slot of a connection that dies during the RSET after a refusal', async () => {
    const s = await scripted(
      replies((sock, line) => {
        if (!line.toUpperCase().startsWith('RSET')) return false;
        sock.destroy();
        return true;
      }),
    );
    const p = pool(s.port, { maxConnections: 1 });
    cleanup.push(
      () => s.stop(),
      () => p.close(),
    );
    await expect(p.send({ from: 'a@is.test', to: 'refuse@example.org' }, RAW)).rejects.toMatchObject({ code: 'EENVELOPE' });
    // With the only slot leaked, this would wait forever.
    expect(await within(p.send({ from: 'a@is.test', to: 'ok@example.org' }, RAW))).toMatchObject({ settled: 'resolved' });
  });

  it('settles a message whose reused connection drops after close() was called', async () => {
    const s = await scripted(
      replies((sock, line, state) => {
        if (!line.toUpperCase().startsWith('MAIL') || ++state.mails !== 2) return false;
        setTimeout(() => sock.destroy(), 100); // the second message: no answer, then the connection drops
        return true;
      }),
    );
    const p = pool(s.port, { maxConnections: 1 });
    cleanup.push(() => s.stop());
    await p.send({ from: 'a@is.test', to: 'first@example.org' }, RAW);
    const second = p.send({ from: 'a@is.test', to: 'second@example.org' }, RAW);
    setTimeout(() => p.close(), 20);
    expect(await within(second)).toMatchObject({ settled: 'rejected' });
  });

  it('reports a connection closed before the greeting as a connection error', async () => {
    const silent = createTcpServer((sock) => sock.end()); // accepts, then hangs up without a greeting
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const p = pool((silent.address() as AddressInfo).port, { user: 'tessera', password: 'x' });
    cleanup.push(
      () => new Promise<void>((r) => silent.close(() => r())),
      () => p.close(),
    );
    const err = (await p.send({ from: 'a@is.test', to: 'x@example.org' }, RAW).catch((e: unknown) => e)) as Error & { code?: string };
    expect(err).toBeInstanceOf(Error);
    expect(err.code).not.toBe('EAUTH'); // not "the server does not offer AUTH": it never got that far
  });

  it('fails fast with a connection error when nothing listens, and rejects sends after close', async () => {
    const s = await server();
    const port = s.port;
    await s.stop();
    const p = pool(port);
    await expect(p.send({ from: 'a@is.test', to: 'x@example.org' }, RAW)).rejects.toThrow(/ECONNREFUSED/);
    p.close();
    await expect(p.send({ from: 'a@is.test', to: 'x@example.org' }, RAW)).rejects.toThrow(/closed/);
  });
});
