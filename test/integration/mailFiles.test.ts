// Without SMTP, .eml files (holding invitation private keys) do not pile up: the mail worker's
// retention sweep deletes those older than mail.keepFinishedMs, and only those.
import { describe, expect, it } from 'vitest';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { testDatabases } from '../helpers/databases.js';
import { startTestServer } from '../helpers/server.js';
import { until } from '../helpers/smtp.js';

const V1 = '/_matrix/identity/api/v1';
const HOUR = 3600 * 1000;

describe.each(testDatabases())('mail files without SMTP on $name', (db) => {
  it('deletes .eml files older than mail.keepFinishedMs at the retention sweep, and keeps newer ones', async () => {
    const { url, dispose } = await db.create();
    let offset = 0;
    const srv = await startTestServer({ dbUrl: url, clock: () => Date.now() + offset, overrides: { mail: { keepFinishedMs: HOUR } } });
    try {
      const dir = join(srv.dataDir, 'mail');
      const emls = () =>
        existsSync(dir)
          ? readdirSync(dir)
              .filter((f) => f.endsWith('.eml'))
              .sort()
          : [];
      const send = async (address: string) => {
        const before = emls().length;
        const res = await srv.call('POST', `${V1}/store-invite`, {
          medium: 'email',
          address,
          room_id: '!r:hs.example',
          sender: '@s:hs.example',
        });
        expect(res.status).toBe(200);
        await until(() => emls().length > before, 10_000, 'the .eml file');
      };
      await send('old@example.org');
      const [oldFile] = emls();
      // an interrupted write's leftover, also old
      writeFileSync(join(dir, `${oldFile}.tmp`), 'partial');
      await srv.service.mailWorker.sweepNow(); // within the retention period: nothing goes
      expect(emls()).toEqual([oldFile]);

      offset = 2 * HOUR;
      await send('new@example.org');
      const newFile = emls().find((f) => f !== oldFile)!;
      await srv.service.mailWorker.sweepNow();
      expect(readdirSync(dir).sort()).toEqual([newFile]);
      expect(srv.logs.some((l) => l.includes('deleted old mail files') && l.includes('"count":2'))).toBe(true);
      expect(srv.violations).toEqual([]);
    } finally {
      await srv.stop();
      await dispose();
    }
  });
});
