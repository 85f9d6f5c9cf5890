// store-invite rate limits: per client IP, per sender and per recipient, shared between instances.
import { afterEach, describe, expect, it } from 'vitest';
import { testDatabases } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { insertAssociation } from '../helpers/associations.js';

const V1 = '/_matrix/identity/api/v1';
/** A multiple of the 60 s window, so retry_after_ms is predictable. */
const WINDOW_START = 1_699_999_980_000;
const invite = (address: string, sender = '@bob:hs.example') => ({ medium: 'email', address, room_id: '!r:hs.example', sender });

describe.each(testDatabases())('rate limits on $name', (db) => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    while (cleanup.length) await cleanup.pop()!();
  });

  async function pair(rateLimits: Record<string, number>, clock: () => number): Promise<[TestServer, TestServer]> {
    const { url, dispose } = await db.create();
    cleanup.push(dispose);
    const a = await startTestServer({ dbUrl: url, clock, overrides: { rateLimits } });
    cleanup.push(() => a.stop());
    const b = await startTestServer({ dbUrl: url, clock, overrides: { rateLimits } });
    cleanup.push(() => b.stop());
    return [a, b];
  }

  it('limits one recipient across two instances, with retry_after_ms, and stores nothing refused', async () => {
    let now = WINDOW_START;
    const [a, b] = await pair({ windowMs: 60_000, storeInvitePerAddress: 3 }, () => now);
    for (const srv of [a, b, a]) expect((await srv.call('POST', `${V1}/store-invite`, invite('target@example.org'))).status).toBe(200);
    const over = await b.call('POST', `${V1}/store-invite`, invite('TARGET@example.org'));
    expect(over.status).toBe(429);
    expect(over.body.errcode).toBe('M_LIMIT_EXCEEDED');
    expect(over.body.retry_after_ms).toBe(60_000);
    // the refused request stored nothing: three invitations and three emails for that address
    const knex = a.service.db.knex;
    expect((await knex('invites').where({ address: 'target@example.org' })).length).toBe(3);
    expect((await knex('mail_outbox').whereRaw('LOWER(recipient) = ?', ['target@example.org'])).length).toBe(3);
    expect((await a.call('POST', `${V1}/store-invite`, invite('other@example.org'))).status).toBe(200);
    now += 60_000;
    expect((await a.call('POST', `${V1}/store-invite`, invite('target@example.org'))).status).toBe(200);
    expect(a.violations).toEqual([]);
    expect(b.violations).toEqual([]);
  });

  it('limits a sender and a client IP', async () => {
    const now = WINDOW_START + 30_000;
    const [a] = await pair({ windowMs: 60_000, storeInvitePerSender: 2, storeInvitePerIp: 4 }, () => now);
    expect((await a.call('POST', `${V1}/store-invite`, invite('x1@example.org', '@s:hs.example'))).status).toBe(200);
    expect((await a.call('POST', `${V1}/store-invite`, invite('x2@example.org', '@s:hs.example'))).status).toBe(200);
    const sender = await a.call('POST', `${V1}/store-invite`, invite('x3@example.org', '@s:hs.example'));
    expect(sender.status).toBe(429);
    expect(sender.body.retry_after_ms).toBe(30_000);
    expect((await a.call('POST', `${V1}/store-invite`, invite('x4@example.org', '@t:hs.example'))).status).toBe(200);
    // fifth request from this IP in the window
    expect((await a.call('POST', `${V1}/store-invite`, invite('x5@example.org', '@u:hs.example'))).status).toBe(429);
  });

  it('answers 429 before M_THREEPID_IN_USE, and the sweeper drops finished windows', async () => {
    let now = 1_700_000_000_000;
    const [a] = await pair({ windowMs: 60_000, storeInvitePerAddress: 1 }, () => now);
    await insertAssociation(a.service.deps, {
      medium: 'email',
      address: 'bound@example.org',
      mxid: '@c:hs.example',
      ts: now,
      notBefore: 0,
      notAfter: now * 2,
    });
    expect((await a.call('POST', `${V1}/store-invite`, invite('bound@example.org'))).body.errcode).toBe('M_THREEPID_IN_USE');
    expect((await a.call('POST', `${V1}/store-invite`, invite('bound@example.org'))).body.errcode).toBe('M_LIMIT_EXCEEDED');
    now += 120_000;
    expect(await a.service.deps.limiter.sweep()).toBeGreaterThan(0);
  });

  it('counts per client IP from X-Forwarded-For only when the operator trusts a proxy', async () => {
    for (const trustProxy of [false, true]) {
      const { url, dispose } = await db.create();
      cleanup.push(dispose);
      const srv = await startTestServer({
        dbUrl: url,
        clock: () => WINDOW_START,
        overrides: { server: { trustProxy }, rateLimits: { storeInvitePerIp: 1 } },
      });
      cleanup.push(() => srv.stop());
      const from = (ip: string, n: number) =>
        srv.call('POST', `${V1}/store-invite`, invite(`p${n}@example.org`, `@s${n}:hs.example`), { 'x-forwarded-for': ip });
      expect((await from('203.0.113.1', 1)).status).toBe(200);
      // another claimed client: a separate bucket behind a trusted proxy, the same socket address otherwise
      expect((await from('203.0.113.2', 2)).status, `trustProxy=${trustProxy}`).toBe(trustProxy ? 200 : 429);
      expect((await from('203.0.113.1', 3)).status).toBe(429);
    }
  });
});
