// The outbox worker on real databases: each row's outcome is recorded as its own delivery ends (not when its
// whole claim is done), the leases of the rows a worker holds are renewed while it works, and a worker never
// holds more rows than its window.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { queueVerificationMails } from '../helpers/mailRows.js';
import { testDatabases, type TestDatabase } from '../helpers/databases.js';
import { until } from '../helpers/smtp.js';
import { Database } from '../../src/platform/db/Database.js';
import { createStores, type Stores } from '../../src/service.js';
import { createLogger } from '../../src/platform/logger.js';
import { Scheduler } from '../../src/platform/scheduler.js';
import { OutboxWorker, type Attempt, type OutboxSettings } from '../../src/outbox/OutboxWorker.js';
import type { MailDetail, MailJob } from '../../src/mail/MailOutboxStore.js';

interface Pending {
  job: MailJob;
  settle(a: Attempt<MailDetail>): void;
}

const SETTINGS: OutboxSettings = {
  initialBackoffMs: 50,
  maxBackoffMs: 100,
  giveUpAfterMs: 3_600_000,
  leaseMs: 60_000,
  leaseRenewMs: 20_000,
  pollIntervalMs: 60_000,
  concurrency: 4,
  keepFinishedMs: 3_600_000,
};

describe.each(testDatabases())('outbox worker on $name', (db: TestDatabase) => {
  let database: Database;
  let store: Stores;
  let dispose: () => Promise<void>;
  let scheduler: Scheduler;
  const logs: string[] = [];

  beforeEach(async () => {
    const created = await db.create();
    dispose = created.dispose;
    database = await Database.open({ url: created.url });
    store = createStores(database);
    scheduler = new Scheduler(createLogger('error', (line) => logs.push(line)));
    logs.length = 0;
  });
  afterEach(async () => {
    await scheduler.stop();
    await database.close();
    await dispose();
  });

  const queue = (n: number) => queueVerificationMails(store, n, Date.now());

  /** A worker whose deliveries wait until the test settles them. */
  /** Set to make the next claim throw, as it does while the database is unreachable. */
  let failNextClaim = false;

  function worker(settings: Partial<OutboxSettings> = {}) {
    const pending: Pending[] = [];
    const queue = Object.create(store.mailOutbox) as typeof store.mailOutbox;
    queue.claim = (...args) => {
      if (failNextClaim) {
        failNextClaim = false;
        return Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
      }
      return store.mailOutbox.claim(...args);
    };
    const w = new OutboxWorker<MailJob, MailDetail>({
      name: 'mail',
      scheduler,
      log: createLogger('warn', (line) => logs.push(line)),
      clock: Date.now,
      random: () => 0.5,
      settings: { ...SETTINGS, ...settings },
      queue,
      deliver: (job) => new Promise((resolve) => pending.push({ job, settle: resolve })),
    });
    return { w, pending };
  }

  const row = (id: number) => database.knex('mail_outbox').where({ id }).first();

  it('records each row as sent when its own delivery ends, while the others of its claim are still in flight', async () => {
    await queue(3);
    const { w, pending } = worker();
    scheduler.start();
    await until(() => pending.length === 3, 10_000, 'three deliveries started');
    pending[1]!.settle({ status: 'done', payload: {} });
    await until(async () => (await row(pending[1]!.job.id)).status === 'sent', 10_000, 'the first finished row recorded');
    for (const p of [pending[0]!, pending[2]!]) expect(await row(p.job.id)).toMatchObject({ status: 'pending', locked_by: w.id });
    pending[0]!.settle({ status: 'failed', error: 'rejected', payload: {} });
    pending[2]!.settle({ status: 'retry', error: 'later' });
    await w.idle();
    expect(await row(pending[0]!.job.id)).toMatchObject({ status: 'failed', last_error: 'rejected', locked_by: null });
    expect(await row(pending[2]!.job.id)).toMatchObject({ status: 'pending', last_error: 'later', locked_by: null });
  });

  it('holds at most its window of rows: a freed slot is refilled by the next claim', async () => {
    await queue(6);
    const { w, pending } = worker({ concurrency: 2 });
    scheduler.start();
    await until(() => pending.length === 2, 10_000, 'two deliveries started');
    const held = async () => Number((await database.knex('mail_outbox').where('locked_by', w.id).count({ n: '*' }))[0]!.n);
    expect(await held()).toBe(2);
    // a claim waits for half of the window, rounded up, to be free: here one slot
    pending[0]!.settle({ status: 'done', payload: {} });
    await until(() => pending.length === 3, 10_000, 'a third delivery started');
    expect(await held()).toBe(2);
    for (let i = 1; i < 6; i++) {
      await until(() => pending.length > i, 10_000, `delivery ${i + 1} started`);
      pending[i]!.settle({ status: 'done', payload: {} });
    }
    await w.idle();
    const statuses = (await database.knex('mail_outbox').select('status')).map((r: { status: string }) => r.status);
    expect(statuses).toEqual(Array(6).fill('sent'));
  });

  it('a failed claim stops the claiming, not the pass: the rows in flight are still recorded, the rest follow', async () => {
    await queue(3);
    const { w, pending } = worker({ concurrency: 2 });
    scheduler.start();
    await until(() => pending.length === 2, 10_000, 'two deliveries started');
    failNextClaim = true;
    pending[0]!.settle({ status: 'done', payload: {} });
    await until(() => !failNextClaim, 10_000, 'the refill claim attempted');
    pending[1]!.settle({ status: 'done', payload: {} });
    await until(async () => (await row(pending[1]!.job.id)).status === 'sent', 10_000, 'the row in flight recorded');
    expect(logs.join('\n')).toContain('claiming mail rows failed');
    // the next pass, soon after, takes the third
    await until(() => pending.length === 3, 10_000, 'the third delivery started');
    pending[2]!.settle({ status: 'done', payload: {} });
    await until(async () => (await row(pending[2]!.job.id)).status === 'sent', 10_000, 'the third row recorded');
    await w.idle();
  });

  it('renews the leases of the rows it holds, so another worker does not take them while it works', async () => {
    await queue(1);
    const leaseMs = 3000;
    const { w, pending } = worker({ leaseMs, leaseRenewMs: 50 });
    scheduler.start();
    await until(() => pending.length === 1, 10_000, 'the delivery started');
    const id = pending[0]!.job.id;
    const first = Number((await row(id)).locked_until);
    await until(async () => Number((await row(id)).locked_until) > first, 10_000, 'the lease renewed');
    // past the lease the claim gave: still held, so a second worker claims nothing
    await until(() => Date.now() > first, 10_000, 'the first lease end passed');
    expect(await store.mailOutbox.claim('other', Date.now(), leaseMs, 10)).toEqual([]);
    pending[0]!.settle({ status: 'done', payload: {} });
    await w.idle();
    expect(await row(id)).toMatchObject({ status: 'sent', locked_by: null, locked_until: null });
  });

  it('renew reports the rows another worker took, and leaves finished ones alone', async () => {
    await queue(3);
    const now = Date.now();
    const [a, b, c] = (await store.mailOutbox.claim('w1', now, 1000, 10)).map((j) => j.id) as [number, number, number];
    expect(await store.mailOutbox.finish('w1', [{ id: a, status: 'done', at: now, payload: {} }])).toEqual([]);
    // w1's lease on b and c ran out, and w2 took one of them
    const taken = await store.mailOutbox.claim('w2', now + 1000, 1000, 1);
    expect(taken).toHaveLength(1);
    const t = taken[0]!.id;
    const kept = t === b ? c : b;
    expect(await store.mailOutbox.renew('w1', [a, b, c], now + 5000)).toEqual([t]);
    expect(await row(a)).toMatchObject({ status: 'sent', locked_by: null, locked_until: null });
    expect(await row(kept)).toMatchObject({ locked_by: 'w1' });
    expect(Number((await row(kept)).locked_until)).toBe(now + 5000);
    expect(Number((await row(kept)).next_attempt_at)).toBe(now + 5000);
    expect((await row(t)).locked_by).toBe('w2');
  });
});
