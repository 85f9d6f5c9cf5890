// v2 accounts and terms over real HTTP, with a real HTTPS fake homeserver answering OpenID userinfo,
// on SQLite and (when configured) MariaDB.
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { testDatabases } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { startFakeHomeserver, type FakeHomeserver } from '../helpers/fakeHomeserver.js';
import { until } from '../helpers/smtp.js';
import { operations as homeserverOps } from '../../generated/homeserver.validators.js';
import { HttpFederationClient } from '../../src/federation/client.js';

const V1 = '/_matrix/identity/api/v1';
const V2 = '/_matrix/identity/v2';
const USERINFO = '/_matrix/federation/v1/openid/userinfo';
const DAY = 24 * 3600_000;

const TERMS_YAML = `
master_version: "1.0"
docs:
  terms_of_service:
    version: 2.0
    langs:
      en:
        name: Terms of Service
        url: https://is.test/terms-2.0-en.html
      fr:
        name: Conditions d'utilisation
        url: https://is.test/terms-2.0-fr.html
  privacy_policy:
    version: "1.2"
    langs:
      en:
        name: Privacy Policy
        url: https://is.test/privacy-1.2-en.html
      fr:
        name: Politique de confidentialité
        url: https://is.test/privacy-1.2-fr.html
`;
const TOS_EN = 'https://is.test/terms-2.0-en.html';
const TOS_FR = 'https://is.test/terms-2.0-fr.html';
const PRIVACY_FR = 'https://is.test/privacy-1.2-fr.html';

const invite = (sender: string, over: Record<string, unknown> = {}) => ({
  medium: 'email',
  address: 'carol@example.org',
  room_id: '!room:hs.example',
  sender,
  room_name: 'Tea party',
  ...over,
});

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe.each(testDatabases())('accounts and terms on $name', (db) => {
  let hs: FakeHomeserver;
  /** OpenID tokens the fake homeserver knows, and the user each belongs to. */
  const openIdTokens = new Map<string, string>();
  let srv: TestServer;
  let plain: TestServer; // no terms file, v1 switched off
  let dir: string;
  const disposers: (() => Promise<void>)[] = [];
  let now = Date.now();
  let n = 0;

  /** A fresh OpenID token on the fake homeserver for `localpart` (or a full user id). */
  function openIdFor(user: string): { access_token: string; token_type: string; matrix_server_name: string; expires_in: number } {
    const userId = user.startsWith('@') ? user : `@${user}:${hs.serverName}`;
    const token = `openid-${++n}-${Math.random().toString(36).slice(2)}`;
    openIdTokens.set(token, userId);
    return { access_token: token, token_type: 'Bearer', matrix_server_name: hs.serverName, expires_in: 3600 };
  }

  async function register(server: TestServer, user: string): Promise<{ token: string; userId: string }> {
    const res = await server.call('POST', `${V2}/account/register`, openIdFor(user));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return { token: res.body.token, userId: user.startsWith('@') ? user : `@${user}:${hs.serverName}` };
  }

  async function newDb(): Promise<string> {
    const created = await db.create();
    disposers.push(created.dispose);
    return created.url;
  }

  const fedOverrides = { federation: { verifyTls: false, allow: ['127.0.0.1/32'] } };

  beforeAll(async () => {
    hs = await startFakeHomeserver();
    hs.route('GET', USERINFO, (req) => {
      const user = openIdTokens.get(req.query.access_token ?? '');
      return user
        ? { body: { sub: user } }
        : { status: 401, body: { errcode: 'M_UNKNOWN_TOKEN', error: 'Access Token unknown or expired' } };
    });
    dir = mkdtempSync(join(tmpdir(), 'tessera-terms-'));
    writeFileSync(join(dir, 'terms.yaml'), TERMS_YAML);
    srv = await startTestServer({
      dbUrl: await newDb(),
      clock: () => now,
      overrides: { ...fedOverrides, terms: { file: join(dir, 'terms.yaml') } },
    });
    plain = await startTestServer({ dbUrl: await newDb(), clock: () => now, overrides: { ...fedOverrides, server: { v1Enabled: false } } });
  });
  afterAll(async () => {
    await srv?.stop();
    await plain?.stop();
    await hs?.stop();
    for (const d of disposers) await d();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    hs.requests.length = 0;
  });
  afterEach(() => {
    expect(srv.violations).toEqual([]);
    expect(plain.violations).toEqual([]);
  });

  describe('register', () => {
    it('checks the OpenID token with the homeserver and returns a token under both names', async () => {
      const openId = openIdFor('alice');
      const res = await srv.call('POST', `${V2}/account/register`, openId);
      expect(res.status).toBe(200);
      expect(res.body.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(res.body.access_token).toBe(res.body.token);
      // what we sent matches openapi/homeserver.yaml, and so did the answer we used
      const calls = hs.requestsTo(USERINFO);
      expect(calls).toHaveLength(1);
      expect(calls[0]!.method).toBe('GET');
      expect(calls[0]!.query).toEqual({ access_token: openId.access_token });
      expect(homeserverOps.getOpenIdUserInfo.query!(calls[0]!.query)).toBe(true);
      expect(calls[0]!.headers.host).toBe(hs.serverName);
      expect(homeserverOps.getOpenIdUserInfo.responses['200']!({ sub: `@alice:${hs.serverName}` })).toBe(true);

      const account = await srv.call('GET', `${V2}/account`, undefined, bearer(res.body.token));
      expect(account).toMatchObject({ status: 200, body: { user_id: `@alice:${hs.serverName}` } });
      // the deprecated query parameter works too
      const viaQuery = await srv.call('GET', `${V2}/account?access_token=${encodeURIComponent(res.body.token)}`);
      expect(viaQuery).toMatchObject({ status: 200, body: { user_id: `@alice:${hs.serverName}` } });
    });

    it('stores only a sha256 of the token, with an expiry', async () => {
      const { token } = await register(srv, 'hashy');
      const knex = srv.service.db.knex;
      const rows = await knex('account_tokens').select('*');
      expect(rows.some((r) => r.token_hash === token || JSON.stringify(r).includes(token))).toBe(false);
      const row = rows.find((r) => r.token_hash === createHash('sha256').update(token).digest('hex'));
      expect(row).toBeDefined();
      expect(row.user_id).toBe(`@hashy:${hs.serverName}`);
      expect(Number(row.expires_at) - Number(row.created_at)).toBe(30 * DAY);
    });

    it('refuses a token the homeserver does not know (401 M_UNAUTHORIZED)', async () => {
      const res = await srv.call('POST', `${V2}/account/register`, {
        access_token: 'forged',
        token_type: 'Bearer',
        matrix_server_name: hs.serverName,
        expires_in: 3600,
      });
      expect(res).toMatchObject({ status: 401, body: { errcode: 'M_UNAUTHORIZED' } });
      expect(hs.requestsTo(USERINFO)).toHaveLength(1);
    });

    it('refuses a foreign user: sub on another server (403 M_UNAUTHORIZED), and stores nothing', async () => {
      const knex = srv.service.db.knex;
      const [before] = await knex('account_tokens').count({ n: '*' });
      const res = await srv.call('POST', `${V2}/account/register`, openIdFor('@mallory:evil.example'));
      expect(res).toMatchObject({ status: 403, body: { errcode: 'M_UNAUTHORIZED' } });
      const [after] = await knex('account_tokens').count({ n: '*' });
      expect(Number(after!.n)).toBe(Number(before!.n));
    });

    it('answers 502 when the homeserver answers nonsense or fails', async () => {
      hs.route('GET', USERINFO, { body: { user: 'not a sub' } });
      try {
        const res = await srv.call('POST', `${V2}/account/register`, openIdFor('bob'));
        expect(res).toMatchObject({ status: 502, body: { errcode: 'M_UNKNOWN' } });
        hs.route('GET', USERINFO, { status: 500, body: { errcode: 'M_UNKNOWN', error: 'boom' } });
        const res2 = await srv.call('POST', `${V2}/account/register`, openIdFor('bob'));
        expect(res2).toMatchObject({ status: 502, body: { errcode: 'M_UNKNOWN' } });
      } finally {
        hs.route('GET', USERINFO, (req) => {
          const user = openIdTokens.get(req.query.access_token ?? '');
          return user ? { body: { sub: user } } : { status: 401, body: { errcode: 'M_UNKNOWN_TOKEN', error: 'unknown' } };
        });
      }
    });

    it('answers 502 when the homeserver cannot be reached', async () => {
      const res = await srv.call('POST', `${V2}/account/register`, { access_token: 'x', matrix_server_name: '127.0.0.1:1' });
      expect(res).toMatchObject({ status: 502, body: { errcode: 'M_UNKNOWN' } });
    });

    it('never calls a private address, whatever the client names (403)', async () => {
      for (const name of ['10.0.0.1', '192.168.1.10:8448', '127.0.0.2:8448', '[::1]:8448', '169.254.169.254']) {
        const res = await srv.call('POST', `${V2}/account/register`, { access_token: 'x', matrix_server_name: name });
        expect(res, name).toMatchObject({ status: 403, body: { errcode: 'M_UNAUTHORIZED' } });
      }
    });

    it('validates the body', async () => {
      expect(await srv.call('POST', `${V2}/account/register`, { token_type: 'Bearer' })).toMatchObject({
        status: 400,
        body: { errcode: 'M_MISSING_PARAMS', error: 'Missing parameters: access_token,matrix_server_name' },
      });
      expect(await srv.call('POST', `${V2}/account/register`, { access_token: 'x', matrix_server_name: 'bad name/' })).toMatchObject({
        status: 400,
        body: { errcode: 'M_INVALID_PARAM' },
      });
      expect(await srv.call('POST', `${V2}/account/register`, { access_token: 5, matrix_server_name: hs.serverName })).toMatchObject({
        status: 400,
        body: { errcode: 'M_INVALID_PARAM' },
      });
      expect(await srv.call('POST', `${V2}/account/register`, '[1]')).toMatchObject({ status: 400, body: { errcode: 'M_NOT_JSON' } });
      expect(hs.requests).toHaveLength(0);
    });

    it('honours the operator allow list of homeservers', async () => {
      const restricted = await startTestServer({
        dbUrl: await newDb(),
        overrides: { ...fedOverrides, accounts: { allowedServers: ['hs.example'] } },
      });
      try {
        const res = await restricted.call('POST', `${V2}/account/register`, openIdFor('alice'));
        expect(res).toMatchObject({ status: 403, body: { errcode: 'M_UNAUTHORIZED' } });
        expect(hs.requests).toHaveLength(0);
        expect(restricted.violations).toEqual([]);
      } finally {
        await restricted.stop();
      }
      const open = await startTestServer({
        dbUrl: await newDb(),
        overrides: { ...fedOverrides, accounts: { allowedServers: ['hs.example', hs.serverName] } },
      });
      try {
        expect((await open.call('POST', `${V2}/account/register`, openIdFor('alice'))).status).toBe(200);
      } finally {
        await open.stop();
      }
    });

    it('resolves a delegated server name through .well-known (TLS verified against the fake certificate)', async () => {
      hs.route('GET', '/.well-known/matrix/server', { body: { 'm.server': `delegated.test:${hs.port}` } });
      const federation = new HttpFederationClient({
        ca: hs.cert,
        allow: ['127.0.0.1/32'],
        resolver: {
          lookup: async (host) => (['hs.test', 'delegated.test'].includes(host) ? ['127.0.0.1'] : []),
          resolveSrv: async () => [],
        },
        wellKnown: { port: hs.port },
      });
      const delegated = await startTestServer({ dbUrl: await newDb(), federation });
      try {
        const openId = { ...openIdFor('@dora:hs.test'), matrix_server_name: 'hs.test' };
        const res = await delegated.call('POST', `${V2}/account/register`, openId);
        expect(res.status, JSON.stringify(res.body)).toBe(200);
        const call = hs.requestsTo(USERINFO)[0]!;
        expect(call.sni).toBe('delegated.test');
        expect(call.headers.host).toBe(`delegated.test:${hs.port}`);
        expect(hs.requestsTo('/.well-known/matrix/server')[0]!.headers.host).toBe(`hs.test:${hs.port}`);
        expect(delegated.violations).toEqual([]);
      } finally {
        await delegated.stop();
      }
    });
  });

  describe('account and logout', () => {
    it('logout ends the token: 401 M_UNAUTHORIZED on /account and on a second logout', async () => {
      const { token } = await register(srv, 'leaver');
      expect(await srv.call('POST', `${V2}/account/logout`, undefined, bearer(token))).toMatchObject({ status: 200, body: {} });
      expect(await srv.call('GET', `${V2}/account`, undefined, bearer(token))).toMatchObject({
        status: 401,
        body: { errcode: 'M_UNAUTHORIZED' },
      });
      expect(await srv.call('POST', `${V2}/account/logout`, undefined, bearer(token))).toMatchObject({
        status: 401,
        body: { errcode: 'M_UNAUTHORIZED' },
      });
      // and it is no good anywhere else either
      expect(await srv.call('POST', `${V2}/store-invite`, invite(`@leaver:${hs.serverName}`), bearer(token))).toMatchObject({
        status: 401,
        body: { errcode: 'M_UNAUTHORIZED' },
      });
    });

    it('logout works with the query-parameter token too', async () => {
      const { token } = await register(srv, 'leaver2');
      expect((await srv.call('POST', `${V2}/account/logout?access_token=${token}`)).status).toBe(200);
      expect((await srv.call('GET', `${V2}/account`, undefined, bearer(token))).status).toBe(401);
    });

    it('answers 401 M_UNAUTHORIZED alike for a missing, unknown, expired or logged-out token, on exempt and gated routes', async () => {
      const expiring = await register(srv, 'expiring');
      const leaving = await register(srv, 'leaving');
      // both accepted the terms: a gated route would answer them 200, so only the token decides
      for (const t of [expiring.token, leaving.token])
        await srv.call('POST', `${V2}/terms`, { user_accepts: [TOS_EN, PRIVACY_FR] }, bearer(t));
      expect((await srv.call('GET', `${V2}/hash_details`, undefined, bearer(expiring.token))).status).toBe(200);
      expect((await srv.call('POST', `${V2}/account/logout`, undefined, bearer(leaving.token))).status).toBe(200);
      const saved = now;
      try {
        now = saved + 30 * DAY + 1; // past expiring's lifetime (and leaving's, which logout already ended)
        const cases: [string, Record<string, string>][] = [
          ['missing', {}],
          ['unknown', bearer('x'.repeat(43))],
          ['unknown and long', bearer('y'.repeat(5000))],
          ['expired', bearer(expiring.token)],
          ['logged out', bearer(leaving.token)],
        ];
        for (const [what, headers] of cases) {
          const routes: [string, string, unknown][] = [
            ['GET', `${V2}/account`, undefined], // terms-exempt
            ['POST', `${V2}/account/logout`, undefined], // terms-exempt
            ['GET', `${V2}/hash_details`, undefined], // behind the terms gate
            ['POST', `${V2}/store-invite`, invite(expiring.userId)], // behind the terms gate
          ];
          for (const [method, path, body] of routes) {
            const res = await srv.call(method, path, body, headers);
            expect(res, `${what} token on ${method} ${path}`).toMatchObject({ status: 401, body: { errcode: 'M_UNAUTHORIZED' } });
          }
        }
        now = saved;
        // the logged-out token stays refused once the clock is back; the other still works before it expires
        expect(await srv.call('GET', `${V2}/account`, undefined, bearer(leaving.token))).toMatchObject({
          status: 401,
          body: { errcode: 'M_UNAUTHORIZED' },
        });
        expect((await srv.call('GET', `${V2}/hash_details`, undefined, bearer(expiring.token))).status).toBe(200);
      } finally {
        now = saved;
      }
    });

    it('tokens expire after the configured lifetime, and the sweeper deletes them', async () => {
      const { token } = await register(srv, 'mayfly');
      const saved = now;
      try {
        now = saved + 30 * DAY - 1000;
        expect((await srv.call('GET', `${V2}/account`, undefined, bearer(token))).status).toBe(200);
        now = saved + 30 * DAY + 1;
        expect(await srv.call('GET', `${V2}/account`, undefined, bearer(token))).toMatchObject({
          status: 401,
          body: { errcode: 'M_UNAUTHORIZED' },
        });
        expect(await srv.service.deps.accounts.deleteExpiredAccountTokens(now, 1000)).toBeGreaterThan(0);
        const knex = srv.service.db.knex;
        const hash = createHash('sha256').update(token).digest('hex');
        expect(await knex('account_tokens').where('token_hash', hash).first()).toBeUndefined();
      } finally {
        now = saved;
      }
    });
  });

  describe('token reads under concurrency', () => {
    it('answers concurrent requests with valid, expired, unknown and repeated tokens, each on its own (batched reads)', async () => {
      const a = await register(srv, 'alpha');
      const b = await register(srv, 'beta');
      const old = await register(srv, 'gamma');
      const knex = srv.service.db.knex;
      await knex('account_tokens')
        .where('token_hash', createHash('sha256').update(old.token).digest('hex'))
        .update({ expires_at: now - 1 });
      const tokens = [a.token, b.token, old.token, 'made-up-token', a.token, b.token];
      const answers = await Promise.all(tokens.map((t) => srv.call('GET', `${V2}/account`, undefined, bearer(t))));
      expect(answers.map((r) => [r.status, r.body.user_id ?? r.body.errcode])).toEqual([
        [200, a.userId],
        [200, b.userId],
        [401, 'M_UNAUTHORIZED'],
        [401, 'M_UNAUTHORIZED'],
        [200, a.userId],
        [200, b.userId],
      ]);
    });
  });

  describe('terms', () => {
    it('GET /terms shows the file in the specification shape, versions as strings', async () => {
      const res = await srv.call('GET', `${V2}/terms`);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({
        policies: {
          terms_of_service: {
            version: '2.0',
            en: { name: 'Terms of Service', url: TOS_EN },
            fr: { name: "Conditions d'utilisation", url: TOS_FR },
          },
          privacy_policy: {
            version: '1.2',
            en: { name: 'Privacy Policy', url: 'https://is.test/privacy-1.2-en.html' },
            fr: { name: 'Politique de confidentialité', url: PRIVACY_FR },
          },
        },
      });
    });

    it('none accepted: gated endpoints answer 403 M_TERMS_NOT_SIGNED; /account and /terms stay open', async () => {
      const { token, userId } = await register(srv, 'newbie');
      expect(await srv.call('POST', `${V2}/store-invite`, invite(userId), bearer(token))).toMatchObject({
        status: 403,
        body: { errcode: 'M_TERMS_NOT_SIGNED' },
      });
      expect((await srv.call('GET', `${V2}/account`, undefined, bearer(token))).status).toBe(200);
      expect((await srv.call('GET', `${V2}/terms`)).status).toBe(200);
      expect((await srv.call('POST', `${V2}/terms`, { user_accepts: [] }, bearer(token))).status).toBe(200);
      expect(await srv.call('POST', `${V2}/store-invite`, invite(userId), bearer(token))).toMatchObject({
        status: 403,
        body: { errcode: 'M_TERMS_NOT_SIGNED' },
      });
    });

    it('one policy of two is not enough; one language per policy is; acceptances accumulate across calls', async () => {
      const { token, userId } = await register(srv, 'reader');
      expect(await srv.call('POST', `${V2}/terms`, { user_accepts: [TOS_EN] }, bearer(token))).toMatchObject({ status: 200, body: {} });
      expect(await srv.call('POST', `${V2}/store-invite`, invite(userId), bearer(token))).toMatchObject({
        status: 403,
        body: { errcode: 'M_TERMS_NOT_SIGNED' },
      });
      // a separate call with only the other policy, in French: the earlier acceptance still counts
      expect(
        (await srv.call('POST', `${V2}/terms`, { user_accepts: [PRIVACY_FR, 'https://unknown.example/x'] }, bearer(token))).status,
      ).toBe(200);
      expect((await srv.call('POST', `${V2}/store-invite`, invite(userId), bearer(token))).status).toBe(200);
      // accepting again changes nothing
      expect((await srv.call('POST', `${V2}/terms`, { user_accepts: [TOS_FR, TOS_EN] }, bearer(token))).status).toBe(200);
      expect((await srv.call('POST', `${V2}/store-invite`, invite(userId, { address: 'dave@example.org' }), bearer(token))).status).toBe(
        200,
      );
    });

    it('acceptance belongs to the user: a second token of the same user is already through', async () => {
      const first = await register(srv, 'twice');
      await srv.call('POST', `${V2}/terms`, { user_accepts: [TOS_FR, PRIVACY_FR] }, bearer(first.token));
      const second = await register(srv, 'twice');
      expect(second.token).not.toBe(first.token);
      expect(
        (await srv.call('POST', `${V2}/store-invite`, invite(second.userId, { address: 'erin@example.org' }), bearer(second.token))).status,
      ).toBe(200);
    });

    it('POST /terms needs a token and a user_accepts list', async () => {
      expect(await srv.call('POST', `${V2}/terms`, { user_accepts: [TOS_EN] })).toMatchObject({
        status: 401,
        body: { errcode: 'M_UNAUTHORIZED' },
      });
      const { token } = await register(srv, 'sloppy');
      expect(await srv.call('POST', `${V2}/terms`, {}, bearer(token))).toMatchObject({
        status: 400,
        body: { errcode: 'M_MISSING_PARAMS' },
      });
      expect(await srv.call('POST', `${V2}/terms`, { user_accepts: 'x' }, bearer(token))).toMatchObject({
        status: 400,
        body: { errcode: 'M_INVALID_PARAM' },
      });
    });

    it('without a terms file: empty policies and no gate', async () => {
      expect(await plain.call('GET', `${V2}/terms`)).toMatchObject({ status: 200, body: { policies: {} } });
      const { token, userId } = await register(plain, 'free');
      expect((await plain.call('POST', `${V2}/store-invite`, invite(userId), bearer(token))).status).toBe(200);
    });
  });

  describe('v2 store-invite', () => {
    it('refuses a sender other than the token user (403 M_UNAUTHORIZED)', async () => {
      const { token } = await register(plain, 'honest');
      expect(await plain.call('POST', `${V2}/store-invite`, invite('@someone:else.example'), bearer(token))).toMatchObject({
        status: 403,
        body: { errcode: 'M_UNAUTHORIZED' },
      });
      expect(await plain.call('POST', `${V2}/store-invite`, invite('@someone:else.example'))).toMatchObject({
        status: 401,
        body: { errcode: 'M_UNAUTHORIZED' },
      });
    });

    it('with v1 switched off, v1 answers 404 M_UNRECOGNIZED and v2 still works', async () => {
      expect(await plain.call('POST', `${V1}/store-invite`, invite('@x:hs.example'))).toMatchObject({
        status: 404,
        body: { errcode: 'M_UNRECOGNIZED' },
      });
      const { token, userId } = await register(plain, 'modern');
      expect(
        (await plain.call('POST', `${V2}/store-invite`, invite(userId, { address: 'v2only@example.org' }), bearer(token))).status,
      ).toBe(200);
    });

    it('a complete v2 run: register, read and accept the terms, store an invite, check both key validity URLs', async () => {
      // 1. the homeserver-side user gets an OpenID token and registers
      const reg = await srv.call('POST', `${V2}/account/register`, openIdFor('inviter'));
      expect(reg.status).toBe(200);
      const token: string = reg.body.token;
      const userId = `@inviter:${hs.serverName}`;
      // 2. terms: read them, accept one language of each
      const terms = await srv.call('GET', `${V2}/terms`);
      const urls = Object.values<any>(terms.body.policies).map((p) => p.en.url);
      expect(await srv.call('POST', `${V2}/terms`, { user_accepts: urls }, bearer(token))).toMatchObject({ status: 200, body: {} });
      // 3. store-invite on v2
      const stored = await srv.call('POST', `${V2}/store-invite`, invite(userId, { address: 'Frank@Example.org' }), bearer(token));
      expect(stored.status).toBe(200);
      const [longTerm, ephemeral] = stored.body.public_keys;
      expect(longTerm.key_validity_url).toBe(`${srv.url}${V2}/pubkey/isvalid`);
      expect(ephemeral.key_validity_url).toBe(`${srv.url}${V2}/pubkey/ephemeral/isvalid`);
      // 4. what a homeserver does on join: call both validity URLs
      for (const key of stored.body.public_keys) {
        const check = await fetch(`${key.key_validity_url}?public_key=${encodeURIComponent(key.public_key)}`);
        expect(check.status).toBe(200);
        expect(await check.json()).toEqual({ valid: true });
      }
      // the email (an .eml file: no SMTP here) names the token's user as the inviter. (The outbox row itself
      // cannot be checked: once sent, its payload is reduced to what the log needs, and sending takes ms.)
      const dir = join(srv.service.deps.config.dataDir, 'mail');
      const eml = await until(() => {
        for (const name of existsSync(dir) ? readdirSync(dir) : []) {
          const text = readFileSync(join(dir, name), 'utf8');
          if (name.endsWith('.eml') && text.includes('To: Frank@Example.org')) return text;
        }
        return undefined;
      });
      expect(eml.replace(/=\r\n/g, '')).toContain(userId);
    });
  });

  it('keeps its tables in migration 003', async () => {
    const knex = srv.service.db.knex;
    expect(await knex.schema.hasTable('account_tokens')).toBe(true);
    expect(await knex.schema.hasTable('accepted_terms')).toBe(true);
  });
});
