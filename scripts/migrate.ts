// npm run migrate [-- --down]: brings the configured database's schema up to date (or rolls it all back).
import { loadConfig } from '../src/platform/config.js';
import { migrateDown, migrateLatest, openDatabase } from '../src/platform/db/db.js';

const config = loadConfig({ argv: process.argv.slice(2) });
const { knex, dialect } = openDatabase({
  url: config.database.url,
  sqliteSynchronous: config.database.sqliteSynchronous,
  sqliteCacheMb: config.database.sqliteCacheMb,
  sqliteWalAutocheckpoint: config.database.sqliteWalAutocheckpoint,
  sqliteBusyTimeoutMs: config.database.sqliteBusyTimeoutMs,
  acquireTimeoutMs: config.database.acquireTimeoutMs,
});
try {
  if (process.argv.includes('--down')) {
    await migrateDown(knex);
    console.log(`rolled back every migration (${dialect})`);
  } else {
    const applied = await migrateLatest(knex);
    console.log(applied.length ? `applied ${applied.join(', ')} (${dialect})` : `schema already current (${dialect})`);
  }
} finally {
  await knex.destroy();
}
