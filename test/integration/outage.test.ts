// Database outages: while the database is gone, requests that need it answer 503 M_UNKNOWN with Retry-After, the
// log says so once when it starts (WARN) and once when it ends (INFO), with no stack per request or per background
// run, and service resumes by itself. Any other unexpected error is one ERROR line naming the request.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { testDatabases } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { until } from '../helpers/smtp.js';
import {
  holdSqliteConnection,
  holdSqliteWriteLock,
  logLines,
  stackLines,
  startTcpProxy,
  throughProxy,
  type TcpProxy,
} from '../helpers/outage.js';
import { parseLog } from '../helpers/logs.js';

const V1 = '/_matrix/identity/api/v1';
const V2 = '/_matrix/identity/v2';

describe.each(testDatabases())('a database outage on $name', (db) => {
  let srv: TestServer;
  let proxy: TcpProxy | undefined;
  let dbUrl: string;
  let dispose: () => Promise<void>;
  let n = 0;

  /** MariaDB/MySQL: every connection through the proxy reset. SQLite: another process's write lock, held. */
  let release: (() => void) | undefined;
  const cut = () => {
    if (proxy) proxy.cut();
    else release = holdSqliteWriteLock(dbUrl);
  };
  const restore = () => {
    if (proxy) proxy.restore();
    else release?.();
    release = undefined;
  };

  const invite = () =>
    srv.call('POST', `${V1}/store-invite`, {
      medium: 'email',
      address: `outage.${++n}@example.org`,
      room_id: '!room:hs.example',
      sender: '@alice:hs.example',
    });

  beforeAll(async () => {
    const created = await db.create();
    dispose = created.dispose;
    dbUrl = created.url;
    if (db.name === 'mysql') {
      const target = new URL(created.url);
      proxy = await startTcpProxy(target.hostname, Number(target.port || 3306));
    }
    srv = await startTestServer({
      dbUrl: proxy ? throughProxy(created.url, proxy) : created.url,
      // How long a write waits for the other connection's lock (5 s by default), and a query for the held connection.
      overrides: { database: { sqliteBusyTimeoutMs: 50, acquireTimeoutMs: 200 } },
    });
  });
  afterAll(async () => {
    restore();
    await srv?.stop();
    await proxy?.stop();
    await dispose?.();
  });

  it('answers 503 with Retry-After while the database is cut, logs the outage once, and recovers by itself', async () => {
    expect((await invite()).status).toBe(200);
    const before = srv.logs.length;
    // Nothing reaches stdout around the logger either (knex prints a stack per failed connection attempt unless told).
    const printed = vi.spyOn(console, 'log');
    cut();
    try {
      for (let i = 0; i < 3; i++) {
        const res = await invite();
        expect(res.status, JSON.stringify(res.body)).toBe(503);
        expect(res.body).toEqual({ errcode: 'M_UNKNOWN', error: expect.any(String) });
        expect(res.headers.get('retry-after')).toBe('5');
        expect(res.headers.get('x-request-id')).toBeTruthy();
      }
      const lookup = await srv.call('GET', `${V1}/lookup?medium=email&address=nobody%40example.org`);
      // SQLite in WAL mode: reads go on while another process holds the write lock; only writes wait and fail.
      expect(lookup.status, JSON.stringify(lookup.body)).toBe(db.name === 'sqlite' ? 200 : 503);
      // Background jobs that meet the outage count towards it rather than logging a stack per run.
      await srv.service.sweeper.sweepOnce();
      srv.service.mailWorker.wake();
      await srv.service.mailWorker.idle();

      const during = srv.logs.slice(before);
      expect(logLines(during, 'WARN', 'database unavailable'), during.join('\n')).toHaveLength(1);
      expect(logLines(during, 'ERROR'), during.join('\n')).toEqual([]);
      expect(stackLines(during)).toEqual([]);
    } finally {
      restore();
    }

    // Service resumes with the first query that succeeds; the tracker's probe logs the end of the outage.
    await until(async () => (await invite()).status === 200, 10_000, 'store-invite to succeed again');
    const ended = await until(() => logLines(srv.logs.slice(before), 'INFO', 'database available again')[0], 10_000, 'the INFO line');
    const after = srv.logs.slice(before);
    expect(logLines(after, 'INFO', 'database available again')).toHaveLength(1);
    expect(logLines(after, 'WARN', 'database unavailable')).toHaveLength(1);
    expect(stackLines(after)).toEqual([]);
    expect(parseLog(ended).downMs).toEqual(expect.any(Number));
    expect(parseLog(ended).refusedRequests).toBeGreaterThanOrEqual(db.name === 'sqlite' ? 3 : 4);
    const stdout = printed.mock.calls.map((args) => args.join(' '));
    printed.mockRestore();
    expect(stdout).toEqual([]);
  });

  it('under load, cut mid-flight: answers each request 200 or 503, and the log tells one outage', async () => {
    // MariaDB/MySQL: the proxy resets the connections queries are running on. SQLite: its one connection is taken
    // (as a statement that never ends would hold it), so queued queries time out waiting for it.
    let held: (() => Promise<void>) | undefined;
    let holding: Promise<void> | undefined;
    const before = srv.logs.length;
    const answers: { status: number; retryAfter: string | null }[] = [];
    const lookup = () => srv.call('GET', `${V1}/lookup?medium=email&address=load%40example.org`);
    await Promise.all(
      Array.from({ length: 150 }, async (_, i) => {
        const res = await (i % 3 === 0 ? lookup() : invite());
        answers.push({ status: res.status, retryAfter: res.headers.get('retry-after') });
        // Cut once a few answers are in, while the rest are in flight.
        if (answers.length === 20) {
          if (proxy) proxy.cut();
          else holding = holdSqliteConnection(srv.service).then((release) => void (held = release));
        }
      }),
    );
    await holding;
    // Still cut: whatever the requests in flight met, this one meets the outage.
    expect((await invite()).status).toBe(503);
    proxy?.restore();
    await held?.();

    expect(answers.filter((a) => a.status !== 200 && !(a.status === 503 && a.retryAfter === '5'))).toEqual([]);
    await until(() => logLines(srv.logs.slice(before), 'INFO', 'database available again')[0], 10_000, 'the INFO line');
    const logs = srv.logs.slice(before);
    expect(logLines(logs, 'WARN', 'database unavailable'), logs.join('\n')).toHaveLength(1);
    expect(logLines(logs, 'INFO', 'database available again')).toHaveLength(1);
    expect(logLines(logs, 'ERROR'), logs.join('\n')).toEqual([]);
    expect(stackLines(logs)).toEqual([]);
    expect((await invite()).status).toBe(200);
  });

  it('logs any other unexpected error once, as an ERROR naming the request, and answers 500', async () => {
    const keys = srv.service.deps.keys;
    const publicKeyFor = keys.publicKeyFor;
    keys.publicKeyFor = () => {
      throw new TypeError('a defect');
    };
    const before = srv.logs.length;
    try {
      const res = await srv.call('GET', `${V2}/pubkey/ed25519:0`);
      expect(res.status).toBe(500);
      expect(res.body).toEqual({ errcode: 'M_UNKNOWN', error: 'Internal server error' });
      const id = res.headers.get('x-request-id');
      expect(id).toMatch(/^[A-Za-z0-9_-]+-[0-9a-z]+$/);
      const errors = logLines(srv.logs.slice(before), 'ERROR');
      expect(errors).toHaveLength(1);
      expect(errors[0]).toContain(`"request_id":"${id}"`);
      expect(errors[0]).toContain('a defect');
      expect(logLines(srv.logs.slice(before), 'WARN')).toEqual([]);
    } finally {
      keys.publicKeyFor = publicKeyFor;
    }
    // Each answer names its own request.
    const ids = await Promise.all([1, 2, 3].map(async () => (await srv.call('GET', `${V2}`)).headers.get('x-request-id')));
    expect(new Set(ids).size).toBe(3);
  });
});
