// GET /metrics: real traffic moves the request counters by operation and status, refusals are counted by limit and
// block list, the outbox gauges follow mail the relay holds back, and /metrics can live on a listener of its own.
import { afterEach, describe, expect, it } from 'vitest';
import { operations } from '../../generated/identity.validators.js';
import { testDatabases } from '../helpers/databases.js';
import { freePort } from '../helpers/process.js';
import { parseScrape, valueOf, type Scrape } from '../helpers/prometheus.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { smtpConfig, startSmtp, until, type TestSmtp } from '../helpers/smtp.js';

const V1 = '/_matrix/identity/api/v1';
const V2 = '/_matrix/identity/v2';
const WINDOW_MS = 60_000;
const invite = (address: string, room = '!r:hs.example') => ({ medium: 'email', address, room_id: room, sender: '@bob:hs.example' });

async function scrape(base: string): Promise<Scrape> {
  const res = await fetch(`${base}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseScrape(await res.text());
}

/** Real time, shifted to start at the beginning of a rate-limit window, so that a test's requests share one window. */
function windowAlignedClock(): () => number {
  const origin = Date.now();
  const start = Math.ceil(origin / WINDOW_MS) * WINDOW_MS;
  return () => start + (Date.now() - origin);
}

describe.each(testDatabases())('metrics on $name', (db) => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    while (cleanup.length) await cleanup.pop()!();
  });

  async function start(smtp: TestSmtp): Promise<TestServer> {
    const { url, dispose } = await db.create();
    cleanup.push(dispose);
    const srv = await startTestServer({
      dbUrl: url,
      clock: windowAlignedClock(),
      overrides: {
        ...smtpConfig(smtp.port),
        rateLimits: { windowMs: WINDOW_MS, storeInvitePerAddress: 3 },
        invites: { blockedRooms: ['!blocked:hs.example'] },
      },
    });
    cleanup.push(() => srv.stop());
    return srv;
  }

  it('counts requests by operation and status, refusals and stored invitations; the outbox gauges follow held mail', async () => {
    const smtp = await startSmtp({ holdAfter: 0 }); // every message waits for release()
    cleanup.push(() => (smtp.release(), smtp.stop()));
    const srv = await start(smtp);
    const before = await scrape(srv.url);
    const delta =
      (name: string, labels: Record<string, string> = {}) =>
      (s: Scrape) =>
        valueOf(s, name, labels) - valueOf(before, name, labels);
    const requests = (operation: string, status: number) => delta('tessera_http_requests_total', { operation, status: String(status) });

    const stored = [];
    for (let i = 0; i < 3; i++) {
      const res = await srv.call('POST', `${V1}/store-invite`, invite('held@example.org'));
      expect(res.status).toBe(200);
      stored.push(res.body);
    }
    const limited = await srv.call('POST', `${V1}/store-invite`, invite('held@example.org'));
    expect(limited.status).toBe(429);
    expect((await srv.call('POST', `${V1}/store-invite`, invite('other@example.org', '!blocked:hs.example'))).status).toBe(403);
    expect((await srv.call('POST', `${V1}/store-invite`, { medium: 'email' })).status).toBe(400);
    for (const inv of stored.slice(0, 2)) {
      const key = encodeURIComponent(inv.public_keys[1].public_key as string);
      const res = await srv.call('GET', `${V1}/pubkey/ephemeral/isvalid?public_key=${key}`);
      expect(res.body).toEqual({ valid: true });
    }
    expect((await srv.call('GET', `${V2}/no/such/${Math.random().toString(36).slice(2)}`)).status).toBe(404);
    expect((await srv.call('GET', `/nowhere-${Math.random().toString(36).slice(2)}`)).status).toBe(404);

    const after = await scrape(srv.url);
    expect(requests('invite', 200)(after)).toBe(3);
    expect(requests('invite', 429)(after)).toBe(1);
    expect(requests('invite', 403)(after)).toBe(1);
    expect(requests('invite', 400)(after)).toBe(1);
    expect(requests('ephemeralValid', 200)(after)).toBe(2);
    expect(requests('not_found', 404)(after)).toBe(2);
    expect(delta('tessera_http_request_duration_seconds_count', { operation: 'invite' })(after)).toBe(6);
    expect(delta('tessera_http_request_duration_seconds_bucket', { operation: 'invite', le: '+Inf' })(after)).toBe(6);
    expect(delta('tessera_rate_limited_total', { limit: 'invite-to' })(after)).toBe(1);
    expect(delta('tessera_blocked_total', { list: 'rooms' })(after)).toBe(1);
    expect(delta('tessera_blocked_total', { list: 'servers' })(after)).toBe(0);
    expect(delta('tessera_invitations_stored_total')(after)).toBe(3);
    expect(delta('tessera_emails_sent_total')(after)).toBe(0);
    // Rows are queued in the invitation's transaction: all three wait while the relay holds them.
    expect(valueOf(after, 'tessera_outbox_pending', { outbox: 'mail' })).toBe(3);
    expect(valueOf(after, 'tessera_outbox_pending', { outbox: 'onbind' })).toBe(0);

    // Operations are labelled by operationId or a fixed name, never by path: random paths add no series.
    const known = new Set([...Object.keys(operations), 'not_found', 'unknown']);
    const labelled = after.series.filter((s) => s.labels.operation !== undefined).map((s) => s.labels.operation!);
    expect(labelled.filter((op) => !known.has(op))).toEqual([]);
    expect(after.types.get('tessera_http_requests_total')).toBe('counter');
    expect(after.types.get('tessera_http_request_duration_seconds')).toBe('histogram');
    expect(after.types.get('tessera_outbox_pending')).toBe('gauge');
    // prom-client's process metrics, with the prefix
    expect(after.types.get('tessera_process_cpu_user_seconds_total')).toBe('counter');
    expect(after.types.get('tessera_nodejs_heap_size_used_bytes')).toBe('gauge');
    // the pool: SQLite's one connection, MariaDB's pool
    const max = valueOf(after, 'tessera_db_pool_max');
    expect(max).toBe(db.name === 'sqlite' ? 1 : 8);
    expect(valueOf(after, 'tessera_db_pool_used') + valueOf(after, 'tessera_db_pool_free')).toBeLessThanOrEqual(max);
    expect(valueOf(after, 'tessera_database_available')).toBe(1);

    // The oldest waiting email ages while it waits.
    await until(
      async () => valueOf(await scrape(srv.url), 'tessera_outbox_oldest_pending_age_seconds', { outbox: 'mail' }) > 0,
      10_000,
      'the oldest pending email to age',
    );

    smtp.release();
    await smtp.waitFor(3);
    const delivered = await until(
      async () => {
        const s = await scrape(srv.url);
        return valueOf(s, 'tessera_outbox_pending', { outbox: 'mail' }) === 0 ? s : undefined;
      },
      15_000,
      'the mail outbox to drain',
    );
    expect(delta('tessera_emails_sent_total')(delivered)).toBe(3);
    expect(delta('tessera_emails_failed_total')(delivered)).toBe(0);
    expect(valueOf(delivered, 'tessera_outbox_oldest_pending_age_seconds', { outbox: 'mail' })).toBe(0);
  });

  it('counts retried emails while the relay refuses, and a limit of requestToken', async () => {
    // Nothing listens on the relay's port at first: every attempt fails to connect and is retried.
    const port = await freePort();
    const { url, dispose } = await db.create();
    cleanup.push(dispose);
    const srv = await startTestServer({
      dbUrl: url,
      clock: windowAlignedClock(),
      overrides: { ...smtpConfig(port), rateLimits: { windowMs: WINDOW_MS, requestTokenPerAddress: 1 } },
    });
    cleanup.push(() => srv.stop());
    const body = (attempt: number) => ({ client_secret: 'metrics-secret-1', email: 'verify@example.org', send_attempt: attempt });
    expect((await srv.call('POST', `${V1}/validate/email/requestToken`, body(1))).status).toBe(200);
    expect((await srv.call('POST', `${V1}/validate/email/requestToken`, body(2))).status).toBe(429);
    const retried = await until(
      async () => {
        const s = await scrape(srv.url);
        return valueOf(s, 'tessera_emails_retried_total') >= 2 ? s : undefined;
      },
      15_000,
      'two retried attempts',
    );
    expect(valueOf(retried, 'tessera_rate_limited_total', { limit: 'reqtoken-to' })).toBe(1);
    expect(valueOf(retried, 'tessera_outbox_pending', { outbox: 'mail' })).toBe(1);
    expect(valueOf(retried, 'tessera_emails_sent_total')).toBe(0);

    const smtp = await startSmtp({ port });
    cleanup.unshift(() => smtp.stop()); // after the server: it closes its SMTP connections as it stops
    await smtp.waitFor(1);
    await until(async () => valueOf(await scrape(srv.url), 'tessera_emails_sent_total') === 1, 15_000, 'the email counted as sent');
  });
});

describe('a metrics listener of its own', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    while (cleanup.length) await cleanup.pop()!();
  });

  it('serves /metrics on metrics.port only; the main listener answers it 404', async () => {
    const [db] = testDatabases();
    const { url, dispose } = await db!.create();
    cleanup.push(dispose);
    const port = await freePort();
    const srv = await startTestServer({ dbUrl: url, overrides: { metrics: { port, host: '127.0.0.1' } } });
    cleanup.push(() => srv.stop());
    expect(srv.service.metricsUrl).toBe(`http://127.0.0.1:${port}`);

    const main = await srv.call('GET', '/metrics');
    expect(main.status).toBe(404);
    expect(main.body.errcode).toBe('M_UNRECOGNIZED');
    expect((await srv.call('GET', '/health')).status).toBe(200);

    const own = await scrape(srv.service.metricsUrl!);
    // the main listener's /metrics was an unrouted request like any other
    expect(valueOf(own, 'tessera_http_requests_total', { operation: 'not_found', status: '404' })).toBe(1);
    expect((await fetch(`${srv.service.metricsUrl}/health`)).status).toBe(404);
    expect((await fetch(`${srv.service.metricsUrl}/metrics`, { method: 'POST' })).status).toBe(404);
  });

  it('serves no /metrics when metrics.enabled is off', async () => {
    const [db] = testDatabases();
    const { url, dispose } = await db!.create();
    cleanup.push(dispose);
    const srv = await startTestServer({ dbUrl: url, overrides: { metrics: { enabled: false } } });
    cleanup.push(() => srv.stop());
    expect((await srv.call('GET', '/metrics')).status).toBe(404);
    expect(srv.service.metricsUrl).toBeUndefined();
  });
});
