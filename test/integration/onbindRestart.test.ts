// Real processes on both sides: a Tessera process (the real federation client) is SIGKILLed while its onbind
// delivery to an HTTPS fake homeserver is pending and in flight; a restarted process delivers it exactly once.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { testDatabases } from '../helpers/databases.js';
import { processEnv, spawnTessera, type TesseraProcess } from '../helpers/process.js';
import { openDatabase } from '../../src/platform/db/db.js';
import { readVerificationMail } from '../helpers/verificationMail.js';
import { startSmtp, until } from '../helpers/smtp.js';
import { startFakeHomeserver } from '../helpers/fakeHomeserver.js';
import { routeOnbind } from '../helpers/onbind.js';
import { verifyMatrixSignature } from '../helpers/signatures.js';

const V1 = '/_matrix/identity/api/v1';

describe.each(testDatabases())('onbind across a SIGKILL on $name', (db) => {
  it('delivers exactly once after the process that accepted the bind was killed mid-delivery', { timeout: 120_000 }, async () => {
    const { url, dispose } = await db.create();
    const dataDir = mkdtempSync(join(tmpdir(), 'tessera-kill-'));
    const smtp = await startSmtp();
    const hs = await startFakeHomeserver();
    // down: the first attempt gets a 500, the next ones hang (the kill lands while one is in flight); up: 200.
    let phase: 'down' | 'up' = 'down';
    let accepted = 0;
    const onbind = routeOnbind(hs, (_req, i) => {
      if (phase === 'up') {
        accepted++;
        return { status: 200, body: {} };
      }
      return i === 0
        ? { status: 500, body: { errcode: 'M_UNKNOWN', error: 'down' } }
        : { status: 500, body: { errcode: 'M_UNKNOWN', error: 'late' }, delayMs: 5_000 };
    });
    const { knex } = openDatabase({ url });
    const common = await processEnv({ dbUrl: url, dataDir, smtpPort: smtp.port });
    const base = common.base;
    const env = {
      ...common.env,
      TESSERA_FEDERATION_VERIFY_TLS: 'false',
      TESSERA_FEDERATION_ALLOW: '127.0.0.1/32',
      TESSERA_ONBIND_INITIAL_BACKOFF_MS: '50',
      TESSERA_ONBIND_MAX_BACKOFF_MS: '200',
      TESSERA_ONBIND_POLL_INTERVAL_MS: '100',
      TESSERA_ONBIND_LEASE_MS: '1000',
    };
    const procs: TesseraProcess[] = [];
    try {
      const first = spawnTessera(env);
      procs.push(first);
      await first.waitFor(/tessera listening/, 60_000);
      const post = async (path: string, body: unknown) => {
        const res = await fetch(`${base}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        return { status: res.status, body: (await res.json()) as any };
      };
      const address = 'kill.test@example.org';
      const invite = await post(`${V1}/store-invite`, { medium: 'email', address, room_id: '!r:hs.example', sender: '@alice:hs.example' });
      expect(invite.status).toBe(200);
      const sid = (await post(`${V1}/validate/email/requestToken`, { client_secret: 'cs', email: address, send_attempt: 1 })).body.sid;
      const { token } = await readVerificationMail(smtp, address, { timeoutMs: 30_000 });
      expect((await post(`${V1}/validate/email/submitToken`, { sid, client_secret: 'cs', token })).body).toEqual({ success: true });
      const mxid = `@bob:${hs.serverName}`;
      const bound = await post(`${V1}/3pid/bind`, { sid, client_secret: 'cs', mxid });
      expect(bound.status).toBe(200);

      // one failed attempt recorded, and the retry is in flight (the homeserver holds it) when the process dies
      await onbind.waitForCalls(2, 30_000);
      const pending = await knex('onbind_outbox').first();
      expect(pending.status).toBe('pending');
      expect(Number(pending.attempts)).toBeGreaterThanOrEqual(1);
      first.child.kill('SIGKILL');
      expect(await first.exited).toBe('SIGKILL');
      const triedBeforeKill = onbind.calls.length;
      expect((await knex('invites').where({ token: invite.body.token }).first()).delivered_at).toBeNull();

      phase = 'up';
      const second = spawnTessera(env);
      procs.push(second);
      await second.waitFor(/tessera listening/, 60_000);
      await until(async () => (await knex('onbind_outbox').first()).status === 'delivered', 30_000, 'the onbind row delivered');
      await until(
        async () => (await knex('invites').where({ token: invite.body.token }).first()).delivered_at !== null,
        10_000,
        'the invite marked delivered',
      );
      const serverKey = ((await (await fetch(`${base}/_matrix/identity/v2/pubkey/ed25519:0`)).json()) as { public_key: string }).public_key;
      // stop the second process cleanly: afterwards nothing more can be sent, so the count below is final
      second.child.kill('SIGTERM');
      expect(await second.exited).toBe(0);

      expect(accepted).toBe(1);
      const delivered = onbind.calls.slice(triedBeforeKill);
      expect(delivered).toHaveLength(1);
      const body = delivered[0]!.body;
      // the very body the killed process signed and tried, signed by the same key
      expect(body).toEqual(onbind.calls[0]!.body);
      expect(body.mxid).toBe(mxid);
      expect(body.invites.map((i: any) => i.token)).toEqual([invite.body.token]);
      expect(serverKey).toBe(invite.body.public_key);
      expect(verifyMatrixSignature(body, 'is.test', 'ed25519:0', serverKey)).toBe(true);
      expect(verifyMatrixSignature(body.invites[0].signed, 'is.test', 'ed25519:0', serverKey)).toBe(true);
      expect(onbind.violations()).toEqual([]);
      expect(second.output()).toContain('onbind delivered');
    } finally {
      for (const p of procs) p.child.kill('SIGKILL');
      await knex.destroy();
      await hs.stop();
      await smtp.stop();
      await dispose();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
