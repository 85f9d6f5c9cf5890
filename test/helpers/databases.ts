// The databases every integration test runs against: SQLite always, MariaDB/MySQL when
// TESSERA_TEST_MYSQL_URL is set. In CI (CI=true) a missing URL is an error, never a silent skip.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import knexFactory from 'knex';

export interface TestDatabase {
  name: 'sqlite' | 'mysql';
  /** A fresh, empty database: its URL and how to drop it. */
  create(): Promise<{ url: string; dispose(): Promise<void> }>;
}

const sqlite: TestDatabase = {
  name: 'sqlite',
  async create() {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-db-'));
    return { url: join(dir, 'test.sqlite'), dispose: async () => rmSync(dir, { recursive: true, force: true }) };
  },
};

function mysql(baseUrl: string): TestDatabase {
  return {
    name: 'mysql',
    async create() {
      const name = `tessera_t_${randomBytes(6).toString('hex')}`;
      const admin = knexFactory({ client: 'mysql2', connection: baseUrl, pool: { min: 0, max: 1 } });
      try {
        await admin.raw(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
      } finally {
        await admin.destroy();
      }
      const u = new URL(baseUrl);
      u.pathname = `/${name}`;
      return {
        url: u.toString(),
        async dispose() {
          const a = knexFactory({ client: 'mysql2', connection: baseUrl, pool: { min: 0, max: 1 } });
          try {
            await a.raw(`DROP DATABASE IF EXISTS \`${name}\``);
          } finally {
            await a.destroy();
          }
        },
      };
    },
  };
}

export function testDatabases(): TestDatabase[] {
  const url = process.env.TESSERA_TEST_MYSQL_URL;
  if (!url && process.env.CI) {
    throw new Error('CI is set but TESSERA_TEST_MYSQL_URL is not: the MySQL suite must run in CI');
  }
  return url ? [sqlite, mysql(url)] : [sqlite];
}
