// Invitation and verification email over a real SMTP server, on SQLite and (when configured) MariaDB.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import nacl from 'tweetnacl';
import { simpleParser } from 'mailparser';
import { testDatabases, type TestDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { smtpConfig, startSmtp, until, type ReceivedMail, type TestSmtp } from '../helpers/smtp.js';
import { freePort } from '../helpers/process.js';
import type { Authenticator } from '../../src/platform/http/security.js';

const V1 = '/_matrix/identity/api/v1';
const V2 = '/_matrix/identity/v2';

const testAuth: Authenticator = {
  async authenticate(token) {
    return token === 'good-token' ? { account: { userId: '@bob:hs.example' }, termsAccepted: true } : undefined;
  },
};

const invite = (address: string, over: Record<string, unknown> = {}) => ({
  medium: 'email',
  address,
  room_id: '!tea:hs.example',
  sender: '@bob:hs.example',
  room_name: 'Tea party',
  room_alias: '#tea:hs.example',
  sender_display_name: 'Bob',
  ...over,
});

const knexOf = (srv: TestServer) => srv.service.db.knex;

async function outboxRow(srv: TestServer, recipient: string): Promise<any> {
  return knexOf(srv)('mail_outbox').where({ recipient }).orderBy('id', 'desc').first();
}

function linkOf(mail: ReceivedMail): URL {
  const line = mail.parsed.text!.split('\n').find((l) => l.startsWith('https://app.element.io/'));
  expect(line, 'join link in the text part').toBeDefined();
  return new URL(line!.replace('/#/', '/'));
}

describe.each(testDatabases())('mail delivery on $name', (db: TestDatabase) => {
  let smtp: TestSmtp;
  let srv: TestServer;
  let dispose: () => Promise<void>;
  const to = (address: string) => smtp.messages.filter((m) => m.envelope.to.includes(address));

  beforeAll(async () => {
    smtp = await startSmtp({
      rcpt: (address, seen) => {
        if (address.startsWith('reject')) return [550, '5.1.1 Mailbox unavailable'];
        if (address.startsWith('busy') && seen === 1) return [451, '4.3.0 Try again later'];
        return undefined;
      },
    });
    const created = await db.create();
    dispose = created.dispose;
    srv = await startTestServer({ dbUrl: created.url, auth: testAuth, overrides: smtpConfig(smtp.port) });
  });
  afterAll(async () => {
    await srv?.stop();
    await smtp?.stop();
    await dispose?.();
  });
  afterEach(() => {
    expect(srv.violations).toEqual([]);
  });

  it('sends the invite email, starting within 100 ms of the response, with the link web clients expect', async () => {
    const before = Date.now();
    const res = await srv.call('POST', `${V1}/store-invite`, invite('first@example.org', { room_avatar_url: 'mxc://hs.example/avatar' }));
    const answered = Date.now();
    expect(res.status).toBe(200);
    const [mail] = await until(() => (to('first@example.org').length ? to('first@example.org') : undefined));
    const connected = smtp.connections.find((t) => t >= before);
    expect(connected).toBeDefined();
    expect(connected! - answered).toBeLessThan(100);

    expect(mail!.envelope).toEqual({ from: 'is@is.test', to: ['first@example.org'] });
    const p = mail!.parsed;
    expect(p.from?.value).toEqual([{ address: 'is@is.test', name: 'Tessera Test' }]);
    expect((p.to as { value: unknown[] }).value).toEqual([{ address: 'first@example.org', name: '' }]);
    expect(p.subject).toBe('Bob has invited you to chat');
    expect(p.messageId).toMatch(/^<\d+[A-Za-z0-9]{16}@127\.0\.0\.1>$/);
    expect(p.text).toContain('Bob (@bob:hs.example) has invited you to join the room "Tea party" (#tea:hs.example) on Matrix.');
    expect(p.text).toContain('Room avatar: mxc://hs.example/avatar');
    expect(p.text).toContain(`Invitation token: ${res.body.token}`);
    expect(p.html).toContain(`<code>${res.body.token}</code>`);

    const link = linkOf(mail!);
    expect(decodeURIComponent(link.pathname)).toBe('/room/!tea:hs.example');
    expect(link.searchParams.get('email')).toBe('first@example.org');
    expect(link.searchParams.get('room_name')).toBe('Tea party');
    expect(link.searchParams.get('room_avatar_url')).toBe('mxc://hs.example/avatar');
    expect(link.searchParams.get('inviter_name')).toBe('Bob');
    expect(link.searchParams.get('room_type')).toBe('');
    const sign = new URL(link.searchParams.get('signurl')!);
    expect(`${sign.origin}${sign.pathname}`).toBe(`${srv.url}${V1}/sign-ed25519`);
    expect(sign.searchParams.get('token')).toBe(res.body.token);
    // the private key in the link is the one whose public half store-invite answered
    const seed = Buffer.from(sign.searchParams.get('private_key')!, 'base64url');
    expect(Buffer.from(nacl.sign.keyPair.fromSeed(seed).publicKey).toString('base64url')).toBe(res.body.public_keys[1].public_key);
    expect(p.html).toContain(
      `href="${mail!.parsed
        .text!.split('\n')
        .find((l) => l.startsWith('https://app.element.io/'))!
        .replace(/&/g, '&amp;')}"`,
    );

    const row = await until(async () => {
      const r = await outboxRow(srv, 'first@example.org');
      return r?.status === 'sent' ? r : undefined;
    });
    expect(Number(row.attempts)).toBe(1);
    expect(Number(row.sent_at)).toBeGreaterThan(0);
    // the private key (and token) are gone from the stored payload once the email is out
    expect(row.payload).not.toContain(sign.searchParams.get('private_key')!);
    expect(row.payload).not.toContain(res.body.token);
    expect(JSON.parse(row.payload)).toEqual({ room_id: '!tea:hs.example', messageId: p.messageId });
    expect(srv.logs.join('\n')).not.toContain('first@example.org');
  });

  it('points a v2 invite at the v1 sign endpoint (v1 is served; v2 needs a token), names the verified sender, and words spaces', async () => {
    const res = await srv.call('POST', `${V2}/store-invite`, invite('second@example.org', { room_type: 'm.space' }), {
      authorization: 'Bearer good-token',
    });
    expect(res.status).toBe(200);
    const [mail] = await until(() => (to('second@example.org').length ? to('second@example.org') : undefined));
    const link = linkOf(mail!);
    const sign = new URL(link.searchParams.get('signurl')!);
    expect(`${sign.origin}${sign.pathname}`).toBe(`${srv.url}${V1}/sign-ed25519`);
    expect(link.searchParams.get('room_type')).toBe('m.space');
    expect(mail!.parsed.subject).toBe('Bob has invited you to a space');
    expect(mail!.parsed.text).toContain('has invited you to join the space "Tea party"');
  });

  it('stores and emails an invitation to an opaque room_id without a leading !, URL-encoded into the join link', async () => {
    for (const [address, roomId] of [
      ['opaque1@example.org', 'room-without-bang'],
      ['opaque2@example.org', 'room/with?query#and&amp; <odd> chars'],
    ]) {
      const res = await srv.call('POST', `${V1}/store-invite`, invite(address!, { room_id: roomId }));
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect((await srv.service.deps.invites.findInviteByToken(res.body.token))?.roomId).toBe(roomId);
      const [mail] = await until(() => (to(address!).length ? to(address!) : undefined));
      const line = mail!.parsed.text!.split('\n').find((l) => l.startsWith('https://app.element.io/'))!;
      // the room id is one path segment of the fragment: nothing in it starts a query, a fragment or a new segment
      const fragment = new URL(line).hash;
      expect(fragment).toBe(`#/room/${encodeURIComponent(roomId!)}${fragment.slice(fragment.indexOf('?'))}`);
      const link = linkOf(mail!);
      expect(decodeURIComponent(link.pathname)).toBe(`/room/${roomId}`);
      expect(link.searchParams.get('email')).toBe(address);
      expect(link.searchParams.get('room_name')).toBe('Tea party');
      expect(mail!.parsed.text).toContain(`Accept the invitation to ${roomId} from there.`);
    }
  });

  it('escapes and truncates hostile names, and no input adds a header or a recipient', async () => {
    const displayName = 'Mallory\r\nBcc: evil@example.net\r\nX-Injected: yes <script>alert(1)</script>';
    const roomName = '<b onmouseover="x">Hi</b>\r\n\r\n--boundary\r\nContent-Type: text/html\r\n\r\n<script>' + 'Ω'.repeat(50);
    const res = await srv.call(
      'POST',
      `${V1}/store-invite`,
      invite('hostile@example.org', {
        sender_display_name: displayName,
        room_name: roomName,
        room_alias: '#"><img src=x>:hs.example',
        'org.matrix.web_client_location': 'https://evil.example',
      }),
    );
    expect(res.status).toBe(200);
    const [mail] = await until(() => (to('hostile@example.org').length ? to('hostile@example.org') : undefined));
    expect(mail!.envelope.to).toEqual(['hostile@example.org']);
    expect(smtp.rcpts).not.toContain('evil@example.net');
    const p = mail!.parsed;
    expect(p.headers.has('bcc')).toBe(false);
    expect(p.headers.has('cc')).toBe(false);
    expect(p.headers.has('x-injected')).toBe(false);
    expect((p.to as { value: unknown[] }).value).toHaveLength(1);
    expect(p.subject).toBe('Mallory  Bcc: evil@e... has invited you to chat');
    expect(p.attachments).toEqual([]);
    expect(p.html).not.toMatch(/<script|<b |<img/i);
    expect(p.html).toContain('&lt;b onmouseover=&quot;x&quot;&gt;Hi&lt;/b&gt;');
    expect(p.text).toContain('"<b onmouseover="x">Hi</b>    -..."');
    const link = linkOf(mail!);
    expect(link.origin).toBe('https://app.element.io'); // not the unlisted web client
    expect(link.searchParams.get('inviter_name')).toBe('Mallory  Bcc: evil@e...');
    expect(link.searchParams.get('room_name')).toBe('<b onmouseover="x">Hi</b>    -...');
    // a non-Latin name is cut on code points and survives the trip intact
    const res2 = await srv.call(
      'POST',
      `${V1}/store-invite`,
      invite('greek@example.org', { sender_display_name: 'Ωμέγα'.repeat(8), room_name: '茶会'.repeat(20) }),
    );
    expect(res2.status).toBe(200);
    const [greek] = await until(() => (to('greek@example.org').length ? to('greek@example.org') : undefined));
    expect(greek!.parsed.subject).toBe(`${'Ωμέγα'.repeat(4)}... has invited you to chat`);
    expect(greek!.parsed.text).toContain(`"${'茶会'.repeat(15)}..."`);
  });

  it('records a permanent 550 as failed with the reason and never retries it', async () => {
    const res = await srv.call('POST', `${V1}/store-invite`, invite('reject@example.org'));
    expect(res.status).toBe(200);
    const row = await until(async () => {
      const r = await outboxRow(srv, 'reject@example.org');
      return r?.status === 'failed' ? r : undefined;
    });
    expect(row.last_error).toContain('550');
    expect(row.last_error).toContain('Mailbox unavailable');
    expect(Number(row.attempts)).toBe(1);
    expect(JSON.parse(row.payload)).toEqual({ room_id: '!tea:hs.example' });
    // another pass finds nothing to do: a failed row is never claimed again
    srv.service.mailWorker.wake();
    await srv.service.mailWorker.idle();
    expect(smtp.rcpts.filter((a) => a === 'reject@example.org')).toHaveLength(1);
    expect((await outboxRow(srv, 'reject@example.org')).status).toBe('failed');
    expect(to('reject@example.org')).toHaveLength(0);
    expect(srv.logs.join('\n')).not.toContain('reject@example.org');
  });

  it('retries a 4xx and delivers exactly once', async () => {
    await srv.call('POST', `${V1}/store-invite`, invite('busy@example.org'));
    const row = await until(async () => {
      const r = await outboxRow(srv, 'busy@example.org');
      return r?.status === 'sent' ? r : undefined;
    });
    expect(Number(row.attempts)).toBe(2);
    expect(smtp.rcpts.filter((a) => a === 'busy@example.org')).toHaveLength(2);
    await until(() => to('busy@example.org').length === 1);
    await srv.service.mailWorker.idle();
    expect(to('busy@example.org')).toHaveLength(1);
  });

  it('sends verification emails queued by the validation-session code', async () => {
    const link = `${srv.url}${V2}/validate/email/submitToken?token=987654&client_secret=abc&sid=5`;
    await srv.service.stores.mailOutbox.enqueue(knexOf(srv), [
      {
        kind: 'verification',
        recipient: 'verify@example.org',
        payload: { token: '987654', link, ipaddress: '192.0.2.9', brand: null },
        createdAt: Date.now(),
      },
    ]);
    srv.service.deps.signals.mailQueued();
    const [mail] = await until(() => (to('verify@example.org').length ? to('verify@example.org') : undefined));
    expect(mail!.parsed.subject).toBe('Confirm your email address for Matrix');
    expect(mail!.parsed.text).toContain(link);
    expect(mail!.parsed.text).toContain('the code is 987654');
    expect(mail!.parsed.text).toContain('192.0.2.9');
    expect(mail!.parsed.html).toContain(`href="${link.replace(/&/g, '&amp;')}"`);
  });

  it('deletes sent and failed rows after the retention period, and only those', async () => {
    const knex = knexOf(srv);
    await until(async () => (await knex('mail_outbox').where('status', 'pending').count({ n: '*' }))[0]!.n == 0);
    const pendingId = (
      await knex('mail_outbox').insert({
        kind: 'invite',
        recipient: 'later@example.org',
        payload: '{}',
        status: 'pending',
        attempts: 0,
        next_attempt_at: Date.now() + 3_600_000,
        created_at: Date.now(),
      })
    )[0];
    const finished = Number((await knex('mail_outbox').whereIn('status', ['sent', 'failed']).count({ n: '*' }))[0]!.n);
    expect(finished).toBeGreaterThan(2);
    await srv.service.mailWorker.sweepNow(); // inside the retention period: nothing goes
    expect(Number((await knex('mail_outbox').count({ n: '*' }))[0]!.n)).toBe(finished + 1);
    await knex('mail_outbox')
      .whereIn('status', ['sent', 'failed'])
      .update({ finished_at: Date.now() - srv.service.deps.config.mail.keepFinishedMs - 1 });
    await srv.service.mailWorker.sweepNow();
    const left = await knex('mail_outbox').select('id', 'status');
    expect(left).toEqual([{ id: pendingId, status: 'pending' }]);
    await knex('mail_outbox').where('id', pendingId).delete();
  });
});

describe.each(testDatabases())('mail when SMTP is down on $name', (db: TestDatabase) => {
  it('answers at once, retries, and sends exactly one email once SMTP is back', async () => {
    const { url, dispose } = await db.create();
    const port = await freePort();
    const srv = await startTestServer({ dbUrl: url, overrides: smtpConfig(port) });
    let smtp: TestSmtp | undefined;
    try {
      const started = Date.now();
      const res = await srv.call('POST', `${V1}/store-invite`, invite('down@example.org'));
      expect(res.status).toBe(200);
      expect(Date.now() - started).toBeLessThan(2000);
      const failed = await until(async () => {
        const r = await outboxRow(srv, 'down@example.org');
        return r && Number(r.attempts) >= 2 && r.status === 'pending' ? r : undefined;
      });
      expect(failed.last_error).toMatch(/ECONNREFUSED|ECONNECTION|ESOCKET/);
      smtp = await startSmtp({ port });
      const [mail] = await smtp.waitFor(1);
      expect(mail!.envelope.to).toEqual(['down@example.org']);
      const row = await until(async () => {
        const r = await outboxRow(srv, 'down@example.org');
        return r.status === 'sent' ? r : undefined;
      });
      expect(row.last_error).toBeNull();
      srv.service.mailWorker.wake();
      await srv.service.mailWorker.idle();
      expect(smtp.messages).toHaveLength(1);
      expect(srv.violations).toEqual([]);
    } finally {
      await srv.stop();
      await smtp?.stop();
      await dispose();
    }
  });

  it('keeps the email across a restart and sends it from the next instance', async () => {
    const { url, dispose } = await db.create();
    const port = await freePort();
    let smtp: TestSmtp | undefined;
    let second: TestServer | undefined;
    try {
      const first = await startTestServer({ dbUrl: url, overrides: smtpConfig(port) });
      expect((await first.call('POST', `${V1}/store-invite`, invite('restart@example.org'))).status).toBe(200);
      await until(async () => Number((await outboxRow(first, 'restart@example.org'))?.attempts) >= 1);
      await first.stop();
      smtp = await startSmtp({ port });
      second = await startTestServer({ dbUrl: url, overrides: smtpConfig(port) });
      const [mail] = await smtp.waitFor(1);
      expect(mail!.envelope.to).toEqual(['restart@example.org']);
      await until(async () => (await outboxRow(second!, 'restart@example.org')).status === 'sent');
      expect(smtp.messages).toHaveLength(1);
    } finally {
      await second?.stop();
      await smtp?.stop();
      await dispose();
    }
  });
});

describe.each(testDatabases())('mail without SMTP on $name', (db: TestDatabase) => {
  it('writes a complete .eml file under <dataDir>/mail and logs its path, not the address', async () => {
    const { url, dispose } = await db.create();
    const srv = await startTestServer({ dbUrl: url });
    try {
      const res = await srv.call('POST', `${V1}/store-invite`, invite('nosmtp@example.org'));
      expect(res.status).toBe(200);
      const dir = join(srv.dataDir, 'mail');
      const file = await until(() => (existsSync(dir) ? readdirSync(dir).find((f) => f.endsWith('.eml')) : undefined));
      const parsed = await simpleParser(readFileSync(join(dir, file)));
      expect((parsed.to as { value: { address: string }[] }).value[0]!.address).toBe('nosmtp@example.org');
      expect(parsed.text).toContain(res.body.token);
      expect(parsed.html).toContain('Tea party');
      const line = await until(() => srv.logs.find((l) => l.includes('mail written')));
      expect(line).toContain(join(dir, file));
      expect(srv.logs.join('\n')).not.toContain('nosmtp@example.org');
      await until(async () => (await outboxRow(srv, 'nosmtp@example.org')).status === 'sent');
    } finally {
      await srv.stop();
      await dispose();
    }
  });
});

describe('SMTP TLS modes', () => {
  // smtp-server's built-in certificate is self-signed: verification must refuse it unless turned off.
  for (const tls of ['tls', 'starttls'] as const) {
    it(`${tls}: encrypts, and verifies the certificate unless told not to`, async () => {
      const db = testDatabases()[0]!;
      const { url, dispose } = await db.create();
      const smtp = await startSmtp({ tls });
      let strict: TestServer | undefined = await startTestServer({
        dbUrl: url,
        overrides: smtpConfig(smtp.port, { smtp: { host: '127.0.0.1', port: smtp.port, tls } }),
      });
      let relaxed: TestServer | undefined;
      try {
        await strict.call('POST', `${V1}/store-invite`, invite(`${tls}@example.org`));
        const row = await until(async () => {
          const r = await outboxRow(strict!, `${tls}@example.org`);
          return r && r.last_error ? r : undefined;
        });
        expect(row.status).toBe('pending');
        expect(row.last_error).toMatch(/certificate|self[- ]signed/i);
        expect(smtp.messages).toHaveLength(0);
        await strict.stop();
        strict = undefined;
        relaxed = await startTestServer({
          dbUrl: url,
          overrides: smtpConfig(smtp.port, { smtp: { host: '127.0.0.1', port: smtp.port, tls, verifyCertificates: false } }),
        });
        const [mail] = await smtp.waitFor(1);
        expect(mail!.secure).toBe(true);
        expect(mail!.envelope.to).toEqual([`${tls}@example.org`]);
      } finally {
        await strict?.stop();
        await relaxed?.stop();
        await smtp.stop();
        await dispose();
      }
    });
  }
});
