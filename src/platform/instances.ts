// The instances sharing one database: each records itself with a fingerprint of its outbound policy and
// refreshes the record while it runs, so one starting with a policy its live peers do not share can say so.
// Instances that differ split the onbind deliveries between them: a row one may not deliver is left for another
// (OnbindWorker), which works only while an instance allowed to deliver it runs.
import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Database } from './db/Database.js';
import type { Logger } from './logger.js';
import type { Scheduler } from './scheduler.js';

/** A record refreshed this often... */
export const INSTANCE_REFRESH_MS = 60_000;
/** ...counts as a live peer for three refreshes; one not seen for a day is deleted. */
const LIVE_MS = 3 * INSTANCE_REFRESH_MS;
const FORGET_MS = 24 * 3600_000;

/** Host, process and a random part, so a restarted process never passes for its predecessor (<= 64 characters). */
export function newInstanceId(): string {
  return `${hostname().slice(0, 40)}:${process.pid}:${randomBytes(4).toString('hex')}`;
}

/** The same for every spelling of the same policy: entries trimmed, lower-cased, sorted and deduplicated. */
export function outboundPolicyFingerprint(allow: readonly string[]): string {
  const entries = [...new Set(allow.map((e) => e.trim().toLowerCase()))].sort();
  return createHash('sha256')
    .update(JSON.stringify({ allow: entries }))
    .digest('hex');
}

export interface InstanceRegistryOptions {
  db: Database;
  log: Logger;
  clock: () => number;
  /** This instance's id (unique per process). */
  id: string;
  outboundPolicy: string;
}

export class InstanceRegistry {
  constructor(private readonly o: InstanceRegistryOptions) {}

  /** Records this instance and warns when a live peer runs a different outbound policy; answers how many do. */
  async register(): Promise<number> {
    const { db, log, clock, id, outboundPolicy } = this.o;
    const now = clock();
    await db.knex('instances').insert({ id, outbound_policy: outboundPolicy, started_at: now, seen_at: now }).onConflict('id').merge();
    const peers = (await db
      .knex('instances')
      .select('outbound_policy')
      .where('seen_at', '>', now - LIVE_MS)
      .andWhereNot('id', id)) as { outbound_policy: string }[];
    const differing = peers.filter((p) => p.outbound_policy !== outboundPolicy).length;
    if (differing > 0)
      log.warn(
        'instances on this database run different outbound policies (federation.allow): an onbind call one instance may not make is left for another, and fails only when no instance allowed to make it runs before it expires; give every instance the same federation.allow',
        { differing, peers: peers.length },
      );
    return differing;
  }

  /** Keeps this instance's record live and forgets instances gone for a day. */
  async refresh(): Promise<void> {
    const { db, clock, id } = this.o;
    const now = clock();
    await db.knex('instances').where({ id }).update({ seen_at: now });
    await db
      .knex('instances')
      .where('seen_at', '<', now - FORGET_MS)
      .delete();
  }

  /** On a clean stop: this instance no longer counts as a peer. */
  async remove(): Promise<void> {
    await this.o.db.knex('instances').where({ id: this.o.id }).delete();
  }

  /** Refreshes the record on the scheduler while the instance runs. */
  schedule(scheduler: Scheduler): void {
    scheduler.every({ name: 'instance record', intervalMs: INSTANCE_REFRESH_MS, run: () => this.refresh() });
  }
}
