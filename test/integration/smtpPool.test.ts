// The SMTP connection pool (issue 6) against a real SMTP server (smtp-server): reuse, refusals, lost idle
// connections, AUTH, and the per-connection message cap.
import { afterEach, describe, expect, it } from 'vitest';
import type { AddressInfo } from 'node:net';
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

const RAW = Buffer.from('From: a@is.test\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nhello\r\n.leading dot\r\n');

function pool(port: number, over: Partial<SmtpPoolOptions> = {}): SmtpPool {
  return new SmtpPool({
    host: '127.0.0.1', port, secure: false, requireTLS: false, ignoreTLS: true, rejectUnauthorized: true, name: 'is.test',
    connectionTimeoutMs: 2000, greetingTimeoutMs: 2000, socketTimeoutMs: 5000, ...over,
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
    cleanup.push(() => s.stop(), () => p.close());
    const infos = await Promise.all(Array.from({ length: 40 }, (_, i) => p.send({ from: 'a@is.test', to: `u${i}@example.org` }, RAW)));
    expect(infos.every((i) => /^250/.test(i.response))).toBe(true);
    expect(s.received.sort()).toEqual(Array.from({ length: 40 }, (_, i) => `u${i}@example.org`).sort());
    expect(s.connections).toBeLessThanOrEqual(3);
  });

  it('reports a refused recipient as EENVELOPE 550 and keeps using the connection', async () => {
    const s = await server();
    const p = pool(s.port, { maxConnections: 1 });
    cleanup.push(() => s.stop(), () => p.close());
    const refused = await p.send({ from: 'a@is.test', to: 'refuse@example.org' }, RAW).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'EENVELOPE', responseCode: 550 });
    await p.send({ from: 'a@is.test', to: 'ok@example.org' }, RAW);
    expect(s.received).toEqual(['ok@example.org']);
    expect(s.connections).toBe(1);
  });

  it('opens a fresh connection when the server dropped the idle one', async () => {
    const s = await server({ socketTimeout: 300 });
    const p = pool(s.port, { maxConnections: 1 });
    cleanup.push(() => s.stop(), () => p.close());
    await p.send({ from: 'a@is.test', to: 'first@example.org' }, RAW);
    await new Promise((r) => setTimeout(r, 700)); // the server times the idle session out
    await p.send({ from: 'a@is.test', to: 'second@example.org' }, RAW);
    expect(s.received).toEqual(['first@example.org', 'second@example.org']);
    expect(s.connections).toBe(2);
  });

  it('closes a connection after maxMessages and carries on with a new one', async () => {
    const s = await server();
    const p = pool(s.port, { maxConnections: 1, maxMessages: 2 });
    cleanup.push(() => s.stop(), () => p.close());
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
    cleanup.push(() => s.stop(), () => good.close(), () => bad.close());
    await good.send({ from: 'a@is.test', to: 'authed@example.org' }, RAW);
    expect(s.received).toEqual(['authed@example.org']);
    await expect(bad.send({ from: 'a@is.test', to: 'x@example.org' }, RAW)).rejects.toMatchObject({ code: 'EAUTH' });
    // The failed slot is free again: the pool still answers (and fails the same way) rather than hanging.
    await expect(bad.send({ from: 'a@is.test', to: 'y@example.org' }, RAW)).rejects.toMatchObject({ code: 'EAUTH' });
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
