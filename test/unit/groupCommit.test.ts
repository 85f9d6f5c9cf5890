// Group commit: batching, and that one item's failure never loses or wrongly commits another's rows.
import { describe, expect, it } from 'vitest';
import { GroupCommitter } from '../../src/platform/db/groupCommit.js';
import { isDatabaseUnavailable } from '../../src/platform/db/Database.js';

/** A fake transactional table: a batch commits all its rows, or (any bad row) none of them. */
function fakeDb() {
  const committed: string[] = [];
  const batches: string[][] = [];
  const commit = async (items: string[]) => {
    batches.push([...items]);
    await new Promise((r) => setTimeout(r, 5)); // the transaction is in flight for a while
    if (items.some((i) => i.startsWith('bad'))) throw new Error(`constraint failed: ${items.find((i) => i.startsWith('bad'))}`);
    committed.push(...items);
  };
  return { committed, batches, commit };
}

describe('GroupCommitter', () => {
  it('commits items that arrive while a transaction is in flight together, in the next transaction', async () => {
    const db = fakeDb();
    const gc = new GroupCommitter(db.commit);
    const first = gc.submit('a');
    await new Promise((r) => setImmediate(r)); // 'a' is now in flight
    const rest = ['b', 'c', 'd'].map((x) => gc.submit(x));
    await Promise.all([first, ...rest]);
    expect(db.batches).toEqual([['a'], ['b', 'c', 'd']]);
    expect(db.committed).toEqual(['a', 'b', 'c', 'd']);
  });

  it('settles each caller only after its own rows are committed', async () => {
    const db = fakeDb();
    const gc = new GroupCommitter(db.commit);
    const seen: string[][] = [];
    await Promise.all(['a', 'b', 'c'].map((x) => gc.submit(x).then(() => seen.push([x, ...db.committed]))));
    for (const [x, ...committedThen] of seen) expect(committedThen).toContain(x);
  });

  it('a failing item fails alone: the others of its batch are committed, it is not', async () => {
    const db = fakeDb();
    const gc = new GroupCommitter(db.commit);
    const results = await Promise.allSettled(['a', 'bad1', 'b', 'c'].map((x) => gc.submit(x)));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason.message).toBe('constraint failed: bad1');
    expect([...db.committed].sort()).toEqual(['a', 'b', 'c']);
    // the batch was tried together first, then in halves
    expect(db.batches[0]).toEqual(['a', 'bad1', 'b', 'c']);
  });

  it('two failing items each get their own error and nothing of theirs is committed', async () => {
    const db = fakeDb();
    const gc = new GroupCommitter(db.commit);
    const results = await Promise.allSettled(['bad1', 'a', 'bad2'].map((x) => gc.submit(x)));
    expect(results.map((r) => (r.status === 'rejected' ? (r.reason as Error).message : 'ok'))).toEqual([
      'constraint failed: bad1',
      'ok',
      'constraint failed: bad2',
    ]);
    expect(db.committed).toEqual(['a']);
  });

  it('finds one bad item in a batch of 64 by halving: a dozen or so transactions, not 64', async () => {
    const attempts: number[] = [];
    const committed: number[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const gc = new GroupCommitter<number>(async (items) => {
      attempts.push(items.length);
      if (items.length === 1 && items[0] === -1) await gate; // holds the first transaction open
      if (items.includes(37)) throw new Error(`bad item in a batch of ${items.length}`);
      committed.push(...items.filter((i) => i >= 0));
    });
    const first = gc.submit(-1); // its transaction in flight, the next 64 queue into one batch
    await new Promise((r) => setImmediate(r));
    const rest = Array.from({ length: 64 }, (_, i) => gc.submit(i));
    release();
    await first;
    const results = await Promise.allSettled(rest);
    expect((results[37] as PromiseRejectedResult).reason.message).toBe('bad item in a batch of 1');
    expect(results.filter((r, i) => i !== 37 && r.status === 'fulfilled')).toHaveLength(63);
    expect(committed.sort((a, b) => a - b)).toEqual(Array.from({ length: 64 }, (_, i) => i).filter((i) => i !== 37));
    const batchAttempts = attempts.slice(1); // the 64 and its halves
    expect(batchAttempts[0]).toBe(64);
    expect(batchAttempts.length).toBeLessThanOrEqual(2 * Math.log2(64) + 1);
  });

  it('fails a whole batch at once on an error no item caused (the database unreachable), each caller with it', async () => {
    let attempts = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const down = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:3306'), { code: 'ECONNREFUSED' });
    const gc = new GroupCommitter<number>(
      async (items) => {
        attempts++;
        if (items[0] === -1) return gate;
        throw down;
      },
      1,
      256,
      (err) => (err as { code?: string }).code === 'ECONNREFUSED',
    );
    const first = gc.submit(-1);
    await new Promise((r) => setImmediate(r));
    const rest = Array.from({ length: 32 }, (_, i) => gc.submit(i));
    release();
    await first;
    const results = await Promise.allSettled(rest);
    expect(results.every((r) => r.status === 'rejected' && r.reason === down)).toBe(true);
    expect(attempts).toBe(2); // the first transaction, then the batch of 32 once: no retries in parts
  });

  it('keeps at most maxBatch items per transaction and maxInFlight transactions at once', async () => {
    let inFlight = 0;
    let most = 0;
    const sizes: number[] = [];
    const gc = new GroupCommitter<number>(
      async (items) => {
        sizes.push(items.length);
        most = Math.max(most, ++inFlight);
        await new Promise((r) => setTimeout(r, 2));
        inFlight--;
      },
      2,
      10,
    );
    await Promise.all(Array.from({ length: 45 }, (_, i) => gc.submit(i)));
    expect(Math.max(...sizes)).toBeLessThanOrEqual(10);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(45);
    expect(most).toBe(2);
  });
});

describe('isDatabaseUnavailable (what fails a group commit whole, and answers 503)', () => {
  it('names unreachable, locked or timed-out databases, never an error a row can cause', () => {
    const err = (props: Record<string, unknown>) => Object.assign(new Error('x'), props);
    expect(isDatabaseUnavailable(err({ name: 'KnexTimeoutError' }))).toBe(true);
    expect(isDatabaseUnavailable(err({ code: 'ECONNREFUSED' }))).toBe(true);
    expect(isDatabaseUnavailable(err({ code: 'PROTOCOL_CONNECTION_LOST', fatal: true }))).toBe(true);
    expect(isDatabaseUnavailable(err({ code: 'ER_DUP_ENTRY', errno: 1062 }))).toBe(false);
    expect(isDatabaseUnavailable(err({ code: 'ER_NET_PACKET_TOO_LARGE' }))).toBe(false);
    expect(isDatabaseUnavailable(err({ code: 'SQLITE_CONSTRAINT_UNIQUE' }))).toBe(false);
    expect(isDatabaseUnavailable(err({ code: 'SQLITE_IOERR_WRITE' }))).toBe(true);
    expect(isDatabaseUnavailable(err({ code: 'SQLITE_FULL' }))).toBe(true);
    expect(isDatabaseUnavailable(err({ code: 'SQLITE_BUSY' }))).toBe(true);
    expect(isDatabaseUnavailable(err({ code: 'SQLITE_BUSY_SNAPSHOT' }))).toBe(true);
    expect(isDatabaseUnavailable(err({ code: 'SQLITE_CORRUPT' }))).toBe(false);
    expect(isDatabaseUnavailable(err({ code: 'ER_SERVER_SHUTDOWN', errno: 1053 }))).toBe(true);
    expect(isDatabaseUnavailable(err({ code: 'ER_LOCK_WAIT_TIMEOUT', errno: 1205 }))).toBe(false);
    // wrapped by a caller, as `cause`
    expect(isDatabaseUnavailable(new Error('reading the pepper failed', { cause: err({ code: 'ECONNRESET' }) }))).toBe(true);
    expect(isDatabaseUnavailable(new Error('plain'))).toBe(false);
    expect(isDatabaseUnavailable(undefined)).toBe(false);
  });
});
