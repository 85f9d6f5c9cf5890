// The outbox's claim and finish: a set of outcomes is written together, each only by the worker that holds
// the row's lease.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { queueVerificationMails } from '../helpers/mailRows.js';
import { testDatabases, type TestDatabase } from '../helpers/databases.js';
import { Database } from '../../src/platform/db/Database.js';
import { createStores, type Stores } from '../../src/service.js';

const NOW = 1_800_000_000_000;

describe.each(testDatabases())('mail outbox on $name', (db: TestDatabase) => {
  let database: Database;
  let store: Stores;
  let dispose: () => Promise<void>;

  beforeEach(async () => {
    const created = await db.create();
    dispose = created.dispose;
    database = await Database.open({ url: created.url });
    store = createStores(database);
  });
  afterEach(async () => {
    await database.close();
    await dispose();
  });

  const queue = (n: number) => queueVerificationMails(store, n, NOW);

  const rows = () =>
    database.knex('mail_outbox').select('id', 'status', 'payload', 'last_error', 'next_attempt_at', 'locked_by', 'sent_at').orderBy('id');

  it('writes sent, failed and retry outcomes of one batch, dropping secrets from final rows', async () => {
    await queue(3);
    const jobs = await store.mailOutbox.claim('w1', NOW, 60_000, 10);
    expect(jobs.map((j) => j.payload.token)).toEqual(['t0', 't1', 't2']);
    const [a, b, c] = jobs.map((j) => j.id) as [number, number, number];
    const lost = await store.mailOutbox.finish('w1', [
      { id: a, status: 'done', at: NOW + 5, payload: { messageId: '<m@x>' } },
      { id: b, status: 'failed', at: NOW + 6, error: 'EENVELOPE 550: no such user', payload: {} },
      { id: c, status: 'retry', nextAttemptAt: NOW + 5000, error: 'ECONNECTION: refused' },
    ]);
    expect(lost).toEqual([]);
    const [ra, rb, rc] = await rows();
    expect(ra).toMatchObject({ status: 'sent', payload: '{"messageId":"<m@x>"}', locked_by: null, last_error: null });
    expect(Number(ra.sent_at)).toBe(NOW + 5);
    expect(rb).toMatchObject({ status: 'failed', payload: '{}', last_error: 'EENVELOPE 550: no such user', locked_by: null });
    expect(rc).toMatchObject({ status: 'pending', last_error: 'ECONNECTION: refused', locked_by: null });
    expect(JSON.parse(rc.payload).token).toBe('t2'); // a retry keeps what the next attempt needs
    expect(Number(rc.next_attempt_at)).toBe(NOW + 5000);
    expect(await store.mailOutbox.claim('w1', NOW + 4999, 60_000, 10)).toEqual([]);
    expect((await store.mailOutbox.claim('w1', NOW + 5000, 60_000, 10)).map((j) => j.id)).toEqual([c]);
  });

  it('finishes a batch larger than one UPDATE takes, each row with its own payload and time', async () => {
    await queue(230);
    const jobs = await store.mailOutbox.claim('w1', NOW, 60_000, 500);
    expect(jobs).toHaveLength(230);
    const lost = await store.mailOutbox.finish(
      'w1',
      jobs.map((j, i) => ({ id: j.id, status: 'done' as const, at: NOW + i, payload: { messageId: `<${i}@x>` } })),
    );
    expect(lost).toEqual([]);
    const all = await rows();
    expect(
      all.every(
        (r, i) => r.status === 'sent' && r.payload === `{"messageId":"<${i}@x>"}` && Number(r.sent_at) === NOW + i && r.locked_by === null,
      ),
    ).toBe(true);
  });

  it('writes nothing for a row whose lease another worker took over, and reports it', async () => {
    await queue(2);
    const [first, second] = await store.mailOutbox.claim('w1', NOW, 1000, 10);
    // w1's lease runs out; w2 claims the rows again.
    const retaken = await store.mailOutbox.claim('w2', NOW + 1000, 60_000, 10);
    expect(retaken.map((j) => j.id)).toEqual([first!.id, second!.id]);
    await store.mailOutbox.finish('w2', [{ id: second!.id, status: 'done', at: NOW + 1001, payload: {} }]);
    const lost = await store.mailOutbox.finish('w1', [
      { id: first!.id, status: 'done', at: NOW + 1002, payload: {} },
      { id: second!.id, status: 'failed', at: NOW + 1002, error: 'late', payload: {} },
    ]);
    expect(lost).toEqual([first!.id, second!.id]);
    const [r1, r2] = await rows();
    expect(r1).toMatchObject({ status: 'pending', locked_by: 'w2' });
    expect(r2).toMatchObject({ status: 'sent', last_error: null });
  });
});
