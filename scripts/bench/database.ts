// The benchmark's database: a fresh SQLite file (default) or a fresh MariaDB/MySQL database created and dropped
// for the run; plus the bulk seeding of --seed N (straight through knex in batches, never over HTTP).
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import knexFactory, { type Knex } from 'knex';
import { openDatabase } from '../../src/platform/db/db.js';

export interface BenchDatabase {
  /** What Tessera gets as TESSERA_DB_URL (a file path for SQLite). */
  url: string;
  kind: 'sqlite' | 'mysql';
  /** Drops the MySQL database (SQLite files go with the temp dir). */
  dispose(): Promise<void>;
}

export async function createBenchDatabase(opts: { mysqlUrl?: string; dataDir: string }): Promise<BenchDatabase> {
  if (!opts.mysqlUrl) return { url: join(opts.dataDir, 'tessera.sqlite'), kind: 'sqlite', dispose: async () => {} };
  const server = new URL(opts.mysqlUrl);
  server.pathname = '/';
  const name = `tessera_bench_${randomBytes(5).toString('hex')}`;
  const admin = () => knexFactory({ client: 'mysql2', connection: server.toString(), pool: { min: 0, max: 1 } });
  const a = admin();
  try {
    await a.raw(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
  } finally {
    await a.destroy();
  }
  const url = new URL(server);
  url.pathname = `/${name}`;
  let dropped = false;
  return {
    url: url.toString(),
    kind: 'mysql',
    async dispose() {
      if (dropped) return;
      dropped = true;
      const d = admin();
      try {
        await d.raw(`DROP DATABASE IF EXISTS \`${name}\``);
      } finally {
        await d.destroy();
      }
    },
  };
}

/** A second connection to the database Tessera uses (Tessera has already migrated it). */
export function openBenchKnex(url: string): Knex {
  return openDatabase({ url, sqliteSynchronous: 'normal', poolMax: 2 }).knex;
}

export const DAY = 24 * 3600 * 1000;

/**
 * Inserts `count` unexpired invitations with their ephemeral keys, `batch` rows per statement, in transactions of
 * 50 batches. Keys are 32 random bytes in the store's encoding (the store only ever looks them up by value).
 * No mail-outbox rows: a million queued emails would measure the mail worker, not store-invite.
 * Returns a sample of the seeded public keys for look-up scenarios.
 */
export async function seedInvites(knex: Knex, count: number, onProgress: (done: number) => void, batch = 400): Promise<string[]> {
  // 400 rows per INSERT: knex writes SQLite multi-row inserts as a compound SELECT, limited to 500 terms.
  const [row] = await knex('invites').max({ m: 'id' });
  let nextId = Number(row?.m ?? 0) + 1;
  const now = Date.now();
  const sample: string[] = [];
  const sampleEvery = Math.max(1, Math.floor(count / 50_000));
  let done = 0;
  while (done < count) {
    await knex.transaction(async (trx) => {
      for (let b = 0; b < 50 && done < count; b++) {
        const n = Math.min(batch, count - done);
        const invites = [];
        const keys = [];
        for (let i = 0; i < n; i++, nextId++) {
          const address = `seed${nextId}@seed.example.org`;
          const publicKey = randomBytes(32).toString('base64url');
          if ((done + i) % sampleEvery === 0) sample.push(publicKey);
          invites.push({
            id: nextId,
            medium: 'email',
            address,
            room_id: '!seeded:hs.example',
            sender: '@seeder:hs.example',
            token: randomBytes(24).toString('base64url'),
            fields: JSON.stringify({ medium: 'email', address, room_id: '!seeded:hs.example', sender: '@seeder:hs.example' }),
            created_at: now,
            expires_at: now + 90 * DAY,
          });
          keys.push({ public_key: publicKey, invite_id: nextId, created_at: now, expires_at: now + 90 * DAY });
        }
        await trx('invites').insert(invites);
        await trx('ephemeral_keys').insert(keys);
        done += n;
      }
    });
    onProgress(done);
  }
  return sample;
}

/** Up to `limit` ephemeral public keys currently stored (for the cache-cold look-up scenario). */
export async function storedKeys(knex: Knex, limit: number): Promise<string[]> {
  const rows = (await knex('ephemeral_keys').select('public_key').orderBy('created_at', 'desc').limit(limit)) as { public_key: string }[];
  return rows.map((r) => r.public_key);
}
