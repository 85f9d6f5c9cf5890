// Writes what was read from Sydent (snapshot.ts) into Tessera's database (docs/moving-from-sydent.md).
//
// Two passes. The first compares every planned row with what Tessera holds: identical rows are counted as already
// present (so a second run changes nothing); a row Tessera holds with different data is a conflict, and any
// conflict stops the import before anything is written. The second writes, in one transaction per BATCH rows.
import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import type { Database } from '../platform/db/Database.js';
import { KnexAssociationStore } from '../associations/AssociationStore.js';
import { lookupHash } from '../associations/hash.js';
import type { Planned, SydentData, TablePlan, TableReport } from './snapshot.js';

const BATCH = 1000;
const LOOKUP_PEPPER = 'lookup_pepper';
const LOOKUP_PEPPER_HASHED = 'lookup_pepper_hashed';

export interface Progress {
  /** A phase begins: reading, comparing, writing. */
  phase(what: string): void;
  /** `done` of `total` rows of `table` written. */
  rows(table: string, done: number, total: number): void;
}

/** What Tessera holds for a planned key: the same row, a revocation, a newer row of its own, or a conflict. */
type Verdict = { kind: 'same' } | { kind: 'skip'; why: string } | { kind: 'conflict'; what: string };
type Compare = (k: Knex, rows: Planned[]) => Promise<Map<string, Verdict>>;

const SAME: Verdict = { kind: 'same' };
const same = (a: Record<string, unknown>, b: Record<string, unknown>, cols: string[]) => cols.every((c) => String(a[c]) === String(b[c]));
const digest = (token: string) => createHash('sha256').update(token, 'utf8').digest('hex');

async function byColumn(k: Knex, table: string, column: string, values: string[]): Promise<Map<string, Record<string, unknown>>> {
  const found = (await k(table).whereIn(column, values)) as Record<string, unknown>[];
  return new Map(found.map((f) => [String(f[column]), f]));
}

const COMPARE: Record<string, Compare> = {
  async associations(k, rows) {
    const out = new Map<string, Verdict>();
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
        if (!existing) continue;
        if (same(existing, r.row, ['mxid', 'ts', 'not_before', 'not_after'])) out.set(r.key, SAME);
        else if (Number(existing.ts) > Number(r.row.ts))
          out.set(r.key, { kind: 'skip', why: 'Tessera holds a newer binding of the address' });
        else
          out.set(r.key, { kind: 'conflict', what: `a ${medium} binding of an address to ${String(existing.mxid)}, older than Sydent's` });
      }
    }
    return out;
  },
  async invites(k, rows) {
    const out = new Map<string, Verdict>();
    const byToken = await byColumn(
      k,
      'invites',
      'token',
      rows.map((r) => r.key),
    );
    for (const r of rows) {
      const existing = byToken.get(r.key);
      if (existing) {
        out.set(
          r.key,
          same(existing, r.row, ['medium', 'address', 'room_id', 'sender'])
            ? SAME
            : { kind: 'conflict', what: `invitation ${String(existing.id)} with the same token` },
        );
      }
    }
    const hashes = new Map(rows.map((r) => [digest(r.key), r.key]));
    const revoked = (await k('revoked_invites').whereIn('token_hash', [...hashes.keys()])) as { token_hash: string }[];
    for (const r of revoked) out.set(hashes.get(r.token_hash)!, { kind: 'skip', why: 'revoked by an operator' });
    return out;
  },
  async ephemeral_keys(k, rows) {
    const out = new Map<string, Verdict>();
    const found = await byColumn(
      k,
      'ephemeral_keys',
      'public_key',
      rows.map((r) => r.key),
    );
    for (const [key, f] of found) {
      out.set(
        key,
        f.invite_id === null ? SAME : { kind: 'conflict', what: `an ephemeral key of Tessera's invitation ${String(f.invite_id)}` },
      );
    }
    return out;
  },
  async account_tokens(k, rows) {
    const out = new Map<string, Verdict>();
    const byHash = await byColumn(
      k,
      'account_tokens',
      'token_hash',
      rows.map((r) => r.key),
    );
    for (const r of rows) {
      const existing = byHash.get(r.key);
      if (existing)
        out.set(
          r.key,
          existing.user_id === r.row.user_id ? SAME : { kind: 'conflict', what: `an access token of ${String(existing.user_id)}` },
        );
    }
    return out;
  },
  async accepted_terms(k, rows) {
    const out = new Map<string, Verdict>();
    const found = (await k('accepted_terms')
      .select('user_id', 'policy', 'version')
      .whereIn('user_id', [...new Set(rows.map((r) => String(r.row.user_id)))])) as { user_id: string; policy: string; version: string }[];
    for (const f of found) out.set(`${f.user_id}\u0000${f.policy}\u0000${f.version}`, SAME);
    return out;
  },
  async validation_sessions(k, rows) {
    const out = new Map<string, Verdict>();
    const bySid = await byColumn(
      k,
      'validation_sessions',
      'sid',
      rows.map((r) => r.key),
    );
    for (const r of rows) {
      const existing = bySid.get(r.key);
      // Its validation may have moved on in Tessera since: the session is the same while these are
      if (existing)
        out.set(
          r.key,
          same(existing, r.row, ['medium', 'address', 'client_secret', 'token'])
            ? SAME
            : { kind: 'conflict', what: `another validation session with sid ${r.key}` },
        );
    }
    return out;
  },
};

const chunks = <T>(items: T[], n: number): T[][] =>
  Array.from({ length: Math.ceil(items.length / n) }, (_, i) => items.slice(i * n, i * n + n));

/** Conflicts beyond the rows themselves: bindings Sydent removed and invitations it delivered after an earlier import. */
async function laterChanges(k: Knex, data: SydentData): Promise<string[]> {
  const conflicts: string[] = [];
  const byMedium = new Map<string, SydentData['removals']>();
  for (const r of data.removals) byMedium.set(r.medium, [...(byMedium.get(r.medium) ?? []), r]);
  for (const [medium, removals] of byMedium) {
    for (const chunk of chunks(removals, BATCH)) {
      const found = (await k('associations')
        .select('address', 'mxid', 'ts')
        .where({ medium })
        .whereIn(
          'address',
          chunk.map((r) => r.address),
        )) as { address: string; mxid: string; ts: number | string }[];
      const removedAt = new Map(chunk.map((r) => [r.address, r.ts]));
      for (const f of found) {
        if (Number(f.ts) < removedAt.get(f.address)!)
          conflicts.push(`associations: Tessera binds a ${medium} address to ${f.mxid} that Sydent unbound later`);
      }
    }
  }
  for (const chunk of chunks(data.deliveredInviteTokens, BATCH)) {
    const pending = (await k('invites').select('id').whereIn('token', chunk).whereNull('claimed_by')) as { id: number }[];
    for (const p of pending) conflicts.push(`invites: Tessera holds invitation ${p.id} pending, which Sydent has delivered since`);
  }
  return conflicts;
}

export interface ImportOptions {
  dryRun: boolean;
  /** Tessera's binding.lookupPepper: a configured pepper other than Sydent's would replace it at start-up. */
  configuredPepper: string;
  progress?: Progress;
  /** Called after every check passed and before the first write (the signing key file is written there). */
  beforeWrite?: () => void;
}

export interface ImportResult {
  reports: TableReport[];
  /** The lookup pepper: imported, already Tessera's, or none in Sydent's database. */
  pepper: 'imported' | 'present' | 'none';
  /** Tessera's own bindings rehashed for Sydent's pepper. */
  rehashed: number;
  conflicts: string[];
}

/** Checks, then (unless a dry run, or with conflicts) writes the import. */
export async function importSydent(data: SydentData, tessera: Database, opts: ImportOptions): Promise<ImportResult> {
  const k = tessera.knex;
  const reports = [...data.plans.map((p) => p.report), ...data.notCarried];
  const currentPepper = ((await k('binding_settings').where({ name: LOOKUP_PEPPER }).first()) as { value: string } | undefined)?.value;
  const pepper: ImportResult['pepper'] = data.pepper === undefined ? 'none' : currentPepper === data.pepper ? 'present' : 'imported';

  // Pass 1: compare with what Tessera holds; any conflict stops everything.
  opts.progress?.phase("comparing with Tessera's database");
  const conflicts: string[] = [];
  if (data.pepper !== undefined && opts.configuredPepper && opts.configuredPepper !== data.pepper) {
    conflicts.push(
      "binding.lookupPepper: Tessera is configured with another lookup pepper than Sydent's, and would replace Sydent's at start-up (clients' cached hash details would go stale): leave it empty",
    );
  }
  const toWrite = new Map<TablePlan, Planned[]>();
  for (const plan of data.plans) {
    const fresh: Planned[] = [];
    for (const chunk of chunks(plan.rows, BATCH)) {
      const verdicts = await COMPARE[plan.table]!(k, chunk);
      for (const r of chunk) {
        const v = verdicts.get(r.key);
        if (v === undefined) fresh.push(r);
        else if (v.kind === 'same') plan.report.present++;
        else if (v.kind === 'skip') plan.report.skipped[v.why] = (plan.report.skipped[v.why] ?? 0) + 1;
        else conflicts.push(`${plan.report.table}: Tessera already holds ${v.what}`);
      }
    }
    toWrite.set(plan, fresh);
  }
  conflicts.push(...(await laterChanges(k, data)));
  if (conflicts.length > 0) return { reports, pepper, rehashed: 0, conflicts };

  if (opts.dryRun) {
    for (const plan of data.plans) plan.report.imported = toWrite.get(plan)!.length;
    return { reports, pepper, rehashed: 0, conflicts };
  }

  // Pass 2: write, a transaction per batch.
  opts.beforeWrite?.();
  opts.progress?.phase('writing');
  let rehashed = 0;
  if (pepper === 'imported') {
    // Sydent's pepper becomes Tessera's; Tessera's own bindings (if any) are rehashed with it before the marker says
    // so, as a pepper rotation does at start-up (pepper.ts): lookups meanwhile try both peppers.
    const next = data.pepper!;
    await tessera.transaction(async (trx) => {
      await trx('binding_settings').where({ name: LOOKUP_PEPPER }).delete();
      await trx('binding_settings').insert({ name: LOOKUP_PEPPER, value: next });
    });
    const store = new KnexAssociationStore(tessera, { enqueue: () => Promise.reject(new Error('the import queues no onbind')) });
    rehashed = await store.rehashAssociations((address, medium) => lookupHash(address, medium, next), BATCH);
    await tessera.transaction(async (trx) => {
      await trx('binding_settings').where({ name: LOOKUP_PEPPER_HASHED }).delete();
      await trx('binding_settings').insert({ name: LOOKUP_PEPPER_HASHED, value: next });
    });
  }
  for (const plan of data.plans) {
    const rows = toWrite.get(plan)!;
    for (const chunk of chunks(rows, BATCH)) {
      await tessera.transaction(async (trx) => {
        for (const part of chunks(chunk, 100)) await trx(plan.table).insert(part.map((r) => r.row));
      });
      plan.report.imported += chunk.length;
      opts.progress?.rows(plan.report.table, plan.report.imported, rows.length);
    }
  }
  return { reports, pepper, rehashed, conflicts };
}
