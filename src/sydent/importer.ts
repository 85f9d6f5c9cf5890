// Moves a Sydent deployment's data into Tessera's database (docs/moving-from-sydent.md): bindings and the lookup
// pepper, pending invitations and every ephemeral key, access tokens and accepted terms.
//
// Two passes over one read transaction on Sydent's SQLite file (a consistent snapshot, even while Sydent runs):
// the first plans every table and compares each row with what Tessera already holds; a row Tessera holds with
// different data is a conflict, and any conflict stops the import before anything is written. The second writes
// in transactions of BATCH rows. Rows already present and identical are counted, not written, so a second run
// changes nothing.
import BetterSqlite3 from 'better-sqlite3';
import type { Knex } from 'knex';
import { createHash } from 'node:crypto';
import type { Database } from '../platform/db/Database.js';
import { decodeAny, encodeUrlSafe } from '../platform/base64.js';
import { normaliseAddress } from '../platform/threepid.js';
import { lookupHash } from '../associations/hash.js';
import type { Terms } from '../accounts/terms.js';

/** Sydent's schema versions this importer reads (PRAGMA user_version): 4 and 5 differ only in an index. */
export const SUPPORTED_VERSIONS = [4, 5];
const BATCH = 1000;
const REQUIRED_TABLES = [
  'invite_tokens',
  'ephemeral_public_keys',
  'local_threepid_associations',
  'global_threepid_associations',
  'hashing_metadata',
];

export class ImportError extends Error {}

export interface ImportOptions {
  /** Sydent's `[general] server.name`: its own rows in global_threepid_associations carry it. */
  serverName: string;
  invitesLifetimeMs: number;
  tokenLifetimeMs: number;
  /** Sydent's terms file, to turn accepted URLs into policy versions (none: accepted terms are skipped). */
  terms: Terms | undefined;
  now: number;
  dryRun: boolean;
  progress?: (table: string, done: number, total: number) => void;
}

export interface TableReport {
  table: string;
  read: number;
  imported: number;
  present: number;
  skipped: Record<string, number>;
}

/** A row as Tessera will hold it, with the key that identifies it there. */
interface Planned {
  key: string;
  row: Record<string, unknown>;
}

interface TablePlan {
  report: TableReport;
  rows: Planned[];
}

/** Opens Sydent's database read-only and checks it is one this importer understands. */
export function openSydent(file: string): BetterSqlite3.Database {
  let db: BetterSqlite3.Database;
  try {
    db = new BetterSqlite3(file, { readonly: true, fileMustExist: true });
  } catch (err) {
    throw new ImportError(`cannot open ${file}: ${(err as Error).message}`);
  }
  try {
    const tables = new Set(
      (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map((r) => r.name),
    );
    const missing = REQUIRED_TABLES.filter((t) => !tables.has(t));
    if (missing.length > 0) throw new ImportError(`${file} is not a Sydent database: no ${missing.join(', ')} table`);
    const version = db.pragma('user_version', { simple: true }) as number;
    if (!SUPPORTED_VERSIONS.includes(version)) {
      throw new ImportError(
        `${file} has Sydent schema version ${version}; this importer reads versions ${SUPPORTED_VERSIONS.join(' and ')}`,
      );
    }
  } catch (err) {
    db.close();
    throw err instanceof ImportError ? err : new ImportError(`${file} is not a Sydent database: ${(err as Error).message}`);
  }
  return db;
}

/** Reads a table page by page (rowid order), `BATCH` rows at a time. */
function* pages<T>(sydent: BetterSqlite3.Database, sql: string): Generator<T[]> {
  const stmt = sydent.prepare(`${sql} ${/ where /i.test(sql) ? 'AND' : 'WHERE'} rowid > ? ORDER BY rowid LIMIT ${BATCH}`);
  let after = -Infinity;
  for (;;) {
    const rows = stmt.all(after) as (T & { rowid: number })[];
    if (rows.length === 0) return;
    yield rows;
    after = rows[rows.length - 1]!.rowid;
  }
}

const count = (sydent: BetterSqlite3.Database, table: string) =>
  (sydent.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;

function skip(report: TableReport, why: string): void {
  report.skipped[why] = (report.skipped[why] ?? 0) + 1;
}

/** The URL-safe unpadded form Tessera stores keys in; undefined for something that is not a 32-byte key. */
function ephemeralKeyForm(key: string): string | undefined {
  const bytes = decodeAny(key);
  return bytes && bytes.length === 32 ? encodeUrlSafe(bytes) : undefined;
}

interface SydentAssociation {
  medium: string;
  address: string;
  mxid: string | null;
  ts: number | null;
  notBefore: number | null;
  notAfter: number | null;
}

function planAssociations(sydent: BetterSqlite3.Database, opts: ImportOptions, pepper: string): TablePlan {
  const report: TableReport = { table: 'associations', read: 0, imported: 0, present: 0, skipped: {} };
  const byKey = new Map<string, { row: Record<string, unknown>; ts: number }>();
  const take = (a: SydentAssociation) => {
    if (a.mxid === null) return skip(report, 'removed binding (mxid NULL)');
    const address = normaliseAddress(a.medium, a.address);
    const ts = Number(a.ts ?? 0);
    const key = `${a.medium}\u0000${address}`;
    const prior = byKey.get(key);
    if (prior) {
      skip(report, 'same address in another letter case (the newest kept)');
      if (prior.ts >= ts) return;
    }
    byKey.set(key, {
      ts,
      row: {
        medium: a.medium,
        address,
        mxid: a.mxid,
        ts,
        not_before: Number(a.notBefore ?? ts),
        not_after: Number(a.notAfter ?? ts),
        lookup_hash: lookupHash(address, a.medium, pepper),
      },
    });
  };
  const localIds = new Set<number>();
  for (const page of pages<SydentAssociation & { id: number }>(
    sydent,
    'SELECT rowid, id, medium, address, mxid, ts, notBefore, notAfter FROM local_threepid_associations',
  )) {
    for (const a of page) {
      report.read++;
      localIds.add(a.id);
      take(a);
    }
  }
  const globalSql =
    'SELECT rowid, medium, address, mxid, ts, notBefore, notAfter, originServer, originId FROM global_threepid_associations';
  for (const page of pages<SydentAssociation & { originServer: string; originId: number }>(sydent, globalSql)) {
    for (const a of page) {
      report.read++;
      if (a.originServer !== opts.serverName) skip(report, 'replicated from a peer server (not this server)');
      else if (localIds.has(a.originId)) skip(report, "this server's own, already read from local_threepid_associations");
      else take(a);
    }
  }
  return { report, rows: [...byKey.entries()].map(([key, v]) => ({ key, row: v.row })) };
}

function planInvites(sydent: BetterSqlite3.Database, opts: ImportOptions): TablePlan {
  const report: TableReport = { table: 'invites', read: 0, imported: 0, present: 0, skipped: {} };
  const rows: Planned[] = [];
  type Row = {
    medium: string;
    address: string;
    room_id: string;
    sender: string;
    token: string;
    received_ts: number | null;
    sent_ts: number | null;
  };
  for (const page of pages<Row>(sydent, 'SELECT rowid, medium, address, room_id, sender, token, received_ts, sent_ts FROM invite_tokens')) {
    for (const r of page) {
      report.read++;
      if (r.sent_ts !== null) {
        skip(report, 'already delivered by onbind');
        continue;
      }
      // invite_tokens times are in seconds
      const createdAt = r.received_ts === null ? opts.now : Number(r.received_ts) * 1000;
      const expiresAt = createdAt + opts.invitesLifetimeMs;
      if (expiresAt <= opts.now) {
        skip(report, 'expired under invites.lifetimeMs');
        continue;
      }
      if (!/^[A-Za-z0-9_-]{1,255}$/.test(r.token)) {
        skip(report, 'token Tessera cannot serve');
        continue;
      }
      rows.push({
        key: r.token,
        row: {
          medium: r.medium,
          address: normaliseAddress(r.medium, r.address),
          room_id: r.room_id,
          sender: r.sender,
          token: r.token,
          fields: '{}',
          created_at: createdAt,
          expires_at: expiresAt,
        },
      });
    }
  }
  return { report, rows };
}

function planEphemeralKeys(sydent: BetterSqlite3.Database, opts: ImportOptions): TablePlan {
  const report: TableReport = { table: 'ephemeral keys', read: 0, imported: 0, present: 0, skipped: {} };
  const rows: Planned[] = [];
  for (const page of pages<{ public_key: string; persistence_ts: number | null }>(
    sydent,
    'SELECT rowid, public_key, persistence_ts FROM ephemeral_public_keys',
  )) {
    for (const r of page) {
      report.read++;
      const key = ephemeralKeyForm(r.public_key);
      if (!key) {
        skip(report, 'not a 32-byte base64 key');
        continue;
      }
      // persistence_ts is in seconds
      const createdAt = r.persistence_ts === null ? opts.now : Number(r.persistence_ts) * 1000;
      const expiresAt = createdAt + opts.invitesLifetimeMs;
      if (expiresAt <= opts.now) {
        skip(report, 'expired under invites.lifetimeMs');
        continue;
      }
      rows.push({ key, row: { public_key: key, invite_id: null, created_at: createdAt, expires_at: expiresAt } });
    }
  }
  return { report, rows };
}

function planTokens(sydent: BetterSqlite3.Database, opts: ImportOptions): TablePlan {
  const report: TableReport = { table: 'access tokens', read: 0, imported: 0, present: 0, skipped: {} };
  const rows: Planned[] = [];
  const created = sydent.prepare('SELECT created_ts FROM accounts WHERE user_id = ?');
  for (const page of pages<{ token: string; user_id: string }>(sydent, 'SELECT rowid, token, user_id FROM tokens')) {
    for (const r of page) {
      report.read++;
      // hashed exactly as Tessera hashes the tokens it issues (accounts.ts hashAccessToken)
      const tokenHash = createHash('sha256').update(r.token, 'utf8').digest('hex');
      const account = created.get(r.user_id) as { created_ts: number | null } | undefined;
      rows.push({
        key: tokenHash,
        row: {
          token_hash: tokenHash,
          user_id: r.user_id,
          created_at: Number(account?.created_ts ?? opts.now),
          expires_at: opts.now + opts.tokenLifetimeMs,
        },
      });
    }
  }
  return { report, rows };
}

function planTerms(sydent: BetterSqlite3.Database, opts: ImportOptions): TablePlan {
  const report: TableReport = { table: 'accepted terms', read: 0, imported: 0, present: 0, skipped: {} };
  const rows = new Map<string, Planned>();
  for (const page of pages<{ user_id: string; url: string }>(sydent, 'SELECT rowid, user_id, url FROM accepted_terms_urls')) {
    for (const r of page) {
      report.read++;
      const acceptance = opts.terms?.acceptancesFor([r.url])[0];
      if (!acceptance) {
        skip(report, opts.terms ? 'URL of no policy in the terms file' : 'no terms file to map URLs to policies');
        continue;
      }
      const key = `${r.user_id}\u0000${acceptance.policy}\u0000${acceptance.version}`;
      if (rows.has(key)) {
        skip(report, 'another language of a policy version already accepted');
        continue;
      }
      rows.set(key, { key, row: { user_id: r.user_id, policy: acceptance.policy, version: acceptance.version, accepted_at: opts.now } });
    }
  }
  return { report, rows: [...rows.values()] };
}

/** What Tessera holds for each planned key: 'same', a conflict description, or undefined (absent). */
type Compare = (trx: Knex, rows: Planned[]) => Promise<Map<string, 'same' | 'revoked' | string>>;

const same = (a: Record<string, unknown>, b: Record<string, unknown>, cols: string[]) => cols.every((c) => String(a[c]) === String(b[c]));

const COMPARE: Record<string, { table: string; compare: Compare }> = {
  associations: {
    table: 'associations',
    async compare(k, rows) {
      const out = new Map<string, 'same' | string>();
      const byMedium = new Map<string, Planned[]>();
      for (const r of rows) byMedium.set(String(r.row.medium), [...(byMedium.get(String(r.row.medium)) ?? []), r]);
      for (const [medium, group] of byMedium) {
        const found = (await k('associations')
          .where({ medium })
          .whereIn(
            'address',
            group.map((r) => String(r.row.address)),
          )) as Record<string, unknown>[];
        const byAddress = new Map(found.map((f) => [String(f.address), f]));
        for (const r of group) {
          const existing = byAddress.get(String(r.row.address));
          if (existing) {
            out.set(
              r.key,
              same(existing, r.row, ['mxid', 'ts', 'not_before', 'not_after'])
                ? 'same'
                : `a ${medium} binding of an address to ${String(existing.mxid)}`,
            );
          }
        }
      }
      return out;
    },
  },
  invites: {
    table: 'invites',
    async compare(k, rows) {
      const out = new Map<string, 'same' | string>();
      const found = (await k('invites').whereIn(
        'token',
        rows.map((r) => r.key),
      )) as Record<string, unknown>[];
      const byToken = new Map(found.map((f) => [String(f.token), f]));
      for (const r of rows) {
        const existing = byToken.get(r.key);
        if (existing)
          out.set(
            r.key,
            same(existing, r.row, ['medium', 'address', 'room_id', 'sender'])
              ? 'same'
              : `invitation ${String(existing.id)} with the same token`,
          );
      }
      const hashes = new Map(rows.map((r) => [createHash('sha256').update(r.key, 'utf8').digest('hex'), r.key]));
      const revoked = (await k('revoked_invites').whereIn('token_hash', [...hashes.keys()])) as { token_hash: string }[];
      for (const r of revoked) out.set(hashes.get(r.token_hash)!, 'revoked');
      return out;
    },
  },
  'ephemeral keys': {
    table: 'ephemeral_keys',
    async compare(k, rows) {
      const out = new Map<string, 'same' | string>();
      const found = (await k('ephemeral_keys').whereIn(
        'public_key',
        rows.map((r) => r.key),
      )) as Record<string, unknown>[];
      for (const f of found)
        out.set(String(f.public_key), f.invite_id === null ? 'same' : `an ephemeral key of Tessera's invitation ${String(f.invite_id)}`);
      return out;
    },
  },
  'access tokens': {
    table: 'account_tokens',
    async compare(k, rows) {
      const out = new Map<string, 'same' | string>();
      const found = (await k('account_tokens').whereIn(
        'token_hash',
        rows.map((r) => r.key),
      )) as Record<string, unknown>[];
      const byHash = new Map(found.map((f) => [String(f.token_hash), f]));
      for (const r of rows) {
        const existing = byHash.get(r.key);
        if (existing) out.set(r.key, existing.user_id === r.row.user_id ? 'same' : `an access token of ${String(existing.user_id)}`);
      }
      return out;
    },
  },
  'accepted terms': {
    table: 'accepted_terms',
    async compare(k, rows) {
      const out = new Map<string, 'same' | string>();
      for (const r of rows) {
        const existing = await k('accepted_terms').where({ user_id: r.row.user_id, policy: r.row.policy, version: r.row.version }).first();
        if (existing) out.set(r.key, 'same');
      }
      return out;
    },
  },
};

export interface ImportResult {
  reports: TableReport[];
  /** The lookup pepper: imported, already Tessera's, or none in Sydent's database. */
  pepper: 'imported' | 'present' | 'none';
  conflicts: string[];
}

const chunks = <T>(items: T[], n: number): T[][] =>
  Array.from({ length: Math.ceil(items.length / n) }, (_, i) => items.slice(i * n, i * n + n));

/** Plans, checks and (unless a dry run) writes the import; with conflicts, it answers them and writes nothing. */
export async function importSydent(sydent: BetterSqlite3.Database, tessera: Database, opts: ImportOptions): Promise<ImportResult> {
  // One read transaction: every page below reads the same snapshot of Sydent's database.
  sydent.prepare('BEGIN').run();
  try {
    const pepperRow = sydent.prepare('SELECT lookup_pepper FROM hashing_metadata ORDER BY id DESC LIMIT 1').get() as
      { lookup_pepper: string } | undefined;
    const currentPepper = (await tessera.knex('binding_settings').where({ name: 'lookup_pepper' }).first()) as
      { value: string } | undefined;
    // Without a Sydent pepper, Tessera's own (or the one it makes at start-up) hashes the imported rows.
    const pepper = pepperRow?.lookup_pepper ?? currentPepper?.value;
    const plans = [
      planAssociations(sydent, opts, pepper ?? ''),
      planInvites(sydent, opts),
      planEphemeralKeys(sydent, opts),
      planTokens(sydent, opts),
      planTerms(sydent, opts),
    ];
    const accounts: TableReport = { table: 'accounts', read: count(sydent, 'accounts'), imported: 0, present: 0, skipped: {} };
    if (accounts.read > 0)
      accounts.skipped['kept through their access tokens and accepted terms (Tessera has no account rows)'] = accounts.read;
    const sessions: TableReport = {
      table: 'validation sessions',
      read: count(sydent, 'threepid_validation_sessions'),
      imported: 0,
      present: 0,
      skipped: {},
    };
    if (sessions.read > 0) sessions.skipped['not carried over: a user validating an address asks for a new email'] = sessions.read;

    // Pass 1: compare with what Tessera holds; any conflict stops everything.
    const conflicts: string[] = [];
    const toWrite = new Map<string, Planned[]>();
    for (const plan of plans) {
      const { compare } = COMPARE[plan.report.table]!;
      const fresh: Planned[] = [];
      for (const chunk of chunks(plan.rows, BATCH)) {
        const existing = await compare(tessera.knex, chunk);
        for (const r of chunk) {
          const e = existing.get(r.key);
          if (e === 'same') plan.report.present++;
          else if (e === 'revoked') skip(plan.report, 'revoked by an operator');
          else if (e !== undefined) conflicts.push(`${plan.report.table}: Tessera already holds ${e}`);
          else fresh.push(r);
        }
      }
      toWrite.set(plan.report.table, fresh);
    }
    if (conflicts.length > 0) return { reports: [...plans.map((p) => p.report), accounts, sessions], pepper: 'none', conflicts };

    const pepperOutcome: ImportResult['pepper'] =
      pepperRow === undefined ? 'none' : currentPepper?.value === pepperRow.lookup_pepper ? 'present' : 'imported';
    // Pass 2: write, a transaction per batch.
    if (!opts.dryRun) {
      if (pepperOutcome === 'imported') {
        const hadAssociations = Number(((await tessera.knex('associations').count({ n: '*' })) as { n: number | string }[])[0]!.n) > 0;
        await tessera.transaction(async (trx) => {
          await trx('binding_settings').where({ name: 'lookup_pepper' }).delete();
          await trx('binding_settings').insert({ name: 'lookup_pepper', value: pepperRow!.lookup_pepper });
          // Tessera's own bindings were hashed with its previous pepper: leaving the marker on that pepper makes the
          // next start rehash them (pepper.ts); with none, every row is already hashed with Sydent's.
          if (!hadAssociations) {
            await trx('binding_settings').where({ name: 'lookup_pepper_hashed' }).delete();
            await trx('binding_settings').insert({ name: 'lookup_pepper_hashed', value: pepperRow!.lookup_pepper });
          }
        });
      }
      for (const plan of plans) {
        const { table } = COMPARE[plan.report.table]!;
        const rows = toWrite.get(plan.report.table)!;
        for (const chunk of chunks(rows, BATCH)) {
          await tessera.transaction(async (trx) => {
            for (const part of chunks(chunk, 100)) await trx(table).insert(part.map((r) => r.row));
          });
          plan.report.imported += chunk.length;
          opts.progress?.(plan.report.table, plan.report.imported, rows.length);
        }
      }
    } else {
      for (const plan of plans) plan.report.imported = toWrite.get(plan.report.table)!.length;
    }
    return { reports: [...plans.map((p) => p.report), accounts, sessions], pepper: pepperOutcome, conflicts };
  } finally {
    sydent.prepare('COMMIT').run();
  }
}
