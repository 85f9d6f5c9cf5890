// The lookup pepper is crash-safe and agreed on: a rehash cut short is finished at the next
// start, lookups stay right while it runs, and instances starting together on an empty database share one pepper.
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { testDatabases } from '../helpers/databases.js';
import { startTestServer } from '../helpers/server.js';
import { Database } from '../../src/platform/db/Database.js';
import { createStores } from '../../src/service.js';
import type { AssociationStore } from '../../src/associations/AssociationStore.js';
import { insertAssociation } from '../helpers/associations.js';
import { ensureLookupPepper } from '../../src/associations/pepper.js';
import { bulkLookupV1, lookupV2 } from '../../src/associations/lookup.js';
import { createLogger } from '../../src/platform/logger.js';
import type { Deps } from '../../src/deps.js';

const V1 = '/_matrix/identity/api/v1';
const V2 = '/_matrix/identity/v2';
const hashOf = (address: string, pepper: string) => createHash('sha256').update(`${address} email ${pepper}`).digest('base64url');

/** The association store of a freshly opened database. */
async function openStore(url: string): Promise<{ db: Database; store: AssociationStore }> {
  const db = await Database.open({ url });
  return { db, store: createStores(db).associations };
}

function depsFor(store: AssociationStore, lookupPepper: string, seed = 1): Deps {
  return {
    associations: store,
    config: { binding: { lookupPepper } },
    random: (n: number) => Buffer.alloc(n, seed),
    log: createLogger('error', () => {}),
    clock: () => Date.now(),
  } as unknown as Deps;
}

describe.each(testDatabases())('lookup pepper safety on $name', (db) => {
  it('finishes a rehash a crash cut short at the next start, and finds every row while it is unfinished', async () => {
    const { url, dispose } = await db.create();
    const { db: database, store } = await openStore(url);
    let srv;
    try {
      await ensureLookupPepper(depsFor(store, 'pepperA'));
      const now = Date.now();
      const addresses = ['c1@example.org', 'c2@example.org', 'c3@example.org'];
      for (const [i, address] of addresses.entries()) {
        await insertAssociation(
          { associations: store },
          { medium: 'email', address, mxid: `@c${i + 1}:hs.example`, ts: now, notBefore: now - 1, notAfter: now + 3_600_000 },
        );
      }
      // The process dies after the first batch of the rehash to pepperB: one row moved, two still on pepperA.
      const dying = Object.create(store) as AssociationStore;
      dying.rehashAssociations = (hash) => {
        let n = 0;
        return store.rehashAssociations((address, medium) => {
          if (n++ >= 1) throw new Error('killed');
          return hash(address, medium);
        }, 1);
      };
      await expect(ensureLookupPepper(depsFor(dying, 'pepperB'))).rejects.toThrow('killed');
      expect(await store.getBindingSetting('lookup_pepper')).toBe('pepperB');
      expect(
        (
          await store.findMxidsByHash(
            addresses.map((a) => hashOf(a, 'pepperB')),
            Date.now(),
          )
        ).length,
      ).toBe(1);

      // Meanwhile (another instance still serving): server-side hashing finds every row, whatever pepper it carries.
      const running = depsFor(store, 'pepperA');
      const all = addresses.map((a) => ['email', a.toUpperCase()] as [string, string]);
      expect((await bulkLookupV1(running, all)).map((t) => t[2])).toEqual(['@c1:hs.example', '@c2:hs.example', '@c3:hs.example']);
      const none = await lookupV2(running, { algorithm: 'none', pepper: 'pepperB', addresses: addresses.map((a) => `${a} email`) });
      expect(Object.keys(none)).toHaveLength(3);

      // The next start sees the stored pepper already equal to the configured one and must still rehash.
      srv = await startTestServer({
        dbUrl: url,
        auth: { authenticate: async () => ({ account: { userId: '@x:hs.example' }, termsAccepted: true }) },
        overrides: { binding: { lookupPepper: 'pepperB' } },
      });
      const bulk = await srv.call('POST', `${V1}/bulk_lookup`, { threepids: all });
      expect(bulk.body.threepids).toEqual(all.map(([m, a], i) => [m, a, `@c${i + 1}:hs.example`]));
      const hashes = addresses.map((a) => hashOf(a, 'pepperB'));
      const v2 = await srv.call(
        'POST',
        `${V2}/lookup`,
        { algorithm: 'sha256', pepper: 'pepperB', addresses: hashes },
        { authorization: 'Bearer x' },
      );
      expect(Object.keys(v2.body.mappings).sort()).toEqual([...hashes].sort());
      expect(await store.getBindingSetting('lookup_pepper_hashed')).toBe('pepperB');
      expect(srv.violations).toEqual([]);
    } finally {
      if (srv) {
        await srv.stop();
        rmSync(srv.dataDir, { recursive: true, force: true });
      }
      await database.close();
      await dispose();
    }
  });

  it('gives instances starting together on an empty database one and the same generated pepper', async () => {
    const { url, dispose } = await db.create();
    const { db: dbA, store: a } = await openStore(url);
    const { db: dbB, store: b } = await openStore(url);
    try {
      const [pa, pb] = await Promise.all([ensureLookupPepper(depsFor(a, '', 1)), ensureLookupPepper(depsFor(b, '', 2))]);
      expect(pa).toBe(pb);
      expect(await a.getBindingSetting('lookup_pepper')).toBe(pa);
      // and a later start keeps it
      expect(await ensureLookupPepper(depsFor(b, '', 3))).toBe(pa);
    } finally {
      await dbA.close();
      await dbB.close();
      await dispose();
    }
  });
});
