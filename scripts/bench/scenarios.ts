// What the benchmark measures. A scenario builds autocannon requests against a running Tessera; `prepare` runs
// once per phase before the repetitions (e.g. storing invites whose keys a look-up scenario checks).
import { createHash, randomBytes } from 'node:crypto';
import type autocannon from 'autocannon';
import type { Knex } from 'knex';
import { lookupHash } from '../../src/binding/hash.js';

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
    await ctx.knex('account_tokens').insert({ token_hash: createHash('sha256').update(token).digest('hex'), user_id: userId, created_at: now, expires_at: now + 24 * 3600 * 1000 });
    ctx.account = { token, userId };
  }
  return ctx.account;
}

const LOOKUP_BATCH = 1000;

export interface Scenario {
  id: string;
  title: string;
  /** Rerun after --seed N fills the database. */
  seeded: boolean;
  /** Counts store-invite successes (each should become one email at the sink). */
  sendsMail?: boolean;
  prepare?(ctx: ScenarioContext): Promise<void>;
  requests(ctx: ScenarioContext): autocannon.Request[];
}

let addressCounter = 0;

async function storeInvites(ctx: ScenarioContext, n: number): Promise<string[]> {
  const keys: string[] = [];
  for (let i = 0; i < n; i++) {
    const res = await fetch(`${ctx.url}${V1}/store-invite`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ medium: 'email', address: `prep.${ctx.runId}.${addressCounter++}@bench.example.org`, room_id: '!bench:hs.example', sender: '@bench:hs.example' }),
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
    sendsMail: true,
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
    sendsMail: true,
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
        return { medium: 'email', address, mxid: `@l${i}:hs.example`, ts: now, not_before: now, not_after: now + 365 * 24 * 3600 * 1000, lookup_hash: lookupHash(address, 'email', pepper) };
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
    id: 'pubkey',
    title: 'pubkey/ed25519:0',
    seeded: false,
    requests: () => [{ method: 'GET', path: `${V2}/pubkey/ed25519:0` }],
  },
];

/**
 * Scenarios not written yet, listed in every report so their absence is visible. The hook is `prepare`
 * (seed what the scenario needs through ctx.knex or HTTP), then `requests`.
 */
export const PENDING_SCENARIOS: { id: string; title: string; waitsFor: string }[] = [
  { id: 'bind-pending', title: 'bind with pending invites (onbind delivery)', waitsFor: 'needs validated sessions and a fake homeserver receiving onbind' },
];
