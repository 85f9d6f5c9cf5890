// Hostile input at the door, over real HTTP on SQLite and (when configured) MariaDB: bodies nested too deep,
// store-invite extra fields too large or too many, text that is not well-formed Unicode (body strings, keys at any
// depth, query, path and form parameters), and bodies whose Content-Encoding does not decode. Each is the sender's
// own 400; none reaches a group commit, so the invitations sent beside them go through without a failed transaction.
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { testDatabases } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { storeInvite } from '../../src/invitations/storeInvite.js';
import { DomainError } from '../../src/platform/domainErrors.js';
import type { NewInvite } from '../../src/invitations/InviteStore.js';
import type { NewMail } from '../../src/mail/MailOutboxStore.js';

const V1 = '/_matrix/identity/api/v1';
const V2 = '/_matrix/identity/v2';

let counter = 0;
const invite = (over: Record<string, unknown> = {}) => ({
  medium: 'email',
  address: `hostile${++counter}@example.org`,
  room_id: '!room:hs.example',
  sender: '@bob:hs.example',
  room_name: 'Tea party',
  sender_display_name: 'Bob',
  ...over,
});

/** `{"a":{"a":...1...}}`, `depth` objects deep, as text: JSON.stringify of it would itself overflow the stack. */
const nestedText = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
/** An invitation whose extra field `field` holds `valueText` (JSON text), as the request body. */
const withRawExtra = (field: string, valueText: string, over: Record<string, unknown> = {}) =>
  `${JSON.stringify(invite(over)).slice(0, -1)},${JSON.stringify(field)}:${valueText}}`;

describe.each(testDatabases())('hostile input on $name', (db) => {
  let srv: TestServer;
  let dispose: () => Promise<void>;
  /** Every ROLLBACK the service's database connection ran. */
  const rollbacks: string[] = [];
  const onQuery = (q: { sql: string }) => {
    if (/^\s*rollback/i.test(q.sql)) rollbacks.push(q.sql);
  };

  beforeAll(async () => {
    const created = await db.create();
    dispose = created.dispose;
    srv = await startTestServer({
      dbUrl: created.url,
      auth: {
        async authenticate(token) {
          return token === 'good-token' ? { account: { userId: '@bob:hs.example' }, termsAccepted: true } : undefined;
        },
      },
    });
    srv.service.db.knex.on('query', onQuery);
  });
  afterAll(async () => {
    srv?.service.db.knex.off('query', onQuery);
    await srv?.stop();
    await dispose?.();
  });
  afterEach(() => {
    expect(srv.violations).toEqual([]);
  });

  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    srv.call('POST', path, typeof body === 'string' ? body : JSON.stringify(body), { 'content-type': 'application/json', ...headers });
  const expectRefused = (res: { status: number; body: any }, ...mentions: string[]) => {
    expect({ status: res.status, errcode: res.body?.errcode }, JSON.stringify(res.body)).toEqual({
      status: 400,
      errcode: 'M_INVALID_PARAM',
    });
    for (const m of mentions) expect(res.body.error).toContain(m);
  };
  const invites = async () => Number((await srv.service.db.knex('invites').count({ n: '*' }))[0]!.n);

  it('refuses an extra field nested 10,000 deep (about 50 KB) with 400 naming it, on v1 and v2, and stores nothing', async () => {
    const before = await invites();
    const poison = withRawExtra('com.example.poison', nestedText(10_000));
    expect(poison.length).toBeLessThan(64_000);
    expectRefused(await post(`${V1}/store-invite`, poison), "'com.example.poison'", 'deeper than 32 levels');
    expectRefused(await post(`${V2}/store-invite`, poison, { authorization: 'Bearer good-token' }), "'com.example.poison'");
    // arrays count as levels too
    expectRefused(
      await post(`${V1}/store-invite`, withRawExtra('com.example.list', `${'['.repeat(5000)}${']'.repeat(5000)}`)),
      "'com.example.list'",
    );
    expect(await invites()).toBe(before);
  });

  it('accepts a body nesting exactly 32 levels and refuses 33', async () => {
    // the body is level 1, so the extra field may nest 31 levels
    expect((await post(`${V1}/store-invite`, withRawExtra('com.example.deep', nestedText(31)))).status).toBe(200);
    expectRefused(await post(`${V1}/store-invite`, withRawExtra('com.example.deep', nestedText(32))), "'com.example.deep'");
  });

  it("bounds store-invite's extra fields: 4096 bytes of JSON each, 64 fields in all, names of 255 characters", async () => {
    // "x" * 4094 with its quotes is 4096 bytes; multi-byte characters count in UTF-8 bytes
    expect((await post(`${V1}/store-invite`, invite({ 'com.example.big': 'x'.repeat(4094) }))).status).toBe(200);
    expectRefused(await post(`${V1}/store-invite`, invite({ 'com.example.big': 'x'.repeat(4095) })), "'com.example.big'", '4096 bytes');
    expectRefused(await post(`${V1}/store-invite`, invite({ 'com.example.big': 'é'.repeat(2048) })), "'com.example.big'");
    expectRefused(await post(`${V1}/store-invite`, invite({ 'com.example.obj': { list: Array(3000).fill(1) } })), "'com.example.obj'");
    // the declared fields keep their own bounds: a 1024-character room name of 4-byte characters is fine
    expect((await post(`${V1}/store-invite`, invite({ room_name: '😀'.repeat(1024) }))).status).toBe(200);

    const fields = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`com.example.f${i}`, i]));
    expect((await post(`${V1}/store-invite`, invite(fields(64 - 6)))).status).toBe(200); // invite() has 6 fields
    expectRefused(await post(`${V1}/store-invite`, invite(fields(64 - 5))), 'more than 64 properties');

    expect((await post(`${V1}/store-invite`, invite({ [`n${'x'.repeat(254)}`]: 1 }))).status).toBe(200);
    const long = await post(`${V1}/store-invite`, invite({ [`n${'x'.repeat(255)}`]: 1 }));
    expectRefused(long, `'n${'x'.repeat(63)}...'`);
  });

  it('lets invitations sent beside poison ones through, and the group commit never rolls back', async () => {
    // the listener does see a rolled-back transaction
    rollbacks.length = 0;
    await expect(
      srv.service.db.transaction(async () => {
        throw new Error('rolled back on purpose');
      }),
    ).rejects.toThrow('rolled back on purpose');
    expect(rollbacks.length).toBeGreaterThan(0);

    rollbacks.length = 0;
    const before = await invites();
    const good = Array.from({ length: 30 }, () => JSON.stringify(invite()));
    const poison = Array.from({ length: 30 }, (_, i) =>
      i % 3 === 0
        ? withRawExtra('com.example.poison', nestedText(10_000))
        : i % 3 === 1
          ? JSON.stringify(invite({ room_name: 'tea \ud800 party' }))
          : JSON.stringify(invite({ 'com.example.big': 'x'.repeat(10_000) })),
    );
    // interleaved, all in flight at once: the good ones share group commits
    const sent = good.flatMap((g, i) => [g, poison[i]!]);
    const answers = await Promise.all(sent.map((body) => post(`${V1}/store-invite`, body)));
    expect(answers.filter((_, i) => i % 2 === 0).map((a) => a.status)).toEqual(good.map(() => 200));
    expect(answers.filter((_, i) => i % 2 === 1).map((a) => `${a.status} ${a.body.errcode}`)).toEqual(
      poison.map(() => '400 M_INVALID_PARAM'),
    );
    expect(await invites()).toBe(before + 30);
    expect(rollbacks).toEqual([]);
    expect(srv.logs.filter((l) => l.includes('unhandled error'))).toEqual([]);
  });

  it('fails an invitation whose fields cannot be serialised alone, before it joins a group commit', async () => {
    const store = srv.service.deps.invites;
    const item = (fields: Record<string, unknown>): [NewInvite, NewMail] => {
      const address = `direct${++counter}@example.org`;
      const token = `direct${counter}`.padEnd(32, 't');
      return [
        {
          medium: 'email',
          address,
          roomId: '!r:hs.example',
          sender: '@s:hs.example',
          token,
          ephemeralPublicKey: `direct${counter}`.padEnd(43, 'k'),
          fields,
          createdAt: Date.now(),
          expiresAt: Date.now() + 3_600_000,
        },
        { kind: 'invite', recipient: address, payload: { token }, createdAt: Date.now() },
      ];
    };
    rollbacks.length = 0;
    const before = await invites();
    // a BigInt cannot be written as JSON: JSON.stringify throws, as it would on a body nested too deep
    const items = [item({ a: 1 }), item({ n: 10n }), item({ b: 2 }), item({ c: 3 })];
    const results = await Promise.allSettled(items.map(([i, m]) => store.insertInvite(i, m)));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    expect(await invites()).toBe(before + 3);
    expect(rollbacks).toEqual([]);

    // store-invite itself serialises first: such input is its own 400, not a 500
    const refused = storeInvite(srv.service.deps, { ...invite(), n: 10n } as never, { version: 'v1', ip: '127.0.0.1' });
    await expect(refused).rejects.toBeInstanceOf(DomainError);
    await expect(refused).rejects.toMatchObject({ code: 'invalid_param' });
  });

  it('refuses lone surrogates and U+0000 in body strings and keys at any depth, naming the field', async () => {
    const before = await invites();
    expectRefused(await post(`${V1}/store-invite`, invite({ room_name: '\ud800' })), "'room_name'", 'lone surrogate');
    expectRefused(await post(`${V1}/store-invite`, invite({ room_id: '!x\udc00:hs.example' })), "'room_id'");
    expectRefused(await post(`${V1}/store-invite`, invite({ sender_display_name: 'Bob\u0000' })), "'sender_display_name'", 'U+0000');
    expectRefused(
      await post(`${V2}/store-invite`, invite({ room_name: 'x\udfff' }), { authorization: 'Bearer good-token' }),
      "'room_name'",
    );
    // keys, at the top (shown escaped) and nested; strings nested in arrays
    expectRefused(await post(`${V1}/store-invite`, invite({ 'bad\ud800key': 1 })), "'bad\\ud800key'", 'field name');
    expectRefused(await post(`${V1}/store-invite`, invite({ 'com.example.x': { ok: { '\udbff': 1 } } })), "'com.example.x'");
    expectRefused(await post(`${V1}/store-invite`, invite({ 'com.example.y': ['fine', ['no\u0000']] })), "'com.example.y'");
    // other operations too: a lookup's addresses, a requestToken's secret
    expectRefused(await post(`${V1}/bulk_lookup`, { threepids: [['email', 'a\ud800@example.org']] }), "'threepids'");
    expectRefused(
      await post(`${V1}/validate/email/requestToken`, { client_secret: 'se\u0000cret', email: 'a@example.org', send_attempt: 1 }),
      "'client_secret'",
    );
    // a form body's fields (form-encoded v1 bind)
    const form = await srv.call('POST', `${V1}/3pid/bind`, 'sid=a%00b&client_secret=x&mxid=%40a%3Ahs.example', {
      'content-type': 'application/x-www-form-urlencoded',
    });
    expectRefused(form, "'sid'", 'U+0000');
    expect(await invites()).toBe(before);
    // well-formed text outside the BMP is text like any other
    expect((await post(`${V1}/store-invite`, invite({ room_name: '😀 party', sender_display_name: '𝔅𝔬𝔟' }))).status).toBe(200);
  });

  it('refuses query and path parameters that are not UTF-8 once decoded, or hold U+0000, naming them', async () => {
    // %ED%A0%80 is U+D800 encoded as if it were a character: not UTF-8 (Node's parser alone would make it U+FFFD)
    for (const path of [`${V1}/pubkey/ephemeral/isvalid`, `${V2}/pubkey/isvalid`]) {
      expectRefused(await srv.call('GET', `${path}?public_key=%ED%A0%80`), "'public_key'", 'not UTF-8');
      expectRefused(await srv.call('GET', `${path}?public_key=ab%00cd`), "'public_key'", 'U+0000');
      expect((await srv.call('GET', `${path}?public_key=%F0%9F%98%80`)).body).toEqual({ valid: false });
    }
    expectRefused(await srv.call('GET', `${V1}/lookup?medium=email&address=a%ED%B0%80%40example.org`), "'address'");
    expectRefused(await srv.call('GET', `${V1}/lookup?medium=email&address=a%40example.org&x%FF=1`), 'parameter name');
    expectRefused(await srv.call('POST', `${V1}/store-invite?brand=%ED%A0%80`, invite()), "'brand'");
    const path = await srv.call('GET', `${V2}/pubkey/ed25519%3A0%00`);
    expect({ status: path.status, errcode: path.body.errcode }).toEqual({ status: 400, errcode: 'M_INVALID_PARAM' });
  });

  it('answers a body that does not decode under its Content-Encoding with a 4xx Matrix error, never 500', async () => {
    const good = JSON.stringify(invite());
    const encoded: [string, Buffer][] = [
      ['gzip', gzipSync(good)],
      ['deflate', deflateSync(good)],
      ['br', brotliCompressSync(good)],
    ];
    for (const [encoding, bytes] of encoded) {
      const res = await fetch(`${srv.url}${V1}/store-invite`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-encoding': encoding },
        body: new Uint8Array(bytes),
      });
      expect(res.status, encoding).toBe(200);
      // the same encoding over bytes that are not in it, or cut short
      for (const garbage of [Buffer.from(good), bytes.subarray(0, 8)]) {
        const bad = await fetch(`${srv.url}${V1}/store-invite`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'content-encoding': encoding },
          body: new Uint8Array(garbage),
        });
        expect(bad.status, `${encoding} ${garbage.length}`).toBe(400);
        expect((await bad.json()).errcode, encoding).toBe('M_NOT_JSON');
      }
    }
    for (const encoding of ['compress', 'x-unknown', 'gzip, br', 'BR']) {
      const res = await fetch(`${srv.url}${V1}/store-invite`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-encoding': encoding },
        body: good,
      });
      expect(res.status, encoding).toBe(400);
      expect((await res.json()).errcode, encoding).toBe('M_NOT_JSON');
    }
    expect(srv.logs.filter((l) => l.includes('unhandled error'))).toEqual([]);
  });
});
