// What the benchmark measures. A scenario builds autocannon requests against a running Tessera; `prepare` runs
// once per phase before the repetitions (e.g. storing invites whose keys a look-up scenario checks).
import { createHash, randomBytes } from 'node:crypto';
import type autocannon from 'autocannon';
import type { Knex } from 'knex';
import { lookupHash } from '../../src/associations/hash.js';
import { DAY } from './database.js';

export const V1 = '/_matrix/identity/api/v1';
export const V2 = '/_matrix/identity/v2';

export interface ScenarioContext {
  /** Tessera's base URL. */
  url: string;
  /** Ephemeral public keys of stored invitations, by purpose. */
  keys: { few: string[]; spread: string[] };
  /** A prefix unique to this benchmark run, so addresses never repeat across runs on one database. */
  runId: string;
  /** The benchmark's own connection to Tessera's database (seeding, accounts). */
  knex: Knex;
  /** A v2 account, made by inserting its token hash as /account/register would. */
  account?: { token: string; userId: string };
  /** v2 lookup: the server's pepper and the hashes of the associations seeded for it. */
  lookup?: { pepper: string; hashes: string[] };
  /** The bench homeserver (bind-pending's mxids live on it). */
  homeserver: { serverName: string };
  /** bind-pending: validated sessions, each with pending invitations, used once each in order. */
  bind?: { sessions: { sid: string; address: string }[]; next: number; exhausted: number };
}

/**
 * A v2 access token without a homeserver: the row /account/register would write (the sha256 of the token).
 * No terms file is configured in the benchmark, so the account needs no acceptance.
 */
async function ensureAccount(ctx: ScenarioContext): Promise<{ token: string; userId: string }> {
  if (!ctx.account) {
    const token = randomBytes(32).toString('base64url');
    const userId = '@bench:hs.example';
    const now = Date.now();
    await ctx
      .knex('account_tokens')
      .insert({ token_hash: createHash('sha256').update(token).digest('hex'), user_id: userId, created_at: now, expires_at: now + DAY });
    ctx.account = { token, userId };
  }
  return ctx.account;
}

const LOOKUP_BATCH = 1000;

/** Pending invitations per bound address in bind-pending (each bind then makes one onbind call carrying them). */
export const BIND_PENDING_INVITES = 2;
/** Sessions made ready per second of a run: above any bind rate seen here, so a run never runs out. */
const BIND_SESSIONS_PER_S = 2500;

/**
 * Validated sessions with pending invitations, written as requestToken + submitToken and store-invite
 * would leave them (the bench reaches the database through its own knex; the email round trip is not
 * what this scenario measures). Tops the unused pool up to what a run of `durationS` could consume.
 */
async function readyBindSessions(ctx: ScenarioContext, durationS: number): Promise<void> {
  const bind = (ctx.bind ??= { sessions: [], next: 0, exhausted: 0 });
  const want = Math.ceil(BIND_SESSIONS_PER_S * (durationS + 1));
  const missing = want - (bind.sessions.length - bind.next);
  if (missing <= 0) return;
  const now = Date.now();
  const [row] = await ctx.knex('invites').max({ m: 'id' });
  let inviteId = Number(row?.m ?? 0) + 1;
  for (let done = 0; done < missing;) {
    const n = Math.min(400, missing - done);
    const sessions: Record<string, unknown>[] = [];
    const invites: Record<string, unknown>[] = [];
    for (let i = 0; i < n; i++) {
      const address = `b.${ctx.runId}.${bind.sessions.length}@bench.example.org`;
      const sid = randomBytes(12).toString('base64url');
      sessions.push({
        sid,
        medium: 'email',
        address,
        client_secret: 'bench-secret',
        token: randomBytes(12).toString('base64url'),
        send_attempt: 1,
        created_at: now,
        token_expires_at: now + DAY,
        validated_at: now,
        expires_at: now + DAY,
      });
      for (let k = 0; k < BIND_PENDING_INVITES; k++) {
        const fields = { medium: 'email', address, room_id: `!room${k}:hs.example`, sender: '@inviter:hs.example' };
        invites.push({
          id: inviteId++,
          ...fields,
          token: randomBytes(24).toString('base64url'),
          fields: JSON.stringify(fields),
          created_at: now - 1000,
          expires_at: now + 90 * DAY,
        });
      }
      bind.sessions.push({ sid, address });
    }
    await ctx.knex.transaction(async (trx) => {
      await trx('validation_sessions').insert(sessions);
      for (let i = 0; i < invites.length; i += 400) await trx('invites').insert(invites.slice(i, i + 400));
    });
    done += n;
  }
}

export interface Scenario {
  id: string;
  title: string;
  /** Rerun after --seed N fills the database. */
  seeded: boolean;
  /**
   * Each answered request queues a delivery the run then waits for: an email at the SMTP sink, or an onbind
   * call at the bench homeserver.
   */
  delivers?: 'mail' | 'onbind';
  prepare?(ctx: ScenarioContext): Promise<void>;
  /** Before every run (warm-up or measured, outside the measured time): top up what a run consumes. */
  beforeRun?(ctx: ScenarioContext, durationS: number): Promise<void>;
  requests(ctx: ScenarioContext): autocannon.Request[];
}

let addressCounter = 0;

async function storeInvites(ctx: ScenarioContext, n: number): Promise<string[]> {
  const keys: string[] = [];
  for (let i = 0; i < n; i++) {
    const res = await fetch(`${ctx.url}${V1}/store-invite`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        medium: 'email',
        address: `prep.${ctx.runId}.${addressCounter++}@bench.example.org`,
        room_id: '!bench:hs.example',
        sender: '@bench:hs.example',
      }),
    });
    if (res.status !== 200) throw new Error(`store-invite while preparing answered ${res.status}: ${await res.text()}`);
    const body = (await res.json()) as { public_keys: { public_key: string }[] };
    keys.push(body.public_keys[1]!.public_key);
  }
  return keys;
}

/** Rotates through `paths` one request after another (autocannon calls setupRequest per request). */
function rotating(paths: () => string[]): autocannon.Request[] {
  let i = 0;
  return [
    {
      method: 'GET',
      setupRequest: (req) => {
        const list = paths();
        return { ...req, path: list[i++ % list.length]! };
      },
    },
  ];
}

export const SCENARIOS: Scenario[] = [
  {
    id: 'store-invite',
    title: 'v1 store-invite, unique address',
    seeded: true,
    delivers: 'mail',
    requests: (ctx) => [
      {
        method: 'POST',
        path: `${V1}/store-invite`,
        headers: { 'content-type': 'application/json' },
        setupRequest: (req) => ({
          ...req,
          body: JSON.stringify({
            medium: 'email',
            address: `u.${ctx.runId}.${addressCounter++}@bench.example.org`,
            room_id: '!bench:hs.example',
            sender: '@bench:hs.example',
          }),
        }),
      },
    ],
  },
  {
    id: 'isvalid',
    title: 'ephemeral/isvalid, 8 real keys',
    seeded: true,
    async prepare(ctx) {
      if (ctx.keys.few.length === 0) ctx.keys.few = await storeInvites(ctx, 8);
    },
    requests: (ctx) => {
      const paths = ctx.keys.few.map((k) => `${V2}/pubkey/ephemeral/isvalid?public_key=${encodeURIComponent(k)}`);
      return rotating(() => paths);
    },
  },
  {
    // Every request a different stored key (up to 50,000, refreshed from the database before each phase), so
    // an in-process validity cache cannot answer: this is the database look-up's own speed.
    id: 'isvalid-spread',
    title: 'ephemeral/isvalid, spread over stored keys',
    seeded: true,
    requests: (ctx) => {
      const paths = ctx.keys.spread.map((k) => `${V2}/pubkey/ephemeral/isvalid?public_key=${encodeURIComponent(k)}`);
      return rotating(() => paths);
    },
  },
  {
    id: 'store-invite-v2',
    title: 'v2 store-invite with a real access token, unique address',
    seeded: false,
    delivers: 'mail',
    async prepare(ctx) {
      await ensureAccount(ctx);
    },
    requests: (ctx) => [
      {
        method: 'POST',
        path: `${V2}/store-invite`,
        setupRequest: (req) => ({
          ...req,
          headers: { 'content-type': 'application/json', authorization: `Bearer ${ctx.account!.token}` },
          body: JSON.stringify({
            medium: 'email',
            address: `v2.${ctx.runId}.${addressCounter++}@bench.example.org`,
            room_id: '!bench:hs.example',
            sender: ctx.account!.userId,
          }),
        }),
      },
    ],
  },
  {
    // 1,000 bound addresses seeded through knex with the server's own pepper (from /hash_details), looked up
    // in one v2 sha256 call: one indexed query per batch on the server side.
    id: 'lookup',
    title: 'v2 lookup, sha256, 1,000 addresses per call',
    seeded: false,
    async prepare(ctx) {
      if (ctx.lookup) return;
      const { token } = await ensureAccount(ctx);
      const res = await fetch(`${ctx.url}${V2}/hash_details`, { headers: { authorization: `Bearer ${token}` } });
      if (res.status !== 200) throw new Error(`hash_details while preparing answered ${res.status}: ${await res.text()}`);
      const { lookup_pepper: pepper } = (await res.json()) as { lookup_pepper: string };
      const now = Date.now();
      const rows = Array.from({ length: LOOKUP_BATCH }, (_, i) => {
        const address = `l.${ctx.runId}.${i}@bench.example.org`;
        return {
          medium: 'email',
          address,
          mxid: `@l${i}:hs.example`,
          ts: now,
          not_before: now,
          not_after: now + 365 * DAY,
          lookup_hash: lookupHash(address, 'email', pepper),
        };
      });
      for (let i = 0; i < rows.length; i += 250) await ctx.knex('associations').insert(rows.slice(i, i + 250));
      ctx.lookup = { pepper, hashes: rows.map((r) => r.lookup_hash) };
    },
    requests: (ctx) => [
      {
        method: 'POST',
        path: `${V2}/lookup`,
        setupRequest: (req) => ({
          ...req,
          headers: { 'content-type': 'application/json', authorization: `Bearer ${ctx.account!.token}` },
          body: JSON.stringify({ addresses: ctx.lookup!.hashes, algorithm: 'sha256', pepper: ctx.lookup!.pepper }),
        }),
      },
    ],
  },
  {
    // Each request binds a validated address that has pending invitations: the session read, the
    // association and the claim of the invitations in one transaction, the signed onbind body stored in the
    // outbox; then the onbind worker posts it to the bench homeserver (the run waits for every call).
    id: 'bind-pending',
    title: `v1 bind, ${BIND_PENDING_INVITES} pending invitations each (onbind delivered)`,
    seeded: false,
    delivers: 'onbind',
    beforeRun: readyBindSessions,
    requests: (ctx) => [
      {
        method: 'POST',
        path: `${V1}/3pid/bind`,
        headers: { 'content-type': 'application/json' },
        setupRequest: (req) => {
          const bind = ctx.bind!;
          const session = bind.sessions[bind.next];
          if (session) bind.next++;
          else bind.exhausted++; // answered M_NO_VALID_SESSION: shows as non-2xx, and the harness says why
          return {
            ...req,
            body: JSON.stringify({
              sid: session?.sid ?? 'exhausted',
              client_secret: 'bench-secret',
              mxid: `@u${bind.next}:${ctx.homeserver.serverName}`,
            }),
          };
        },
      },
    ],
  },
  {
    id: 'pubkey',
    title: 'pubkey/ed25519:0',
    seeded: false,
    requests: () => [{ method: 'GET', path: `${V2}/pubkey/ed25519:0` }],
  },
];
