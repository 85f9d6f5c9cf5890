// The binding lifecycle over real HTTP on every database: validation sessions, bind, lookups, sign-ed25519,
// and onbind delivery by the real federation client to an HTTPS fake homeserver on loopback (signatures checked
// with tweetnacl). Emails go to a real SMTP server; tests read tokens and links from them as a user would.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import type { Knex } from 'knex';
import nacl from 'tweetnacl';
import { testDatabases } from '../helpers/databases.js';
import { settle, startTestServer, type TestServer } from '../helpers/server.js';
import { readInviteMail, readVerificationMail, sentTo, verificationMailCount } from '../helpers/verificationMail.js';
import { smtpConfig, startSmtp, until as waitUntil, type TestSmtp } from '../helpers/smtp.js';
import { startFakeHomeserver, type FakeHomeserver } from '../helpers/fakeHomeserver.js';
import { ONBIND, routeOnbind, type OnbindEndpoint } from '../helpers/onbind.js';
import { verifyMatrixSignature } from '../helpers/signatures.js';
import type { Authenticator } from '../../src/platform/http/security.js';
import { insertAssociation } from '../helpers/associations.js';

const V1 = '/_matrix/identity/api/v1';
const V2 = '/_matrix/identity/v2';

/** v2 tokens: `tok:<mxid>` authenticates as <mxid> with the terms accepted. */
const testAuth: Authenticator = {
  async authenticate(token) {
    return token.startsWith('tok:') ? { account: { userId: token.slice(4) }, termsAccepted: true } : undefined;
  },
};
const bearer = (mxid: string) => ({ authorization: `Bearer tok:${mxid}` });

let counter = 0;
const uniqueAddress = (tag: string) => `${tag}.${Date.now().toString(36)}${(counter++).toString(36)}@Example.org`;

/** The shared poller (test/helpers/smtp.ts), with this file's argument order. */
const until = <T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> =>
  waitUntil(probe, timeoutMs, what) as Promise<T>;

describe.each(testDatabases())('binding on $name', (db) => {
  let srv: TestServer;
  let hs: FakeHomeserver;
  let onbind: OnbindEndpoint;
  let smtp: TestSmtp;
  let dispose: () => Promise<void>;
  let knex: Knex;
  let offset = 0;
  let serverKey: string;

  beforeAll(async () => {
    const created = await db.create();
    dispose = created.dispose;
    hs = await startFakeHomeserver();
    onbind = routeOnbind(hs);
    smtp = await startSmtp();
    srv = await startTestServer({
      dbUrl: created.url,
      clock: () => Date.now() + offset,
      auth: testAuth,
      overrides: {
        ...smtpConfig(smtp.port),
        federation: { verifyTls: false, allow: ['127.0.0.1/32'] },
        onbind: { initialBackoffMs: 20, maxBackoffMs: 200, pollIntervalMs: 100, leaseMs: 5000, invitesPerCall: 100 },
        rateLimits: { storeInvitePerIp: 100_000, storeInvitePerSender: 100_000, storeInvitePerAddress: 100_000 },
        server: { bodyLimitBytes: 1_000_000 },
        // the emailed token expires before its session, so that the two answers can be told apart
        binding: { tokenLifetimeMs: 3_600_000, sessionLifetimeMs: 24 * 3_600_000 },
      },
    });
    knex = srv.service.db.knex;
    serverKey = (await srv.call('GET', `${V2}/pubkey/ed25519:0`)).body.public_key;
  });
  afterAll(async () => {
    try {
      await settle([() => srv?.stop(), () => hs?.stop(), () => smtp?.stop()]);
    } finally {
      await dispose?.();
    }
  });
  beforeEach(() => {
    offset = 0;
    onbind.reset();
    onbind.respond = () => ({ status: 200, body: {} });
  });
  afterEach(() => {
    expect(srv.violations.splice(0)).toEqual([]);
    expect(onbind.violations()).toEqual([]);
  });

  const storeInvite = async (address: string, over: Record<string, unknown> = {}) => {
    const res = await srv.call('POST', `${V1}/store-invite`, {
      medium: 'email',
      address,
      room_id: '!room:hs.example',
      sender: '@alice:hs.example',
      ...over,
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body as { token: string; public_keys: { public_key: string }[] };
  };

  /** requestToken -> the emailed token -> submitToken: a validated session. */
  const validate = async (address: string, opts: { version?: 'v1' | 'v2'; mxid?: string } = {}) => {
    const base = opts.version === 'v2' ? V2 : V1;
    const headers = opts.version === 'v2' ? bearer(opts.mxid!) : {};
    const clientSecret = `secret-${counter++}`;
    const sent = verificationMailCount(smtp, address);
    const req = await srv.call(
      'POST',
      `${base}/validate/email/requestToken`,
      { client_secret: clientSecret, email: address, send_attempt: 1 },
      headers,
    );
    expect(req.status, JSON.stringify(req.body)).toBe(200);
    const mail = await readVerificationMail(smtp, address, { count: sent + 1 });
    const sub = await srv.call(
      'POST',
      `${base}/validate/email/submitToken`,
      { sid: req.body.sid, client_secret: clientSecret, token: mail.token },
      headers,
    );
    expect(sub.body).toEqual({ success: true });
    return { sid: req.body.sid as string, clientSecret };
  };

  const bind = async (address: string, mxid: string, version: 'v1' | 'v2' = 'v1') => {
    const { sid, clientSecret } = await validate(address, { version, mxid });
    const res = await srv.call(
      'POST',
      `${version === 'v2' ? V2 : V1}/3pid/bind`,
      { sid, client_secret: clientSecret, mxid },
      version === 'v2' ? bearer(mxid) : {},
    );
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return { association: res.body, sid, clientSecret };
  };

  const outboxRows = async () => knex('onbind_outbox').select('*').orderBy('id');

  it('runs the whole loop: store-invite, validate, bind, signed onbind delivered once, lookups, unbind', async () => {
    const address = uniqueAddress('Bob');
    const inv1 = await storeInvite(address);
    const inv2 = await storeInvite(address, { room_id: '!other:hs.example', sender: '@carol:hs.example' });
    const mxid = `@bob:${hs.serverName}`;
    const before = Date.now();
    const { association, sid, clientSecret } = await bind(address, mxid);

    // the association, signed by the key /pubkey/ed25519:0 serves
    expect(association).toMatchObject({ medium: 'email', address: address.toLowerCase(), mxid });
    expect(association.ts).toBeGreaterThanOrEqual(before);
    expect(association.not_before).toBe(association.ts);
    expect(association.not_after).toBeGreaterThan(association.ts);
    expect(verifyMatrixSignature(association, 'is.test', 'ed25519:0', serverKey)).toBe(true);

    await onbind.waitForCalls(1);
    const call = onbind.calls[0]!;
    expect(call.method).toBe('POST');
    expect(call.path).toBe(ONBIND);
    const body = call.body;
    expect(body).toMatchObject({
      medium: 'email',
      address: address.toLowerCase(),
      mxid,
      ts: association.ts,
      not_before: association.not_before,
      not_after: association.not_after,
    });
    expect(verifyMatrixSignature(body, 'is.test', 'ed25519:0', serverKey)).toBe(true);
    expect(body.invites.map((i: any) => i.token).sort()).toEqual([inv1.token, inv2.token].sort());
    for (const i of body.invites) {
      expect(i.mxid).toBe(mxid);
      expect(i.signed).toMatchObject({ mxid, token: i.token });
      expect(verifyMatrixSignature(i.signed, 'is.test', 'ed25519:0', serverKey)).toBe(true);
    }
    expect(body.invites.find((i: any) => i.token === inv2.token)).toMatchObject({
      room_id: '!other:hs.example',
      sender: '@carol:hs.example',
    });
    const delivered = await until('invites marked delivered', async () => {
      const rows = await knex('invites').whereIn('token', [inv1.token, inv2.token]).whereNotNull('delivered_at');
      return rows.length === 2 && rows;
    });
    expect(delivered).toHaveLength(2);
    expect(onbind.calls).toHaveLength(1);

    // store-invite now answers M_THREEPID_IN_USE with the bound mxid
    const inUse = await srv.call('POST', `${V1}/store-invite`, {
      medium: 'email',
      address,
      room_id: '!r:hs.example',
      sender: '@alice:hs.example',
    });
    expect(inUse.status).toBe(400);
    expect(inUse.body).toMatchObject({ errcode: 'M_THREEPID_IN_USE', mxid });

    // getValidated3pid
    const got = await srv.call('GET', `${V1}/3pid/getValidated3pid?sid=${sid}&client_secret=${clientSecret}`);
    expect(got.body).toMatchObject({ medium: 'email', address: address.toLowerCase() });
    expect(typeof got.body.validated_at).toBe('number');

    // v1 lookup and bulk_lookup
    const one = await srv.call('GET', `${V1}/lookup?medium=email&address=${encodeURIComponent(address)}`);
    expect(one.body).toMatchObject({ mxid, address: address.toLowerCase() });
    expect(verifyMatrixSignature(one.body, 'is.test', 'ed25519:0', serverKey)).toBe(true);
    expect((await srv.call('GET', `${V1}/lookup?medium=email&address=nobody@example.org`)).body).toEqual({});
    const bulk = await srv.call('POST', `${V1}/bulk_lookup`, {
      threepids: [
        ['email', address],
        ['email', 'nobody@example.org'],
      ],
    });
    expect(bulk.body).toEqual({ threepids: [['email', address, mxid]] });

    // v2 lookup, both algorithms
    const details = await srv.call('GET', `${V2}/hash_details`, undefined, bearer(mxid));
    expect(details.body.algorithms).toEqual(['none', 'sha256']);
    const pepper = details.body.lookup_pepper as string;
    const lower = address.toLowerCase();
    const none = await srv.call(
      'POST',
      `${V2}/lookup`,
      { algorithm: 'none', pepper, addresses: [`${lower} email`, 'x@example.org email'] },
      bearer(mxid),
    );
    expect(none.body).toEqual({ mappings: { [`${lower} email`]: mxid } });
    const hash = createHash('sha256').update(`${lower} email ${pepper}`).digest('base64url');
    const sha = await srv.call('POST', `${V2}/lookup`, { algorithm: 'sha256', pepper, addresses: [hash, 'A'.repeat(43)] }, bearer(mxid));
    expect(sha.body).toEqual({ mappings: { [hash]: mxid } });
    // Near-misses of the bound hash are not it, though MySQL's collations match them (trailing space; case).
    const flipped = hash.replace(/[a-zA-Z]/, (c) => (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase()));
    const near = await srv.call('POST', `${V2}/lookup`, { algorithm: 'sha256', pepper, addresses: [flipped, `${hash} `] }, bearer(mxid));
    expect(near.body).toEqual({ mappings: {} });
    const stale = await srv.call('POST', `${V2}/lookup`, { algorithm: 'sha256', pepper: 'old', addresses: [hash] }, bearer(mxid));
    expect(stale.status).toBe(400);
    expect(stale.body.errcode).toBe('M_INVALID_PEPPER');
    const algo = await srv.call('POST', `${V2}/lookup`, { algorithm: 'md5', pepper, addresses: [hash] }, bearer(mxid));
    expect(algo.body.errcode).toBe('M_INVALID_PARAM');

    // unbind with the session; afterwards the address is free again
    const unbind = await srv.call('POST', `${V1}/3pid/unbind`, {
      mxid,
      threepid: { medium: 'email', address },
      sid,
      client_secret: clientSecret,
    });
    expect(unbind.status).toBe(200);
    expect((await srv.call('GET', `${V1}/lookup?medium=email&address=${encodeURIComponent(address)}`)).body).toEqual({});
    await storeInvite(address);
    const again = await srv.call('POST', `${V1}/3pid/unbind`, {
      mxid,
      threepid: { medium: 'email', address },
      sid,
      client_secret: clientSecret,
    });
    expect(again.status).toBe(404);

    // nothing secret reached the log: tokens, client secrets, the address
    const logs = srv.logs.join('\n');
    const mail = await readVerificationMail(smtp, address);
    for (const secret of [mail.token, clientSecret, address, address.toLowerCase(), inv1.token, inv2.token])
      expect(logs).not.toContain(secret);
  });

  it('on v2: mxid must be the token user; unbind by the authenticated owner', async () => {
    const address = uniqueAddress('dora');
    const mxid = `@dora:${hs.serverName}`;
    const { sid, clientSecret } = await validate(address, { version: 'v2', mxid });
    const spoof = await srv.call(
      'POST',
      `${V2}/3pid/bind`,
      { sid, client_secret: clientSecret, mxid: '@mallory:hs.example' },
      bearer(mxid),
    );
    expect(spoof.status).toBe(403);
    expect(spoof.body.errcode).toBe('M_UNAUTHORIZED');
    const noToken = await srv.call('POST', `${V2}/3pid/bind`, { sid, client_secret: clientSecret, mxid });
    expect(noToken.status).toBe(401);
    const ok = await srv.call('POST', `${V2}/3pid/bind`, { sid, client_secret: clientSecret, mxid }, bearer(mxid));
    expect(ok.status).toBe(200);
    const stranger = await srv.call(
      'POST',
      `${V2}/3pid/unbind`,
      { mxid, threepid: { medium: 'email', address } },
      bearer('@eve:hs.example'),
    );
    expect(stranger.status).toBe(403);
    const v1NoSession = await srv.call('POST', `${V1}/3pid/unbind`, { mxid, threepid: { medium: 'email', address } });
    expect(v1NoSession.status).toBe(403);
    const owner = await srv.call('POST', `${V2}/3pid/unbind`, { mxid, threepid: { medium: 'email', address } }, bearer(mxid));
    expect(owner.status).toBe(200);
    expect(onbind.calls).toHaveLength(0); // no pending invites: no onbind call
  });

  it('makes requestToken idempotent per send_attempt, and checks the address and next_link', async () => {
    const address = uniqueAddress('erin');
    const count = async () =>
      Number((await knex('mail_outbox').where({ kind: 'verification', recipient: address }).count({ n: '*' }))[0]!.n);
    const body = { client_secret: 'cs-erin', email: address, send_attempt: 1 };
    const a = await srv.call('POST', `${V1}/validate/email/requestToken`, body);
    const b = await srv.call('POST', `${V1}/validate/email/requestToken`, body);
    expect(b.body.sid).toBe(a.body.sid);
    expect(await count()).toBe(1);
    const c = await srv.call('POST', `${V1}/validate/email/requestToken`, { ...body, send_attempt: 2 });
    expect(c.body.sid).toBe(a.body.sid);
    expect(await count()).toBe(2);
    // two emails arrive (one per send_attempt), and the newer one carries the session's token
    const mail = await readVerificationMail(smtp, address, { count: 2 });
    expect(sentTo(smtp, address)).toHaveLength(2);
    expect(mail.token).toMatch(/^[A-Za-z0-9_-]{32}$/);
    const link = new URL(mail.link);
    expect(`${link.origin}${link.pathname}`).toBe(`${srv.url}${V1}/validate/email/submitToken`);
    expect(link.searchParams.get('sid')).toBe(a.body.sid);
    expect(link.searchParams.get('client_secret')).toBe('cs-erin');
    expect(link.searchParams.get('token')).toBe(mail.token);

    for (const email of ['not-an-address', 'Eve <eve@example.org>', 'a@example.org\r\nBcc: x@example.org']) {
      const bad = await srv.call('POST', `${V1}/validate/email/requestToken`, { ...body, email });
      expect(bad.status, email).toBe(400);
      expect(bad.body.errcode, email).toBe('M_INVALID_EMAIL');
    }
    for (const next_link of ['javascript:alert(1)', 'data:text/html,x', '/relative', 'https://user:pw@example.org/']) {
      const bad = await srv.call('POST', `${V1}/validate/email/requestToken`, { ...body, email: uniqueAddress('f'), next_link });
      expect(bad.status, next_link).toBe(400);
      expect(bad.body.errcode, next_link).toBe('M_INVALID_PARAM');
    }
    const missing = await srv.call('POST', `${V1}/validate/email/requestToken`, { email: address });
    expect(missing.body).toEqual({ errcode: 'M_MISSING_PARAMS', error: 'Missing parameters: client_secret,send_attempt' });
    const v2 = await srv.call('POST', `${V2}/validate/email/requestToken`, body);
    expect(v2.status).toBe(401);
  });

  it('answers the session errors: unknown, wrong secret, wrong or expired token (M_TOKEN_INCORRECT), not validated, expired', async () => {
    const address = uniqueAddress('gus');
    const req = await srv.call('POST', `${V1}/validate/email/requestToken`, { client_secret: 'cs-gus', email: address, send_attempt: 1 });
    const sid = req.body.sid as string;
    const get = (s: string, cs: string) => srv.call('GET', `${V1}/3pid/getValidated3pid?sid=${s}&client_secret=${cs}`);
    expect((await get('nope', 'cs-gus')).body.errcode).toBe('M_NO_VALID_SESSION');
    expect((await get('nope', 'cs-gus')).status).toBe(404);
    expect((await get(sid, 'cs-other')).body.errcode).toBe('M_NO_VALID_SESSION');
    const notYet = await get(sid, 'cs-gus');
    expect(notYet.status).toBe(400);
    expect(notYet.body.errcode).toBe('M_SESSION_NOT_VALIDATED');
    const bindEarly = await srv.call('POST', `${V1}/3pid/bind`, { sid, client_secret: 'cs-gus', mxid: '@gus:hs.example' });
    expect(bindEarly.body.errcode).toBe('M_SESSION_NOT_VALIDATED');
    for (const base of [V1, V2]) {
      const wrong = await srv.call(
        'POST',
        `${base}/validate/email/submitToken`,
        { sid, client_secret: 'cs-gus', token: 'wrong' },
        bearer('@gus:hs.example'),
      );
      expect(wrong.status, base).toBe(400);
      expect(wrong.body.errcode, base).toBe('M_TOKEN_INCORRECT');
    }
    const wrongSecret = await srv.call('POST', `${V1}/validate/email/submitToken`, {
      sid,
      client_secret: 'cs-x',
      token: (await readVerificationMail(smtp, address)).token,
    });
    expect(wrongSecret.status).toBe(404);
    expect(wrongSecret.body.errcode).toBe('M_NO_VALID_SESSION');
    // the right token, expired (its session is not): M_TOKEN_INCORRECT too, and the session stays unvalidated
    offset = srv.service.deps.config.binding.tokenLifetimeMs + 1;
    expect(offset).toBeLessThan(srv.service.deps.config.binding.sessionLifetimeMs);
    const late = await srv.call('POST', `${V1}/validate/email/submitToken`, {
      sid,
      client_secret: 'cs-gus',
      token: (await readVerificationMail(smtp, address)).token,
    });
    expect(late.status).toBe(400);
    expect(late.body.errcode).toBe('M_TOKEN_INCORRECT');
    expect((await get(sid, 'cs-gus')).body.errcode).toBe('M_SESSION_NOT_VALIDATED');
    offset = srv.service.deps.config.binding.sessionLifetimeMs + 1;
    const expired = await get(sid, 'cs-gus');
    expect(expired.status).toBe(400);
    expect(expired.body.errcode).toBe('M_SESSION_EXPIRED');
    // the sweeper keeps an expired session for a day, so the answer stays M_SESSION_EXPIRED, then deletes it
    const sweeper = srv.service.sweeper;
    await sweeper.sweepOnce();
    expect((await get(sid, 'cs-gus')).body.errcode).toBe('M_SESSION_EXPIRED');
    offset += 24 * 3_600_000;
    await sweeper.sweepOnce();
    expect(await srv.service.deps.sessions.findSession(sid)).toBeUndefined();
  });

  it('validates through the emailed GET link: a page, or a redirect only to the session next_link', async () => {
    const address = uniqueAddress('hana');
    const req = await srv.call(
      'POST',
      `${V2}/validate/email/requestToken`,
      { client_secret: 'cs-hana', email: address, send_attempt: 1, next_link: 'https://app.example.org/done?x=1' },
      bearer('@hana:hs.example'),
    );
    const mail = await readVerificationMail(smtp, address);
    expect(mail.link.startsWith(`${srv.url}${V2}/validate/email/submitToken?`)).toBe(true);
    expect(new URL(mail.link).searchParams.get('next_link')).toBe('https://app.example.org/done?x=1');
    // a tampered next_link is not followed
    const tampered = new URL(mail.link);
    tampered.searchParams.set('next_link', 'https://evil.example/');
    const page = await fetch(tampered, { redirect: 'manual' });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const redirect = await fetch(mail.link, { redirect: 'manual' });
    expect(redirect.status).toBe(302);
    expect(redirect.headers.get('location')).toBe('https://app.example.org/done?x=1');
    const got = await srv.call(
      'GET',
      `${V2}/3pid/getValidated3pid?sid=${req.body.sid}&client_secret=cs-hana`,
      undefined,
      bearer('@hana:hs.example'),
    );
    expect(got.status).toBe(200);

    const plainAddress = uniqueAddress('ivan');
    await srv.call('POST', `${V1}/validate/email/requestToken`, { client_secret: 'cs-ivan', email: plainAddress, send_attempt: 1 });
    const plain = await readVerificationMail(smtp, plainAddress);
    const bad = new URL(plain.link);
    bad.searchParams.set('token', 'wrong<script>');
    const badPage = await fetch(bad);
    expect(badPage.status).toBe(400);
    const badHtml = await badPage.text();
    expect(badHtml).toContain('not valid');
    expect(badHtml).not.toContain('wrong<script>');
    const okPage = await fetch(plain.link);
    expect(okPage.status).toBe(200);
    expect(await okPage.text()).toContain('verified');
    const missing = await srv.call('GET', `${V1}/validate/email/submitToken?sid=x`);
    expect(missing.body.errcode).toBe('M_MISSING_PARAMS');
  });

  it('answers a failed emailed link with the page and the status of its error: 404 unknown session or secret, 400 wrong token or expired session', async () => {
    const address = uniqueAddress('link');
    await srv.call('POST', `${V1}/validate/email/requestToken`, { client_secret: 'cs-link', email: address, send_attempt: 1 });
    const { link } = await readVerificationMail(smtp, address);
    const variant = (param: string, value: string) => {
      const u = new URL(link);
      u.searchParams.set(param, value);
      return u;
    };
    const page = async (url: URL | string) => {
      const res = await fetch(url, { redirect: 'manual' });
      return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
    };
    for (const [what, url, status] of [
      ['unknown session', variant('sid', 'no-such-session'), 404],
      ['wrong client_secret', variant('client_secret', 'cs-other'), 404],
      ['wrong token', variant('token', 'not-the-token'), 400],
    ] as const) {
      const res = await page(url);
      expect(res.status, what).toBe(status);
      expect(res.type, what).toMatch(/^text\/html/);
      expect(res.text, what).toContain('This link is not valid');
    }
    // the same failures on v2's link
    const v2 = variant('token', 'not-the-token');
    v2.pathname = `${V2}/validate/email/submitToken`;
    expect((await page(v2)).status).toBe(400);
    // missing query parameters are not a link anyone was sent: the JSON error
    const missing = await srv.call('GET', `${V1}/validate/email/submitToken?sid=x&token=y`);
    expect(missing.status).toBe(400);
    expect(missing.body).toEqual({ errcode: 'M_MISSING_PARAMS', error: 'Missing parameters: client_secret' });
    // an expired session: 400 and a page that says so; the right link does not validate it
    offset = srv.service.deps.config.binding.sessionLifetimeMs + 1;
    const expired = await page(link);
    expect(expired.status).toBe(400);
    expect(expired.type).toMatch(/^text\/html/);
    expect(expired.text).toContain('This link has expired');
    offset = 0;
    const ok = await page(link);
    expect(ok.status).toBe(200);
    expect(ok.text).toContain('verified');
  });

  it('does not offer msisdn: every phone route answers 404 M_UNRECOGNIZED before reading its body, query or token', async () => {
    const routes = [
      ['POST', `${V2}/validate/msisdn/requestToken`],
      ['POST', `${V1}/validate/msisdn/requestToken`],
      ['POST', `${V2}/validate/msisdn/submitToken`],
      ['POST', `${V1}/validate/msisdn/submitToken`],
      ['GET', `${V2}/validate/msisdn/submitToken`],
      ['GET', `${V1}/validate/msisdn/submitToken`],
    ] as const;
    type Variant = [what: string, req: { body?: string; headers?: Record<string, string>; query?: string }];
    const json = { 'content-type': 'application/json' };
    const posts: Variant[] = [
      ['an empty body', { body: '' }],
      [
        'a valid-looking body',
        {
          body: JSON.stringify({ client_secret: 'x', country: 'GB', phone_number: '7700900000', send_attempt: 1, sid: 's', token: 't' }),
          headers: json,
        },
      ],
      ['a malformed JSON body', { body: '{"client_secret": ', headers: json }],
      ['a form body', { body: 'client_secret=x&send_attempt=abc', headers: { 'content-type': 'application/x-www-form-urlencoded' } }],
      ['a bad access token', { body: '{}', headers: { ...json, authorization: 'Bearer nope' } }],
    ];
    const gets: Variant[] = [
      ['no query', { query: '' }],
      ['a valid-looking query', { query: '?sid=s&client_secret=x&token=t' }],
      ['a malformed query', { query: '?sid=%zz&sid=2&token[a]=b' }],
    ];
    for (const [method, path] of routes) {
      for (const [what, req] of method === 'POST' ? posts : gets) {
        const res = await fetch(`${srv.url}${path}${req.query ?? ''}`, { method, body: req.body, headers: req.headers });
        const body = (await res.json()) as { errcode: string; error: string };
        expect(res.status, `${method} ${path} with ${what}`).toBe(404);
        expect(body, `${method} ${path} with ${what}`).toEqual({
          errcode: 'M_UNRECOGNIZED',
          error: 'This identity server does not validate phone numbers (msisdn); use email',
        });
      }
    }
  });

  it('accepts form-encoded bodies on the legacy v1 requestToken, submitToken and bind, typed as their JSON schema says', async () => {
    const address = uniqueAddress('form');
    const mxid = `@form:${hs.serverName}`;
    const form = (path: string, fields: [string, string][], headers: Record<string, string> = {}) =>
      srv.call('POST', path, new URLSearchParams(fields).toString(), { 'content-type': 'application/x-www-form-urlencoded', ...headers });
    // send_attempt arrives as the string "1": it becomes the integer the schema asks for, and the email goes out
    const req = await form(`${V1}/validate/email/requestToken`, [
      ['client_secret', 'cs-form'],
      ['email', address],
      ['send_attempt', '1'],
    ]);
    expect(req.status, JSON.stringify(req.body)).toBe(200);
    const sid = req.body.sid as string;
    const mail = await readVerificationMail(smtp, address);
    // the same send_attempt again, as a form: the same session, no second email
    const again = await form(`${V1}/validate/email/requestToken`, [
      ['client_secret', 'cs-form'],
      ['email', address],
      ['send_attempt', '1'],
    ]);
    expect(again.body).toEqual({ sid });
    expect(Number((await knex('mail_outbox').where({ kind: 'verification', recipient: address }).count({ n: '*' }))[0]!.n)).toBe(1);
    const sub = await form(`${V1}/validate/email/submitToken`, [
      ['sid', sid],
      ['client_secret', 'cs-form'],
      ['token', mail.token],
    ]);
    expect(sub.status, JSON.stringify(sub.body)).toBe(200);
    expect(sub.body).toEqual({ success: true });
    const bound = await form(`${V1}/3pid/bind`, [
      ['sid', sid],
      ['client_secret', 'cs-form'],
      ['mxid', mxid],
    ]);
    expect(bound.status, JSON.stringify(bound.body)).toBe(200);
    expect(bound.body).toMatchObject({ medium: 'email', address: address.toLowerCase(), mxid });
    expect(verifyMatrixSignature(bound.body, 'is.test', 'ed25519:0', serverKey)).toBe(true);
    expect((await srv.call('GET', `${V1}/lookup?medium=email&address=${encodeURIComponent(address)}`)).body.mxid).toBe(mxid);

    // what does not convert, or comes twice, is refused as the same value in JSON would be
    for (const fields of [
      [
        ['client_secret', 'cs-form2'],
        ['email', uniqueAddress('form2')],
        ['send_attempt', 'abc'],
      ],
      [
        ['client_secret', 'cs-form2'],
        ['email', uniqueAddress('form2')],
        ['send_attempt', '1.5'],
      ],
      [
        ['client_secret', 'cs-form2'],
        ['email', uniqueAddress('form2')],
        ['send_attempt', '1'],
        ['send_attempt', '2'],
      ],
    ] as [string, string][][]) {
      const res = await form(`${V1}/validate/email/requestToken`, fields);
      expect(res.status, JSON.stringify(fields)).toBe(400);
      expect(res.body.errcode, JSON.stringify(fields)).toBe('M_INVALID_PARAM');
      expect(res.body.error, JSON.stringify(fields)).toContain('send_attempt');
    }
    const missing = await form(`${V1}/validate/email/requestToken`, [['email', uniqueAddress('form3')]]);
    expect(missing.body).toEqual({ errcode: 'M_MISSING_PARAMS', error: 'Missing parameters: client_secret,send_attempt' });

    // routes that take JSON only answer a form as any other body that is not JSON
    const notJson = { errcode: 'M_NOT_JSON', error: 'Content not JSON.' };
    const v2 = await form(
      `${V2}/validate/email/requestToken`,
      [
        ['client_secret', 'cs-form4'],
        ['email', uniqueAddress('form4')],
        ['send_attempt', '1'],
      ],
      bearer(mxid),
    );
    expect(v2.status).toBe(400);
    expect(v2.body).toEqual(notJson);
    const invite = await form(`${V1}/store-invite`, [
      ['medium', 'email'],
      ['address', uniqueAddress('form5')],
      ['room_id', '!room:hs.example'],
      ['sender', '@alice:hs.example'],
    ]);
    expect(invite.status).toBe(400);
    expect(invite.body).toEqual(notJson);
    const v2Bind = await form(
      `${V2}/3pid/bind`,
      [
        ['sid', sid],
        ['client_secret', 'cs-form'],
        ['mxid', mxid],
      ],
      bearer(mxid),
    );
    expect(v2Bind.body).toEqual(notJson);
  });

  it('signs invitation details with the invitation own ephemeral key only (sign-ed25519)', async () => {
    const address = uniqueAddress('jo');
    const inv = await storeInvite(address);
    const signurl = new URL((await readInviteMail(smtp, address)).signurl);
    const privateKey = signurl.searchParams.get('private_key')!;
    expect(signurl.searchParams.get('token')).toBe(inv.token);
    const ephemeralPublic = inv.public_keys[1]!.public_key;
    const res = await srv.call(
      'POST',
      `${V2}/sign-ed25519`,
      { mxid: '@jo:hs.example', token: inv.token, private_key: privateKey },
      bearer('@jo:hs.example'),
    );
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ mxid: '@jo:hs.example', sender: '@alice:hs.example', token: inv.token });
    expect(verifyMatrixSignature(res.body, 'is.test', 'ed25519:0', ephemeralPublic)).toBe(true);
    // v1, with the values in the query string as old web clients send them
    const q = new URLSearchParams({ mxid: '@jo:hs.example', token: inv.token, private_key: privateKey });
    const v1 = await srv.call('POST', `${V1}/sign-ed25519?${q.toString()}`);
    expect(v1.status, JSON.stringify(v1.body)).toBe(200);
    expect(verifyMatrixSignature(v1.body, 'is.test', 'ed25519:0', ephemeralPublic)).toBe(true);
    const other = Buffer.from(nacl.sign.keyPair().secretKey.slice(0, 32)).toString('base64').replace(/=+$/, '');
    const forged = await srv.call('POST', `${V1}/sign-ed25519`, { mxid: '@jo:hs.example', token: inv.token, private_key: other });
    expect(forged.status).toBe(403);
    expect(forged.body.errcode).toBe('M_UNAUTHORIZED');
    const unknown = await srv.call('POST', `${V1}/sign-ed25519`, { mxid: '@jo:hs.example', token: 'nope', private_key: privateKey });
    expect(unknown.status).toBe(404);
    expect(unknown.body.errcode).toBe('M_UNRECOGNIZED');
    const missing = await srv.call('POST', `${V1}/sign-ed25519`, { mxid: '@jo:hs.example' });
    expect(missing.body).toEqual({ errcode: 'M_MISSING_PARAMS', error: 'Missing parameters: token,private_key' });
    expect((await srv.call('POST', `${V1}/sign-ed25519?token=${inv.token}`)).body).toEqual({
      errcode: 'M_MISSING_PARAMS',
      error: 'Missing parameters: mxid,private_key',
    });
    const v2Missing = await srv.call('POST', `${V2}/sign-ed25519?${q.toString()}`, { mxid: '@jo:hs.example' }, bearer('@jo:hs.example'));
    expect(v2Missing.body).toEqual({ errcode: 'M_MISSING_PARAMS', error: 'Missing parameters: token,private_key' });
    // each value from the body or the query string; the body's value wins
    const mixed = await srv.call('POST', `${V1}/sign-ed25519?mxid=%40ignored%3Ahs.example&token=${inv.token}`, {
      mxid: '@jo:hs.example',
      private_key: privateKey,
    });
    expect(mixed.status, JSON.stringify(mixed.body)).toBe(200);
    expect(mixed.body.mxid).toBe('@jo:hs.example');
    const bodyWins = await srv.call('POST', `${V1}/sign-ed25519?${q.toString()}`, { token: 'not-the-token' });
    expect(bodyWins.status).toBe(404);
  });

  it('signs through the invite email signurl exactly as a web client follows it: POST {mxid}, no access token', async () => {
    for (const version of ['v1', 'v2'] as const) {
      const address = uniqueAddress(`sign${version}`);
      const res = await srv.call(
        'POST',
        `${version === 'v1' ? V1 : V2}/store-invite`,
        { medium: 'email', address, room_id: '!sign:hs.example', sender: '@alice:hs.example' },
        version === 'v2' ? bearer('@alice:hs.example') : {},
      );
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      const ephemeral = res.body.public_keys[1].public_key as string;
      const { signurl } = await readInviteMail(smtp, address);
      // v1 is served, so even a v2 invitation's signurl is the v1 endpoint a token-less client can use
      expect(signurl.startsWith(`${srv.url}${V1}/sign-ed25519?`), signurl).toBe(true);
      const mxid = `@invitee-${version}:hs.example`;
      const signed = await fetch(signurl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ mxid }),
      });
      const body = (await signed.json()) as any;
      expect(signed.status, JSON.stringify(body)).toBe(200);
      expect(body).toMatchObject({ mxid, sender: '@alice:hs.example', token: res.body.token });
      expect(verifyMatrixSignature(body, 'is.test', 'ed25519:0', ephemeral)).toBe(true);
      expect(verifyMatrixSignature(body, 'is.test', 'ed25519:0', serverKey)).toBe(false);
    }
  });

  it('retries a failing homeserver with backoff: three 500s, then exactly one success', async () => {
    onbind.respond = (_c, i) => (i < 3 ? { status: 500, body: { errcode: 'M_UNKNOWN', error: 'down' } } : { status: 200, body: {} });
    const address = uniqueAddress('kim');
    const inv = await storeInvite(address);
    await bind(address, `@kim:${hs.serverName}`);
    const row = await until('delivered', async () => {
      const r = (await outboxRows()).find((x) => JSON.parse(x.body).address === address.toLowerCase());
      return r?.status === 'delivered' && r;
    });
    expect(onbind.calls).toHaveLength(4);
    expect(Number(row.attempts)).toBe(4);
    expect(Number(row.last_status)).toBe(200);
    // every retry sent the very same signed body
    for (const c of onbind.calls) expect(c.body).toEqual(onbind.calls[0]!.body);
    const invite = await knex('invites').where({ token: inv.token }).first();
    expect(invite.delivered_at).not.toBeNull();
  });

  it('stops on a permanent 403 and records why', async () => {
    onbind.respond = (c) =>
      c.body?.mxid?.startsWith('@lee:') ? { status: 403, body: { errcode: 'M_FORBIDDEN', error: 'no thanks' } } : { status: 200, body: {} };
    const address = uniqueAddress('lee');
    const inv = await storeInvite(address);
    await bind(address, `@lee:${hs.serverName}`);
    const row = await until('failed', async () => {
      const r = (await outboxRows()).find((x) => JSON.parse(x.body).address === address.toLowerCase());
      return r?.status === 'failed' && r;
    });
    expect(row.last_error).toContain('403');
    expect(row.last_error).toContain('M_FORBIDDEN');
    // another delivery goes through afterwards, proving the worker ran again without retrying the 403
    const other = uniqueAddress('mo');
    await storeInvite(other);
    await bind(other, `@mo:${hs.serverName}`);
    await until('second delivery', async () => onbind.calls.some((c) => c.body.mxid.startsWith('@mo:')));
    expect(onbind.calls.filter((c) => c.body.mxid.startsWith('@lee:'))).toHaveLength(1);
    expect((await knex('invites').where({ token: inv.token }).first()).delivered_at).toBeNull();
  });

  it('never gives a recycled address the first binder invites', async () => {
    const address = uniqueAddress('pat');
    const old = await storeInvite(address);
    // the first owner's homeserver is down while they bind, then they unbind
    onbind.respond = (c) => (c.body?.mxid?.startsWith('@pat-old:') ? { status: 503 } : { status: 200, body: {} });
    const first = await bind(address, `@pat-old:${hs.serverName}`);
    await onbind.waitForCalls(1);
    const unbind = await srv.call('POST', `${V1}/3pid/unbind`, {
      mxid: `@pat-old:${hs.serverName}`,
      threepid: { medium: 'email', address },
      sid: first.sid,
      client_secret: first.clientSecret,
    });
    expect(unbind.status).toBe(200);
    // the address goes to someone else, who is then invited
    const fresh = await storeInvite(address, { room_id: '!new:hs.example' });
    await bind(address, `@pat-new:${hs.serverName}`);
    await until('the new owner onbind', async () => onbind.calls.some((c) => c.body.mxid.startsWith('@pat-new:')));
    const toNew = onbind.calls.filter((c) => c.body.mxid.startsWith('@pat-new:'));
    expect(toNew).toHaveLength(1);
    expect(toNew[0]!.body.invites.map((i: any) => i.token)).toEqual([fresh.token]);
    // the old invite is the first binder's only: its retries still go to the first binder
    onbind.respond = () => ({ status: 200, body: {} });
    await until(
      'old invite delivered to the first owner',
      async () => (await knex('invites').where({ token: old.token }).first()).delivered_at !== null,
    );
    for (const c of onbind.calls) {
      const tokens = c.body.invites.map((i: any) => i.token);
      if (tokens.includes(old.token)) expect(c.body.mxid).toBe(`@pat-old:${hs.serverName}`);
    }
  });

  it('delivers 500 pending invites in bounded chunks, each exactly once', async () => {
    const address = uniqueAddress('quinn');
    const store = srv.service.deps.invites;
    const now = Date.now();
    const tokens: string[] = [];
    for (let i = 0; i < 500; i++) {
      const token = `bulk${i.toString().padStart(4, '0')}${counter}x${'a'.repeat(20)}`;
      tokens.push(token);
      await store.insertInvite(
        {
          medium: 'email',
          address: address.toLowerCase(),
          roomId: `!r${i}:hs.example`,
          sender: '@alice:hs.example',
          token,
          ephemeralPublicKey: `k${counter}${i}`.padEnd(43, 'A'),
          fields: {},
          createdAt: now - 1000,
          expiresAt: now + 86_400_000,
        },
        { kind: 'invite', recipient: address, payload: {}, createdAt: now },
      );
    }
    await bind(address, `@quinn:${hs.serverName}`);
    await until(
      'all 500 delivered',
      async () => Number((await knex('invites').whereIn('token', tokens).whereNotNull('delivered_at').count({ n: '*' }))[0]!.n) === 500,
      60_000,
    );
    const calls = onbind.calls.filter((c) => c.body.mxid.startsWith('@quinn:'));
    expect(calls).toHaveLength(5);
    for (const c of calls) {
      expect(c.body.invites.length).toBeLessThanOrEqual(100);
      expect(verifyMatrixSignature(c.body, 'is.test', 'ed25519:0', serverKey)).toBe(true);
    }
    const sent = calls.flatMap((c) => c.body.invites.map((i: any) => i.token)).sort();
    expect(sent).toEqual([...tokens].sort());
  });

  it('looks up thousands of addresses per call', async () => {
    const mxid = `@many:${hs.serverName}`;
    const bound: string[] = [];
    for (let i = 0; i < 3; i++) {
      const a = uniqueAddress(`many${i}`);
      bound.push(a.toLowerCase());
      await bind(a, mxid);
    }
    const pepper = (await srv.call('GET', `${V2}/hash_details`, undefined, bearer(mxid))).body.lookup_pepper as string;
    const addresses = Array.from({ length: 2500 }, (_, i) => `nobody${i}@example.org email`).concat(bound.map((a) => `${a} email`));
    const queries: string[] = [];
    const onQuery = (q: { sql: string }) => queries.push(q.sql);
    knex.on('query', onQuery);
    let res;
    try {
      res = await srv.call('POST', `${V2}/lookup`, { algorithm: 'none', pepper, addresses }, bearer(mxid));
    } finally {
      knex.off('query', onQuery);
    }
    expect(res.status).toBe(200);
    expect(Object.keys(res.body.mappings).sort()).toEqual(bound.map((a) => `${a} email`).sort());
    // 2503 entries: three batches of at most 1000, each one indexed IN query on lookup_hash
    const lookups = queries.filter((q) => /from [`"]associations[`"]/i.test(q));
    expect(lookups).toHaveLength(3);
    for (const q of lookups) expect(q).toMatch(/[`"]lookup_hash[`"] in/i);
  });
});

describe.each(testDatabases())('the invite signurl with v1 disabled on $name', (db) => {
  it('points at v2, which signs only for a client holding an identity-server access token', async () => {
    const { url, dispose } = await db.create();
    const smtp = await startSmtp();
    const srv = await startTestServer({
      dbUrl: url,
      auth: testAuth,
      overrides: { ...smtpConfig(smtp.port), server: { v1Enabled: false } },
    });
    try {
      const address = uniqueAddress('nov1');
      const res = await srv.call(
        'POST',
        `${V2}/store-invite`,
        { medium: 'email', address, room_id: '!sign:hs.example', sender: '@alice:hs.example' },
        bearer('@alice:hs.example'),
      );
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      const { signurl } = await readInviteMail(smtp, address);
      expect(signurl.startsWith(`${srv.url}${V2}/sign-ed25519?`), signurl).toBe(true);
      const post = (headers: Record<string, string>) =>
        fetch(signurl, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...headers },
          body: JSON.stringify({ mxid: '@nov1:hs.example' }),
        });
      // v2 reads the body only, so the signurl's query string does not help: the client must send all three, and
      // the body is checked before the access token (the wire contract's order)
      const partial = await post({});
      expect(partial.status).toBe(400);
      expect(await partial.json()).toMatchObject({ errcode: 'M_MISSING_PARAMS', error: 'Missing parameters: token,private_key' });
      const u = new URL(signurl);
      const signed = await srv.call(
        'POST',
        `${V2}/sign-ed25519`,
        { mxid: '@nov1:hs.example', token: u.searchParams.get('token'), private_key: u.searchParams.get('private_key') },
        bearer('@nov1:hs.example'),
      );
      expect(signed.status, JSON.stringify(signed.body)).toBe(200);
      expect(verifyMatrixSignature(signed.body, 'is.test', 'ed25519:0', res.body.public_keys[1].public_key)).toBe(true);
      expect(srv.violations).toEqual([]);
    } finally {
      await srv.stop();
      await smtp.stop();
      await dispose();
    }
  });
});

describe.each(testDatabases())('lookup pepper rotation on $name', (db) => {
  it('rehashes every association when the operator sets a new pepper; the old one gets M_INVALID_PEPPER', async () => {
    const { url, dispose } = await db.create();
    const auth = { authenticate: async () => ({ account: { userId: '@x:hs.example' }, termsAccepted: true }) };
    const headers = { authorization: 'Bearer any' };
    const first = await startTestServer({ dbUrl: url, auth, overrides: { binding: { lookupPepper: 'pepperA' } } });
    let second;
    try {
      const now = Date.now();
      await insertAssociation(first.service.deps, {
        medium: 'email',
        address: 'rot@example.org',
        mxid: '@rot:hs.example',
        ts: now,
        notBefore: now - 1,
        notAfter: now + 3_600_000,
      });
      const hashA = createHash('sha256').update('rot@example.org email pepperA').digest('base64url');
      expect((await first.call('GET', `${V2}/hash_details`, undefined, headers)).body.lookup_pepper).toBe('pepperA');
      expect(
        (await first.call('POST', `${V2}/lookup`, { algorithm: 'sha256', pepper: 'pepperA', addresses: [hashA] }, headers)).body.mappings,
      ).toEqual({ [hashA]: '@rot:hs.example' });
      await first.service.stop();
      second = await startTestServer({ dbUrl: url, dataDir: first.dataDir, auth, overrides: { binding: { lookupPepper: 'pepperB' } } });
      expect((await second.call('GET', `${V2}/hash_details`, undefined, headers)).body.lookup_pepper).toBe('pepperB');
      const stale = await second.call('POST', `${V2}/lookup`, { algorithm: 'sha256', pepper: 'pepperA', addresses: [hashA] }, headers);
      expect(stale.status).toBe(400);
      expect(stale.body.errcode).toBe('M_INVALID_PEPPER');
      const hashB = createHash('sha256').update('rot@example.org email pepperB').digest('base64url');
      expect(
        (await second.call('POST', `${V2}/lookup`, { algorithm: 'sha256', pepper: 'pepperB', addresses: [hashB, hashA] }, headers)).body
          .mappings,
      ).toEqual({ [hashB]: '@rot:hs.example' });
      expect((await second.call('POST', `${V1}/bulk_lookup`, { threepids: [['email', 'ROT@example.org']] })).body.threepids).toEqual([
        ['email', 'ROT@example.org', '@rot:hs.example'],
      ]);
      expect(second.violations).toEqual([]);
      expect(first.violations).toEqual([]);
    } finally {
      await second?.stop();
      rmSync(first.dataDir, { recursive: true, force: true });
      await dispose();
    }
  });
});
