// Mail rows that cannot be rendered, on SQLite and (when configured) MariaDB: a row whose own content can never
// become a message fails after one attempt, its reason in last_error and one line in the log; a template file
// that cannot be read is the environment's failure, retried until it can be. Rows are written straight into
// the outbox table, as an earlier version (before the door checked text) could have left them.
import { cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { testDatabases } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { smtpConfig, startSmtp, type TestSmtp } from '../helpers/smtp.js';
import { parseLog } from '../helpers/logs.js';

const FIXTURE = new URL('../fixtures/templates/matrix-org/invite_template.eml.j2', import.meta.url).pathname;
const DAY = 86_400_000;

describe.each(testDatabases())('mail that cannot be rendered on $name', (db) => {
  let smtp: TestSmtp;
  let srv: TestServer;
  let dispose: () => Promise<void>;
  let templates: string;
  let now = Date.now();

  beforeAll(async () => {
    smtp = await startSmtp();
    // the default brand renders; `broken` has a directory where its invitation template should be
    templates = mkdtempSync(join(tmpdir(), 'tessera-templates-'));
    mkdirSync(join(templates, 'matrix-org'));
    cpSync(FIXTURE, join(templates, 'matrix-org', 'invite_template.eml.j2'));
    mkdirSync(join(templates, 'broken', 'invite_template.eml.j2'), { recursive: true });
    const created = await db.create();
    dispose = created.dispose;
    srv = await startTestServer({ dbUrl: created.url, clock: () => now, overrides: smtpConfig(smtp.port, { templatesDir: templates }) });
  });
  afterAll(async () => {
    await srv?.stop();
    await smtp?.stop();
    await dispose?.();
    rmSync(templates, { recursive: true, force: true });
  });
  afterEach(() => {
    expect(srv.violations).toEqual([]);
  });

  const knex = () => srv.service.db.knex;
  /** An invitation email's row, inserted as is (no door, no serialisation check). */
  async function insertInviteMail(recipient: string, fields: Record<string, unknown>, brand: string | null = null): Promise<number> {
    const payload = {
      fields: { medium: 'email', address: recipient, room_id: '!r:hs.example', sender: '@bob:hs.example', ...fields },
      token: 't'.repeat(32),
      ephemeralPrivateKey: 'k'.repeat(43),
      version: 'v1',
      verifiedSender: null,
      brand,
    };
    const [id] = await knex()('mail_outbox').insert({
      kind: 'invite',
      recipient,
      payload: JSON.stringify(payload),
      status: 'pending',
      attempts: 0,
      next_attempt_at: now,
      created_at: now,
    });
    return Number(id);
  }
  const row = async (id: number) => knex()('mail_outbox').where({ id }).first();
  const pass = async () => {
    srv.service.mailWorker.wake();
    await srv.service.mailWorker.idle();
  };

  it('fails a row whose text cannot go into the join link after one attempt, with its reason, logged once', async () => {
    const ids = [
      await insertInviteMail('surrogate1@example.org', { room_name: 'tea \ud800 party' }),
      await insertInviteMail('surrogate2@example.org', { room_id: '!r\udc00:hs.example' }),
      await insertInviteMail('surrogate3@example.org', { sender_display_name: '\udbffBob' }),
    ];
    await pass();
    for (const id of ids) {
      const r = await row(id);
      expect(r).toMatchObject({ status: 'failed', locked_by: null });
      expect(Number(r.attempts)).toBe(1);
      expect(r.last_error).toBe('render: URI malformed');
      // a final row keeps no secret
      expect(JSON.parse(r.payload)).not.toHaveProperty('token');
    }
    const lines = () => srv.logs.filter((l) => l.includes('could not be rendered'));
    expect(lines()).toHaveLength(3);
    for (const l of lines()) {
      expect(parseLog(l).reason).toBe('render: URI malformed');
      expect(l).not.toMatch(/\\n\s+at /); // no stack
      expect(l).not.toContain('surrogate'); // nor the address
    }
    expect(srv.logs.filter((l) => l.includes('will retry'))).toEqual([]);

    // days later nothing was tried again, and nothing was sent
    now += 4 * DAY;
    await pass();
    for (const id of ids) expect(Number((await row(id)).attempts)).toBe(1);
    expect(lines()).toHaveLength(3);
    expect(smtp.rcpts.filter((a) => a.startsWith('surrogate'))).toEqual([]);
  });

  it('retries a row whose template file cannot be read, and sends it once the file is there', async () => {
    const id = await insertInviteMail('brand@example.org', { room_name: 'Tea party' }, 'broken');
    await pass();
    const first = await row(id);
    expect(first.status).toBe('pending');
    expect(Number(first.attempts)).toBe(1);
    expect(first.last_error).toContain('EISDIR');
    expect(srv.logs.filter((l) => l.includes('could not be rendered') && l.includes(`"id":${id},`))).toEqual([]);

    rmSync(join(templates, 'broken', 'invite_template.eml.j2'), { recursive: true });
    cpSync(FIXTURE, join(templates, 'broken', 'invite_template.eml.j2'));
    now += 60_000; // past the retry's backoff
    await pass();
    const second = await row(id);
    expect(second.status).toBe('sent');
    expect(Number(second.attempts)).toBe(2);
    expect(smtp.messages.filter((m) => m.envelope.to.includes('brand@example.org'))).toHaveLength(1);
  });
});
