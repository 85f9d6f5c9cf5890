// store-invite's fast path on real databases: group commit of concurrent store-invites, and the ephemeral-key
// validity cache (expiry exact, deletes seen at once in-process and within one second from elsewhere).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { testDatabases } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { openDatabase } from '../../src/platform/db/db.js';
import { Database } from '../../src/platform/db/Database.js';
import { createStores } from '../../src/service.js';
import type { KnexInviteStore, NewInvite } from '../../src/invitations/InviteStore.js';
import type { NewMail } from '../../src/mail/MailOutboxStore.js';
import { insertAssociation } from '../helpers/associations.js';

/** The invitation store and the database it writes to. */
interface Target {
  db: Database;
  invites: KnexInviteStore;
}

async function openTarget(opts: Parameters<typeof Database.open>[0]): Promise<Target> {
  const db = await Database.open(opts);
  return { db, invites: createStores(db).invites as KnexInviteStore };
}
import type { WorkerKeySource } from '../../src/invitations/ephemeralKeys.js';

const V1 = '/_matrix/identity/api/v1';
const V2 = '/_matrix/identity/v2';

async function counts(store: Target): Promise<number[]> {
  const out: number[] = [];
  for (const t of ['invites', 'ephemeral_keys', 'mail_outbox']) {
    const [row] = await store.db.knex(t).count({ n: '*' });
    out.push(Number(row!.n));
  }
  return out;
}

function newInvite(i: number, token = randomBytes(24).toString('base64url')): { invite: NewInvite; mail: NewMail } {
  const address = `gc${i}.${randomBytes(3).toString('hex')}@example.org`;
  return {
    invite: {
      medium: 'email',
      address,
      roomId: '!r:hs.example',
      sender: '@s:hs.example',
      token,
      ephemeralPublicKey: randomBytes(32).toString('base64url'),
      fields: { address },
      createdAt: 1,
      expiresAt: Date.now() + 3600_000,
    },
    mail: { kind: 'invite', recipient: address, payload: { token }, createdAt: 1 },
  };
}

describe.each(testDatabases())('fast path on $name', (db) => {
  let srv: TestServer;
  let dispose: () => Promise<void>;
  let dbUrl: string;
  let now = Date.now();
  const store = (): Target => ({ db: srv.service.db, invites: srv.service.deps.invites as KnexInviteStore });

  beforeAll(async () => {
    const created = await db.create();
    dispose = created.dispose;
    dbUrl = created.url;
    srv = await startTestServer({ dbUrl, clock: () => now });
  });
  afterAll(async () => {
    await srv?.stop();
    await dispose?.();
  });

  it('answers 60 concurrent store-invites, each after its own rows are stored, with all rows there', async () => {
    const before = await counts(store());
    const answers = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        srv.call('POST', `${V1}/store-invite`, {
          medium: 'email',
          address: `many${i}@example.org`,
          room_id: '!r:hs.example',
          sender: '@s:hs.example',
        }),
      ),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(60).fill(200));
    expect(await counts(store())).toEqual(before.map((n) => n + 60));
    for (const a of answers.slice(0, 5)) {
      const key = a.body.public_keys[1].public_key;
      const row = await store()
        .db.knex('ephemeral_keys')
        .join('invites', 'invites.id', 'ephemeral_keys.invite_id')
        .where('ephemeral_keys.public_key', key)
        .first('invites.token');
      expect(row.token).toBe(a.body.token); // each key is linked to its own invitation
    }
    expect(srv.violations).toEqual([]);
  });

  it('answers concurrent store-invites for bound and unbound addresses, each with its own answer (batched look-ups)', async () => {
    const bound = new Set([3, 7, 8, 20, 31]);
    for (const i of bound) {
      await insertAssociation(srv.service.deps, {
        medium: 'email',
        address: `taken${i}@example.org`,
        mxid: `@owner${i}:hs.example`,
        ts: now,
        notBefore: now - 1000,
        notAfter: now + 3600_000,
      });
    }
    // an expired binding does not count
    await insertAssociation(srv.service.deps, {
      medium: 'email',
      address: 'taken40@example.org',
      mxid: '@old:hs.example',
      ts: now,
      notBefore: now - 2000,
      notAfter: now - 1000,
    });
    const answers = await Promise.all(
      Array.from({ length: 41 }, (_, i) =>
        srv.call('POST', `${V1}/store-invite`, {
          medium: 'email',
          address: `Taken${i}@Example.org`,
          room_id: '!r:hs.example',
          sender: '@s:hs.example',
        }),
      ),
    );
    answers.forEach((a, i) => {
      if (bound.has(i)) expect(a).toMatchObject({ status: 400, body: { errcode: 'M_THREEPID_IN_USE', mxid: `@owner${i}:hs.example` } });
      else expect(a.status).toBe(200);
    });
    expect(srv.violations).toEqual([]);
  });

  it('a burst of store-invites starts the key worker, and the next ones carry its pairs, each valid and distinct', async () => {
    const keys = srv.service.deps.ephemeralKeys as WorkerKeySource;
    const burst = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        srv.call('POST', `${V1}/store-invite`, {
          medium: 'email',
          address: `burst${i}@example.org`,
          room_id: '!r:hs.example',
          sender: '@s:hs.example',
        }),
      ),
    );
    expect(burst.map((a) => a.status)).toEqual(Array(40).fill(200));
    expect(keys.running).toBe(true); // started by 32 pairs made on the request path within a second (this burst or the one before)
    const deadline = Date.now() + 10_000;
    while (keys.available === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    const fallbacks = keys.fallbacks;
    const next = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        srv.call('POST', `${V1}/store-invite`, {
          medium: 'email',
          address: `worker${i}@example.org`,
          room_id: '!r:hs.example',
          sender: '@s:hs.example',
        }),
      ),
    );
    expect(next.map((a) => a.status)).toEqual(Array(10).fill(200));
    expect(keys.fallbacks).toBe(fallbacks); // all ten from the worker's batch
    const ephemeral = [...burst, ...next].map((a) => a.body.public_keys[1].public_key as string);
    expect(new Set(ephemeral).size).toBe(50);
    for (const key of next.map((a) => a.body.public_keys[1].public_key as string)) {
      const res = await srv.call('GET', `${V1}/pubkey/ephemeral/isvalid?public_key=${encodeURIComponent(key)}`);
      expect(res.body).toEqual({ valid: true });
    }
  });

  it('stores a group commit larger than one multi-row INSERT takes, each key linked to its own invitation', async () => {
    const before = await counts(store());
    const items = Array.from({ length: 150 }, (_, i) => newInvite(1000 + i));
    await Promise.all(items.map((x) => store().invites.insertInvite(x.invite, x.mail)));
    expect(await counts(store())).toEqual(before.map((n) => n + 150));
    const linked = (await store()
      .db.knex('ephemeral_keys')
      .join('invites', 'invites.id', 'ephemeral_keys.invite_id')
      .whereIn(
        'invites.token',
        items.map((x) => x.invite.token),
      )
      .select('invites.token', 'ephemeral_keys.public_key')) as { token: string; public_key: string }[];
    const keyOf = new Map(linked.map((r) => [r.token, r.public_key]));
    expect(items.every((x) => keyOf.get(x.invite.token) === x.invite.ephemeralPublicKey)).toBe(true);
    const mails = await store()
      .db.knex('mail_outbox')
      .whereIn(
        'recipient',
        items.map((x) => x.mail.recipient),
      )
      .count({ n: '*' });
    expect(Number(mails[0]!.n)).toBe(150);
  });

  /**
   * A target opened with its own settings. On SQLite that is the server's own database handle: SQLite has one
   * connection and commits one batch at a time whatever is asked, and a second connection in this process would
   * deadlock against the server's (better-sqlite3 waits for a lock synchronously, blocking the event loop the
   * other connection's open transaction needs to finish) until the busy timeout fails it.
   */
  async function ownTarget(opts: Parameters<typeof Database.open>[0]): Promise<Target & { close(): Promise<void> }> {
    if (db.name === 'sqlite') return { ...store(), close: async () => {} };
    const target = await openTarget(opts);
    return { ...target, close: () => target.db.close() };
  }

  /** Stores 60 invitations in six waves, one event-loop turn apart; counts the invitation transactions and how many overlapped. */
  async function overlapOf(target: Target, from: number): Promise<{ most: number; transactions: number }> {
    const open = new Set<string>();
    let most = 0;
    let transactions = 0;
    const onQuery = (q: { sql?: string; __knexTxId?: string }) => {
      if (!q.__knexTxId || !q.sql) return;
      if (/^insert into [`"]invites[`"]/i.test(q.sql) && !open.has(q.__knexTxId)) {
        open.add(q.__knexTxId);
        transactions++;
        most = Math.max(most, open.size);
      } else if (/^(COMMIT|ROLLBACK)/i.test(q.sql)) {
        open.delete(q.__knexTxId);
      }
    };
    target.db.knex.on('query', onQuery);
    try {
      const waves: Promise<void>[] = [];
      for (let w = 0; w < 6; w++) {
        waves.push(
          ...Array.from({ length: 10 }, (_, i) => newInvite(from + w * 10 + i)).map((x) => target.invites.insertInvite(x.invite, x.mail)),
        );
        await new Promise((r) => setImmediate(r));
      }
      await Promise.all(waves);
    } finally {
      target.db.knex.off('query', onQuery);
    }
    return { most, transactions };
  }

  it('runs at most the configured number of invitation group commits at once (SQLite: one)', async () => {
    const dflt = await overlapOf(store(), 2000);
    if (store().db.dialect === 'sqlite') expect(dflt.most).toBe(1);
    else {
      expect(dflt.most).toBeGreaterThan(1); // the default, 4: waves arrive while earlier commits are in flight
      expect(dflt.most).toBeLessThanOrEqual(4);
    }
    const single = await ownTarget({ url: dbUrl, commitConcurrency: 1 });
    try {
      const one = await overlapOf(single, 3000);
      expect(one.most).toBe(1);
      // Each wave is queued in one turn and taken whole by the next transaction: never more transactions
      // than waves (60 without group commit). How many waves share one depends on how long a commit takes,
      // which a busy machine decides, so that is not asserted.
      expect(one.transactions).toBeGreaterThan(0);
      expect(one.transactions).toBeLessThanOrEqual(6);
    } finally {
      await single.close();
    }
  });

  it("never gives group commits the MySQL pool's last connection: 4 asked of a pool of 2 run one at a time", async () => {
    const small = await ownTarget({ url: dbUrl, poolMax: 2, commitConcurrency: 4 });
    try {
      expect((await overlapOf(small, 4000)).most).toBe(1);
    } finally {
      await small.close();
    }
  });

  it('a failing invitation in a group commit fails alone: the others are stored whole, it leaves no row', async () => {
    const before = await counts(store());
    const taken = (await store().db.knex('invites').first('token')).token as string; // a duplicate token violates the unique index
    const items = [newInvite(1), newInvite(2, taken), newInvite(3), newInvite(4)];
    const results = await Promise.allSettled(items.map((x) => store().invites.insertInvite(x.invite, x.mail)));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    expect(await counts(store())).toEqual(before.map((n) => n + 3));
    const failedKey = await store().db.knex('ephemeral_keys').where('public_key', items[1]!.invite.ephemeralPublicKey).first();
    expect(failedKey).toBeUndefined();
    for (const i of [0, 2, 3]) expect(await store().invites.isEphemeralKeyValid(items[i]!.invite.ephemeralPublicKey, now)).toBe(true);
  });

  it('isvalid: concurrent look-ups of uncached keys share one statement, each answered for its own key', async () => {
    const made = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        srv.call('POST', `${V1}/store-invite`, {
          medium: 'email',
          address: `batch${i}@example.org`,
          room_id: '!r:hs.example',
          sender: '@s:hs.example',
        }),
      ),
    );
    const keys = made.map((m) => m.body.public_keys[1].public_key as string);
    // key 1 expired, key 2 gone; the unknown key differs from key 0 only in letter case (a different key)
    await store()
      .db.knex('ephemeral_keys')
      .where('public_key', keys[1]!)
      .update({ expires_at: now - 1 });
    await store().db.knex('ephemeral_keys').where('public_key', keys[2]!).delete();
    const flip = (k: string) => k.replace(/[a-z]/, (c) => c.toUpperCase());
    const asked = [...keys, flip(keys[0]!), keys[0]!]; // 7 distinct keys: the statement is padded to 8
    const statements: string[] = [];
    const onQuery = (q: { sql: string }) => statements.push(q.sql);
    store().db.knex.on('query', onQuery);
    let answers;
    try {
      answers = await Promise.all(asked.map((k) => store().invites.isEphemeralKeyValid(k, now)));
    } finally {
      store().db.knex.off('query', onQuery);
    }
    expect(answers).toEqual([true, false, false, true, true, true, false, true]);
    expect(statements.filter((q) => /from `ephemeral_keys`/.test(q))).toHaveLength(1);
  });

  it('isvalid: expiry takes effect at once even for a cached key', async () => {
    const res = await srv.call('POST', `${V1}/store-invite`, {
      medium: 'email',
      address: 'expiring@example.org',
      room_id: '!r:hs.example',
      sender: '@s:hs.example',
    });
    const key = encodeURIComponent(res.body.public_keys[1].public_key);
    expect((await srv.call('GET', `${V2}/pubkey/ephemeral/isvalid?public_key=${key}`)).body).toEqual({ valid: true });
    const saved = now;
    now += srv.service.deps.config.invites.lifetimeMs;
    try {
      expect((await srv.call('GET', `${V2}/pubkey/ephemeral/isvalid?public_key=${key}`)).body).toEqual({ valid: false });
    } finally {
      now = saved;
    }
  });

  it('isvalid: a key deleted through this process is invalid at once', async () => {
    const res = await srv.call('POST', `${V1}/store-invite`, {
      medium: 'email',
      address: 'revoked@example.org',
      room_id: '!r:hs.example',
      sender: '@s:hs.example',
    });
    const key = res.body.public_keys[1].public_key as string;
    const url = `${V2}/pubkey/ephemeral/isvalid?public_key=${encodeURIComponent(key)}`;
    expect((await srv.call('GET', url)).body).toEqual({ valid: true });
    // deleted the way this process deletes keys: the invitation's expiry moved back (the cached answer keeps the
    // old one), then the sweep removes it with its key
    await store()
      .db.knex('invites')
      .where('token', res.body.token)
      .update({ expires_at: now - 1 });
    await srv.service.deps.invites.deleteExpiredInvites(now, 1000);
    expect((await srv.call('GET', url)).body).toEqual({ valid: false });
  });

  it('isvalid: a key deleted by another process is invalid within one second', async () => {
    const res = await srv.call('POST', `${V1}/store-invite`, {
      medium: 'email',
      address: 'elsewhere@example.org',
      room_id: '!r:hs.example',
      sender: '@s:hs.example',
    });
    const key = res.body.public_keys[1].public_key as string;
    const url = `${V2}/pubkey/ephemeral/isvalid?public_key=${encodeURIComponent(key)}`;
    expect((await srv.call('GET', url)).body).toEqual({ valid: true });
    // The invitation's email recorded first: a second SQLite connection in this process must not write while the
    // server's holds a transaction open (the synchronous busy wait would block the event loop it needs to commit).
    await srv.service.mailWorker.idle();
    const other = openDatabase({ url: dbUrl }).knex; // another instance's connection: its deletes do not clear our cache
    try {
      await other('ephemeral_keys').where('public_key', key).delete();
    } finally {
      await other.destroy();
    }
    const deleted = performance.now();
    let valid = true;
    let lastValidAskedAt = 0; // ms after the delete
    while (valid && performance.now() - deleted < 3000) {
      const askedAt = performance.now() - deleted;
      valid = (await srv.call('GET', url)).body.valid;
      if (valid) {
        lastValidAskedAt = askedAt;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    expect(valid).toBe(false);
    // no question asked one second or more after the delete was answered "valid"
    expect(lastValidAskedAt).toBeLessThan(1000);
  });
});

describe('performance.keyValidityCacheMs', () => {
  it('0 turns the validity cache off; the environment variable sets it', async () => {
    const { loadConfig } = await import('../../src/platform/config.js');
    expect(loadConfig({ argv: [], env: { TESSERA_KEY_VALIDITY_CACHE_MS: '250' } }).performance.keyValidityCacheMs).toBe(250);
    expect(() => loadConfig({ argv: [], env: { TESSERA_KEY_VALIDITY_CACHE_MS: '5000' } })).toThrow(/keyValidityCacheMs/);
    const created = await testDatabases()[0]!.create();
    const srv = await startTestServer({ dbUrl: created.url, overrides: { performance: { keyValidityCacheMs: 0 } } });
    try {
      const res = await srv.call('POST', `${V1}/store-invite`, {
        medium: 'email',
        address: 'nocache@example.org',
        room_id: '!r:hs.example',
        sender: '@s:hs.example',
      });
      const key = res.body.public_keys[1].public_key as string;
      expect((await srv.call('GET', `${V2}/pubkey/ephemeral/isvalid?public_key=${encodeURIComponent(key)}`)).body).toEqual({ valid: true });
      expect((srv.service.deps.invites as KnexInviteStore).keyCache.size).toBe(0);
    } finally {
      await srv.stop();
      await created.dispose();
    }
  });
});
