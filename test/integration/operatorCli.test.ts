// The operator's command line (src/cli), run as a real process against the database a running Tessera uses:
// listing and revoking invitations (seen at once by every instance, the email never sent), and rotating the
// signing key (the new key signs, the old one stays valid and co-signs invitations, then retires).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { testDatabases } from '../helpers/databases.js';
import { settle, startTestServer, type TestServer } from '../helpers/server.js';
import { smtpConfig, startSmtp, until, type TestSmtp } from '../helpers/smtp.js';
import { freePort, ROOT } from '../helpers/process.js';
import { sentTo } from '../helpers/verificationMail.js';
import { verifyMatrixSignature } from '../helpers/signatures.js';
import { buildOnbindBody } from '../../src/associations/bind.js';

const exec = promisify(execFile);
const V1 = '/_matrix/identity/api/v1';
const DAY = 24 * 3600_000;

describe.each(testDatabases())('tessera operator commands on $name', (db) => {
  let url: string;
  let dispose: () => Promise<void>;
  let srv: TestServer;
  /** A second instance on the same database (MariaDB only: two in-process SQLite writers would block each other). */
  let peer: TestServer | undefined;
  let smtp: TestSmtp | undefined;
  let smtpPort: number;
  let offset = 0;

  /** Runs `tessera <args>` as its own process on the server's database and data directory. */
  const tessera = async (...args: string[]) =>
    exec(process.execPath, [join(ROOT, 'node_modules/tsx/dist/cli.mjs'), join(ROOT, 'src/cli/tessera.ts'), ...args], {
      env: { PATH: process.env.PATH ?? '', TESSERA_DATABASE_URL: url, TESSERA_DATA_DIR: srv.dataDir, TESSERA_SERVER_NAME: 'is.test' },
    }).then(
      (r) => ({ code: 0, out: r.stdout, err: r.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout, err: e.stderr }),
    );

  const storeInvite = async (server: TestServer, address: string, room = '!abuse:hs.example', sender = '@spammer:hs.example') => {
    const res = await server.call('POST', `${V1}/store-invite`, { medium: 'email', address, room_id: room, sender });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body as { token: string; public_key: string; public_keys: { public_key: string }[] };
  };
  const ephemeralValid = async (server: TestServer, key: string) =>
    (await server.call('GET', `${V1}/pubkey/ephemeral/isvalid?public_key=${encodeURIComponent(key)}`)).body.valid as boolean;

  /** The onbind body the running server would sign now for one invitation with this token. */
  const onbindBodyFor = (token: string) =>
    buildOnbindBody(srv.service.deps, { medium: 'email', address: 'a@example.org', mxid: '@a:hs', ts: 1, notBefore: 1, notAfter: 2 }, [
      {
        id: 1,
        medium: 'email',
        address: 'a@example.org',
        roomId: '!r:hs',
        sender: '@s:hs',
        token,
        ephemeralPublicKey: '',
        fields: {},
        createdAt: 0,
        expiresAt: 1,
      },
    ]) as { invites: { signed: { signatures: Record<string, Record<string, string>> } }[] } & Record<string, unknown>;

  beforeAll(async () => {
    const created = await db.create();
    url = created.url;
    dispose = created.dispose;
    smtpPort = await freePort(); // nothing listens yet: invitation emails stay pending, retried
    const overrides = {
      ...smtpConfig(smtpPort),
      // a failed send is retried a minute later: the revoke below never races a send attempt
      mail: { ...smtpConfig(smtpPort).mail, initialBackoffMs: 60_000, maxBackoffMs: 60_000, pollIntervalMs: 100 },
      keys: { refreshIntervalMs: 100 },
    };
    srv = await startTestServer({ dbUrl: url, clock: () => Date.now() + offset, overrides });
    if (db.name === 'mysql')
      peer = await startTestServer({ dbUrl: url, dataDir: srv.dataDir, clock: () => Date.now() + offset, overrides });
  });
  afterAll(async () => {
    try {
      await settle([() => peer?.stop(), () => srv?.stop(), () => smtp?.stop()]);
    } finally {
      await dispose?.();
    }
  });
  afterEach(() => {
    expect(srv.violations.splice(0)).toEqual([]);
    expect(peer?.violations.splice(0) ?? []).toEqual([]);
  });

  it('answers --help for every command, and usage errors with exit code 2', async () => {
    const overview = await tessera('--help');
    expect(overview.code).toBe(0);
    for (const command of ['invites list', 'invites revoke', 'keys list', 'keys rotate', 'keys generate']) {
      expect(overview.out).toContain(command);
      const help = await tessera(...command.split(' '), '--help');
      expect(help.code, command).toBe(0);
      expect(help.out).toMatch(new RegExp(`^usage: tessera ${command}`));
    }
    expect((await tessera()).code).toBe(2);
    expect(await tessera('invites', 'frobnicate')).toMatchObject({ code: 2, err: expect.stringContaining('unknown command') });
    expect(await tessera('invites', 'list')).toMatchObject({ code: 2, err: expect.stringContaining('give --address, --room or --sender') });
    expect(await tessera('invites', 'list', '--room', '!r:hs', '--limit', 'lots')).toMatchObject({ code: 2 });
    expect(await tessera('invites', 'revoke')).toMatchObject({ code: 2 });
    expect(await tessera('invites', 'revoke', 'not a token!')).toMatchObject({ code: 2 });
    expect(await tessera('invites', 'revoke', '999999')).toMatchObject({ code: 3, err: expect.stringContaining('no such invitation') });
  });

  it('lists invitations by address, room and sender without tokens or keys', async () => {
    const address = `Listed.${Date.now()}@Example.org`;
    const inv = await storeInvite(srv, address, '!listed:hs.example', '@lister:hs.example');
    const byAddress = await tessera('invites', 'list', '--address', address);
    expect(byAddress.code).toBe(0);
    expect(byAddress.out).toContain(address.toLowerCase());
    expect(byAddress.out).toMatch(/\bpending\b/);
    const byRoom = await tessera('invites', 'list', '--room', '!listed:hs.example', '--json');
    const rows = JSON.parse(byRoom.out) as { id: number; address: string; sender: string; state: string }[];
    expect(rows).toEqual([expect.objectContaining({ sender: '@lister:hs.example', state: 'pending' })]);
    expect(rows[0]!.address).not.toBe(address.toLowerCase()); // redacted unless listed by address
    const bySender = await tessera('invites', 'list', '--sender', '@lister:hs.example', '--full-addresses');
    expect(bySender.out).toContain(address.toLowerCase());
    for (const out of [byAddress.out, byRoom.out, bySender.out]) {
      expect(out).not.toContain(inv.token);
      for (const k of inv.public_keys) expect(out).not.toContain(k.public_key);
    }
    expect((await tessera('invites', 'list', '--room', '!nobody:hs.example')).out).toContain('no unexpired invitations match');
  });

  it('revokes an invitation: its key is invalid at once on every instance, its email is never sent, no bind claims it', async () => {
    const revoked = `Revoked.${Date.now()}@Example.org`;
    const kept = `Kept.${Date.now()}@Example.org`;
    const bad = await storeInvite(srv, revoked);
    // its email: tried once against the closed relay, now waiting a minute for its retry
    const mailRow = () => srv.service.db.knex('mail_outbox').where('payload', 'like', `%"token":"${bad.token}"%`).first();
    await until(async () => {
      const row = await mailRow();
      return row && Number(row.attempts) >= 1 && row.locked_by === null;
    }, 20_000);
    const servers = [srv, ...(peer ? [peer] : [])];
    for (const s of servers) expect(await ephemeralValid(s, bad.public_keys[1]!.public_key)).toBe(true); // now cached

    const listed = JSON.parse((await tessera('invites', 'list', '--address', revoked, '--json')).out) as { id: number }[];
    expect(listed).toHaveLength(1);
    const result = await tessera('invites', 'revoke', String(listed[0]!.id));
    expect(result.code, result.err).toBe(0);
    expect(result.out).toContain('answers invalid on every instance');
    expect(result.out).toContain('had not been sent and never will be');
    // at once: no waiting here, the command returned only once every instance's cache had aged out
    for (const s of servers) expect(await ephemeralValid(s, bad.public_keys[1]!.public_key)).toBe(false);
    expect(await srv.service.stores.invites.pendingInvitesFor('email', revoked.toLowerCase(), Date.now() + offset)).toEqual([]);
    expect((await srv.call('POST', `${V1}/sign-ed25519`, { mxid: '@x:hs.example', token: bad.token, private_key: 'x' })).status).toBe(404);

    expect(await mailRow()).toBeUndefined();

    // the relay comes up: a new invitation's email goes out, the revoked one's never will (its row is gone)
    smtp = await startSmtp({ port: smtpPort });
    await storeInvite(srv, kept);
    await until(() => sentTo(smtp!, kept).length > 0, 20_000, 'the new invitation email');
    expect(sentTo(smtp, revoked)).toEqual([]);
    expect(await tessera('invites', 'revoke', bad.token)).toMatchObject({ code: 3 });
  });

  it('refuses to revoke an invitation a bind has claimed', async () => {
    const address = `Claimed.${Date.now()}@Example.org`;
    const inv = await storeInvite(srv, address);
    await srv.service.db.knex('invites').where({ token: inv.token }).update({ claimed_by: 1 });
    const result = await tessera('invites', 'revoke', inv.token);
    expect(result).toMatchObject({ code: 1, err: expect.stringContaining('claimed by a bind') });
    expect(await ephemeralValid(srv, inv.public_keys[1]!.public_key)).toBe(true);
  });

  it('rotates the signing key: the new key signs, the old one stays valid and co-signs invitations, then retires', async () => {
    const before = await storeInvite(srv, `Rotate.${Date.now()}@Example.org`);
    const oldKey = before.public_key;
    expect((await srv.call('GET', '/_matrix/identity/v2/pubkey/ed25519:0')).body.public_key).toBe(oldKey);

    const rotated = await tessera('keys', 'rotate');
    expect(rotated.code, rotated.err).toBe(0);
    expect(rotated.out).toContain('ed25519:1 signs from now on');
    expect(existsSync(join(srv.dataDir, 'signing.key.retired', '0.key'))).toBe(true);
    // every instance follows the database's record (keys.refreshIntervalMs, 100 ms here)
    const servers = [srv, ...(peer ? [peer] : [])];
    for (const s of servers) {
      await until(
        async () => (await s.call('GET', '/_matrix/identity/v2/pubkey/ed25519:1')).status === 200,
        10_000,
        'the rotated key served',
      );
    }
    const newKey = (await srv.call('GET', '/_matrix/identity/v2/pubkey/ed25519:1')).body.public_key as string;
    expect(newKey).not.toBe(oldKey);
    const after = await storeInvite(srv, `Rotated.${Date.now()}@Example.org`);
    expect(after.public_key).toBe(newKey);
    for (const s of servers) {
      expect((await s.call('GET', `${V1}/pubkey/isvalid?public_key=${encodeURIComponent(oldKey)}`)).body).toEqual({ valid: true });
      expect((await s.call('GET', '/_matrix/identity/v2/pubkey/ed25519:0')).body).toEqual({ public_key: oldKey });
    }
    // an invitation stored under the old key: its onbind `signed` block verifies with the key the homeserver holds
    const body = onbindBodyFor(before.token);
    expect(verifyMatrixSignature(body.invites[0]!.signed, 'is.test', 'ed25519:0', oldKey)).toBe(true);
    expect(verifyMatrixSignature(body.invites[0]!.signed, 'is.test', 'ed25519:1', newKey)).toBe(true);
    expect(verifyMatrixSignature(body, 'is.test', 'ed25519:1', newKey)).toBe(true);

    const listed = await tessera('keys', 'list');
    expect(listed.out).toMatch(/ed25519:0\s+valid until/);
    expect(listed.out).toMatch(/ed25519:1\s+signing/);
    // a second rotation from a host whose file is current works; keys.rotatedKeyLifetimeMs later the old key retires
    offset = 91 * DAY;
    for (const s of servers) {
      expect((await s.call('GET', `${V1}/pubkey/isvalid?public_key=${encodeURIComponent(oldKey)}`)).body).toEqual({ valid: false });
      expect((await s.call('GET', '/_matrix/identity/v2/pubkey/ed25519:0')).status).toBe(404);
      expect((await s.call('GET', `${V1}/pubkey/isvalid?public_key=${encodeURIComponent(newKey)}`)).body).toEqual({ valid: true });
    }
    const retiredBody = onbindBodyFor('t');
    expect(Object.keys(retiredBody.invites[0]!.signed.signatures['is.test']!)).toEqual(['ed25519:1']);
    offset = 0;
  });
});
