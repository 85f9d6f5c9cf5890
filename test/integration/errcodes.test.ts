// Every errcode the document promises, provoked over real HTTP: the generic ones (malformed, missing, oversized
// and ill-typed input, missing credentials, unsigned terms, the v1 switch, the database down) on every operation that
// documents them, driven by openapi/identity.yaml itself, and the operation-specific ones through the flows that lead
// to them.
// The test server rejects any answer the document does not list; test/helpers/errcodeCoverage.ts fails a whole run
// in which some documented errcode was never answered.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { operations } from '../../generated/identity.validators.js';
import { testDatabases } from '../helpers/databases.js';
import { errcodesAt, identityDocument, resolveRef } from '../helpers/identityDocument.js';
import { settle, startTestServer, type TestServer } from '../helpers/server.js';
import { smtpConfig, startSmtp, type TestSmtp } from '../helpers/smtp.js';
import { readInviteMail, readVerificationMail } from '../helpers/verificationMail.js';
import type { Authenticator } from '../../src/platform/http/security.js';
import { startFakeHomeserver, type FakeHomeserver } from '../helpers/fakeHomeserver.js';
import { holdSqliteConnection, logLines, stackLines, startTcpProxy, throughProxy, type TcpProxy } from '../helpers/outage.js';
import { until } from '../helpers/smtp.js';

const V1 = '/_matrix/identity/api/v1';
const V2 = '/_matrix/identity/v2';
const BODY_LIMIT = 4096;
const SESSION_LIFETIME = 3_600_000;

const doc = identityDocument;
const resolve = (node: any): any => resolveRef(node);

interface Operation {
  id: keyof typeof operations;
  method: string;
  path: string;
  op: any;
}

const ALL: Operation[] = Object.entries<any>(doc.paths).flatMap(([path, item]) =>
  Object.entries<any>(item).map(([method, op]) => ({ id: op.operationId, method: method.toUpperCase(), path, op })),
);

/** The errcodes the document lists for an operation at a status. */
const documented = (o: Operation, status: number): string[] => errcodesAt(o.op, status);

/** A concrete path: path parameters filled with `value`. */
const pathOf = (o: Operation, value = 'ed25519:0') => o.path.replace(/\{[^}]+\}/g, encodeURIComponent(value));

const bodySchema = (o: Operation) => resolve(resolve(o.op.requestBody)?.content?.['application/json']?.schema);
const requiredQuery = (o: Operation): string[] =>
  (o.op.parameters ?? [])
    .map(resolve)
    .filter((p: any) => p.in === 'query' && p.required)
    .map((p: any) => p.name);

/** Input that passes validation on the operations whose credentials or terms are tested (valid shape, unknown ids). */
const VALID: Record<string, { body?: unknown; query?: string }> = {
  storeInviteV2: { body: { medium: 'email', address: 'valid@example.org', room_id: '!r:hs.example', sender: '@alice:hs.example' } },
  emailRequestTokenV2: { body: { client_secret: 'secret', email: 'valid@example.org', send_attempt: 1 } },
  emailSubmitTokenPostV2: { body: { sid: 'nosuch', client_secret: 'secret', token: '123456' } },
  getValidated3pidV2: { query: 'sid=nosuch&client_secret=secret' },
  bindV2: { body: { sid: 'nosuch', client_secret: 'secret', mxid: '@alice:hs.example' } },
  unbindV2: { body: { mxid: '@alice:hs.example', threepid: { medium: 'email', address: 'valid@example.org' } } },
  lookupUsersV2: { body: { addresses: [], algorithm: 'none', pepper: 'x' } },
  blindlySignStuffV2: { body: { mxid: '@bob:hs.example', token: 'nosuch', private_key: 'nosuch' } },
  agreeToTerms: { body: { user_accepts: [] } },
  getAccount: {},
  logout: {},
  getHashDetails: {},
};

const SOME_KEY = Buffer.alloc(32, 7).toString('base64').replace(/=+$/, '');
const THREEPID = { medium: 'email', address: 'down@example.org' };
const SESSION = { sid: 'nosuch', client_secret: 'secret' };

/**
 * Input that passes validation and reaches the database, for every operation that documents 503 (v2 ones are sent
 * with a real access token); the operations that need no database answer as usual with the same input.
 */
const DOWN: Record<string, { body?: unknown; query?: string }> = {
  storeInviteV2: VALID.storeInviteV2!,
  invite: VALID.storeInviteV2!,
  isEphemeralPubKeyValidV2: { query: `public_key=${SOME_KEY}` },
  ephemeralValid: { query: `public_key=${SOME_KEY}` },
  isPubKeyValidV2: { query: `public_key=${SOME_KEY}` },
  valid: { query: `public_key=${SOME_KEY}` },
  agreeToTerms: VALID.agreeToTerms!,
  emailRequestTokenV2: VALID.emailRequestTokenV2!,
  createEmailSession: VALID.emailRequestTokenV2!,
  emailSubmitTokenPostV2: VALID.emailSubmitTokenPostV2!,
  postValidateEmail: VALID.emailSubmitTokenPostV2!,
  emailSubmitTokenGetV2: { query: 'sid=nosuch&client_secret=secret&token=123456' },
  getValidateEmail: { query: 'sid=nosuch&client_secret=secret&token=123456' },
  getValidated3pidV2: VALID.getValidated3pidV2!,
  validate: VALID.getValidated3pidV2!,
  bindV2: { body: { ...SESSION, mxid: '@alice:hs.example' } },
  bind: { body: { ...SESSION, mxid: '@alice:hs.example' } },
  unbindV2: { body: { ...SESSION, mxid: '@alice:hs.example', threepid: THREEPID } },
  unbind: { body: { ...SESSION, mxid: '@alice:hs.example', threepid: THREEPID } },
  lookupUsersV2: { body: { addresses: ['down@example.org email'], algorithm: 'none', pepper: 'x' } },
  lookup: { query: 'medium=email&address=down%40example.org' },
  bulkLookup: { body: { threepids: [['email', 'down@example.org']] } },
  blindlySignStuffV2: { body: { mxid: '@bob:hs.example', token: 'nosuch', private_key: SOME_KEY } },
  sign: { body: { mxid: '@bob:hs.example', token: 'nosuch', private_key: SOME_KEY } },
  getAccount: {},
  logout: {},
  getHashDetails: {},
};

/** v2 tokens: `tok:<mxid>` has accepted the terms, `unsigned:<mxid>` has not. */
const auth: Authenticator = {
  async authenticate(token) {
    const [kind, userId] = token.split(/:(.*)/s) as [string, string | undefined];
    if (!userId) return undefined;
    if (kind === 'tok') return { account: { userId }, termsAccepted: true };
    if (kind === 'unsigned') return { account: { userId }, termsAccepted: false };
    return undefined;
  },
};
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe.each(testDatabases())('errcodes on $name', (db) => {
  let srv: TestServer;
  let v1Off: TestServer;
  let limited: TestServer;
  let smtp: TestSmtp;
  let offset = 0;
  const disposers: (() => Promise<void>)[] = [];

  const start = async (overrides: Parameters<typeof startTestServer>[0]['overrides'] = {}, clock = () => Date.now() + offset) => {
    const created = await db.create();
    disposers.push(created.dispose);
    return startTestServer({
      dbUrl: created.url,
      auth,
      clock,
      overrides: {
        ...smtpConfig(smtp.port),
        ...overrides,
        server: { bodyLimitBytes: BODY_LIMIT, ...overrides.server },
        binding: { sessionLifetimeMs: SESSION_LIFETIME, tokenLifetimeMs: SESSION_LIFETIME },
      },
    });
  };

  beforeAll(async () => {
    smtp = await startSmtp();
    srv = await start();
    v1Off = await start({ server: { v1Enabled: false } });
    // Rate limits count in fixed windows of the clock: a clock that stands still keeps both calls in one window.
    const still = Date.now();
    limited = await start({ rateLimits: { storeInvitePerIp: 1 } }, () => still);
  });
  afterAll(async () => {
    // Every server, the SMTP server and every database are released even when a stop() reports violations.
    try {
      await settle([srv, v1Off, limited].map((s) => () => s?.stop()));
    } finally {
      await settle([() => smtp?.stop(), ...disposers]);
    }
  });

  /** A raw request: `body` is sent as given (a string) or as JSON. */
  async function send(server: TestServer, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
    const raw = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: raw === undefined ? headers : { 'content-type': 'application/json', ...headers },
      body: raw,
    });
    const text = await res.text();
    let parsed: any = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // an HTML page
    }
    return { status: res.status, body: parsed, headers: res.headers };
  }

  const expectError = (res: { status: number; body: any }, status: number, errcode: string) => {
    expect({ status: res.status, errcode: res.body?.errcode }, JSON.stringify(res.body)).toEqual({ status, errcode });
  };

  for (const o of ALL) {
    it(`${o.id} (${o.method} ${o.path}) answers the generic errors it documents`, async () => {
      const bad = documented(o, 400);
      const schema = bodySchema(o);
      if (bad.includes('M_NOT_JSON')) expectError(await send(srv, o.method, pathOf(o), '{"not json'), 400, 'M_NOT_JSON');
      if (schema && bad.includes('M_MISSING_PARAMS')) expectError(await send(srv, o.method, pathOf(o), {}), 400, 'M_MISSING_PARAMS');
      if (schema && bad.includes('M_INVALID_PARAM')) {
        // every required field present, each of the wrong type
        const fields: string[] = schema.required?.length ? schema.required : Object.keys(schema.properties ?? {});
        expectError(await send(srv, o.method, pathOf(o), Object.fromEntries(fields.map((f) => [f, 12345]))), 400, 'M_INVALID_PARAM');
      }
      if (schema && bad.includes('M_INVALID_PARAM')) {
        // every required field present (of the wrong type): a name that is no Unicode, a value nested too deep
        const required = Object.fromEntries((schema.required ?? []).map((f: string) => [f, 12345]));
        const surrogate = await send(srv, o.method, pathOf(o), { ...required, 'bad\ud800': 1 });
        expectError(surrogate, 400, 'M_INVALID_PARAM');
        expect(surrogate.body.error).toContain("'bad\\ud800'");
        const deep = await send(
          srv,
          o.method,
          pathOf(o),
          `${JSON.stringify(required).slice(0, -1)}${Object.keys(required).length > 0 ? ',' : ''}"deep":${'['.repeat(40)}${']'.repeat(40)}}`,
        );
        expectError(deep, 400, 'M_INVALID_PARAM');
        expect(deep.body.error).toContain("'deep'");
      }
      if (bad.includes('M_NOT_JSON')) {
        // a body that is not brotli under Content-Encoding: br
        const res = await fetch(`${srv.url}${pathOf(o)}`, {
          method: o.method,
          headers: { 'content-type': 'application/json', 'content-encoding': 'br' },
          body: '{"not":"brotli"}',
        });
        expectError({ status: res.status, body: await res.json() }, 400, 'M_NOT_JSON');
      }
      const query = requiredQuery(o);
      if (query.length > 0 && bad.includes('M_MISSING_PARAMS')) expectError(await send(srv, o.method, pathOf(o)), 400, 'M_MISSING_PARAMS');
      if (query.length > 0 && !schema && bad.includes('M_INVALID_PARAM')) {
        // %ED%A0%80: a lone surrogate encoded as if it were a character, which is not UTF-8
        const [first, ...others] = query;
        const res = await send(srv, o.method, `${pathOf(o)}?${[`${first}=%ED%A0%80`, ...others.map((q) => `${q}=x`)].join('&')}`);
        expectError(res, 400, 'M_INVALID_PARAM');
        expect(res.body.error).toContain(`'${first}'`);
      }
      if (query.length > 0 && bad.includes('M_INVALID_PARAM')) {
        const tooLong = query.map((q) => `${q}=${'x'.repeat(3000)}`).join('&');
        expectError(await send(srv, o.method, `${pathOf(o)}?${tooLong}`), 400, 'M_INVALID_PARAM');
      }
      if (o.path.includes('{') && bad.includes('M_INVALID_PARAM'))
        expectError(await send(srv, o.method, pathOf(o, 'x'.repeat(200))), 400, 'M_INVALID_PARAM');
      if (documented(o, 413).includes('M_TOO_LARGE'))
        expectError(await send(srv, o.method, pathOf(o), { padding: 'x'.repeat(BODY_LIMIT) }), 413, 'M_TOO_LARGE');

      const valid = VALID[o.id];
      const path = valid?.query ? `${pathOf(o)}?${valid.query}` : pathOf(o);
      if (documented(o, 401).includes('M_UNAUTHORIZED') && operations[o.id].secured) {
        expect(valid, `${o.id}: add valid input to VALID`).toBeDefined();
        expectError(await send(srv, o.method, path, valid!.body), 401, 'M_UNAUTHORIZED');
        expectError(await send(srv, o.method, path, valid!.body, bearer('tok-unknown')), 401, 'M_UNAUTHORIZED');
      }
      if (documented(o, 403).includes('M_TERMS_NOT_SIGNED')) {
        expect(valid, `${o.id}: add valid input to VALID`).toBeDefined();
        expectError(await send(srv, o.method, path, valid!.body, bearer('unsigned:@alice:hs.example')), 403, 'M_TERMS_NOT_SIGNED');
      }
      if (o.path.startsWith(V1) && documented(o, 404).includes('M_UNRECOGNIZED')) {
        expectError(await send(v1Off, o.method, pathOf(o), o.method === 'GET' ? undefined : {}), 404, 'M_UNRECOGNIZED');
      }
    });
  }

  it('answers a store-invite refused for its content with the errcode that says why', async () => {
    const invite = { medium: 'email', address: 'someone@example.org', room_id: '!r:hs.example', sender: '@alice:hs.example' };
    for (const [path, headers] of [
      [`${V1}/store-invite`, {}],
      [`${V2}/store-invite`, bearer('tok:@alice:hs.example')],
    ] as const) {
      expectError(await send(srv, 'POST', path, { ...invite, medium: 'msisdn' }, headers), 400, 'M_UNRECOGNIZED');
      expectError(await send(srv, 'POST', path, { ...invite, address: 'Someone <someone@example.org>' }, headers), 400, 'M_INVALID_EMAIL');
    }
    // v2: the sender must be the token's user
    expectError(await send(srv, 'POST', `${V2}/store-invite`, invite, bearer('tok:@mallory:hs.example')), 403, 'M_UNAUTHORIZED');
    // over the per-IP limit
    expect((await send(limited, 'POST', `${V2}/store-invite`, invite, bearer('tok:@alice:hs.example'))).status).toBe(200);
    const over = await send(limited, 'POST', `${V2}/store-invite`, invite, bearer('tok:@alice:hs.example'));
    expectError(over, 429, 'M_LIMIT_EXCEEDED');
    expect(over.body.retry_after_ms).toBeGreaterThan(0);
  });

  it("answers unknown keys and invitation tokens, and keys that are not the invitation's, as documented", async () => {
    expectError(await send(srv, 'GET', `${V1}/pubkey/ed25519:99`), 404, 'M_NOT_FOUND');
    expectError(await send(srv, 'GET', `${V2}/pubkey/ed25519:99`), 404, 'M_NOT_FOUND');
    const alice = bearer('tok:@alice:hs.example');
    const address = `sign.${Date.now()}@example.org`;
    const stored = await send(
      srv,
      'POST',
      `${V2}/store-invite`,
      { medium: 'email', address, room_id: '!r:hs.example', sender: '@alice:hs.example' },
      alice,
    );
    expect(stored.status).toBe(200);
    const signurl = new URL((await readInviteMail(smtp, address)).signurl);
    const token = signurl.searchParams.get('token')!;
    const someoneElsesKey = Buffer.alloc(32, 7).toString('base64').replace(/=+$/, '');
    const bob = bearer('tok:@bob:hs.example');
    expectError(
      await send(srv, 'POST', `${V2}/sign-ed25519`, { mxid: '@bob:hs.example', token: 'nosuch', private_key: someoneElsesKey }, bob),
      404,
      'M_UNRECOGNIZED',
    );
    expectError(
      await send(srv, 'POST', `${V2}/sign-ed25519`, { mxid: '@bob:hs.example', token, private_key: someoneElsesKey }, bob),
      403,
      'M_UNAUTHORIZED',
    );
    expectError(
      await send(srv, 'POST', `${V2}/sign-ed25519`, { mxid: '@bob:hs.example', token, private_key: 'short' }, bob),
      400,
      'M_INVALID_PARAM',
    );
    expectError(
      await send(srv, 'POST', `${V1}/sign-ed25519`, { mxid: '@bob:hs.example', token, private_key: 'short' }),
      400,
      'M_INVALID_PARAM',
    );
  });

  it('answers each stage of a validation session with the errcode of that stage, on v1 and v2', async () => {
    const alice = bearer('tok:@alice:hs.example');
    const unknown = { sid: 'nosuch', client_secret: 'secret' };
    const threepid = (address: string) => ({ medium: 'email', address });
    for (const [base, headers] of [
      [V1, {}],
      [V2, alice],
    ] as const) {
      // no such session
      expectError(
        await send(srv, 'GET', `${base}/3pid/getValidated3pid?sid=nosuch&client_secret=secret`, undefined, headers),
        404,
        'M_NO_VALID_SESSION',
      );
      expectError(
        await send(srv, 'POST', `${base}/validate/email/submitToken`, { ...unknown, token: '123456' }, headers),
        404,
        'M_NO_VALID_SESSION',
      );
      expectError(
        await send(srv, 'POST', `${base}/3pid/bind`, { ...unknown, mxid: '@alice:hs.example' }, headers),
        404,
        'M_NO_VALID_SESSION',
      );
      expectError(
        await send(
          srv,
          'POST',
          `${base}/3pid/unbind`,
          { ...unknown, mxid: '@alice:hs.example', threepid: threepid('a@example.org') },
          headers,
        ),
        404,
        'M_NO_VALID_SESSION',
      );

      // a session not validated yet
      const address = `stages.${base === V1 ? 'v1' : 'v2'}.${Date.now()}@example.org`;
      const client_secret = `secret${Date.now()}`;
      const requested = await send(
        srv,
        'POST',
        `${base}/validate/email/requestToken`,
        { client_secret, email: address, send_attempt: 1 },
        headers,
      );
      expect(requested.status, JSON.stringify(requested.body)).toBe(200);
      const session = { sid: requested.body.sid, client_secret };
      expectError(
        await send(srv, 'GET', `${base}/3pid/getValidated3pid?sid=${session.sid}&client_secret=${client_secret}`, undefined, headers),
        400,
        'M_SESSION_NOT_VALIDATED',
      );
      expectError(
        await send(srv, 'POST', `${base}/3pid/bind`, { ...session, mxid: '@alice:hs.example' }, headers),
        400,
        'M_SESSION_NOT_VALIDATED',
      );
      expectError(
        await send(srv, 'POST', `${base}/3pid/unbind`, { ...session, mxid: '@alice:hs.example', threepid: threepid(address) }, headers),
        400,
        'M_SESSION_NOT_VALIDATED',
      );
      if (base === V2)
        expectError(
          await send(
            srv,
            'POST',
            `${base}/validate/email/requestToken`,
            { client_secret, email: 'not an address', send_attempt: 1 },
            headers,
          ),
          400,
          'M_INVALID_EMAIL',
        );

      // validated and bound: a new invitation to the address is refused
      const { token } = await readVerificationMail(smtp, address);
      expect((await send(srv, 'POST', `${base}/validate/email/submitToken`, { ...session, token }, headers)).status).toBe(200);
      expect((await send(srv, 'POST', `${base}/3pid/bind`, { ...session, mxid: '@alice:hs.example' }, headers)).status).toBe(200);
      const inUse = await send(
        srv,
        'POST',
        `${V2}/store-invite`,
        { medium: 'email', address, room_id: '!r:hs.example', sender: '@alice:hs.example' },
        alice,
      );
      expectError(inUse, 400, 'M_THREEPID_IN_USE');
      expect(inUse.body.mxid).toBe('@alice:hs.example');

      // the session outlives its lifetime
      offset = SESSION_LIFETIME + 60_000;
      try {
        expectError(
          await send(srv, 'POST', `${base}/validate/email/submitToken`, { ...session, token }, headers),
          400,
          'M_SESSION_EXPIRED',
        );
        expectError(
          await send(srv, 'GET', `${base}/3pid/getValidated3pid?sid=${session.sid}&client_secret=${client_secret}`, undefined, headers),
          400,
          'M_SESSION_EXPIRED',
        );
        expectError(
          await send(srv, 'POST', `${base}/3pid/bind`, { ...session, mxid: '@alice:hs.example' }, headers),
          400,
          'M_SESSION_EXPIRED',
        );
        expectError(
          await send(srv, 'POST', `${base}/3pid/unbind`, { ...session, mxid: '@alice:hs.example', threepid: threepid(address) }, headers),
          400,
          'M_SESSION_EXPIRED',
        );
      } finally {
        offset = 0;
      }
    }
  });
  // The database taken away for real: on MariaDB/MySQL every connection through a proxy is reset; on SQLite its one
  // connection is held elsewhere (as a statement that never ends, or a stalled disk flush, holds it) past the pool's
  // acquire timeout. The server authenticates for real, so v2 operations meet the database at their access token.
  describe('with the database down', () => {
    let down: TestServer;
    let hs: FakeHomeserver;
    let proxy: TcpProxy | undefined;
    let release: (() => Promise<void>) | undefined;
    let token: string;
    let before: number;
    let openId: () => unknown;

    beforeAll(async () => {
      hs = await startFakeHomeserver();
      let n = 0;
      hs.route('GET', '/_matrix/federation/v1/openid/userinfo', { body: { sub: `@alice:${hs.serverName}` } });
      openId = () => ({ access_token: `openid-${++n}`, token_type: 'Bearer', matrix_server_name: hs.serverName, expires_in: 3600 });
      const created = await db.create();
      disposers.push(created.dispose);
      if (db.name === 'mysql') {
        const target = new URL(created.url);
        proxy = await startTcpProxy(target.hostname, Number(target.port || 3306));
      }
      down = await startTestServer({
        dbUrl: proxy ? throughProxy(created.url, proxy) : created.url,
        overrides: {
          ...smtpConfig(smtp.port),
          federation: { verifyTls: false, allow: ['127.0.0.1/32'] },
          // Each request waits this long for the held connection (10 s by default).
          database: { acquireTimeoutMs: 200 },
        },
      });
      const registered = await send(down, 'POST', `${V2}/account/register`, openId());
      expect(registered.status, JSON.stringify(registered.body)).toBe(200);
      token = registered.body.token;
      before = down.logs.length;
      if (proxy) proxy.cut();
      else release = await holdSqliteConnection(down.service);
    });
    afterAll(async () => {
      proxy?.restore();
      try {
        await release?.();
      } finally {
        await settle([() => down?.stop(), () => proxy?.stop(), () => hs?.stop()]);
      }
    });

    for (const o of ALL) {
      it(`${o.id} (${o.method} ${o.path}) answers 503 with Retry-After if it documents it, else as usual`, async () => {
        const input = o.id === 'registerAccount' ? { body: openId() } : DOWN[o.id];
        const path = input?.query ? `${pathOf(o)}?${input.query}` : pathOf(o);
        const res = await send(down, o.method, path, input?.body, operations[o.id].secured ? bearer(token) : {});
        if (documented(o, 503).length > 0) {
          expect(input, `${o.id}: add input that reaches the database to DOWN`).toBeDefined();
          expectError(res, 503, 'M_UNKNOWN');
          expect(res.body.error).toEqual(expect.any(String));
          expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
        } else {
          // It needs no database: its usual answer (the test server holds it to the document).
          expect(res.status, `${o.id}: ${JSON.stringify(res.body)}`).toBeLessThan(500);
        }
      });
    }

    it('logs the outage once, without stacks, and recovers once the database is back', async () => {
      await release?.();
      release = undefined;
      proxy?.restore();
      await until(async () => (await send(down, 'GET', `${V2}/hash_details`, undefined, bearer(token))).status === 200, 10_000, 'recovery');
      await until(() => logLines(down.logs.slice(before), 'INFO', 'database available again')[0], 10_000, 'the INFO line');
      const logs = down.logs.slice(before);
      expect(logLines(logs, 'WARN', 'database unavailable'), logs.join('\n')).toHaveLength(1);
      expect(logLines(logs, 'INFO', 'database available again')).toHaveLength(1);
      expect(logLines(logs, 'ERROR'), logs.join('\n')).toEqual([]);
      expect(stackLines(logs)).toEqual([]);
    });
  });
});
