// Two instances on one database with different outbound policies: the one that may not reach the invitee's
// homeserver leaves the onbind for the one that may (rather than failing it for both), and the instance that
// starts second says at start-up that their policies differ.
import { describe, expect, it } from 'vitest';
import { testDatabases } from '../helpers/databases.js';
import { settle, startTestServer, type TestServer } from '../helpers/server.js';
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

        const open = await startTestServer({ dbUrl: url, overrides: config(['127.0.0.1/32']) });
        servers.push(open);
        expect(open.logs.join('\n')).toContain('different outbound policies');
        await until(async () => (await row()).status === 'delivered', 20_000, 'the onbind delivered');
        expect(onbind.calls).toHaveLength(1);
        expect(onbind.calls[0]!.body.invites.map((i: { token: string }) => i.token)).toEqual([invite.body.token]);
        expect((await knex('invites').where({ token: invite.body.token }).first()).delivered_at).not.toBeNull();
        expect(onbind.violations()).toEqual([]);
      } finally {
        await settle([...servers.map((s) => () => s.stop()), () => hs.stop(), () => smtp.stop()]);
        await dispose();
      }
    },
  );

  it('says nothing at start-up when the instances on the database share one policy, however it is spelled', async () => {
    const { url, dispose } = await db.create();
    const servers: TestServer[] = [];
    try {
      servers.push(await startTestServer({ dbUrl: url, overrides: { federation: { allow: ['10.0.0.0/8', 'HS.internal'] } } }));
      servers.push(
        await startTestServer({ dbUrl: url, overrides: { federation: { allow: ['hs.internal', '10.0.0.0/8', 'hs.internal'] } } }),
      );
      expect(servers[1]!.logs.join('\n')).not.toContain('different outbound policies');
      // an instance that stopped cleanly is no longer a peer
      await servers.shift()!.stop();
      servers.push(await startTestServer({ dbUrl: url, overrides: { federation: { allow: [] } } }));
      expect(servers[1]!.logs.join('\n')).toContain('different outbound policies');
      expect(servers[1]!.logs.join('\n')).toContain('differing=1');
    } finally {
      await settle(servers.map((s) => () => s.stop()));
      await dispose();
    }
  });
});
