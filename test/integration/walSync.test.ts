// SQLite durability: with sqliteSynchronous=full, nothing knex reports as committed resolves before a
// flush of the WAL file that started after the commit; the flush runs off the event loop, and the connection
// stays held meanwhile, so nothing overtakes it.
import { mkdtempSync, readdirSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Knex } from 'knex';
import { openDatabase, SQLITE_WAL_AUTOCHECKPOINT } from '../../src/platform/db/db.js';
import { until } from '../helpers/smtp.js';

interface Flush {
  path: string;
  release(): void;
}

describe('SQLite commits with sqliteSynchronous=full', () => {
  let dir: string;
  let knex: Knex;
  let flushes: Flush[];

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-wal-'));
    flushes = [];
    knex = openDatabase({
      url: join(dir, 'db.sqlite'),
      walFlush: (path) => new Promise<void>((resolve) => flushes.push({ path, release: resolve })),
    }).knex;
    // A write in its own right: it resolves once its flush is released.
    const created = knex.raw('create table t (id integer primary key, v text)').then(() => undefined); // (builders run when awaited)
    await until(() => flushes.length === 1, 5000, 'the first flush');
    expect(flushes.map((f) => f.path)).toEqual([join(dir, 'db.sqlite-wal')]);
    flushes[0]!.release();
    await created;
    flushes = [];
  });
  afterEach(async () => {
    for (const f of flushes) f.release();
    await knex.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Lets every pending promise callback and I/O turn run. */
  const settle = () => new Promise((r) => setTimeout(r, 20));

  const started = async <T>(p: Promise<T>) => {
    let done = false;
    void p.then(() => (done = true));
    await settle();
    return () => done;
  };

  it('resolves an autocommitted write only after a WAL flush; reads wait for it, and never flush', async () => {
    const done = await started(knex('t').insert({ id: 1, v: 'a' }));
    const read = knex('t')
      .select('v')
      .then((rows) => rows);
    const readDone = await started(read);
    expect(flushes).toHaveLength(1);
    expect(done()).toBe(false);
    expect(readDone()).toBe(false); // the connection is still the write's
    flushes[0]!.release();
    await settle();
    expect(done()).toBe(true);
    expect(await read).toEqual([{ v: 'a' }]);
    expect(flushes).toHaveLength(1);
  });

  it('flushes once per transaction, at COMMIT, and every later commit has its own flush after it', async () => {
    const trx = await started(
      knex.transaction(async (t) => {
        await t('t').insert({ id: 1, v: 'a' });
        await t('t').insert({ id: 2, v: 'b' });
        await t('t').where({ id: 1 }).update({ v: 'c' });
      }),
    );
    expect(flushes).toHaveLength(1); // only the COMMIT asked for one
    expect(trx()).toBe(false);

    // Two writes while that flush is in flight: each runs (and is flushed) only after what came before.
    const a = await started(knex('t').insert({ id: 3, v: 'd' }));
    const b = await started(knex('t').insert({ id: 4, v: 'e' }));
    expect(flushes).toHaveLength(1);
    flushes[0]!.release();
    await settle();
    expect([trx(), a(), b()]).toEqual([true, false, false]);
    expect(flushes).toHaveLength(2);
    flushes[1]!.release();
    await settle();
    expect([a(), b()]).toEqual([true, false]);
    expect(flushes).toHaveLength(3);
    flushes[2]!.release();
    await settle();
    expect(b()).toBe(true);
    expect(await knex('t').orderBy('id').pluck('v')).toEqual(['c', 'b', 'd', 'e']);
  });

  it('flushes for real through one descriptor per connection, closed with the database', async () => {
    const path = join(dir, 'real.sqlite');
    const walOpen = () =>
      readdirSync('/proc/self/fd').filter((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`) === `${path}-wal`;
        } catch {
          return false; // closed meanwhile
        }
      }).length;
    const real = openDatabase({ url: path }).knex;
    await real.raw('create table t (id integer primary key)');
    for (let i = 0; i < 5; i++) await real('t').insert({ id: i });
    // SQLite's own handle on the WAL, and ours
    expect(walOpen()).toBe(2);
    await real.destroy();
    expect(walOpen()).toBe(0);
  });

  it('sizes the page cache as configured (4 MiB by default) and keeps scratch space in memory', async () => {
    const sized = openDatabase({ url: join(dir, 'sized.sqlite'), sqliteCacheMb: 8 }).knex;
    const dflt = openDatabase({ url: join(dir, 'default.sqlite') }).knex;
    try {
      expect(await sized.raw('PRAGMA cache_size')).toEqual([{ cache_size: -8192 }]);
      expect(await dflt.raw('PRAGMA cache_size')).toEqual([{ cache_size: -4096 }]);
      expect(await dflt.raw('PRAGMA temp_store')).toEqual([{ temp_store: 2 }]); // MEMORY: no scratch files
    } finally {
      await sized.destroy();
      await dflt.destroy();
    }
  });

  it('checkpoints the WAL into the database file after the configured number of pages (2,000 by default)', async () => {
    const sizeOf = (name: string) => statSync(join(dir, name)).size;
    const small = openDatabase({ url: join(dir, 'small.sqlite'), sqliteWalAutocheckpoint: 100 }).knex;
    const dflt = openDatabase({ url: join(dir, 'dflt.sqlite') }).knex;
    try {
      expect(await small.raw('PRAGMA wal_autocheckpoint')).toEqual([{ wal_autocheckpoint: 100 }]);
      expect(await dflt.raw('PRAGMA wal_autocheckpoint')).toEqual([{ wal_autocheckpoint: SQLITE_WAL_AUTOCHECKPOINT }]);
      // a WAL grown past its usual size is cut back to twice it after a checkpoint
      expect(await small.raw('PRAGMA journal_size_limit')).toEqual([{ journal_size_limit: 100 * 2 * 4096 }]);
      // ~1.2 MiB of rows in 30 commits: ~360 WAL pages, past 100 but below the default
      expect(SQLITE_WAL_AUTOCHECKPOINT).toBeGreaterThan(400);
      const filler = 'x'.repeat(40_000);
      for (const knex of [small, dflt]) {
        await knex.raw('create table t (id integer primary key, v text)');
        for (let i = 0; i < 30; i++) await knex('t').insert({ id: i, v: filler });
      }
      // The small threshold copied pages into the database file as it went; the default kept them in the WAL.
      expect(sizeOf('small.sqlite')).toBeGreaterThan(500_000);
      expect(sizeOf('dflt.sqlite')).toBeLessThan(100_000);
      expect(sizeOf('dflt.sqlite-wal')).toBeGreaterThan(1_000_000);
      expect(await dflt('t').count({ n: '*' })).toEqual([{ n: 30 }]);
    } finally {
      await small.destroy();
      await dflt.destroy();
    }
  });

  it('does not flush in normal mode', async () => {
    let calls = 0;
    const other = openDatabase({
      url: join(dir, 'other.sqlite'),
      sqliteSynchronous: 'normal',
      walFlush: async () => {
        calls++;
      },
    }).knex;
    try {
      await other.raw('create table t (id integer primary key)');
      await other('t').insert({ id: 1 });
      expect(calls).toBe(0);
    } finally {
      await other.destroy();
    }
  });
});
