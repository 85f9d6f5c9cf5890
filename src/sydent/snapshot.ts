// Reads a Sydent database (docs/moving-from-sydent.md) into the rows Tessera will hold, table by table, with what
// is skipped and why. Sydent's SQLite file is opened read-only and read in one read transaction, so every table
// comes from the same snapshot even while Sydent runs. That transaction only copies the rows out (as arrays, the
// fastest form better-sqlite3 gives); sorting them into Tessera's rows happens after it ends: Sydent keeps its file
// in rollback-journal mode, where a reader holds off its writers' commits, and Sydent gives up on a locked database
// after 5 seconds (it writes on every ephemeral/isvalid).
import BetterSqlite3 from 'better-sqlite3';
import { decodeAny, encodeUrlSafe } from '../platform/base64.js';
import { normaliseAddress } from '../platform/threepid.js';
import { lookupHash } from '../associations/hash.js';
import { hashAccessToken } from '../accounts/accounts.js';
import type { Terms } from '../accounts/terms.js';
import { ImportError } from './errors.js';

/**
 * Sydent's schema versions this importer reads (PRAGMA user_version). Every Sydent release since 2.0.0 upgrades
 * its database to 5 at start-up; 4 (pre-release 2.0 builds) has the same tables with another index. Sydent 1.x
 * left version 2, without the v2 API's tables.
 */
export const SUPPORTED_VERSIONS = [4, 5];
const REQUIRED_TABLES = [
  'invite_tokens',
  'ephemeral_public_keys',
  'local_threepid_associations',
  'global_threepid_associations',
  'hashing_metadata',
  'accounts',
  'tokens',
  'accepted_terms_urls',
  'threepid_validation_sessions',
  'threepid_token_auths',
];

export interface TableReport {
  table: string;
  read: number;
  imported: number;
  present: number;
  skipped: Record<string, number>;
}

/** A row as Tessera will hold it (`table`'s columns), with the key that identifies it there. */
export interface Planned {
  key: string;
  row: Record<string, unknown>;
}

export interface TablePlan {
  report: TableReport;
  /** Tessera's table. */
  table: string;
  rows: Planned[];
}

/** An address whose newest row in Sydent is a removal: Tessera must not hold an older binding of it. */
export interface Removal {
  medium: string;
  address: string;
  ts: number;
}

export interface SydentData {
  /** The v2 lookup pepper (hashing_metadata); undefined when Sydent never made one. */
  pepper: string | undefined;
  /** In the order they are written. */
  plans: TablePlan[];
  removals: Removal[];
  /** Tokens of invitations Sydent delivered: Tessera must not still hold one pending. */
  deliveredInviteTokens: string[];
  /** Tables counted, not carried over. */
  notCarried: TableReport[];
  /** How long the read transaction over Sydent's database lasted. */
  snapshotMs: number;
}

export interface ReadOptions {
  /** Sydent's `[general] server.name`: its own rows in global_threepid_associations carry it. */
  serverName: string;
  invitesLifetimeMs: number;
  /** accounts.tokenLifetimeMs: imported access tokens expire this long after the import. */
  accessTokenLifetimeMs: number;
  /** binding.sessionLifetimeMs and binding.tokenLifetimeMs, counted from a session's last email. */
  sessionLifetimeMs: number;
  validationTokenLifetimeMs: number;
  /** Sydent's terms file, to turn accepted URLs into policy versions (none: accepted terms are skipped). */
  terms: Terms | undefined;
  /** The pepper to hash bindings with when Sydent has none: Tessera's own. */
  fallbackPepper: string | undefined;
  now: number;
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
    const version = db.pragma('user_version', { simple: true }) as number;
    const missing = REQUIRED_TABLES.filter((t) => !tables.has(t));
    if (missing.length === REQUIRED_TABLES.length || !tables.has('local_threepid_associations')) {
      throw new ImportError(`${file} is not a Sydent database: no ${missing.join(', ')} table`);
    }
    if (!SUPPORTED_VERSIONS.includes(version)) {
      throw new ImportError(
        `${file} has Sydent schema version ${version} (PRAGMA user_version); this importer reads versions ${SUPPORTED_VERSIONS.join(
          ' and ',
        )}, which every Sydent since 2.0.0 makes: start a current Sydent on it once to upgrade it`,
      );
    }
    if (missing.length > 0) throw new ImportError(`${file} is not a whole Sydent database: no ${missing.join(', ')} table`);
  } catch (err) {
    db.close();
    throw err instanceof ImportError ? err : new ImportError(`${file} is not a Sydent database: ${(err as Error).message}`);
  }
  return db;
}

const newReport = (table: string): TableReport => ({ table, read: 0, imported: 0, present: 0, skipped: {} });

function skip(report: TableReport, why: string, n = 1): void {
  report.skipped[why] = (report.skipped[why] ?? 0) + n;
}

/** Tessera's column widths (migrations): a longer value would fail its batch halfway, so it is skipped up front. */
const WIDTHS: Record<string, number> = {
  medium: 16,
  address: 320,
  mxid: 255,
  room_id: 255,
  sender: 255,
  token: 255,
  user_id: 255,
  client_secret: 255,
  sid: 64,
};
const TOO_LONG = "a value longer than Tessera's column";
const fits = (row: Record<string, unknown>) =>
  Object.entries(row).every(([col, v]) => WIDTHS[col] === undefined || typeof v !== 'string' || v.length <= WIDTHS[col]!);

type AssociationRow = [
  medium: string,
  address: string,
  mxid: string | null,
  ts: number | null,
  notBefore: number | null,
  notAfter: number | null,
];
type InviteRow = [
  medium: string,
  address: string,
  roomId: string,
  sender: string,
  token: string,
  receivedTs: number | null,
  sentTs: number | null,
];
type SessionRow = [
  id: number,
  medium: string,
  address: string,
  clientSecret: string,
  validated: number | null,
  mtime: number,
  token: string | null,
  sendAttemptNumber: number | null,
];

/** Sydent's rows, as read in the one read transaction. */
interface Snapshot {
  pepper: string | undefined;
  local: AssociationRow[];
  global: [...AssociationRow, originServer: string][];
  invites: InviteRow[];
  keys: [publicKey: string, persistenceTs: number | null][];
  tokens: [token: string, userId: string, accountCreatedTs: number | null][];
  terms: [userId: string, url: string][];
  sessions: SessionRow[];
  accounts: number;
  peers: number;
}

function takeSnapshot(sydent: BetterSqlite3.Database): Snapshot {
  const rows = <T>(sql: string) => sydent.prepare(sql).raw().all() as T[];
  const count = (table: string) => (sydent.prepare(`SELECT count(*) FROM ${table}`).raw().get() as [number])[0];
  sydent.prepare('BEGIN').run();
  try {
    // Sydent keeps one row (id 0); the newest id wins should there be more.
    const pepper = rows<[string | null]>('SELECT lookup_pepper FROM hashing_metadata ORDER BY id DESC LIMIT 1')[0]?.[0] ?? undefined;
    return {
      pepper,
      local: rows('SELECT medium, address, mxid, ts, notBefore, notAfter FROM local_threepid_associations ORDER BY id'),
      global: rows('SELECT medium, address, mxid, ts, notBefore, notAfter, originServer FROM global_threepid_associations ORDER BY id'),
      invites: rows('SELECT medium, address, room_id, sender, token, received_ts, sent_ts FROM invite_tokens ORDER BY id'),
      keys: rows('SELECT public_key, persistence_ts FROM ephemeral_public_keys ORDER BY id'),
      tokens: rows('SELECT t.token, t.user_id, a.created_ts FROM tokens t LEFT JOIN accounts a ON a.user_id = t.user_id ORDER BY t.rowid'),
      terms: rows('SELECT user_id, url FROM accepted_terms_urls ORDER BY rowid'),
      sessions: rows(
        `SELECT s.id, s.medium, s.address, s.clientSecret, s.validated, s.mtime, t.token, t.sendAttemptNumber
         FROM threepid_validation_sessions s
         LEFT JOIN threepid_token_auths t ON t.id = (SELECT max(id) FROM threepid_token_auths WHERE validationSession = s.id)
         ORDER BY s.id`,
      ),
      accounts: count('accounts'),
      peers: sydent.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'peers'").get() ? count('peers') : 0,
    };
  } finally {
    sydent.prepare('COMMIT').run();
  }
}

interface Candidate {
  ts: number;
  /** null: a removal (local row with mxid NULL). */
  row: Record<string, unknown> | null;
  fromLocal: boolean;
}

/**
 * Bindings: for each address (case-folded), the newest of its rows in local_threepid_associations (bindings and
 * removals made here) and of this server's own rows in global_threepid_associations (what Sydent's lookups
 * answered), local first on equal times. Rows replicated from peers are counted and skipped.
 */
function planAssociations(snap: Snapshot, opts: ReadOptions, pepper: string): { plan: TablePlan; removals: Removal[] } {
  const report = newReport('associations');
  const best = new Map<string, Candidate>();
  const replicated = new Map<string, number>();
  const offer = ([medium, rawAddress, mxid, rawTs, notBefore, notAfter]: AssociationRow, fromLocal: boolean) => {
    const address = normaliseAddress(medium, rawAddress);
    const key = `${medium}\u0000${address}`;
    // A removal with no time (never written by Sydent 2.x) wins: an address must not come back bound.
    const ts = rawTs === null ? (mxid === null ? Number.MAX_SAFE_INTEGER : 0) : Number(rawTs);
    const row =
      mxid === null
        ? null
        : {
            medium,
            address,
            mxid,
            ts,
            not_before: Number(notBefore ?? ts),
            not_after: Number(notAfter ?? ts),
            lookup_hash: null as string | null,
          };
    const candidate: Candidate = { ts, row, fromLocal };
    const prior = best.get(key);
    const [winner, loser] = !prior ? [candidate, undefined] : candidate.ts > prior.ts ? [candidate, prior] : [prior, candidate];
    best.set(key, winner);
    if (!loser) return;
    if (loser.row === null) skip(report, 'removed binding (mxid NULL)');
    else if (!loser.fromLocal && winner.row && winner.row.mxid === loser.row.mxid && winner.ts === loser.ts)
      skip(report, "this server's own binding, read from local_threepid_associations");
    else skip(report, 'replaced by a newer row for the same address');
  };
  for (const a of snap.local) {
    report.read++;
    offer(a, true);
  }
  for (const a of snap.global) {
    report.read++;
    const originServer = a[6];
    if (originServer === opts.serverName) offer([a[0], a[1], a[2], a[3], a[4], a[5]], false);
    else replicated.set(originServer, (replicated.get(originServer) ?? 0) + 1);
  }
  const origins = [...replicated.entries()].sort((x, y) => y[1] - x[1]);
  for (const [server, n] of origins.slice(0, 5)) skip(report, `replicated from ${server} (Tessera does not replicate)`, n);
  const others = origins.slice(5).reduce((sum, [, n]) => sum + n, 0);
  if (others > 0) skip(report, `replicated from ${origins.length - 5} other servers`, others);

  const rows: Planned[] = [];
  const removals: Removal[] = [];
  for (const [key, c] of best) {
    if (c.row === null) {
      skip(report, 'removed binding (mxid NULL)');
      const [medium, address] = key.split('\u0000') as [string, string];
      removals.push({ medium, address, ts: c.ts });
    } else if (Number(c.row.not_after) <= opts.now) skip(report, 'expired (notAfter passed)');
    else if (!fits(c.row)) skip(report, TOO_LONG);
    else {
      // hashed for the winners only: most addresses have two rows (local and global)
      c.row.lookup_hash = lookupHash(String(c.row.address), String(c.row.medium), pepper);
      rows.push({ key, row: c.row });
    }
  }
  return { plan: { report, table: 'associations', rows }, removals };
}

/** Pending invitations (sent_ts NULL: not yet delivered by onbind), expiring on Tessera's lifetime from receipt. */
function planInvites(snap: Snapshot, opts: ReadOptions): { plan: TablePlan; delivered: string[] } {
  const report = newReport('invites');
  const rows: Planned[] = [];
  const delivered: string[] = [];
  const tokens = new Set<string>();
  for (const [medium, address, roomId, sender, token, receivedTs, sentTs] of snap.invites) {
    report.read++;
    if (sentTs !== null) {
      delivered.push(token);
      skip(report, 'already delivered by onbind');
      continue;
    }
    // invite_tokens times are in seconds
    const createdAt = receivedTs === null ? opts.now : Number(receivedTs) * 1000;
    const expiresAt = createdAt + opts.invitesLifetimeMs;
    const row = {
      medium,
      address: normaliseAddress(medium, address),
      room_id: roomId,
      sender,
      token,
      fields: '{}',
      created_at: createdAt,
      expires_at: expiresAt,
    };
    if (expiresAt <= opts.now) skip(report, 'expired under invites.lifetimeMs');
    else if (!/^[A-Za-z0-9_-]+$/.test(token)) skip(report, 'a token Tessera cannot serve');
    else if (!fits(row)) skip(report, TOO_LONG);
    else if (tokens.has(token)) skip(report, 'the same token as an earlier invitation');
    else {
      tokens.add(token);
      rows.push({ key: token, row });
    }
  }
  return { plan: { report, table: 'invites', rows }, delivered };
}

/** The URL-safe unpadded form Tessera stores keys in; undefined for something that is not a 32-byte key. */
function ephemeralKeyForm(key: string): string | undefined {
  const bytes = decodeAny(key);
  return bytes && bytes.length === 32 ? encodeUrlSafe(bytes) : undefined;
}

/** Every ephemeral key (Sydent never linked them to invitations), expiring on Tessera's lifetime from creation. */
function planEphemeralKeys(snap: Snapshot, opts: ReadOptions): TablePlan {
  const report = newReport('ephemeral keys');
  const rows: Planned[] = [];
  const seen = new Set<string>();
  for (const [publicKey, persistenceTs] of snap.keys) {
    report.read++;
    const key = ephemeralKeyForm(publicKey);
    // persistence_ts is in seconds
    const createdAt = persistenceTs === null ? opts.now : Number(persistenceTs) * 1000;
    const expiresAt = createdAt + opts.invitesLifetimeMs;
    if (!key) skip(report, 'not a 32-byte base64 key');
    else if (expiresAt <= opts.now) skip(report, 'expired under invites.lifetimeMs');
    else if (seen.has(key)) skip(report, 'the same key as an earlier row');
    else {
      seen.add(key);
      rows.push({ key, row: { public_key: key, invite_id: null, created_at: createdAt, expires_at: expiresAt } });
    }
  }
  return { report, table: 'ephemeral_keys', rows };
}

/** v2 access tokens, hashed as Tessera stores its own; Sydent accepted a token only with its account row. */
function planAccessTokens(snap: Snapshot, opts: ReadOptions): TablePlan {
  const report = newReport('access tokens');
  const rows: Planned[] = [];
  for (const [token, userId, accountCreatedTs] of snap.tokens) {
    report.read++;
    const tokenHash = hashAccessToken(token);
    const row = {
      token_hash: tokenHash,
      user_id: userId,
      created_at: Number(accountCreatedTs ?? opts.now),
      expires_at: opts.now + opts.accessTokenLifetimeMs,
    };
    if (accountCreatedTs === null) skip(report, 'no account for it (Sydent refused it too)');
    else if (token.length === 0 || token.length > 256) skip(report, 'a token Tessera cannot accept');
    else if (!fits(row)) skip(report, TOO_LONG);
    else rows.push({ key: tokenHash, row });
  }
  return { report, table: 'account_tokens', rows };
}

/** Accepted terms, by URL in Sydent, as the policy versions those URLs are in the terms file. */
function planAcceptedTerms(snap: Snapshot, opts: ReadOptions): TablePlan {
  const report = newReport('accepted terms');
  const rows = new Map<string, Planned>();
  for (const [userId, url] of snap.terms) {
    report.read++;
    const acceptance = opts.terms?.acceptancesFor([url])[0];
    if (!acceptance) {
      skip(report, opts.terms ? 'URL of no policy in the terms file' : 'no terms file to map URLs to policies');
      continue;
    }
    const key = `${userId}\u0000${acceptance.policy}\u0000${acceptance.version}`;
    const row = { user_id: userId, policy: acceptance.policy, version: acceptance.version, accepted_at: opts.now };
    if (rows.has(key)) skip(report, 'another language of a policy version already accepted');
    else if (!fits(row)) skip(report, TOO_LONG);
    else rows.set(key, { key, row });
  }
  return { report, table: 'accepted_terms', rows: [...rows.values()] };
}

/**
 * Validation sessions still usable: Sydent's last 24 hours from their last email (mtime); here they last
 * binding.sessionLifetimeMs (the emailed token binding.tokenLifetimeMs) from it. The sid stays Sydent's number.
 */
function planSessions(snap: Snapshot, opts: ReadOptions): TablePlan {
  const report = newReport('validation sessions');
  const rows: Planned[] = [];
  for (const [id, medium, address, clientSecret, validatedFlag, rawMtime, token, sendAttemptNumber] of snap.sessions) {
    report.read++;
    const mtime = Number(rawMtime);
    const validated = Boolean(validatedFlag);
    const expiresAt = mtime + opts.sessionLifetimeMs;
    const tokenExpiresAt = mtime + opts.validationTokenLifetimeMs;
    const row = {
      sid: String(id),
      medium,
      address: normaliseAddress(medium, address),
      client_secret: clientSecret,
      token,
      send_attempt: Number(sendAttemptNumber ?? 0),
      next_link: null,
      created_at: mtime,
      token_expires_at: tokenExpiresAt,
      validated_at: validated ? mtime : null,
      expires_at: expiresAt,
    };
    if (medium !== 'email') skip(report, `${medium}: Tessera validates email addresses only`);
    else if (token === null) skip(report, 'no token was ever sent');
    else if ((validated ? expiresAt : Math.min(expiresAt, tokenExpiresAt)) <= opts.now) skip(report, 'expired');
    else if (!fits(row)) skip(report, TOO_LONG);
    else rows.push({ key: row.sid, row });
  }
  return { report, table: 'validation_sessions', rows };
}

/** Reads everything the import needs in one short read transaction over Sydent's database, then plans it. */
export function readSydent(sydent: BetterSqlite3.Database, opts: ReadOptions): SydentData {
  const started = Date.now();
  const snap = takeSnapshot(sydent);
  const snapshotMs = Date.now() - started;
  // each table's rows are let go once planned: the raw copy and the plans would otherwise be held together
  const { plan: associations, removals } = planAssociations(snap, opts, snap.pepper ?? opts.fallbackPepper ?? '');
  snap.local = snap.global = [];
  const { plan: invites, delivered } = planInvites(snap, opts);
  snap.invites = [];
  const keys = planEphemeralKeys(snap, opts);
  snap.keys = [];
  const plans = [associations, invites, keys, planAccessTokens(snap, opts), planAcceptedTerms(snap, opts), planSessions(snap, opts)];
  const accounts = newReport('accounts');
  accounts.read = snap.accounts;
  if (accounts.read > 0) skip(accounts, 'carried by their access tokens and accepted terms (Tessera keeps no account rows)', accounts.read);
  const peers = newReport('replication peers');
  peers.read = snap.peers;
  if (peers.read > 0) skip(peers, 'not carried over: Tessera does not replicate', peers.read);
  return { pepper: snap.pepper, plans, removals, deliveredInviteTokens: delivered, notCarried: [accounts, peers], snapshotMs };
}
