// A real Tessera process is SIGKILLed while an onbind delivery is pending; the restarted service delivers it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { testDatabases } from '../helpers/databases.js';
import { freePort, spawnTessera } from '../helpers/process.js';
import { startTestServer } from '../helpers/server.js';
import { openDatabase } from '../../src/store/db.js';
import { readVerificationMail } from '../helpers/verificationMail.js';
import { loopbackFederationClient, startLoopbackHomeserver } from '../helpers/loopbackFederation.js';
import { verifyMatrixSignature } from '../helpers/signatures.js';

const V1 = '/_matrix/identity/api/v1';

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe.each(testDatabases())('onbind across a SIGKILL on $name', (db) => {
  it('delivers after the process that accepted the bind was killed', { timeout: 90_000 }, async () => {
    const { url, dispose } = await db.create();
    const dataDir = mkdtempSync(join(tmpdir(), 'tessera-kill-'));
    const hs = await startLoopbackHomeserver();
    const { knex } = openDatabase({ url });
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    // The process has no federation client configured (issue 4 brings it): every attempt fails retryably,
    // so the delivery is certainly pending when the process dies.
    const proc = spawnTessera({
      TESSERA_PORT: String(port),
      TESSERA_DATA_DIR: dataDir,
      TESSERA_DB_URL: url,
      TESSERA_SERVER_NAME: 'is.test',
      TESSERA_ONBIND_INITIAL_BACKOFF_MS: '50',
      TESSERA_ONBIND_MAX_BACKOFF_MS: '200',
      TESSERA_ONBIND_POLL_INTERVAL_MS: '100',
      TESSERA_ONBIND_LEASE_MS: '1000',
    });
    try {
      await proc.waitFor(/tessera listening/, 60_000);
      const post = async (path: string, body: unknown) => {
        const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
        return { status: res.status, body: (await res.json()) as any };
      };
      const address = 'kill.test@example.org';
      const invite = await post(`${V1}/store-invite`, { medium: 'email', address, room_id: '!r:hs.example', sender: '@alice:hs.example' });
      expect(invite.status).toBe(200);
      const sid = (await post(`${V1}/validate/email/requestToken`, { client_secret: 'cs', email: address, send_attempt: 1 })).body.sid;
      const { token } = await readVerificationMail(knex, address);
      expect((await post(`${V1}/validate/email/submitToken`, { sid, client_secret: 'cs', token })).body).toEqual({ success: true });
      const mxid = `@bob:${hs.serverName}`;
      const bound = await post(`${V1}/3pid/bind`, { sid, client_secret: 'cs', mxid });
      expect(bound.status).toBe(200);
      await until('a failed attempt recorded', async () => {
        const row = await knex('onbind_outbox').first();
        return row && Number(row.attempts) >= 1 && row.status === 'pending';
      });
      proc.child.kill('SIGKILL');
      expect(await proc.exited).toBe('SIGKILL');
      expect(hs.calls).toHaveLength(0);

      const srv = await startTestServer({
        dbUrl: url,
        dataDir,
        federation: loopbackFederationClient,
        overrides: { onbind: { initialBackoffMs: 50, maxBackoffMs: 200, pollIntervalMs: 100, leaseMs: 1000 } },
      });
      try {
        await hs.waitForCalls(1, 30_000);
        const body = hs.calls[0]!.body;
        expect(body.mxid).toBe(mxid);
        expect(body.invites.map((i: any) => i.token)).toEqual([invite.body.token]);
        const serverKey = (await srv.call('GET', '/_matrix/identity/v2/pubkey/ed25519:0')).body.public_key;
        expect(serverKey).toBe(invite.body.public_key);
        expect(verifyMatrixSignature(body, 'is.test', 'ed25519:0', serverKey)).toBe(true);
        expect(verifyMatrixSignature(body.invites[0].signed, 'is.test', 'ed25519:0', serverKey)).toBe(true);
        await until('invite delivered', async () => (await knex('invites').where({ token: invite.body.token }).first()).delivered_at !== null);
        const row = await knex('onbind_outbox').first();
        expect(row.status).toBe('delivered');
        expect(hs.calls).toHaveLength(1);
        expect(hs.violations).toEqual([]);
        expect(srv.violations).toEqual([]);
      } finally {
        await srv.stop();
      }
    } finally {
      proc.child.kill('SIGKILL');
      await knex.destroy();
      await hs.close();
      await dispose();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
