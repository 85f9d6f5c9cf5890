// Onbind deliveries are not retried forever: 5xx answers and unreachable homeservers are
// retried with backoff, then given up onbind.giveUpAfterMs after the bind, with the reason recorded.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Knex } from 'knex';
import { testDatabases } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { startFakeHomeserver, type FakeHomeserver } from '../helpers/fakeHomeserver.js';
import { routeOnbind, type OnbindEndpoint } from '../helpers/onbind.js';
import { loadConfig } from '../../src/platform/config.js';
import { until as waitUntil } from '../helpers/smtp.js';
import { bindClaimingInvites } from '../../src/associations/claimInvites.js';

/** The shared poller (test/helpers/smtp.ts), with this file's argument order. */
const until = <T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 15_000): Promise<T> =>
  waitUntil(probe, timeoutMs, what) as Promise<T>;

describe('onbind.giveUpAfterMs', () => {
  it('defaults to the invitation lifetime and reads TESSERA_ONBIND_GIVE_UP_AFTER_MS', () => {
    expect(loadConfig({ argv: [], env: {} }).onbind.giveUpAfterMs).toBe(90 * 24 * 3600 * 1000);
    expect(loadConfig({ argv: [], env: { TESSERA_INVITE_LIFETIME_MS: '120000' } }).onbind.giveUpAfterMs).toBe(120_000);
    expect(loadConfig({ argv: [], env: { TESSERA_ONBIND_GIVE_UP_AFTER_MS: '5000' } }).onbind.giveUpAfterMs).toBe(5000);
  });
});

describe.each(testDatabases())('onbind give-up on $name', (db) => {
  let srv: TestServer;
  let hs: FakeHomeserver;
  let onbind: OnbindEndpoint;
  let dispose: () => Promise<void>;
  let knex: Knex;
  let offset = 0;

  beforeAll(async () => {
    const created = await db.create();
    dispose = created.dispose;
    hs = await startFakeHomeserver();
    onbind = routeOnbind(hs, () => ({ status: 500, body: { errcode: 'M_UNKNOWN', error: 'down' } }));
    srv = await startTestServer({
      dbUrl: created.url,
      clock: () => Date.now() + offset,
      overrides: {
        federation: { verifyTls: false, allow: ['127.0.0.1/32'], requestTimeoutMs: 2000 },
        onbind: { initialBackoffMs: 20, maxBackoffMs: 50, pollIntervalMs: 50, leaseMs: 5000, giveUpAfterMs: 60_000 },
      },
    });
    knex = srv.service.db.knex;
  });
  afterAll(async () => {
    await srv?.stop();
    await hs?.stop();
    await dispose?.();
  });

  const queue = async (destination: string, tag: string) => {
    const now = Date.now() + offset;
    const a = {
      medium: 'email',
      address: `${tag}@example.org`,
      mxid: `@${tag}:${destination}`,
      ts: now,
      notBefore: now,
      notAfter: now + 1e9,
    };
    await srv.service.deps.invites.insertInvite(
      {
        medium: 'email',
        address: a.address,
        roomId: '!r:hs',
        sender: '@s:hs',
        token: `${tag}`.padEnd(32, 't'),
        ephemeralPublicKey: `${tag}`.padEnd(43, 'k'),
        fields: {},
        createdAt: now - 1,
        expiresAt: now + 1e9,
      },
      { kind: 'invite', recipient: a.address, payload: {}, createdAt: now - 1 },
    );
    await bindClaimingInvites(srv.service.deps, a, {
      lookupHash: tag,
      destination,
      invitesPerCall: 10,
      now,
      buildBody: (x) => ({ mxid: x.mxid, medium: 'email', address: x.address }),
    });
    srv.service.deps.signals.onbindQueued();
  };
  const row = async (destination: string) => knex('onbind_outbox').where({ destination }).first();

  it('retries 5xx and refused connections, then fails them with the reason once giveUpAfterMs has passed', async () => {
    await queue(hs.serverName, 'five');
    await queue('127.0.0.1:1', 'dead'); // nothing listens: connection refused, a retryable federation error
    await onbind.waitForCalls(3);
    await until('retries of the dead homeserver', async () => Number((await row('127.0.0.1:1'))?.attempts) >= 2);
    expect((await row(hs.serverName)).status).toBe('pending');
    expect((await row('127.0.0.1:1')).status).toBe('pending');

    offset = 60_001;
    srv.service.deps.signals.onbindQueued();
    const five = await until('the 5xx row given up', async () => {
      const r = await row(hs.serverName);
      return r.status === 'failed' && r;
    });
    expect(five.last_error).toMatch(/^gave up after \d+ attempts over \d+ ms; last error: HTTP 500 M_UNKNOWN: down$/);
    expect(Number(five.last_status)).toBe(500);
    expect(five.finished_at).not.toBeNull();
    const dead = await until('the unreachable row given up', async () => {
      const r = await row('127.0.0.1:1');
      return r.status === 'failed' && r;
    });
    expect(dead.last_error).toMatch(/^gave up after \d+ attempts over \d+ ms; last error: federation: /);
    // no more calls once failed
    const calls = onbind.calls.length;
    srv.service.deps.signals.onbindQueued();
    // several poll intervals of the worker: a row still being retried would be called again in that time
    await new Promise((r) => setTimeout(r, 10 * srv.service.deps.config.onbind.pollIntervalMs));
    expect(onbind.calls.length).toBe(calls);
    expect(srv.violations).toEqual([]);
  });
});
