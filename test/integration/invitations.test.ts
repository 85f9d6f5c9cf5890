// store-invite and the public-key endpoints over real HTTP, on SQLite and (when configured) MariaDB.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { testDatabases } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import type { Authenticator } from '../../src/platform/http/security.js';
import { insertAssociation } from '../helpers/associations.js';

const V1 = '/_matrix/identity/api/v1';
const V2 = '/_matrix/identity/v2';

const invite = (over: Record<string, unknown> = {}) => ({
  medium: 'email',
  address: 'Alice.Smith@Example.org',
  room_id: '!room:hs.example',
  sender: '@bob:hs.example',
  room_name: 'Tea party',
  sender_display_name: 'Bob',
  ...over,
});

/** A real Authenticator, as the accounts issue will plug in: two tokens, one without terms. */
const testAuth: Authenticator = {
  async authenticate(token) {
    if (token === 'good-token') return { account: { userId: '@bob:hs.example' }, termsAccepted: true };
    if (token === 'no-terms') return { account: { userId: '@bob:hs.example' }, termsAccepted: false };
    return undefined;
  },
};

async function rowCounts(srv: TestServer): Promise<Record<string, number>> {
  const knex = srv.service.db.knex;
  const out: Record<string, number> = {};
  for (const t of ['invites', 'ephemeral_keys', 'mail_outbox']) {
    const [row] = await knex(t).count({ n: '*' });
    out[t] = Number(row!.n);
  }
  return out;
}

describe.each(testDatabases())('invitations on $name', (db) => {
  let srv: TestServer;
  let dispose: () => Promise<void>;
  let now = Date.now();

  beforeAll(async () => {
    const created = await db.create();
    dispose = created.dispose;
    srv = await startTestServer({ dbUrl: created.url, clock: () => now, auth: testAuth });
  });
  afterAll(async () => {
    await srv?.stop();
    await dispose?.();
  });
  afterEach(() => {
    // every response of every test matched the OpenAPI document
    expect(srv.violations).toEqual([]);
  });

  it('stores a v1 invite and answers with both keys, absolute v1 validity URLs and a redacted name', async () => {
    const res = await srv.call('POST', `${V1}/store-invite`, invite());
    expect(res.status).toBe(200);
    const body = res.body;
    expect(body.token).toMatch(/^[0-9a-zA-Z.=_-]{32,255}$/);
    expect(body.display_name).toBe('Ali...@Exa...');
    expect(body.public_keys).toHaveLength(2);
    const [longTerm, ephemeral] = body.public_keys;
    expect(longTerm.public_key).toBe(body.public_key);
    expect(longTerm.key_validity_url).toBe(`${srv.url}${V1}/pubkey/isvalid`);
    expect(ephemeral.key_validity_url).toBe(`${srv.url}${V1}/pubkey/ephemeral/isvalid`);
    expect(ephemeral.public_key).not.toBe(longTerm.public_key);
    for (const key of body.public_keys) {
      const check = await fetch(`${key.key_validity_url}?public_key=${encodeURIComponent(key.public_key)}`);
      expect(await check.json()).toEqual({ valid: true });
    }
    const pub = await srv.call('GET', `${V1}/pubkey/ed25519:0`);
    expect(pub.body.public_key).toBe(body.public_key);
  });

  it('writes the invite, its ephemeral key and one email row together, with the address case-folded', async () => {
    const before = await rowCounts(srv);
    const res = await srv.call('POST', `${V1}/store-invite`, invite({ address: 'Straße@Example.ORG', 'com.example.extra': { x: 1 } }));
    expect(res.status).toBe(200);
    const after = await rowCounts(srv);
    expect(after.invites).toBe(before.invites! + 1);
    expect(after.ephemeral_keys).toBe(before.ephemeral_keys! + 1);
    expect(after.mail_outbox).toBe(before.mail_outbox! + 1);
    const stored = await srv.service.deps.invites.findInviteByToken(res.body.token);
    expect(stored?.address).toBe('strasse@example.org');
    expect(stored?.ephemeralPublicKey).toBe(res.body.public_keys[1].public_key);
    expect(stored?.fields['com.example.extra']).toEqual({ x: 1 });
    expect(stored?.fields.room_name).toBe('Tea party');
  });

  it('accepts null for absent optional fields and unknown extra keys', async () => {
    const res = await srv.call(
      'POST',
      `${V1}/store-invite`,
      invite({ room_alias: null, room_avatar_url: null, room_type: null, extra_thing: 'kept' }),
    );
    expect(res.status).toBe(200);
  });

  it('lists every missing parameter, then rejects malformed fields', async () => {
    let res = await srv.call('POST', `${V1}/store-invite`, { medium: 'email', address: 'a@b.example' });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ errcode: 'M_MISSING_PARAMS', error: 'Missing parameters: room_id,sender' });
    res = await srv.call('POST', `${V1}/store-invite`, invite({ sender: null }));
    expect(res.body.errcode).toBe('M_MISSING_PARAMS');
    // room_id is opaque, but not empty and not longer than the cap
    for (const room_id of ['', `!${'x'.repeat(255)}`, 42]) {
      res = await srv.call('POST', `${V1}/store-invite`, invite({ room_id }));
      expect(res.status, String(room_id)).toBe(400);
      expect(res.body.errcode, String(room_id)).toBe('M_INVALID_PARAM');
      expect(res.body.error, String(room_id)).toContain('room_id');
    }
    res = await srv.call('POST', `${V1}/store-invite`, invite({ address: 42 }));
    expect(res.body.errcode).toBe('M_INVALID_PARAM');
  });

  it('answers M_NOT_JSON for bodies that are not a JSON object, and M_TOO_LARGE over the cap', async () => {
    for (const bad of ['[1,2]', '{oops', '"text"', '']) {
      const res = await srv.call('POST', `${V1}/store-invite`, bad, { 'content-type': 'application/json' });
      expect(res.status, bad).toBe(400);
      expect(['M_NOT_JSON', 'M_MISSING_PARAMS'], bad).toContain(res.body.errcode);
    }
    const notJson = await srv.call('POST', `${V1}/store-invite`, '{oops', { 'content-type': 'application/json' });
    expect(notJson.body.errcode).toBe('M_NOT_JSON');
    const huge = await srv.call('POST', `${V1}/store-invite`, invite({ room_name: 'x'.repeat(300_000) }));
    expect(huge.status).toBe(413);
    expect(huge.body.errcode).toBe('M_TOO_LARGE');
  });

  it('refuses other media and anything but one plain mailbox, storing nothing', async () => {
    const before = await rowCounts(srv);
    const msisdn = await srv.call('POST', `${V1}/store-invite`, invite({ medium: 'msisdn', address: '447700900000' }));
    expect(msisdn.status).toBe(400);
    expect(msisdn.body).toEqual({ errcode: 'M_UNRECOGNIZED', error: "Didn't understand medium 'msisdn'" });
    for (const address of [
      'Alice <alice@example.org>',
      'a@example.org, b@example.org',
      'a@example.org\r\nBcc: evil@example.org',
      'no-at-sign.example.org',
      'two@@example.org',
      'a@localhost',
      '"quoted"@example.org',
      'a@[127.0.0.1]',
      `${'x'.repeat(250)}@example.org`,
    ]) {
      const res = await srv.call('POST', `${V1}/store-invite`, invite({ address }));
      expect(res.status, address).toBe(400);
      expect(res.body.errcode, address).toBe('M_INVALID_EMAIL');
    }
    expect(await rowCounts(srv)).toEqual(before);
  });

  it('answers M_THREEPID_IN_USE with the bound mxid, case-insensitively, before the medium check', async () => {
    await insertAssociation(srv.service.deps, {
      medium: 'email',
      address: 'bound@example.org',
      mxid: '@carol:hs.example',
      ts: now,
      notBefore: now - 1000,
      notAfter: now + 3_600_000,
    });
    const res = await srv.call('POST', `${V1}/store-invite`, invite({ address: 'BOUND@example.org' }));
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ errcode: 'M_THREEPID_IN_USE', mxid: '@carol:hs.example' });
    await insertAssociation(srv.service.deps, {
      medium: 'msisdn',
      address: '447700900001',
      mxid: '@dan:hs.example',
      ts: now,
      notBefore: now - 1000,
      notAfter: now + 3_600_000,
    });
    const phone = await srv.call('POST', `${V1}/store-invite`, invite({ medium: 'msisdn', address: '447700900001' }));
    expect(phone.body).toMatchObject({ errcode: 'M_THREEPID_IN_USE', mxid: '@dan:hs.example' });
  });

  it('requires a valid token on v2, then terms, then sender = token user; answers v2 URLs', async () => {
    const noToken = await srv.call('POST', `${V2}/store-invite`, invite());
    expect(noToken.status).toBe(401);
    expect(noToken.body.errcode).toBe('M_UNAUTHORIZED');
    const badToken = await srv.call('POST', `${V2}/store-invite`, invite(), { authorization: 'Bearer nope' });
    expect(badToken.status).toBe(401);
    // validation comes before authentication
    const missing = await srv.call('POST', `${V2}/store-invite`, { medium: 'email' });
    expect(missing.body.errcode).toBe('M_MISSING_PARAMS');
    const terms = await srv.call('POST', `${V2}/store-invite`, invite(), { authorization: 'Bearer no-terms' });
    expect(terms.status).toBe(403);
    expect(terms.body.errcode).toBe('M_TERMS_NOT_SIGNED');
    const spoofed = await srv.call('POST', `${V2}/store-invite`, invite({ sender: '@mallory:hs.example' }), {
      authorization: 'Bearer good-token',
    });
    expect(spoofed.status).toBe(403);
    expect(spoofed.body.errcode).toBe('M_UNAUTHORIZED');
    const ok = await srv.call('POST', `${V2}/store-invite?access_token=good-token`, invite());
    expect(ok.status).toBe(200);
    expect(ok.body.public_keys[0].key_validity_url).toBe(`${srv.url}${V2}/pubkey/isvalid`);
    expect(ok.body.public_keys[1].key_validity_url).toBe(`${srv.url}${V2}/pubkey/ephemeral/isvalid`);
  });

  it('checks ephemeral keys in either base64 alphabet, with + turned into a space', async () => {
    let key = '';
    for (let i = 0; i < 40 && !/[-_]/.test(key); i++) {
      key = (await srv.call('POST', `${V1}/store-invite`, invite())).body.public_keys[1].public_key;
    }
    expect(key).toMatch(/[-_]/);
    const standard = key.replace(/-/g, '+').replace(/_/g, '/');
    for (const form of [key, standard, `${standard}=`, standard.replace(/\+/g, ' ')]) {
      const res = await srv.call('GET', `${V2}/pubkey/ephemeral/isvalid?public_key=${encodeURIComponent(form)}`);
      expect(res.body, form).toEqual({ valid: true });
    }
    const unknown = await srv.call('GET', `${V2}/pubkey/ephemeral/isvalid?public_key=${'A'.repeat(43)}`);
    expect(unknown.body).toEqual({ valid: false });
    const missing = await srv.call('GET', `${V2}/pubkey/ephemeral/isvalid`);
    expect(missing.status).toBe(400);
    expect(missing.body.errcode).toBe('M_MISSING_PARAMS');
  });

  it('expires ephemeral keys with their invitation, and the sweeper deletes them', async () => {
    const res = await srv.call('POST', `${V1}/store-invite`, invite());
    const key = res.body.public_keys[1].public_key;
    const lifetime = srv.service.deps.config.invites.lifetimeMs;
    const saved = now;
    now += lifetime + 1;
    try {
      expect((await srv.call('GET', `${V1}/pubkey/ephemeral/isvalid?public_key=${key}`)).body).toEqual({ valid: false });
      const removed = await srv.service.deps.invites.deleteExpiredInvites(now, 10_000);
      expect(removed).toBeGreaterThan(0);
      expect(await srv.service.deps.invites.findInviteByToken(res.body.token)).toBeUndefined();
    } finally {
      now = saved;
    }
  });

  it('serves long-term keys by id (URL-encoded colon too) and validity for them', async () => {
    const a = await srv.call('GET', `${V2}/pubkey/ed25519%3A0`);
    expect(a.status).toBe(200);
    expect(Buffer.from(a.body.public_key, 'base64')).toHaveLength(32);
    const unknown = await srv.call('GET', `${V2}/pubkey/ed25519:7`);
    expect(unknown.status).toBe(404);
    expect(unknown.body.errcode).toBe('M_NOT_FOUND');
    expect((await srv.call('GET', `${V2}/pubkey/isvalid?public_key=${encodeURIComponent(a.body.public_key)}`)).body).toEqual({
      valid: true,
    });
    expect((await srv.call('GET', `${V2}/pubkey/isvalid?public_key=${'B'.repeat(43)}`)).body).toEqual({ valid: false });
  });

  it('answers the status, versions, unknown paths and wrong methods as Matrix errors', async () => {
    expect((await srv.call('GET', V2)).body).toEqual({});
    expect((await srv.call('GET', V1)).body).toEqual({});
    const versions = await srv.call('GET', '/_matrix/identity/versions');
    expect(versions.body.versions).toContain('v1.1');
    const unknown = await srv.call('GET', `${V2}/no-such-thing`);
    expect(unknown.status).toBe(404);
    expect(unknown.body.errcode).toBe('M_UNRECOGNIZED');
    const elsewhere = await srv.call('GET', '/favicon.ico');
    expect(elsewhere.status).toBe(404);
    expect(elsewhere.body.errcode).toBe('M_UNRECOGNIZED');
    const method = await srv.call('DELETE', `${V2}/store-invite`);
    expect(method.status).toBe(405);
    expect(method.body.errcode).toBe('M_UNRECOGNIZED');
    const preflight = await fetch(`${srv.url}${V2}/store-invite`, { method: 'OPTIONS' });
    expect(preflight.headers.get('access-control-allow-origin')).toBe('*');
    // CORS headers on every answer, errors included (web clients read error bodies too)
    for (const res of [
      await fetch(`${srv.url}${V1}/pubkey/ed25519:0`),
      await fetch(`${srv.url}${V2}/no-such-thing`),
      await fetch(`${srv.url}${V1}/store-invite`, { method: 'POST', body: '{' }),
    ]) {
      expect(res.headers.get('access-control-allow-origin')).toBe('*');
      expect(res.headers.get('access-control-allow-methods')).toBe('GET, POST, PUT, DELETE, OPTIONS');
      expect(res.headers.get('access-control-allow-headers')).toBe('Origin, X-Requested-With, Content-Type, Accept, Authorization');
    }
  });

  it('never answers 500 to malformed input', async () => {
    const bodies: unknown[] = [
      null,
      0,
      true,
      [],
      {},
      { medium: [] },
      { medium: 'email', address: {}, room_id: 1, sender: false },
      invite({ room_id: '!'.padEnd(300, 'x') }),
      invite({ address: '\u0000@x.example' }),
      invite({ address: '😀@😀.example' }),
      invite({ sender: '@a:b', room_alias: 5 }),
      invite({ 'org.matrix.web_client_location': ['x'] }),
    ];
    for (const b of bodies) {
      const res = await srv.call('POST', `${V1}/store-invite`, JSON.stringify(b), { 'content-type': 'application/json' });
      expect(res.status, JSON.stringify(b)).toBeLessThan(500);
      expect(typeof res.body.errcode === 'string' || res.status === 200, JSON.stringify(b)).toBe(true);
    }
  });

  it('stores large but valid invitations, long senders, and refuses addresses that outgrow the column when folded', async () => {
    // 50 extra fields just under their 4096-byte bound: ~200 KB of fields, above MySQL's TEXT (64 KiB)
    const extras = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`com.example.big${i}`, 'r'.repeat(4000)]));
    const big = await srv.call('POST', `${V1}/store-invite`, invite(extras));
    expect(big.status).toBe(200);
    const stored = await srv.service.deps.invites.findInviteByToken(big.body.token);
    expect(stored?.fields['com.example.big49']).toBe('r'.repeat(4000));
    const longSender = await srv.call('POST', `${V1}/store-invite`, invite({ sender: `@${'s'.repeat(240)}:hs.example` }));
    expect(longSender.status).toBe(200);
    const folded = await srv.call(
      'POST',
      `${V1}/store-invite`,
      invite({ address: `a@${'ß'.repeat(60)}.${'ß'.repeat(60)}.${'ß'.repeat(60)}.example` }),
    );
    expect(folded.status).toBe(400);
    expect(folded.body.errcode).toBe('M_INVALID_EMAIL');
  });

  it('answers broken percent-encoding and undecodable bodies with 400, not 500', async () => {
    const path = await srv.call('GET', `${V2}/pubkey/%E0%A4%A`);
    expect(path.status).toBe(400);
    expect(path.body.errcode).toBe('M_INVALID_PARAM');
    const gz = await srv.call('POST', `${V1}/store-invite`, 'not gzip at all', {
      'content-type': 'application/json',
      'content-encoding': 'gzip',
    });
    expect(gz.status).toBe(400);
    expect(gz.body.errcode).toBe('M_NOT_JSON');
  });

  it('never logs tokens, private keys or full addresses', async () => {
    const res = await srv.call('POST', `${V1}/store-invite`, invite({ address: 'secret.person@private.example' }));
    // wait for the email (an .eml file here, no SMTP) so the worker's log lines are in too
    const mailDir = join(srv.dataDir, 'mail');
    let privateKey: string | undefined;
    for (let i = 0; i < 200 && !privateKey; i++) {
      for (const f of existsSync(mailDir) ? readdirSync(mailDir).filter((n) => n.endsWith('.eml')) : []) {
        const raw = readFileSync(join(mailDir, f), 'utf8').replace(/=\r?\n/g, '');
        if (raw.includes(res.body.token)) privateKey = /private_key(?:=|%3D)([A-Za-z0-9_-]{43})/.exec(raw)?.[1];
      }
      if (!privateKey) await new Promise((r) => setTimeout(r, 25));
    }
    expect(privateKey).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const joined = srv.logs.join('\n');
    expect(joined).toContain('mail written');
    expect(joined).not.toContain(res.body.token);
    expect(joined).not.toContain(privateKey);
    expect(joined).not.toContain('secret.person@private.example');
    expect(joined).not.toContain('secret.person');
  });
});

describe('restarts and configuration', () => {
  it('keeps the long-term key and the invites across a restart', async () => {
    const [db] = testDatabases();
    const { url, dispose } = await db!.create();
    const first = await startTestServer({ dbUrl: url });
    try {
      const res = await first.call('POST', `${V1}/store-invite`, invite());
      expect(res.status).toBe(200);
      await first.service.stop();
      const second = await startTestServer({ dbUrl: url, dataDir: first.dataDir });
      try {
        const pub = await second.call('GET', `${V2}/pubkey/ed25519:0`);
        expect(pub.body.public_key).toBe(res.body.public_key);
        const valid = await second.call('GET', `${V1}/pubkey/ephemeral/isvalid?public_key=${res.body.public_keys[1].public_key}`);
        expect(valid.body).toEqual({ valid: true });
      } finally {
        await second.stop();
      }
    } finally {
      await dispose();
    }
  });

  it('answers 404 M_UNRECOGNIZED on every v1 path when v1 is switched off', async () => {
    const [db] = testDatabases();
    const { url, dispose } = await db!.create();
    const srv = await startTestServer({ dbUrl: url, overrides: { server: { v1Enabled: false } } });
    try {
      for (const path of [`${V1}/store-invite`, `${V1}/pubkey/ed25519:0`, V1]) {
        const res = await srv.call('GET', path);
        expect(res.status).toBe(404);
        expect(res.body.errcode).toBe('M_UNRECOGNIZED');
      }
      expect((await srv.call('GET', `${V2}/pubkey/ed25519:0`)).status).toBe(200);
    } finally {
      await srv.stop();
      await dispose();
    }
  });

  it('refuses invitations the operator blocked', async () => {
    const [db] = testDatabases();
    const { url, dispose } = await db!.create();
    const srv = await startTestServer({
      dbUrl: url,
      overrides: { invites: { blockedServers: ['Spam.Example'], blockedRooms: ['!bad:hs.example'], blockedKeywords: ['Free Crypto'] } },
    });
    try {
      for (const sender of ['@x:spam.example', '@x:SPAM.example:8448']) {
        const a = await srv.call('POST', `${V1}/store-invite`, invite({ sender }));
        expect(a.status, sender).toBe(403);
        expect(a.body.errcode, sender).toBe('M_UNAUTHORIZED');
      }
      expect((await srv.call('POST', `${V1}/store-invite`, invite({ sender: '@x:notspam.example' }))).status).toBe(200);
      const keyword = await srv.call('POST', `${V1}/store-invite`, invite({ room_name: 'get FREE crypto now' }));
      expect(keyword.status).toBe(403);
      expect((await srv.call('POST', `${V1}/store-invite`, invite({ sender_display_name: 'freedom crypto' }))).status).toBe(200);
      const b = await srv.call('POST', `${V1}/store-invite`, invite({ room_id: '!bad:hs.example' }));
      expect(b.status).toBe(403);
      expect(srv.violations).toEqual([]);
    } finally {
      await srv.stop();
      await dispose();
    }
  });
});
