// validate/email/requestToken is rate-limited: per client IP and per (hashed) address, before
// a session is created or an email re-sent; a repeated send_attempt that sends nothing is not counted.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Knex } from 'knex';
import { testDatabases } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { smtpConfig, startSmtp, until, type TestSmtp } from '../helpers/smtp.js';
import { verificationMailCount } from '../helpers/verificationMail.js';
import { loadConfig } from '../../src/platform/config.js';

const V1 = '/_matrix/identity/api/v1';
const V2 = '/_matrix/identity/v2';
/** A multiple of the 60 s window, plus 15 s: retry_after_ms is 45 s. Each test starts a new window. */
const START = 1_699_999_980_000 + 15_000;

describe('requestToken rate-limit settings', () => {
  it('default to 60 per IP and 5 per address a window, from TESSERA_RATELIMIT_REQUEST_TOKEN_*', () => {
    expect(loadConfig({ argv: [], env: {} }).rateLimits).toMatchObject({ requestTokenPerIp: 60, requestTokenPerAddress: 5 });
    const c = loadConfig({
      argv: [],
      env: { TESSERA_RATELIMIT_REQUEST_TOKEN_PER_IP: '0', TESSERA_RATELIMIT_REQUEST_TOKEN_PER_ADDRESS: '7' },
    });
    expect(c.rateLimits).toMatchObject({ requestTokenPerIp: 0, requestTokenPerAddress: 7 });
  });
});

describe.each(testDatabases())('requestToken rate limits on $name', (db) => {
  let srv: TestServer;
  let smtp: TestSmtp;
  let dispose: () => Promise<void>;
  let knex: Knex;
  let now = START;

  beforeAll(async () => {
    const created = await db.create();
    dispose = created.dispose;
    smtp = await startSmtp();
    srv = await startTestServer({
      dbUrl: created.url,
      clock: () => now,
      auth: { authenticate: async () => ({ account: { userId: '@v2:hs.example' }, termsAccepted: true }) },
      overrides: { ...smtpConfig(smtp.port), rateLimits: { windowMs: 60_000, requestTokenPerIp: 32, requestTokenPerAddress: 5 } },
    });
    knex = srv.service.db.knex;
  });
  afterAll(async () => {
    await srv?.stop();
    await smtp?.stop();
    await dispose?.();
  });

  const request = (email: string, clientSecret: string, sendAttempt = 1, version: 'v1' | 'v2' = 'v1') =>
    srv.call(
      'POST',
      `${version === 'v2' ? V2 : V1}/validate/email/requestToken`,
      { client_secret: clientSecret, email, send_attempt: sendAttempt },
      version === 'v2' ? { authorization: 'Bearer x' } : {},
    );
  const drained = () =>
    until(async () => (await knex('mail_outbox').where('status', 'pending')).length === 0, 10_000, 'mail outbox drained');

  it('sends one victim at most requestTokenPerAddress emails a window, whatever the client_secrets', async () => {
    const statuses: number[] = [];
    let limited;
    for (let i = 0; i < 30; i++) {
      const res = await request('Victim@example.org', `secret-${i}`, 1, i % 2 ? 'v2' : 'v1');
      statuses.push(res.status);
      if (res.status === 429) limited = res.body;
    }
    expect(statuses.filter((s) => s === 200)).toHaveLength(5);
    expect(statuses.slice(5).every((s) => s === 429)).toBe(true);
    expect(limited).toEqual({ errcode: 'M_LIMIT_EXCEEDED', error: expect.any(String), retry_after_ms: 45_000 });
    await drained();
    await until(() => verificationMailCount(smtp, 'Victim@example.org') >= 5, 10_000, 'five emails');
    expect(verificationMailCount(smtp, 'Victim@example.org')).toBe(5);
    expect(await knex('validation_sessions').where({ address: 'victim@example.org' })).toHaveLength(5);
    // the counters hold no address
    expect(JSON.stringify(await knex('rate_limits').select('bucket'))).not.toContain('victim');
    expect(srv.violations).toEqual([]);
  });

  it('does not count a repeated send_attempt that sends nothing, but counts a re-send', async () => {
    now += 60_000;
    const first = await request('again@example.org', 'same-secret', 1);
    expect(first.status).toBe(200);
    for (let i = 0; i < 6; i++) expect((await request('again@example.org', 'same-secret', 1)).body).toEqual({ sid: first.body.sid });
    for (let attempt = 2; attempt <= 5; attempt++) expect((await request('again@example.org', 'same-secret', attempt)).status).toBe(200);
    const over = await request('again@example.org', 'same-secret', 6);
    expect(over.status).toBe(429);
    expect(over.body.errcode).toBe('M_LIMIT_EXCEEDED');
    await drained();
    expect(verificationMailCount(smtp, 'again@example.org')).toBe(5);
    expect(srv.violations).toEqual([]);
  });

  it('limits one client IP across addresses', async () => {
    now += 60_000;
    for (let i = 0; i < 32; i++) expect((await request(`ip${i}@example.org`, 'ip-secret', 1)).status).toBe(200);
    const res = await request('fresh@example.org', 'fresh-secret', 1);
    expect(res.status).toBe(429);
    expect(res.body.retry_after_ms).toBe(45_000);
    expect(await knex('validation_sessions').where({ address: 'fresh@example.org' })).toHaveLength(0);
    now += 60_000; // the next window lets it through
    expect((await request('fresh@example.org', 'fresh-secret', 1)).status).toBe(200);
    expect(srv.violations).toEqual([]);
  });
});
