// Several Tessera instances draining one mail outbox: 200 invites give exactly 200 emails, no duplicates.
// Two instances share the database on MariaDB/MySQL; SQLite (one writer, embedded) runs the same with one.
import { describe, expect, it } from 'vitest';
import { testDatabases, type TestDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { startSmtp, until } from '../helpers/smtp.js';

const INVITES = 200;

describe.each(testDatabases())('mail outbox shared by instances on $name', (db: TestDatabase) => {
  const instances = db.name === 'mysql' ? 2 : 1;

  it(`delivers ${INVITES} invites as exactly ${INVITES} emails with ${instances} instance(s)`, async () => {
    const { url, dispose } = await db.create();
    const smtp = await startSmtp();
    const servers: TestServer[] = [];
    try {
      for (let i = 0; i < instances; i++) {
        servers.push(
          await startTestServer({
            dbUrl: url,
            // small batches and a short poll make the instances' claims interleave as much as possible
            overrides: {
              mail: {
                from: 'is@is.test',
                smtp: { host: '127.0.0.1', port: smtp.port, tls: 'none' },
                concurrency: 3,
                pollIntervalMs: 50,
                initialBackoffMs: 50,
                maxBackoffMs: 200,
              },
            },
          }),
        );
      }
      const tokens = new Map<string, string>();
      let next = 0;
      const worker = async () => {
        while (next < INVITES) {
          const i = next++;
          const srv = servers[i % servers.length]!;
          const address = `user${i}@example.org`;
          const res = await srv.call('POST', '/_matrix/identity/api/v1/store-invite', {
            medium: 'email',
            address,
            room_id: '!room:hs.example',
            sender: '@bob:hs.example',
            room_name: `Room ${i}`,
          });
          expect(res.status).toBe(200);
          tokens.set(address, res.body.token);
        }
      };
      await Promise.all(Array.from({ length: 16 }, worker));
      await smtp.waitFor(INVITES, 60_000);
      const knex = servers[0]!.service.db.knex;
      await until(
        async () => Number((await knex('mail_outbox').where('status', 'sent').count({ n: '*' }))[0]!.n) === INVITES,
        30_000,
        'all rows sent',
      );
      for (const s of servers) {
        s.service.mailWorker.wake();
        await s.service.mailWorker.idle();
      }
      expect(smtp.messages).toHaveLength(INVITES);
      const recipients = smtp.messages.map((m) => m.envelope.to.join(','));
      expect(new Set(recipients).size).toBe(INVITES);
      for (const m of smtp.messages) {
        const address = m.envelope.to[0]!;
        expect(m.parsed.text, address).toContain(`Invitation token: ${tokens.get(address)}`);
      }
      const rows = await knex('mail_outbox').select('attempts', 'status');
      expect(rows).toHaveLength(INVITES);
      expect(rows.every((r: { attempts: number; status: string }) => r.status === 'sent' && Number(r.attempts) === 1)).toBe(true);
      if (instances > 1) {
        // both instances really took part
        for (const s of servers)
          expect(s.logs.filter((l) => l.includes('"level":"info"') && l.includes('"msg":"mail sent"')).length).toBeGreaterThan(0);
      }
      for (const s of servers) expect(s.violations).toEqual([]);
    } finally {
      for (const s of servers) await s.stop();
      await smtp.stop();
      await dispose();
    }
  }, 120_000);
});
