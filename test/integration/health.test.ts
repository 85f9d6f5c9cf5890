// GET /health and GET /ready for load balancers and orchestrators: /health answers while the process does; /ready
// only while the database answers, its schema is current and the signing key is loaded, naming what failed if not.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDatabases } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { until } from '../helpers/smtp.js';
import { holdSqliteWriteLock, startTcpProxy, throughProxy, type TcpProxy } from '../helpers/outage.js';
import { parseScrape } from '../helpers/prometheus.js';

const V1 = '/_matrix/identity/api/v1';

describe.each(testDatabases())('health and readiness on $name', (db) => {
  let srv: TestServer;
  let proxy: TcpProxy | undefined;
  let dbUrl: string;
  let dispose: () => Promise<void>;
  let release: (() => void) | undefined;

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
      overrides: { database: { sqliteBusyTimeoutMs: 50, acquireTimeoutMs: 500 } },
    });
  });
  afterAll(async () => {
    proxy?.restore();
    release?.();
    await srv?.stop();
    await proxy?.stop();
    await dispose?.();
  });

  const probe = async (path: string) => {
    const res = await fetch(`${srv.url}${path}`);
    return { status: res.status, body: (await res.json()) as Record<string, any>, headers: res.headers };
  };

  it('answers both when all is well, outside the request log and the request metrics', async () => {
    const logged = srv.logs.length;
    const health = await probe('/health');
    expect(health).toMatchObject({ status: 200, body: { status: 'ok' } });
    expect(health.headers.get('cache-control')).toBe('no-store');
    const ready = await probe('/ready');
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({ status: 'ok', checks: { database: 'ok', migrations: 'ok', signing_key: 'ok' } });
    // a load balancer polling every second adds nothing to the log (the test server logs at debug) or to the traffic
    expect(srv.logs.slice(logged).filter((l) => /\/health|\/ready/.test(l))).toEqual([]);
    const scrape = parseScrape(await (await fetch(`${srv.url}/metrics`)).text());
    expect(scrape.series.filter((s) => s.name === 'tessera_http_requests_total')).toEqual([]);
  });

  it('turns /ready 503 naming the database while it is unavailable, and 200 again once it is back', async () => {
    if (proxy) {
      proxy.cut();
    } else {
      // SQLite: reads go on while another process holds the write lock; the first write that fails starts the outage.
      release = holdSqliteWriteLock(dbUrl);
      const refused = await srv.call('POST', `${V1}/store-invite`, {
        medium: 'email',
        address: 'ready@example.org',
        room_id: '!r:hs.example',
        sender: '@a:hs.example',
      });
      expect(refused.status).toBe(503);
    }
    const down = await until(
      async () => {
        const r = await probe('/ready');
        return r.status === 503 ? r : undefined;
      },
      15_000,
      '/ready to answer 503',
    );
    expect(down.body).toMatchObject({ status: 'unavailable', failed: ['database'], checks: { signing_key: 'ok' } });
    expect(down.body.checks.database).toMatch(/^unavailable: /);
    expect(down.headers.get('cache-control')).toBe('no-store');
    // the process itself still answers
    expect((await probe('/health')).status).toBe(200);

    if (proxy) proxy.restore();
    release?.();
    release = undefined;
    const up = await until(
      async () => {
        const r = await probe('/ready');
        return r.status === 200 ? r : undefined;
      },
      15_000,
      '/ready to answer 200 again',
    );
    expect(up.body.checks).toEqual({ database: 'ok', migrations: 'ok', signing_key: 'ok' });
  });

  it('turns /ready 503 naming the migrations while the schema lacks one this build needs', async () => {
    const knex = srv.service.db.knex;
    const last = (await knex('knex_migrations').orderBy('id', 'desc').first()) as Record<string, unknown>;
    await knex('knex_migrations')
      .where('id', last.id as number)
      .delete();
    try {
      const r = await probe('/ready');
      expect(r.status).toBe(503);
      expect(r.body).toMatchObject({ failed: ['migrations'], checks: { database: 'ok', migrations: `not applied: ${String(last.name)}` } });
    } finally {
      await knex('knex_migrations').insert(last);
    }
    expect((await probe('/ready')).status).toBe(200);
  });
});
