// Moving from Sydent: a Sydent-layout database (test/helpers/sydentDb.ts) imported by the real command in its own
// process, then Tessera started on the result and driven over HTTP as homeservers and clients would.
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createHash } from 'node:crypto';
import BetterSqlite3 from 'better-sqlite3';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDatabases } from '../helpers/databases.js';
import { settle, startTestServer, type TestServer } from '../helpers/server.js';
import { smtpConfig, startSmtp, type TestSmtp } from '../helpers/smtp.js';
import { startFakeHomeserver, type FakeHomeserver } from '../helpers/fakeHomeserver.js';
import { routeOnbind, type OnbindEndpoint } from '../helpers/onbind.js';
import { verifyMatrixSignature } from '../helpers/signatures.js';
import { ROOT } from '../helpers/process.js';
import { writeSydent, type SydentFixture } from '../helpers/sydentDb.js';
import { generateKeyPair } from '../../src/keys/ed25519.js';
import { parseSigningKey } from '../../src/keys/KeyRing.js';
import { encodeUnpadded, encodeUrlSafe } from '../../src/platform/base64.js';
import { loadConfig } from '../../src/platform/config.js';

const exec = promisify(execFile);
const V1 = '/_matrix/identity/api/v1';
const V2 = '/_matrix/identity/v2';
const DAY_S = 24 * 3600;
const nowS = () => Math.floor(Date.now() / 1000);
const T1 = 1_600_000_000_000;
const T2 = 1_700_000_000_000;
const FAR = 4_000_000_000_000;

interface Run {
  code: number;
  out: string;
  err: string;
}

/** Runs the import command (npm run import-sydent's script) as its own process against `dbUrl` and `dataDir`. */
const importSydent = (
  fixture: { configFile: string },
  dbUrl: string,
  dataDir: string,
  args: string[] = [],
  env: Record<string, string> = {},
) =>
  exec(
    process.execPath,
    [join(ROOT, 'node_modules/tsx/dist/cli.mjs'), join(ROOT, 'scripts/import-sydent.ts'), '--sydent-config', fixture.configFile, ...args],
    { env: { PATH: process.env.PATH ?? '', TESSERA_DATABASE_URL: dbUrl, TESSERA_DATA_DIR: dataDir, ...env } },
  ).then(
    (r): Run => ({ code: 0, out: r.stdout, err: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }): Run => ({ code: e.code, out: e.stdout, err: e.stderr }),
  );

/** The report's line for `table`: read, imported, present, then the skipped reasons. */
const tableLine = (run: Run, table: string) => run.err.split('\n').find((l) => l.startsWith(`${table} `)) ?? `(no line for ${table})`;

describe.each(testDatabases())('importing Sydent into $name', (db) => {
  let dir: string;
  let fixture: SydentFixture;
  let url: string;
  let dataDir: string;
  let dispose: () => Promise<void>;
  let srv: TestServer | undefined;
  let hs: FakeHomeserver;
  let onbind: OnbindEndpoint;
  let smtp: TestSmtp;
  const ephemeral = generateKeyPair();
  const ephemeralPublic = encodeUrlSafe(ephemeral.publicKey);
  const expiredKey = encodeUrlSafe(generateKeyPair().publicKey);
  let firstImport: Run;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-sydent-'));
    dataDir = join(dir, 'tessera-data');
    hs = await startFakeHomeserver();
    onbind = routeOnbind(hs);
    smtp = await startSmtp();
    const created = await db.create();
    url = created.url;
    dispose = created.dispose;
    const now = nowS();
    fixture = writeSydent(join(dir, 'sydent'), (s) => {
      const local = s.prepare(
        'INSERT INTO local_threepid_associations (medium, address, mxid, ts, notBefore, notAfter) VALUES (?, ?, ?, ?, ?, ?)',
      );
      const global = s.prepare(
        'INSERT INTO global_threepid_associations (medium, address, mxid, ts, notBefore, notAfter, originServer, originId, sgAssoc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      );
      const aliceId = local.run('email', 'Alice@Example.org', '@alice:hs.example', T1, T1, FAR).lastInsertRowid;
      global.run('email', 'alice@example.org', '@alice:hs.example', T1, T1, FAR, 'sydent.example', aliceId, '{}');
      // a removal: the local row keeps the address with mxid NULL, the global row is gone
      local.run('email', 'removed@example.org', null, T1 + 5, null, null);
      // two rows for one address in different letter case (from before Sydent case-folded): the newer answers
      local.run('email', 'bob@example.org', '@old-bob:hs.example', T1, T1, FAR);
      local.run('email', 'BOB@example.org', '@bob:hs.example', T2, T2, FAR);
      // re-bound to another user: the local row was replaced, the older global row stayed behind
      const danId = local.run('email', 'dan@example.org', '@dan2:hs.example', T2, T2, FAR).lastInsertRowid;
      global.run('email', 'dan@example.org', '@dan1:hs.example', T1, T1, FAR, 'sydent.example', 999, '{}');
      global.run('email', 'dan@example.org', '@dan2:hs.example', T2, T2, FAR, 'sydent.example', danId, '{}');
      // removed later than a global row in another letter case that the removal did not match
      local.run('email', 'Eve@example.org', null, T2, null, null);
      global.run('email', 'EVE@example.org', '@eve:hs.example', T1, T1, FAR, 'sydent.example', 998, '{}');
      // this server's own global row without a local one: Sydent's lookups answered it
      global.run('email', 'zoe@example.org', '@zoe:hs.example', T1, T1, FAR, 'sydent.example', 997, '{}');
      global.run('email', 'peer@example.org', '@peer:hs.example', T1, T1, FAR, 'peer.example', 7, '{}');

      const invite = s.prepare(
        'INSERT INTO invite_tokens (medium, address, room_id, sender, token, received_ts, sent_ts) VALUES (?, ?, ?, ?, ?, ?, ?)',
      );
      invite.run('email', 'Carol@Example.org', '!tea:hs.example', '@alice:hs.example', 'pendingTokenFromSydent', now - 3600, null);
      invite.run('email', 'carol@example.org', '!old:hs.example', '@alice:hs.example', 'deliveredTokenFromSydent', now - 7200, now - 60);
      invite.run(
        'email',
        'carol@example.org',
        '!ancient:hs.example',
        '@alice:hs.example',
        'expiredTokenFromSydent',
        now - 200 * DAY_S,
        null,
      );
      invite.run('email', 'erin@example.org', '!abuse:hs.example', '@spammer:hs.example', 'revocableTokenFromSydent', now - 60, null);
      const key = s.prepare('INSERT INTO ephemeral_public_keys (public_key, verify_count, persistence_ts) VALUES (?, 0, ?)');
      key.run(ephemeralPublic, now - 3600);
      key.run(expiredKey, now - 200 * DAY_S);

      s.prepare('INSERT INTO accounts (user_id, created_ts, consent_version) VALUES (?, ?, ?)').run(
        '@alice:hs.example',
        Date.now() - 1000,
        null,
      );
      s.prepare('INSERT INTO tokens (token, user_id) VALUES (?, ?)').run('sydentAccessToken', '@alice:hs.example');
      s.prepare('INSERT INTO tokens (token, user_id) VALUES (?, ?)').run('tokenOfNoAccount', '@ghost:hs.example');
      const accepted = s.prepare('INSERT INTO accepted_terms_urls (user_id, url) VALUES (?, ?)');
      accepted.run('@alice:hs.example', 'https://sydent.example/terms-1.0-en.html');
      accepted.run('@alice:hs.example', 'https://sydent.example/gone.html');

      const session = s.prepare(
        'INSERT INTO threepid_validation_sessions (id, medium, address, clientSecret, validated, mtime) VALUES (?, ?, ?, ?, ?, ?)',
      );
      const tokenAuth = s.prepare('INSERT INTO threepid_token_auths (validationSession, token, sendAttemptNumber) VALUES (?, ?, 1)');
      const recent = Date.now() - 3600_000;
      session.run(41, 'email', 'carol@example.org', 'carolSecret', 1, recent);
      tokenAuth.run(41, 'carolToken');
      session.run(42, 'email', 'Frank@Example.org', 'frankSecret', 0, recent);
      tokenAuth.run(42, 'frankToken');
      session.run(43, 'email', 'late@example.org', 'lateSecret', 1, Date.now() - 3 * DAY_S * 1000);
      tokenAuth.run(43, 'lateToken');
      session.run(44, 'msisdn', '447700900000', 'phoneSecret', 0, recent);
      tokenAuth.run(44, '123456');
    });
    firstImport = await importSydent(fixture, url, dataDir);
  });
  afterAll(async () => {
    try {
      await settle([() => srv?.stop(), () => hs?.stop(), () => smtp?.stop()]);
    } finally {
      await dispose?.();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('imports every table, reports what it skipped and why, and prints a configuration for the deployment', () => {
    expect(firstImport.code, firstImport.err).toBe(0);
    const associations = tableLine(firstImport, 'associations');
    expect(associations).toMatch(/^associations\s+12\s+4\s+0\s/);
    expect(associations).toContain('2 removed binding (mxid NULL)');
    expect(associations).toContain('3 replaced by a newer row for the same address');
    expect(associations).toContain("2 this server's own binding, read from local_threepid_associations");
    expect(associations).toContain('1 replicated from peer.example');
    expect(tableLine(firstImport, 'invites')).toMatch(/^invites\s+4\s+2\s+0\s+1 already delivered by onbind; 1 expired/);
    expect(tableLine(firstImport, 'ephemeral keys')).toMatch(/^ephemeral keys\s+2\s+1\s+0\s+1 expired/);
    expect(tableLine(firstImport, 'access tokens')).toMatch(/^access tokens\s+2\s+1\s+0\s+1 no account for it/);
    expect(tableLine(firstImport, 'accepted terms')).toMatch(/^accepted terms\s+2\s+1\s+0\s+1 URL of no policy/);
    expect(tableLine(firstImport, 'validation sessions')).toMatch(/^validation sessions\s+4\s+2\s+0\s+1 expired; 1 msisdn/);
    expect(tableLine(firstImport, 'accounts')).toMatch(/^accounts\s+1\s+0\s+0\s+1 carried by their access tokens/);
    expect(firstImport.err).toMatch(/signing key ed25519:0 .*: written to .*signing\.key; lookup pepper: imported/);
    expect(firstImport.err).toContain('import complete');
    // not a terminal: progress in plain lines
    expect(firstImport.err).toContain("reading Sydent's database…");
    expect(firstImport.err).toContain('  associations: 4/4');

    const config = parse(firstImport.out) as Record<string, any>;
    expect(config.server).toEqual({ name: 'sydent.example', publicBaseUrl: 'https://sydent.example', v1Enabled: false, trustProxy: true });
    expect(config.accounts).toEqual({ allowedServers: ['hs.example', 'other.example'] });
    // every key is one Tessera knows, with a value it accepts
    expect(loadConfig({ argv: [], env: {}, overrides: config }).mail.smtp.password).toBe('p%ss');
    expect(config.mail).toMatchObject({
      from: 'Sydent Validation <noreply@sydent.example>',
      // port, password, brand, templates and the invitation subject come from [DEFAULT]; %% is a literal %
      smtp: { host: 'smtp.example', port: 587, tls: 'starttls', user: 'sydent', password: 'p%ss' },
      templatesDir: join(fixture.dir, 'res'),
      brand: 'matrix-org',
      inviteSubject: '%(sender_display_name)s wants you in a room',
    });
    expect(config.terms).toEqual({ file: join(fixture.dir, 'terms.yaml') });
    expect(config.invites.blockedServers).toEqual(['evil.example', 'worse.example']);
    expect(readFileSync(join(dataDir, 'signing.key'), 'utf8').trim()).toBe(fixture.keyText);
  });

  it('serves what Sydent served: lookups with the same key and pepper, ephemeral keys, sign-ed25519, tokens', async () => {
    srv = await startTestServer({
      dbUrl: url,
      dataDir,
      overrides: {
        ...smtpConfig(smtp.port),
        server: { name: 'sydent.example' },
        terms: { file: join(fixture.dir, 'terms.yaml') },
        federation: { verifyTls: false, allow: ['127.0.0.1/32'] },
        onbind: { initialBackoffMs: 20, maxBackoffMs: 200, pollIntervalMs: 100 },
      },
    });
    const sydentKey = encodeUnpadded(parseSigningKey(fixture.keyText).pair.publicKey);
    expect((await srv.call('GET', `${V2}/pubkey/ed25519:0`)).body).toEqual({ public_key: sydentKey });

    const alice = await srv.call('GET', `${V1}/lookup?medium=email&address=ALICE@example.org`);
    expect(alice.body).toMatchObject({ mxid: '@alice:hs.example', address: 'alice@example.org', ts: T1 });
    expect(verifyMatrixSignature(alice.body, 'sydent.example', 'ed25519:0', sydentKey)).toBe(true);
    const mxidOf = async (address: string) => (await srv!.call('GET', `${V1}/lookup?medium=email&address=${address}`)).body.mxid;
    expect(await mxidOf('bob@example.org')).toBe('@bob:hs.example');
    expect(await mxidOf('dan@example.org')).toBe('@dan2:hs.example');
    expect(await mxidOf('zoe@example.org')).toBe('@zoe:hs.example');
    for (const gone of ['removed@example.org', 'eve@example.org', 'peer@example.org']) expect(await mxidOf(gone)).toBeUndefined();
    const bulk = await srv.call('POST', `${V1}/bulk_lookup`, {
      threepids: [
        ['email', 'alice@example.org'],
        ['email', 'bob@example.org'],
        ['email', 'eve@example.org'],
      ],
    });
    expect(bulk.body.threepids).toEqual(
      expect.arrayContaining([
        ['email', 'alice@example.org', '@alice:hs.example'],
        ['email', 'bob@example.org', '@bob:hs.example'],
      ]),
    );
    expect(bulk.body.threepids).toHaveLength(2);

    // the v2 user keeps the token Sydent issued, the terms it accepted, and the pepper its client cached
    const bearer = { authorization: 'Bearer sydentAccessToken' };
    expect((await srv.call('GET', `${V2}/account`, undefined, bearer)).body).toEqual({ user_id: '@alice:hs.example' });
    expect((await srv.call('GET', `${V2}/account`, undefined, { authorization: 'Bearer tokenOfNoAccount' })).status).toBe(401);
    const details = await srv.call('GET', `${V2}/hash_details`, undefined, bearer);
    expect(details.body.lookup_pepper).toBe(fixture.pepper);
    const hash = createHash('sha256').update(`alice@example.org email ${fixture.pepper}`).digest('base64url');
    const hashed = await srv.call('POST', `${V2}/lookup`, { addresses: [hash], algorithm: 'sha256', pepper: fixture.pepper }, bearer);
    expect(hashed.body).toEqual({ mappings: { [hash]: '@alice:hs.example' } });

    // the ephemeral keys homeservers hold still answer valid; sign-ed25519 works with the emailed private key
    expect((await srv.call('GET', `${V1}/pubkey/ephemeral/isvalid?public_key=${ephemeralPublic}`)).body).toEqual({ valid: true });
    expect((await srv.call('GET', `${V1}/pubkey/ephemeral/isvalid?public_key=${expiredKey}`)).body).toEqual({ valid: false });
    const signed = await srv.call('POST', `${V1}/sign-ed25519`, {
      mxid: '@carol:hs.example',
      token: 'pendingTokenFromSydent',
      private_key: encodeUnpadded(ephemeral.seed),
    });
    expect(signed.status, JSON.stringify(signed.body)).toBe(200);
    expect(verifyMatrixSignature(signed.body, 'sydent.example', 'ed25519:0', ephemeralPublic)).toBe(true);
    const forged = await srv.call('POST', `${V1}/sign-ed25519`, {
      mxid: '@carol:hs.example',
      token: 'pendingTokenFromSydent',
      private_key: encodeUnpadded(generateKeyPair().seed),
    });
    expect(forged.status).toBe(403);
    // an imported key signs for imported invitations only: Tessera's own keep their own key
    const own = await srv.call('POST', `${V1}/store-invite`, {
      medium: 'email',
      address: 'grace@example.org',
      room_id: '!own:hs.example',
      sender: '@alice:hs.example',
    });
    expect(own.status).toBe(200);
    const crossed = await srv.call('POST', `${V1}/sign-ed25519`, {
      mxid: '@grace:hs.example',
      token: own.body.token,
      private_key: encodeUnpadded(ephemeral.seed),
    });
    expect(crossed.status).toBe(403);
    expect(srv.violations.splice(0)).toEqual([]);
  });

  it('binds with a session validated on Sydent, delivering the imported pending invitation, signed', async () => {
    const mxid = `@carol:${hs.serverName}`;
    const bound = await srv!.call('POST', `${V1}/3pid/bind`, { sid: '41', client_secret: 'carolSecret', mxid });
    expect(bound.status, JSON.stringify(bound.body)).toBe(200);
    await onbind.waitForCalls(1);
    const invites = onbind.calls[0]!.body.invites as { token: string; room_id: string; sender: string; signed: unknown }[];
    expect(invites.map((i) => i.token)).toEqual(['pendingTokenFromSydent']);
    expect(invites[0]).toMatchObject({ room_id: '!tea:hs.example', sender: '@alice:hs.example' });
    const sydentKey = encodeUnpadded(parseSigningKey(fixture.keyText).pair.publicKey);
    expect(verifyMatrixSignature(invites[0]!.signed, 'sydent.example', 'ed25519:0', sydentKey)).toBe(true);
    expect(onbind.violations()).toEqual([]);

    // a session whose email Sydent sent: the emailed token validates it here
    const wrong = await srv!.call('POST', `${V1}/validate/email/submitToken`, { sid: '42', client_secret: 'frankSecret', token: 'nope' });
    expect(wrong.body.errcode).toBe('M_TOKEN_INCORRECT');
    const submitted = await srv!.call('POST', `${V1}/validate/email/submitToken`, {
      sid: '42',
      client_secret: 'frankSecret',
      token: 'frankToken',
    });
    expect(submitted.body).toEqual({ success: true });
    const frank = await srv!.call('POST', `${V1}/3pid/bind`, { sid: '42', client_secret: 'frankSecret', mxid: `@frank:${hs.serverName}` });
    expect(frank.status, JSON.stringify(frank.body)).toBe(200);
    expect(frank.body.address).toBe('frank@example.org');
    expect((await srv!.call('POST', `${V1}/3pid/bind`, { sid: '43', client_secret: 'lateSecret', mxid })).status).toBe(404);
    expect(srv!.violations.splice(0)).toEqual([]);
  });

  it('revokes an imported invitation with the operator command, saying its key cannot be told apart', async () => {
    const revoked = await exec(
      process.execPath,
      [join(ROOT, 'node_modules/tsx/dist/cli.mjs'), join(ROOT, 'src/cli/tessera.ts'), 'invites', 'revoke', 'revocableTokenFromSydent'],
      {
        env: { PATH: process.env.PATH ?? '', TESSERA_DATABASE_URL: url, TESSERA_DATA_DIR: dataDir, TESSERA_SERVER_NAME: 'sydent.example' },
      },
    );
    expect(revoked.stdout).toContain('imported from Sydent');
    const signed = await srv!.call('POST', `${V1}/sign-ed25519`, {
      mxid: '@erin:hs.example',
      token: 'revocableTokenFromSydent',
      private_key: encodeUnpadded(ephemeral.seed),
    });
    expect(signed.status).toBe(404);
    expect(srv!.violations.splice(0)).toEqual([]);
  });

  it('changes nothing on a second run, and says so', async () => {
    const again = await importSydent(fixture, url, dataDir);
    expect(again.code, again.err).toBe(0);
    expect(again.err).toContain('nothing to import: Tessera already holds all of it');
    expect(tableLine(again, 'associations')).toMatch(/^associations\s+12\s+0\s+4\s/);
    expect(tableLine(again, 'invites')).toMatch(
      /^invites\s+4\s+0\s+1\s+1 already delivered by onbind; 1 expired under invites.lifetimeMs; 1 revoked by an operator/,
    );
    expect(tableLine(again, 'ephemeral keys')).toMatch(/^ephemeral keys\s+2\s+0\s+1\s/);
    expect(tableLine(again, 'access tokens')).toMatch(/^access tokens\s+2\s+0\s+1\s/);
    expect(tableLine(again, 'accepted terms')).toMatch(/^accepted terms\s+2\s+0\s+1\s/);
    expect(tableLine(again, 'validation sessions')).toMatch(/^validation sessions\s+4\s+0\s+2\s/);
    expect(again.err).toMatch(/signing key ed25519:0 .*: already Tessera’s .*; lookup pepper: already Tessera’s/);
  });

  it('refuses bad input with a clear message and writes nothing', async () => {
    const counts = async () => {
      const out: Record<string, number> = {};
      for (const t of [
        'associations',
        'invites',
        'ephemeral_keys',
        'account_tokens',
        'accepted_terms',
        'validation_sessions',
        'binding_settings',
      ]) {
        out[t] = Number(((await srv!.service.db.knex(t).count({ n: '*' })) as { n: number }[])[0]!.n);
      }
      return out;
    };
    const before = await counts();
    const refused = (run: Run, message: string) => {
      expect(run.code, run.err).toBe(1);
      expect(run.err).toContain(message);
    };

    // another Sydent whose rows clash with what was imported, signing with the same key
    const clash = writeSydent(join(dir, 'clash'), (s) => {
      s.prepare('INSERT INTO local_threepid_associations (medium, address, mxid, ts, notBefore, notAfter) VALUES (?, ?, ?, ?, ?, ?)').run(
        'email',
        'new@example.org',
        '@new:hs.example',
        1,
        1,
        FAR,
      );
      s.prepare(
        'INSERT INTO invite_tokens (medium, address, room_id, sender, token, received_ts, sent_ts) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ).run('email', 'zed@example.org', '!elsewhere:hs.example', '@alice:hs.example', 'pendingTokenFromSydent', nowS(), null);
    });
    writeFileSync(clash.configFile, readFileSync(clash.configFile, 'utf8').replace(clash.keyText, fixture.keyText));
    const conflict = await importSydent(clash, url, dataDir);
    refused(conflict, "refused, nothing was written: Tessera's database or configuration disagrees with Sydent's in 1 place(s)");
    expect(conflict.err).toContain('invites: Tessera already holds invitation');

    // Sydent changed after the import: a binding was removed there
    const later = join(dir, 'later');
    cpSync(fixture.dir, later, { recursive: true });
    const changed = new BetterSqlite3(join(later, 'sydent.db'));
    changed.prepare("UPDATE local_threepid_associations SET mxid = NULL, ts = ? WHERE address = 'Alice@Example.org'").run(Date.now());
    changed.close();
    const afterChanges = await importSydent({ configFile: join(later, 'sydent.conf') }, url, dataDir);
    refused(afterChanges, 'that Sydent unbound later');

    // another signing key than the one Tessera's database records (as it started with Sydent's), key file or not
    const otherKey = writeSydent(join(dir, 'other-key'), () => {});
    refused(await importSydent(otherKey, url, dataDir), "Tessera's database records another public key under ed25519:0");
    const noKeyFile = join(dir, 'no-key-file');
    refused(await importSydent(otherKey, url, noKeyFile), "Tessera's database records another public key under ed25519:0");
    expect(existsSync(join(noKeyFile, 'signing.key'))).toBe(false);

    // a configured lookup pepper that would replace Sydent's
    refused(await importSydent(fixture, url, dataDir, [], { TESSERA_BINDING_LOOKUP_PEPPER: 'another' }), 'binding.lookupPepper');

    // not a Sydent database; a schema this importer does not know
    const notSydent = join(dir, 'not-sydent.db');
    new BetterSqlite3(notSydent).exec('CREATE TABLE something (id integer)');
    refused(await importSydent(fixture, url, dataDir, ['--sydent-db', notSydent]), 'is not a Sydent database: no invite_tokens');
    const oldSchema = writeSydent(join(dir, 'old'), () => {}, { userVersion: 2 });
    refused(await importSydent(oldSchema, url, dataDir), 'schema version 2');
    expect((await importSydent({ configFile: join(dir, 'missing.conf') }, url, dataDir)).code).toBe(1);
    expect(await counts()).toEqual(before);
  });

  it('writes neither the key file nor any row when it refuses on a fresh data folder; refuses a key file with another key', async () => {
    const fresh = await db.create();
    try {
      const first = writeSydent(join(dir, 'first'), (s) => {
        s.prepare(
          'INSERT INTO invite_tokens (medium, address, room_id, sender, token, received_ts, sent_ts) VALUES (?, ?, ?, ?, ?, ?, ?)',
        ).run('email', 'zed@example.org', '!elsewhere:hs.example', '@alice:hs.example', 'pendingTokenFromSydent', nowS(), null);
      });
      writeFileSync(first.configFile, readFileSync(first.configFile, 'utf8').replace(first.keyText, fixture.keyText));
      expect((await importSydent(first, fresh.url, join(dir, 'first-data'))).code).toBe(0);
      const second = join(dir, 'second-data');
      const run = await importSydent(fixture, fresh.url, second);
      expect(run.code, run.err).toBe(1);
      expect(run.err).toContain('invites: Tessera already holds invitation');
      expect(existsSync(join(second, 'signing.key'))).toBe(false);
      // Tessera never started on this database, so only the key file says which key it has
      const otherKey = writeSydent(join(dir, 'other-key-2'), () => {});
      const other = await importSydent(otherKey, fresh.url, join(dir, 'first-data'));
      expect(other.code, other.err).toBe(1);
      expect(other.err).toContain("holds another signing key than Sydent's");
    } finally {
      await fresh.dispose();
    }
  });

  it('carries every row of tables longer than one batch', async () => {
    const fresh = await db.create();
    const n = 2500;
    try {
      const big = writeSydent(join(dir, 'big'), (s) => {
        const local = s.prepare(
          'INSERT INTO local_threepid_associations (medium, address, mxid, ts, notBefore, notAfter) VALUES (?, ?, ?, ?, ?, ?)',
        );
        const invite = s.prepare(
          'INSERT INTO invite_tokens (medium, address, room_id, sender, token, received_ts, sent_ts) VALUES (?, ?, ?, ?, ?, ?, NULL)',
        );
        const key = s.prepare('INSERT INTO ephemeral_public_keys (public_key, verify_count, persistence_ts) VALUES (?, 0, ?)');
        s.transaction(() => {
          for (let i = 0; i < n; i++) {
            local.run('email', `user${i}@example.org`, `@user${i}:hs.example`, T1, T1, FAR);
            invite.run('email', `invitee${i}@example.org`, '!r:hs.example', '@s:hs.example', `bigToken${i}`, nowS());
            key.run(encodeUrlSafe(generateKeyPair().publicKey), nowS());
          }
        })();
      });
      const first = await importSydent(big, fresh.url, join(dir, 'big-data'));
      expect(first.code, first.err).toBe(0);
      for (const table of ['associations', 'invites', 'ephemeral keys'])
        expect(tableLine(first, table)).toMatch(new RegExp(`^${table}\\s+${n}\\s+${n}\\s+0\\s`));
      const second = await importSydent(big, fresh.url, join(dir, 'big-data'));
      for (const table of ['associations', 'invites', 'ephemeral keys'])
        expect(tableLine(second, table)).toMatch(new RegExp(`^${table}\\s+${n}\\s+0\\s+${n}\\s`));
    } finally {
      await fresh.dispose();
    }
  });

  it('reports without writing on --dry-run, and reads a schema version 4 database', async () => {
    const fresh = await db.create();
    const freshData = join(dir, 'dry-data');
    try {
      const dry = await importSydent(fixture, fresh.url, freshData, ['--dry-run']);
      expect(dry.code, dry.err).toBe(0);
      expect(dry.err).toContain('dry run: nothing was written');
      expect(tableLine(dry, 'associations')).toMatch(/^associations\s+12\s+4\s+0/);
      expect(dry.err).toMatch(/would be written to .*; lookup pepper: would be imported/);
      expect(existsSync(join(freshData, 'signing.key'))).toBe(false);
      const again = await importSydent(fixture, fresh.url, freshData, ['--dry-run']);
      expect(tableLine(again, 'associations')).toMatch(/^associations\s+12\s+4\s+0/); // still nothing there
      const v4 = writeSydent(join(dir, 'v4'), () => {}, { userVersion: 4 });
      expect((await importSydent(v4, fresh.url, join(dir, 'v4-data'), ['--dry-run'])).code).toBe(0);
    } finally {
      await fresh.dispose();
    }
  });
});
