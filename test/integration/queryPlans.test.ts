// Batches of outbox rows are fetched by primary key ("By id alone" in the outbox store). With a
// status condition beside `id IN (...)`, SQLite's planner (no statistics) would walk the status index instead,
// reading every pending email, or every sent one kept for the retention sweep, for each batch: a cost that
// grows with the backlog. Every statement the outbox code runs that names rows by id is checked here with EXPLAIN
// QUERY PLAN, against outboxes holding more rows than one batch. Also here: batched reads keep to a few
// statement sizes (paddedIds), since SQLite keeps every distinct SQL text prepared.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Database as TesseraDatabase } from '../../src/platform/db/Database.js';
import { createStores, type Stores } from '../../src/service.js';

const NOW = 1_800_000_000_000;
const BATCH = 100;

describe('SQLite query plans of the outboxes', () => {
  let dir: string;
  let database: TesseraDatabase;
  let store: Stores;
  let seen: { sql: string; bindings: unknown[] }[];

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-plans-'));
    database = await TesseraDatabase.open({ url: join(dir, 'db.sqlite') });
    store = createStores(database);
    seen = [];
    database.knex.on('query', (q: { sql: string; bindings?: unknown[] }) => seen.push({ sql: q.sql, bindings: q.bindings ?? [] }));
  });
  afterEach(async () => {
    await database.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The plan of every recorded statement that names rows by `id IN (...)`; at least `atLeast` of them. */
  async function plansById(atLeast: number): Promise<{ sql: string; plan: string }[]> {
    const byId = seen.filter((q) => /`id` in \(/.test(q.sql));
    expect(byId.length).toBeGreaterThanOrEqual(atLeast);
    const out = [];
    for (const q of byId) {
      const rows = (await database.knex.raw(`EXPLAIN QUERY PLAN ${q.sql}`, q.bindings as never)) as { detail: string }[];
      out.push({ sql: q.sql.slice(0, 60), plan: rows.map((r) => r.detail).join(' | ') });
    }
    return out;
  }

  const mails = (n: number, status: string, extra: Record<string, unknown> = {}) =>
    Array.from({ length: n }, (_, i) => ({
      kind: 'invite',
      recipient: `r${i}@example.org`,
      payload: '{}',
      status,
      attempts: 0,
      next_attempt_at: NOW,
      created_at: NOW,
      ...extra,
    }));

  it('claims, finishes and deletes mail batches through the primary key', async () => {
    await database.knex.batchInsert('mail_outbox', mails(3 * BATCH, 'pending'), 100);
    await database.knex.batchInsert('mail_outbox', mails(3 * BATCH, 'sent', { sent_at: NOW, finished_at: NOW }), 100);
    seen = [];
    const jobs = await store.mailOutbox.claim('w1', NOW, 60_000, BATCH);
    expect(jobs).toHaveLength(BATCH);
    expect(
      await store.mailOutbox.finish(
        'w1',
        jobs.map((j) => ({ id: j.id, status: 'done' as const, at: NOW + 1, payload: {} })),
      ),
    ).toEqual([]);
    expect(await store.mailOutbox.deleteFinished(NOW + 1, BATCH)).toBe(BATCH);
    // claim: update + read back; finish: ownership read + one update; delete: one
    const plans = await plansById(5);
    for (const p of plans) expect(p.plan, p.sql).toMatch(/USING INTEGER PRIMARY KEY/);
    for (const p of plans) expect(p.plan, p.sql).not.toMatch(/mail_outbox_due/);
    // ... and what they did is what the outbox promises
    const counts = (await database.knex('mail_outbox').select('status').count({ n: '*' }).groupBy('status').orderBy('status')) as {
      status: string;
      n: number | string;
    }[];
    expect(counts.map((c) => [c.status, Number(c.n)])).toEqual([
      ['pending', 2 * BATCH],
      ['sent', 3 * BATCH],
    ]);
  });

  it('finds the finished rows of both retention sweeps through their finished_at index', async () => {
    await database.knex.batchInsert('mail_outbox', mails(3 * BATCH, 'sent', { sent_at: NOW, finished_at: NOW }), 100);
    const onbind = (status: string, finished: number | null) => ({
      destination: 'hs.example',
      association_id: 1,
      body: '{}',
      invite_ids: '[]',
      status,
      attempts: 1,
      next_attempt_at: NOW,
      created_at: NOW,
      finished_at: finished,
    });
    await database.knex.batchInsert(
      'onbind_outbox',
      [...Array.from({ length: 2 * BATCH }, () => onbind('delivered', NOW)), onbind('failed', NOW), onbind('pending', null)],
      100,
    );
    seen = [];
    expect(await store.mailOutbox.deleteFinished(NOW + 1, 1000)).toBe(3 * BATCH);
    expect(await store.onbindOutbox.deleteFinished(NOW + 1, 1000)).toBe(2 * BATCH + 1);
    const finders = seen.filter((q) => /^select `id` from `\w+_outbox` where/.test(q.sql));
    expect(finders).toHaveLength(2);
    for (const q of finders) {
      const plan = ((await database.knex.raw(`EXPLAIN QUERY PLAN ${q.sql}`, q.bindings as never)) as { detail: string }[])
        .map((r) => r.detail)
        .join(' | ');
      expect(plan, q.sql).toMatch(/_outbox_finished_at \(finished_at<\?\)/);
    }
    expect(await database.knex('onbind_outbox').pluck('status')).toEqual(['pending']); // the one unfinished row stays
  });

  it('a claim that interleaves with another connection on the file fails and leaves the rows as the other left them', async () => {
    // The UPDATE names rows by id alone, trusting the SELECT before it in the same transaction: this is what
    // makes that safe on SQLite, where a second process may commit in between (its transaction is deferred).
    await database.knex.batchInsert('mail_outbox', mails(10, 'pending'), 100);
    const other = new Database(join(dir, 'db.sqlite'));
    let interleaved = false;
    database.knex.on('query', (q: { sql: string }) => {
      if (interleaved || !/^update `mail_outbox` set `locked_by`/.test(q.sql)) return;
      interleaved = true; // after our SELECT, before our UPDATE: another process claims them all
      other
        .prepare("UPDATE mail_outbox SET locked_by = 'w2', locked_until = ?, next_attempt_at = ? WHERE status = 'pending'")
        .run(NOW + 60_000, NOW + 60_000);
    });
    try {
      await expect(store.mailOutbox.claim('w1', NOW, 60_000, BATCH)).rejects.toMatchObject({ code: expect.stringMatching(/^SQLITE_BUSY/) });
    } finally {
      other.close();
    }
    expect(interleaved).toBe(true);
    const rows = await database.knex('mail_outbox').select('locked_by', 'attempts');
    expect(rows).toHaveLength(10);
    expect(rows.every((r) => r.locked_by === 'w2' && Number(r.attempts) === 0)).toBe(true);
    expect(await store.mailOutbox.claim('w1', NOW + 60_000, 60_000, BATCH)).toHaveLength(10); // once w2's lease is over
  });

  it('batched reads of any size use a few statement sizes, so few stay prepared', async () => {
    // Without padding each batch size is its own SQL text, kept prepared (up to 1,000 parameters for lookups).
    const texts = (table: string) => new Set(seen.filter((q) => q.sql.includes(`from \`${table}\``)).map((q) => q.sql));
    for (let n = 1; n <= 40; n++) {
      const keys = Array.from({ length: n }, (_, i) => `k${n}.${i}`);
      await store.associations.findMxidsByHash(keys, NOW);
      await Promise.all(keys.map((k) => store.accounts.findAccountToken(k, NOW)));
      await Promise.all(keys.map((k) => store.invites.isEphemeralKeyValid(k, NOW)));
    }
    for (const table of ['associations', 'account_tokens', 'ephemeral_keys']) expect(texts(table).size, table).toBeLessThanOrEqual(7);
  });

  it('claims onbind batches through the primary key', async () => {
    const rows = Array.from({ length: 3 * BATCH }, (_, i) => ({
      destination: 'hs.example',
      association_id: i,
      body: '{}',
      invite_ids: '[]',
      status: 'pending',
      attempts: 0,
      next_attempt_at: NOW,
      created_at: NOW,
    }));
    await database.knex.batchInsert('onbind_outbox', rows, 100);
    seen = [];
    expect(await store.onbindOutbox.claim('w1', NOW, 60_000, BATCH)).toHaveLength(BATCH);
    const plans = await plansById(2);
    for (const p of plans) expect(p.plan, p.sql).toMatch(/USING INTEGER PRIMARY KEY/);
    expect(await store.onbindOutbox.claim('w2', NOW, 60_000, 3 * BATCH)).toHaveLength(2 * BATCH); // the leased ones are not offered again
  });
});
