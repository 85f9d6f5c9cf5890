// The onbind outbox's store contract on every database: bind claims invites once, leases are exclusive.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDatabases } from '../helpers/databases.js';
import { Database } from '../../src/platform/db/Database.js';
import { createStores, type Stores } from '../../src/service.js';
import type { Association } from '../../src/associations/AssociationStore.js';
import { bindClaimingInvites, type ClaimOptions } from '../../src/associations/claimInvites.js';

describe.each(testDatabases())('onbind outbox on $name', (db) => {
  let database: Database;
  let stores: Stores;
  let dispose: () => Promise<void>;
  const now = 1_700_000_000_000;

  beforeAll(async () => {
    const created = await db.create();
    dispose = created.dispose;
    database = await Database.open({ url: created.url });
    stores = createStores(database);
  });
  afterAll(async () => {
    await database?.close();
    await dispose?.();
  });

  const invite = (address: string, i: number, createdAt = now - 10) =>
    stores.invites.insertInvite(
      {
        medium: 'email',
        address,
        roomId: `!r${i}:hs`,
        sender: '@s:hs',
        token: `${address}-${i}`.replace(/[^A-Za-z0-9]/g, '').padEnd(32, 'x'),
        ephemeralPublicKey: `${address}${i}`
          .replace(/[^A-Za-z0-9]/g, '')
          .padEnd(43, 'k')
          .slice(0, 43),
        fields: {},
        createdAt,
        expiresAt: now + 1e9,
      },
      { kind: 'invite', recipient: address, payload: {}, createdAt },
    );
  const assoc = (address: string, mxid: string): Association => ({
    medium: 'email',
    address,
    mxid,
    ts: now,
    notBefore: now,
    notAfter: now + 1e9,
  });
  const opts = (over: Partial<ClaimOptions> = {}): ClaimOptions => ({
    lookupHash: 'h',
    destination: 'hs',
    invitesPerCall: 2,
    now,
    buildBody: (a, invites) => ({ mxid: a.mxid, tokens: invites.map((i) => i.token) }),
    ...over,
  });

  it('claims only unclaimed invites created up to the bind, in chunks, and never for a later binder', async () => {
    for (let i = 0; i < 5; i++) await invite('a@example.org', i);
    await invite('a@example.org', 99, now + 1000); // created after the bind: not claimed
    const first = await bindClaimingInvites(stores, assoc('a@example.org', '@one:hs'), opts());
    expect(first.claimedInvites).toBe(5);
    expect(first.onbindRows).toBe(3);
    const second = await bindClaimingInvites(stores, assoc('a@example.org', '@two:hs'), opts({ now: now + 2000 }));
    expect(second.claimedInvites).toBe(1); // only the later invite
    const rows = await database.knex('onbind_outbox').select('body').orderBy('id');
    const bodies = rows.map((r) => JSON.parse(r.body as string) as { mxid: string; tokens: string[] });
    expect(bodies.filter((b) => b.mxid === '@one:hs').flatMap((b) => b.tokens)).toHaveLength(5);
    expect(bodies.filter((b) => b.mxid === '@two:hs').flatMap((b) => b.tokens)).toEqual([expect.stringContaining('99')]);
    expect(bodies.every((b) => b.tokens.length <= 2)).toBe(true);
  });

  it('leases rows exclusively: concurrent claimers get disjoint rows; an expired lease is taken over', async () => {
    await database.knex('onbind_outbox').delete();
    for (let i = 0; i < 12; i++) await invite('b@example.org', i);
    await bindClaimingInvites(stores, assoc('b@example.org', '@b:hs'), opts({ invitesPerCall: 1 }));
    const [x, y, z] = await Promise.all([
      stores.onbindOutbox.claim('w1', now, 5000, 5),
      stores.onbindOutbox.claim('w2', now, 5000, 5),
      stores.onbindOutbox.claim('w3', now, 5000, 5),
    ]);
    const ids = [...x!, ...y!, ...z!].map((j) => j.id);
    expect(ids).toHaveLength(12);
    expect(new Set(ids).size).toBe(12);
    expect(await stores.onbindOutbox.claim('w4', now + 1000, 5000, 50)).toEqual([]);
    const takeover = await stores.onbindOutbox.claim('w4', now + 6000, 5000, 50);
    expect(takeover).toHaveLength(12);
    // a worker whose lease was taken over cannot reschedule the row
    await stores.onbindOutbox.finish('w1', [
      { id: x![0]!.id, status: 'retry', nextAttemptAt: now + 99_999, error: 'late', httpStatus: 500 },
    ]);
    const row = await database.knex('onbind_outbox').where({ id: x![0]!.id }).first();
    expect(row.locked_by).toBe('w4');
    await stores.onbindOutbox.finish('w4', [{ id: x![0]!.id, status: 'done', at: now + 7000, httpStatus: 200 }]);
    expect((await database.knex('onbind_outbox').where({ id: x![0]!.id }).first()).status).toBe('delivered');
    expect(await stores.onbindOutbox.deleteFinished(now + 8000, 100)).toBe(1);
  });

  it('binds many different addresses at once without failing (no deadlock between unrelated binds)', async () => {
    // At REPEATABLE READ on MariaDB the delete of a not-yet-bound address and the invites claim take gap locks,
    // and concurrent binds deadlock past their retries (500s); binds run at READ COMMITTED.
    const addresses = Array.from({ length: 300 }, (_, i) => `many${i}@example.org`);
    for (const [i, a] of addresses.entries()) await invite(a, i);
    const results = await Promise.allSettled(addresses.map((a, i) => bindClaimingInvites(stores, assoc(a, `@m${i}:hs`), opts())));
    expect(results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason))).toEqual([]);
    expect(results.map((r) => (r as PromiseFulfilledResult<{ claimedInvites: number }>).value.claimedInvites)).toEqual(
      addresses.map(() => 1),
    );
    const bound = await database.knex('associations').whereIn('address', addresses).count({ n: '*' });
    expect(Number(bound[0]!.n)).toBe(300);
  });
});
