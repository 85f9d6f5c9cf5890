// What the benchmark measures. A scenario builds autocannon requests against a running Tessera; `prepare` runs
// once per phase before the repetitions (e.g. storing invites whose keys a look-up scenario checks).
import type autocannon from 'autocannon';

export const V1 = '/_matrix/identity/api/v1';
export const V2 = '/_matrix/identity/v2';

export interface ScenarioContext {
  /** Tessera's base URL. */
  url: string;
  /** Ephemeral public keys of stored invitations, by purpose. */
  keys: { few: string[]; spread: string[] };
  /** A prefix unique to this benchmark run, so addresses never repeat across runs on one database. */
  runId: string;
}

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
    id: 'pubkey',
    title: 'pubkey/ed25519:0',
    seeded: false,
    requests: () => [{ method: 'GET', path: `${V2}/pubkey/ed25519:0` }],
  },
];

/**
 * Scenarios that need features still being built. Each becomes a Scenario above when its issue lands
 * (the hook is `prepare`: register an account / bind addresses first, then return the requests).
 */
export const PENDING_SCENARIOS: { id: string; title: string; waitsFor: string }[] = [
  { id: 'store-invite-v2', title: 'v2 store-invite with a real access token', waitsFor: 'needs an account, i.e. a fake homeserver answering OpenID userinfo, in the harness' },
  { id: 'lookup', title: 'v2 lookup, sha256, 1,000 addresses per call', waitsFor: 'needs seeded associations' },
  { id: 'bind-pending', title: 'bind with pending invites (onbind delivery)', waitsFor: 'needs validated sessions and a fake homeserver receiving onbind' },
];
