// How a MySQL/MariaDB URL becomes mysql2's connection settings (no server needed: nothing connects until a query).
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/platform/db/db.js';

async function connectionOf(url: string): Promise<Record<string, unknown>> {
  const { knex } = openDatabase({ url });
  try {
    const connection = (knex.client.config as { connection: Record<string, unknown> }).connection;
    // knex hides the password from enumeration (so that it is not logged); read it by name
    return { ...connection, password: connection.password };
  } finally {
    await knex.destroy();
  }
}

describe('MySQL URLs', () => {
  it('hands an IPv6 literal to the socket without its URL brackets', async () => {
    expect(await connectionOf('mysql://u:p@[::1]:3307/x')).toMatchObject({ host: '::1', port: 3307, database: 'x' });
  });

  it('keeps host names and IPv4 addresses as written, and decodes the credentials', async () => {
    expect(await connectionOf('mariadb://tess%40ra:p%3Ass@db.example.org/ids')).toMatchObject({
      host: 'db.example.org',
      port: 3306,
      user: 'tess@ra',
      password: 'p:ss',
      database: 'ids',
    });
    expect(await connectionOf('mysql://root@127.0.0.1:3306/test')).toMatchObject({ host: '127.0.0.1', user: 'root', password: '' });
  });
});
