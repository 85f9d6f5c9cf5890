// Two instances on one database with different outbound policies: the one that may not reach the invitee's
// homeserver leaves the onbind for the one that may (rather than failing it for both), and the instance that
// starts second says at start-up that their policies differ. The second instance is a process of its own, as
// instances sharing a database are: two SQLite connections in one process can block each other's event loop.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { testDatabases } from '../helpers/databases.js';
import { processEnv, spawnTessera, type TesseraProcess } from '../helpers/process.js';
import { settle, startTestServer, type TestServer } from '../helpers/server.js';
import { Database } from '../../src/platform/db/Database.js';
import { createLogger } from '../../src/platform/logger.js';
import { InstanceRegistry, outboundPolicyFingerprint } from '../../src/platform/instances.js';
import { smtpConfig, startSmtp, until } from '../helpers/smtp.js';
import { startFakeHomeserver } from '../helpers/fakeHomeserver.js';
import { routeOnbind } from '../helpers/onbind.js';
import { readVerificationMail } from '../helpers/verificationMail.js';

const V1 = '/_matrix/identity/api/v1';

describe.each(testDatabases())('onbind with outbound policies differing between instances on $name', (db) => {
  it(
    'is left by the instance whose policy forbids the homeserver and delivered by the one allowed to reach it',
    { timeout: 60_000 },
    async () => {
      const { url, dispose } = await db.create();
      const hs = await startFakeHomeserver();
      const onbind = routeOnbind(hs);
      const smtp = await startSmtp();
      const config = (allow: string[]) => ({
        ...smtpConfig(smtp.port),
        federation: { verifyTls: false, allow },
        onbind: { initialBackoffMs: 20, maxBackoffMs: 100, pollIntervalMs: 100 },
      });
      const servers: TestServer[] = [];
      const procs: { proc: TesseraProcess; dataDir: string }[] = [];
      try {
        // the first instance keeps the default policy: loopback, where the homeserver listens, is out of reach
        const strict = await startTestServer({ dbUrl: url, overrides: config([]) });
        servers.push(strict);
        expect(strict.logs.join('\n')).not.toContain('different outbound policies');
        const address = 'policy@example.org';
        const invite = await strict.call('POST', `${V1}/store-invite`, {
          medium: 'email',
          address,
          room_id: '!r:hs.example',
          sender: '@alice:hs.example',
        });
        expect(invite.status).toBe(200);
        const sid = (
          await strict.call('POST', `${V1}/validate/email/requestToken`, { client_secret: 'cs', email: address, send_attempt: 1 })
        ).body.sid;
        const { token } = await readVerificationMail(smtp, address);
        expect((await strict.call('POST', `${V1}/validate/email/submitToken`, { sid, client_secret: 'cs', token })).body).toEqual({
          success: true,
        });
        const mxid = `@bob:${hs.serverName}`;
        expect((await strict.call('POST', `${V1}/3pid/bind`, { sid, client_secret: 'cs', mxid })).status).toBe(200);

        const knex = strict.service.db.knex;
        const row = () => knex('onbind_outbox').first();
        // refused by its own policy twice, and still pending: not failed for every instance
        await until(async () => Number((await row()).attempts) >= 2, 20_000, 'two refused attempts');
        expect(await row()).toMatchObject({ status: 'pending' });
        expect((await row()).last_error).toContain("this instance's outbound policy");
        expect(onbind.calls).toHaveLength(0);

        const dataDir = mkdtempSync(join(tmpdir(), 'tessera-policy-'));
        const { env } = await processEnv({ dbUrl: url, dataDir, smtpPort: smtp.port });
        const open = spawnTessera({
          ...env,
          TESSERA_FEDERATION_VERIFY_TLS: 'false',
          TESSERA_FEDERATION_ALLOW: '127.0.0.1/32',
          TESSERA_ONBIND_INITIAL_BACKOFF_MS: '20',
          TESSERA_ONBIND_MAX_BACKOFF_MS: '100',
          TESSERA_ONBIND_POLL_INTERVAL_MS: '100',
        });
        procs.push({ proc: open, dataDir });
        await open.waitFor(/tessera listening/, 60_000);
        expect(open.output()).toContain('different outbound policies');
        await until(async () => (await row()).status === 'delivered', 20_000, 'the onbind delivered');
        expect(onbind.calls).toHaveLength(1);
        expect(onbind.calls[0]!.body.invites.map((i: { token: string }) => i.token)).toEqual([invite.body.token]);
        expect((await knex('invites').where({ token: invite.body.token }).first()).delivered_at).not.toBeNull();
        expect(onbind.violations()).toEqual([]);
      } finally {
        for (const p of procs) {
          p.proc.child.kill('SIGTERM');
          await p.proc.exited;
          rmSync(p.dataDir, { recursive: true, force: true });
        }
        await settle([...servers.map((s) => () => s.stop()), () => hs.stop(), () => smtp.stop()]);
        await dispose();
      }
    },
  );

  it('warns only of live peers whose policy differs, however the same policy is spelled', async () => {
    const { url, dispose } = await db.create();
    const database = await Database.open({ url });
    const lines: string[] = [];
    let now = 1_800_000_000_000;
    const registry = (id: string, allow: string[]) =>
      new InstanceRegistry({
        db: database,
        log: createLogger('warn', (line) => lines.push(line)),
        clock: () => now,
        id,
        outboundPolicy: outboundPolicyFingerprint(allow),
      });
    try {
      const a = registry('a', ['10.0.0.0/8', 'HS.internal']);
      const b = registry('b', ['hs.internal', '10.0.0.0/8', 'hs.internal']);
      expect(await a.register()).toBe(0);
      expect(await b.register()).toBe(0); // the same list, in another order and case, with a repeat
      expect(lines).toEqual([]);
      const c = registry('c', []);
      expect(await c.register()).toBe(2);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain('different outbound policies');
      // peers that stopped cleanly are gone at once; one that stopped refreshing is no peer after three refreshes
      await a.remove();
      await b.remove();
      expect(await registry('d', ['hs.internal']).register()).toBe(1);
      now += 4 * 60_000;
      await c.refresh();
      expect(await registry('e', ['other.internal']).register()).toBe(1); // c is live, d went quiet
    } finally {
      await database.close();
      await dispose();
    }
  });
});
